"""The in_labels detector's cost per request: the default model's serving path (Model.classify on 30 s
of a GTZAN clip, warm) without and with its "in_labels" output (export/in_labels.py), interleaved;
and the detector's nodes alone on a window's features.

    python bench/in_labels.py [--repeat 40]

The shipped model's own detector is timed (the other variant has it removed). Measures, never asserts.
"""
import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnx
from music import interleaved, nodes_alone, report  # bench/music.py (it puts the repository on sys.path)

from export import in_labels, to_onnx
from inference import contract, model
from inference.config import DEFAULT_MODEL

SEGMENTS, WIDTH = 10, 250  # a 30-s window's segments, the default model's features


def without(path: Path, folder: Path) -> Path:
    """The model without its in_labels detector, in folder."""
    out = folder / path.name
    out.write_bytes(in_labels.without(onnx.load(path)).SerializeToString())
    to_onnx.write_twin(out)
    return out


def detector(labels: int) -> in_labels.Detector:
    """A detector of the shipped one's shape (its values do not change its cost)."""
    rng = np.random.default_rng(0)
    return in_labels.Detector(in_labels.Distance(np.eye(in_labels.TAGS), rng.normal(size=(labels, in_labels.TAGS))),
                              -0.5, 1.0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        shipped = model.Model(DEFAULT_MODEL)
        p50 = interleaved({"without in_labels": model.Model(without(Path(DEFAULT_MODEL), Path(folder))),
                           "with in_labels": shipped}, "in_labels", args.repeat)
    alone = nodes_alone(lambda m: in_labels.append(m, detector(len(shipped.labels))), contract.IN_LABELS_OUTPUT,
                        WIDTH, SEGMENTS, 1000)
    report(p50["without in_labels"], p50["with in_labels"], alone, "in_labels", SEGMENTS)


if __name__ == "__main__":
    main()
