"""inference/segments.py: cutting audio into segments and pooling their scores, by hand-made examples."""
import numpy as np
import pytest

from inference import segments


@pytest.mark.parametrize("audio, expected", [
    ([1, 2, 3], [[1, 2, 3, 0]]),  # shorter than a segment: zeros after it
    ([1, 2, 3, 4], [[1, 2, 3, 4]]),  # exactly one
    (list(range(11)), [[0, 1, 2, 3], [4, 5, 6, 7]]),  # whole segments in order, the tail dropped
])
def test_split(audio, expected):
    cut = segments.split(np.array(audio), 4)
    assert cut.dtype == np.float32 and cut.tolist() == expected


def test_pool_is_the_mean_of_the_segments():
    assert segments.pool([[0.2, 0.8], [0.6, 0.4], [0.1, 0.9]]).tolist() == pytest.approx([0.3, 0.7])


def test_pool_by_mean_logits_is_the_normalised_geometric_mean():
    # geometric means: sqrt(0.5 * 0.2) = sqrt(0.1), sqrt(0.5 * 0.8) = sqrt(0.4) = 2 sqrt(0.1)
    assert segments.pool([[0.5, 0.5], [0.2, 0.8]], how="mean_logits").tolist() == pytest.approx([1 / 3, 2 / 3])
    assert segments.pool([[0.0, 1.0], [0.5, 0.5]], how="mean_logits").tolist() == pytest.approx([0, 1], abs=1e-12)
