"""Scoring: an exported ONNX model on decoded clips (through onnxruntime and its own metadata),
and the figures of a set of scored clips.

Track-level: the mean of the segment scores over the whole clip; segment-level: each 3-s segment.
"""
import numpy as np
import onnxruntime as ort
from sklearn.metrics import confusion_matrix, f1_score

from inference import segments
from inference.contract import AUDIO_INPUT, LABELS, ModelMeta


def session(model_path) -> tuple[ort.InferenceSession, ModelMeta]:
    """An onnxruntime session of a model that takes raw audio, and its metadata."""
    run = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    return run, ModelMeta.from_props(run.get_modelmeta().custom_metadata_map)


def predict(model_path, loaded) -> list[tuple[int, np.ndarray]]:
    """Per clip (decoded at the model's sample rate): true label index, segment probabilities."""
    run, meta = session(model_path)
    return [(LABELS.index(clip.genre), run.run(None, {AUDIO_INPUT: segments.split(audio, meta.segment_samples)})[0])
            for clip, audio in loaded]


def summarize(predictions, pooling: str = "mean") -> dict:
    """Track- and segment-level accuracy, per-genre F1 and the track confusion matrix of
    (true label index, segment probabilities) pairs, tracks pooled as the model pools them."""
    y_track = np.array([y for y, _ in predictions])
    p_track = np.array([int(np.argmax(segments.pool(p, pooling))) for _, p in predictions])
    y_seg = np.concatenate([np.full(len(p), y) for y, p in predictions])
    p_seg = np.concatenate([np.argmax(p, axis=1) for _, p in predictions])
    ids = list(range(len(LABELS)))
    f1 = f1_score(y_track, p_track, labels=ids, average=None, zero_division=0).round(3).tolist()
    return {
        "tracks": len(y_track), "segments": len(y_seg),
        "track_accuracy": float(np.mean(y_track == p_track)),
        "segment_accuracy": float(np.mean(y_seg == p_seg)),
        "f1": dict(zip(LABELS, f1, strict=True)),
        "confusion": confusion_matrix(y_track, p_track, labels=ids).tolist(),
        "labels": list(LABELS),
    }


def report(m: dict) -> str:
    """A human-readable report of summarize()'s figures."""
    lines = [f"tracks {m['tracks']}  segments {m['segments']}",
             f"track-level accuracy   {m['track_accuracy']:.3f}",
             f"segment-level accuracy {m['segment_accuracy']:.3f}",
             "per-genre F1: " + "  ".join(f"{g} {f:.2f}" for g, f in m["f1"].items()),
             "confusion (rows: true, columns: predicted)",
             " " * 10 + "".join(f"{g[:5]:>6}" for g in m["labels"])]
    lines += [f"{g:>10}" + "".join(f"{n:>6}" for n in row) for g, row in zip(m["labels"], m["confusion"], strict=True)]
    return "\n".join(lines)
