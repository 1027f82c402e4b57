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


def detector_alone(width: int, segments: int, repeat: int) -> float:
    """The appended nodes on their own: median ms of one run on a window's features."""
    import onnxruntime as ort
    from onnx import TensorProto, helper
    def tensor(name):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", width])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], [music.FEATURES_OUTPUT])], "alone",
                              [tensor("x")], [tensor(music.FEATURES_OUTPUT)])
    alone = music.append(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]),
                         music.Detector(np.zeros(width), 0.0))
    session = ort.InferenceSession(alone.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(segments, width)).astype(np.float32)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        session.run([music.MUSIC_OUTPUT], {"x": x})
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args(argv)
    import librosa
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        models = {"without music": model.Model(variant(Path(DEFAULT_MODEL), Path(a), False)),
                  "with music": model.Model(variant(Path(DEFAULT_MODEL), Path(b), True))}
        audio, _ = librosa.load(CLIP, sr=models["without music"].sample_rate, duration=30)
        times = {name: [] for name in models}
        for _ in range(args.repeat + 2):  # the first two warm up
            for name, m in models.items():
                started = time.perf_counter()
                answer = m.classify(audio)
                times[name].append((time.perf_counter() - started) * 1000)
        assert ("music" in answer) is True
    p50 = {name: statistics.median(t[2:]) for name, t in times.items()}
    for name, value in p50.items():
        print(f"{name}: classify 30 s, warm, p50 {value:.1f} ms over {args.repeat}")
    print(f"difference with music: {p50['with music'] - p50['without music']:+.1f} ms "
          f"({(p50['with music'] / p50['without music'] - 1) * 100:+.1f}% of the model's time)")
    alone = detector_alone(250, 10, 1000)
    print(f"the detector's nodes alone on 10 segments' features: p50 {alone * 1000:.0f} us "
          f"({alone / p50['without music'] * 100:.3f}% of the model's time)")


if __name__ == "__main__":
    main()
