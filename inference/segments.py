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


def pool(segment_scores: np.ndarray) -> np.ndarray:
    """A track's scores: the mean of its segments' probabilities."""
    return np.asarray(segment_scores, dtype=np.float64).mean(axis=0)
