"""export/calibrate.py: temperature scaling, ECE, Brier and the uncertain threshold on known data."""
import numpy as np
import pytest
from scipy.special import softmax

from export import calibrate


def overconfident(n=4000, seed=0):
    """Answers drawn from softmax(z), reported as softmax(3 z): right as often as z says, three
    times too sure of it."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, size=(n, 10))
    y = np.array([rng.choice(10, p=p) for p in softmax(z, axis=1)])
    return 3 * z, y


def test_temperature_undoes_overconfidence():
    logits, y = overconfident()
    before = softmax(logits, axis=1)
    t = calibrate.temperature(lambda t: calibrate.scaled(before, t), y)
    assert t == pytest.approx(3.0, rel=0.1)
    after = calibrate.scaled(before, t)
    assert np.abs(after - softmax(logits / t, axis=1)).max() < 1e-9
    assert calibrate.ece(before, y) > 0.1 > 0.03 > calibrate.ece(after, y)
    assert calibrate.brier(after, y) < calibrate.brier(before, y)


def test_ece_and_brier_by_hand():
    p = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    y = np.array([0, 1, 0, 0])
    # bins: 0.9 (accuracy 0.5, half the answers) and 0.6 (accuracy 1.0, half)
    assert calibrate.ece(p, y) == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)
    assert calibrate.brier(p, y) == pytest.approx((0.02 + 1.62 + 0.32 + 0.32) / 4)


def test_uncertain_threshold_keeps_answers_right_often_enough():
    p = np.array([[0.95, 0.05], [0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4], [0.55, 0.45]])
    y = np.array([0, 0, 0, 1, 0, 1])  # right, right, right, wrong, right, wrong
    threshold, flagged = calibrate.uncertain_below(p, y, precision=0.85)
    assert threshold == pytest.approx(0.8) and flagged == pytest.approx(0.5)
    assert calibrate.uncertain_below(p, y, precision=0.5) == (0.55, 0.0)
    assert calibrate.uncertain_below(p, np.ones(6, int), precision=0.85) == (1.0, 1.0)


def test_reliability_diagram_is_written(tmp_path):
    logits, y = overconfident(500)
    calibrate.reliability_diagram({"raw": (softmax(logits, axis=1), y)}, tmp_path / "r.png", "test")
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_library_whose_answers_were_all_right_is_held_at_the_lowest_temperature():
    """Every out-of-fold answer right: the likelihood wants T -> 0 (every score 1.0000); it is held."""
    p = softmax(np.random.default_rng(0).normal(0, 1, (60, 3)) + 3 * np.eye(3)[np.arange(60) % 3], axis=1)
    y = np.arange(60) % 3
    assert (p.argmax(axis=1) == y).all()
    t = calibrate.temperature(lambda t: calibrate.scaled(p, t), y)
    assert t == pytest.approx(calibrate.TEMPERATURES[0], rel=0.01) and calibrate.at_lowest(t)
    assert calibrate.scaled(p, t).max(axis=1).min() < 0.999
    assert not calibrate.at_lowest(calibrate.temperature(lambda t: calibrate.scaled(softmax(overconfident()[0], axis=1),
                                                                                      t), overconfident()[1]))


def test_answers_no_better_than_chance_run_to_the_highest_temperature():
    """Sure answers, right one time in three labels: the fit flattens them as far as it may (at_highest)."""
    rng = np.random.default_rng(0)
    p = softmax(5 * np.eye(3)[rng.integers(3, size=300)], axis=1)
    y = rng.integers(3, size=300)
    t = calibrate.temperature(lambda t: calibrate.scaled(p, t), y)
    assert calibrate.at_highest(t) and not calibrate.at_lowest(t)
    assert not calibrate.at_highest(calibrate.temperature(lambda t: calibrate.scaled(softmax(overconfident()[0],
                                                                                             axis=1), t),
                                                          overconfident()[1]))
