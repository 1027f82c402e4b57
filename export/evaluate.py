"""Score an exported ONNX model on a GTZAN-layout folder, through onnxruntime.

    python -m export.evaluate --model models/genre_cnn.onnx --data DIR [--split valid]

Track-level: the mean of the segment scores over the whole clip; segment-level: each 3-s segment.
"""
import argparse
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
from sklearn.metrics import confusion_matrix, f1_score

from export import dataset
from export.train import select
from inference import segments


def predict(model_path, loaded):
    """Per clip: true label index, segment probabilities [n, labels]."""
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    labels = json.loads(meta["labels"])
    size = int(meta["segment_samples"])
    return labels, [(labels.index(clip.genre), session.run(None, {"audio": segments.split(audio, size)})[0])
                    for clip, audio in loaded]


def summarize(labels, predictions) -> dict:
    """Track- and segment-level accuracy, per-genre F1 and the track confusion matrix."""
    y_track = np.array([y for y, _ in predictions])
    p_track = np.array([int(np.argmax(segments.pool(p))) for _, p in predictions])
    y_seg = np.concatenate([np.full(len(p), y) for y, p in predictions])
    p_seg = np.concatenate([np.argmax(p, axis=1) for _, p in predictions])
    ids = list(range(len(labels)))
    return {
        "tracks": len(y_track), "segments": len(y_seg),
        "track_accuracy": float(np.mean(y_track == p_track)),
        "segment_accuracy": float(np.mean(y_seg == p_seg)),
        "f1": dict(zip(labels, f1_score(y_track, p_track, labels=ids, average=None, zero_division=0).round(3).tolist())),
        "confusion": confusion_matrix(y_track, p_track, labels=ids).tolist(),
        "labels": list(labels),
    }


def report(m: dict) -> str:
    """A human-readable report of summarize()'s figures."""
    lines = [f"tracks {m['tracks']}  segments {m['segments']}",
             f"track-level accuracy   {m['track_accuracy']:.3f}",
             f"segment-level accuracy {m['segment_accuracy']:.3f}",
             "per-genre F1: " + "  ".join(f"{g} {f:.2f}" for g, f in m["f1"].items()),
             "confusion (rows: true, columns: predicted)",
             " " * 10 + "".join(f"{g[:5]:>6}" for g in m["labels"])]
    lines += [f"{g:>10}" + "".join(f"{n:>6}" for n in row) for g, row in zip(m["labels"], m["confusion"])]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, help="GTZAN-layout folder")
    parser.add_argument("--split", default="all", help="score this split list only (train, valid, all)")
    parser.add_argument("--splits-dir", help="folder of <split>_filtered.txt (default: DATA/splits)")
    args = parser.parse_args(argv)
    clips = select(dataset.find_clips(args.data), args.splits_dir or Path(args.data) / "splits", args.split)
    print(report(summarize(*predict(args.model, dataset.load(clips)))))


if __name__ == "__main__":
    main()
