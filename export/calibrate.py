"""Confidence that means what it says: a temperature fitted on out-of-fold predictions, the
figures that judge it (expected calibration error, Brier score), a reliability diagram, and the
confidence under which an answer is flagged uncertain."""
from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import softmax

ECE_BINS = 15
# A temperature under 0.5 (logits more than doubled) is not calibration but a library too small or too
# easy to learn it from: out of fold every answer was right, so the fit drives the scores to 1.0000.
# One at 20 flattens every answer to the labels' share: out of fold they were no better than chance.
TEMPERATURES = (0.5, 20.0)
FLOOR = 1e-300  # a probability's floor before its log (in float32, scaled() floors at its own smallest)


def temperature(probabilities_at, y: np.ndarray) -> float:
    """The T in TEMPERATURES that minimises the negative log-likelihood of probabilities_at(T)
    (answers' probabilities [n, labels] when every logit is divided by T)."""
    def nll(log_t):
        return -np.log(np.maximum(probabilities_at(np.exp(log_t))[np.arange(len(y)), y], FLOOR)).mean()
    bounds = np.log(TEMPERATURES)
    return float(np.exp(minimize_scalar(nll, bounds=tuple(bounds), method="bounded").x))


def at_lowest(t: float) -> bool:
    """Whether a fitted temperature sits at the lowest allowed: the data wanted sharper still."""
    return t < TEMPERATURES[0] * 1.01


def at_highest(t: float) -> bool:
    """Whether a fitted temperature sits at the highest allowed: the answers were no better than chance."""
    return t > TEMPERATURES[1] / 1.01


def scaled(probabilities: np.ndarray, t: float) -> np.ndarray:
    """Probabilities with their logits divided by t (log p is the logit up to a constant per row)."""
    return softmax(np.log(np.maximum(probabilities, np.finfo(probabilities.dtype).tiny)) / t, axis=-1)


def ece(probabilities: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error: |accuracy - confidence| of the top class, weighted over
    equal-width confidence bins."""
    confidence, correct = probabilities.max(axis=1), probabilities.argmax(axis=1) == y
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    return float(sum(abs(correct[which == b].mean() - confidence[which == b].mean()) * np.mean(which == b)
                     for b in range(bins) if np.any(which == b)))


def brier(probabilities: np.ndarray, y: np.ndarray) -> float:
    """Mean over answers of the squared distance between the scores and the one-hot truth."""
    return float(np.mean(np.sum((probabilities - np.eye(probabilities.shape[1])[y]) ** 2, axis=1)))


def uncertain_below(probabilities: np.ndarray, y: np.ndarray, precision: float) -> tuple[float, float]:
    """The lowest confidence threshold such that the answers at or above it are right at least
    `precision` of the time, and the share of answers under it (flagged uncertain)."""
    confidence, correct = probabilities.max(axis=1), probabilities.argmax(axis=1) == y
    for threshold in np.unique(confidence):  # ascending
        kept = confidence >= threshold
        if correct[kept].mean() >= precision:
            return float(threshold), float(np.mean(~kept))
    return 1.0, 1.0


def figures(probabilities: np.ndarray, y: np.ndarray) -> dict:
    return {"accuracy": float(np.mean(probabilities.argmax(axis=1) == y)), "ece": ece(probabilities, y),
            "brier": brier(probabilities, y)}


def reliability_diagram(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str):
    """Accuracy against confidence per bin for each named (probabilities, y), and the diagonal."""
    points = {}
    for name, (probabilities, y) in curves.items():
        confidence, correct = probabilities.max(axis=1), probabilities.argmax(axis=1) == y
        which = np.minimum((confidence * ECE_BINS).astype(int), ECE_BINS - 1)
        used = [b for b in range(ECE_BINS) if np.any(which == b)]
        points[f"{name} (ECE {ece(probabilities, y):.3f})"] = ([confidence[which == b].mean() for b in used],
                                                               [correct[which == b].mean() for b in used])
    plot_reliability(points, path, title, "confidence (top score)", "accuracy")


def plot_reliability(points: dict[str, tuple[list, list]], path: Path, title: str, x_label: str, y_label: str):
    """A reliability diagram: each named curve's (x, y) points per bin, and the diagonal."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.6, 5.2))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    for name, (x, y) in points.items():
        ax.plot(x, y, marker="o", label=name)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
