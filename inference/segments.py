"""Cutting audio into the model's fixed-length segments, and pooling their scores into one."""
import numpy as np


def split(audio: np.ndarray, segment_samples: int) -> np.ndarray:
    """Consecutive non-overlapping segments [n, segment_samples]; a clip shorter than one segment
    is zero-padded to one, a tail shorter than a segment is dropped."""
    audio = np.asarray(audio, dtype=np.float32)
    if len(audio) < segment_samples:
        audio = np.pad(audio, (0, segment_samples - len(audio)))
    n = len(audio) // segment_samples
    return audio[: n * segment_samples].reshape(n, segment_samples)


def pool(segment_scores: np.ndarray, how: str = "mean") -> np.ndarray:
    """A track's scores from its segments' probabilities [n, labels]: their mean ("mean"), or the
    softmax of the mean of their logarithms ("mean_logits": log p = logit - a constant per segment,
    so this is softmax(mean logit), a linear head on the segments' mean features)."""
    p = np.asarray(segment_scores, dtype=np.float64)
    if how == "mean":
        return p.mean(axis=0)
    log_mean = np.log(np.maximum(p, np.finfo(np.float64).tiny)).mean(axis=0)
    exp = np.exp(log_mean - log_mean.max())
    return exp / exp.sum()


def pool_yes(segment_probabilities: np.ndarray) -> float:
    """A track's probability of a yes-or-no answer (is it music?) from its segments': the sigmoid
    of the mean of their logits, as "mean_logits" pools the genres."""
    p = np.clip(np.asarray(segment_probabilities, dtype=np.float64), 1e-12, 1 - 1e-12)
    return float(1 / (1 + np.exp(-np.mean(np.log(p) - np.log1p(-p)))))
