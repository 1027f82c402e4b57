"""Scoring: an exported ONNX model on decoded clips (through onnxruntime and its own metadata),
and the figures of a set of scored clips.

Track-level: the segment scores pooled over the window as the model pools them; segment-level:
each 3-s segment.
"""
import numpy as np
import onnxruntime as ort
from sklearn.metrics import confusion_matrix, f1_score

from inference import segments
from inference.contract import AUDIO_INPUT, OUTPUT, ModelMeta


def session(model_path) -> tuple[ort.InferenceSession, ModelMeta]:
    """An onnxruntime session of a model that takes raw audio, and its metadata."""
    run = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    return run, ModelMeta.from_props(run.get_modelmeta().custom_metadata_map)


def predict(model_path, windows: list[np.ndarray]) -> list[np.ndarray]:
    """Each window's segment probabilities (audio decoded at the model's sample rate)."""
    run, meta = session(model_path)
    return [run.run([OUTPUT], {AUDIO_INPUT: segments.split(audio, meta.segment_samples)})[0] for audio in windows]


def summarize(predictions, labels: tuple[str, ...], pooling: str = "mean") -> dict:
    """Track- and segment-level accuracy, per-label F1 and the track confusion matrix of
    (true label index, segment probabilities) pairs, tracks pooled as the model pools them."""
    y_track = np.array([y for y, _ in predictions])
    p_track = np.array([int(np.argmax(segments.pool(p, pooling))) for _, p in predictions])
    y_seg = np.concatenate([np.full(len(p), y) for y, p in predictions])
    p_seg = np.concatenate([np.argmax(p, axis=1) for _, p in predictions])
    ids = list(range(len(labels)))
    f1 = f1_score(y_track, p_track, labels=ids, average=None, zero_division=0).round(3).tolist()
    return {
        "tracks": len(y_track), "segments": len(y_seg),
        "track_accuracy": float(np.mean(y_track == p_track)),
        "segment_accuracy": float(np.mean(y_seg == p_seg)),
        "f1": dict(zip(labels, f1, strict=True)),
        "confusion": confusion_matrix(y_track, p_track, labels=ids).tolist(),
        "labels": list(labels),
    }


def report(m: dict) -> str:
    """A human-readable report of summarize()'s figures."""
    width = min(max(map(len, m["labels"])), 20) + 1
    lines = [f"tracks {m['tracks']}  segments {m['segments']}",
             f"track-level accuracy   {m['track_accuracy']:.3f}",
             f"segment-level accuracy {m['segment_accuracy']:.3f}",
             "per-label F1: " + "  ".join(f"{g} {f:.2f}" for g, f in m["f1"].items()),
             "confusion (rows: true, columns: predicted)",
             " " * width + "".join(f"{g[:5]:>6}" for g in m["labels"])]
    lines += [f"{g[:width - 1]:>{width}}" + "".join(f"{n:>6}" for n in row)
              for g, row in zip(m["labels"], m["confusion"], strict=True)]
    return "\n".join(lines)
