"""The in_labels detector's cost per request: the default model's serving path (Model.classify on 30 s
of a GTZAN clip, warm) without and with its "in_labels" output (export/in_labels.py), interleaved;
and the detector's nodes alone on a window's features.

    python bench/in_labels.py [--repeat 40]

The shipped model's own detector is timed (the other variant has it removed). Measures, never asserts.
"""
import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT.parent / "shared" / "data" / "gtzan" / "rock" / "rock.00000.flac"
sys.path.insert(0, str(ROOT))
from export import in_labels, to_onnx  # noqa: E402
from inference import contract, model  # noqa: E402
from inference.config import DEFAULT_MODEL  # noqa: E402

SEGMENTS, WIDTH = 10, 250  # a 30-s window's segments, the default model's features


def without(path: Path, folder: Path) -> Path:
    """The model without its in_labels detector, in folder."""
    out = folder / path.name
    out.write_bytes(in_labels.without(onnx.load(path)).SerializeToString())
    to_onnx.write_twin(out)
    return out


def nodes_alone(labels: int, repeat: int) -> float:
    """The appended nodes on their own (a detector of `labels` labels): median ms of one run."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    def tensor(name):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", WIDTH])
    rng = np.random.default_rng(0)
    distances = tuple(in_labels.Distance(view, rng.normal(size=(labels, d)), np.eye(d))
                      for view, d in (("tags", in_labels.TAGS), ("shape", WIDTH)))
    graph = helper.make_graph([helper.make_node("Identity", ["x"], [contract.FEATURES_OUTPUT])], "alone",
                              [tensor("x")], [tensor(contract.FEATURES_OUTPUT)])
    alone = in_labels.append(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]),
                             in_labels.Detector(distances, np.array([-0.5, -0.5]), 1.0))
    session = ort.InferenceSession(alone.SerializeToString(), providers=["CPUExecutionProvider"])
    x = rng.uniform(size=(SEGMENTS, WIDTH)).astype(np.float32)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        session.run([contract.IN_LABELS_OUTPUT], {"x": x})
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args(argv)
    import librosa
    with tempfile.TemporaryDirectory() as folder:
        models = {"without in_labels": model.Model(without(Path(DEFAULT_MODEL), Path(folder))),
                  "with in_labels": model.Model(DEFAULT_MODEL)}
        audio, _ = librosa.load(CLIP, sr=models["with in_labels"].sample_rate, duration=30)
        times = {name: [] for name in models}
        for _ in range(args.repeat + 2):  # the first two warm up
            for name, m in models.items():
                started = time.perf_counter()
                answer = m.classify(audio)
                times[name].append((time.perf_counter() - started) * 1000)
        if "in_labels" not in answer:
            raise SystemExit(f"{DEFAULT_MODEL} has no in_labels detector to time")
    p50 = {name: statistics.median(t[2:]) for name, t in times.items()}
    for name, value in p50.items():
        print(f"{name}: classify 30 s, warm, p50 {value:.1f} ms over {args.repeat}")
    print(f"difference with in_labels: {p50['with in_labels'] - p50['without in_labels']:+.1f} ms "
          f"({(p50['with in_labels'] / p50['without in_labels'] - 1) * 100:+.1f}% of the model's time)")
    alone = nodes_alone(len(models["with in_labels"].labels), 1000)
    print(f"the detector's nodes alone on {SEGMENTS} segments' features: p50 {alone * 1000:.0f} us "
          f"({alone / p50['without in_labels'] * 100:.3f}% of the model's time)")


if __name__ == "__main__":
    main()
