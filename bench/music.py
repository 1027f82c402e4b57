"""The music detector's cost per request: the default model's serving path (Model.classify on
30 s of a GTZAN clip, warm) without and with its "music" output (export/music.py), interleaved.

    python bench/music.py [--repeat 40]

The detector's weights do not change its cost (one dot product per segment): a zero detector is
appended, so no fit is needed. Measures, never asserts.
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
from export import music, to_onnx  # noqa: E402
from inference import model  # noqa: E402
from inference.config import DEFAULT_MODEL  # noqa: E402


def variant(path: Path, folder: Path, detector: bool) -> Path:
    """The model without its detector, or with a zero detector if asked, in folder."""
    out = folder / path.name
    full = music.without(onnx.load(path))
    width = next(o for o in full.graph.output if o.name == music.FEATURES_OUTPUT).type.tensor_type.shape.dim[-1]
    if detector:
        full = music.append(full, music.Detector(np.zeros(width.dim_value), 0.0))
    out.write_bytes(full.SerializeToString())
    to_onnx.write_twin(out)
    return out


def nodes_alone(append, output: str, width: int, segments: int, repeat: int) -> float:
    """The nodes append(model) adds after a features output [batch, width], on their own: median ms of
    one run on `segments` segments' features."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    def tensor(name):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", width])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], [music.FEATURES_OUTPUT])], "alone",
                              [tensor("x")], [tensor(music.FEATURES_OUTPUT)])
    alone = append(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))
    session = ort.InferenceSession(alone.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).uniform(size=(segments, width)).astype(np.float32)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        session.run([output], {"x": x})
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def interleaved(models: dict, field: str, repeat: int) -> dict[str, float]:
    """p50 ms of each named Model's classify on 30 s of CLIP, warm, the models taking turns; the last
    answer must carry `field`. Printed too."""
    import librosa
    audio, _ = librosa.load(CLIP, sr=next(iter(models.values())).sample_rate, duration=30)
    times = {name: [] for name in models}
    for _ in range(repeat + 2):  # the first two warm up
        for name, m in models.items():
            started = time.perf_counter()
            answer = m.classify(audio)
            times[name].append((time.perf_counter() - started) * 1000)
    if field not in answer:
        raise SystemExit(f"the last model has no {field!r} to time")
    p50 = {name: statistics.median(t[2:]) for name, t in times.items()}
    for name, value in p50.items():
        print(f"{name}: classify 30 s, warm, p50 {value:.1f} ms over {repeat}")
    return p50


def report(without: float, with_: float, alone: float, what: str, segments: int = 10):
    """The difference a detector makes to classify, and its nodes' share of it."""
    print(f"difference with {what}: {with_ - without:+.1f} ms "
          f"({(with_ / without - 1) * 100:+.1f}% of the model's time)")
    print(f"the detector's nodes alone on {segments} segments' features: p50 {alone * 1000:.0f} us "
          f"({alone / without * 100:.3f}% of the model's time)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        p50 = interleaved({"without music": model.Model(variant(Path(DEFAULT_MODEL), Path(a), False)),
                           "with music": model.Model(variant(Path(DEFAULT_MODEL), Path(b), True))}, "music",
                          args.repeat)
    alone = nodes_alone(lambda m: music.append(m, music.Detector(np.zeros(250), 0.0)), music.MUSIC_OUTPUT, 250, 10,
                        1000)
    report(p50["without music"], p50["with music"], alone, "music")


if __name__ == "__main__":
    main()
