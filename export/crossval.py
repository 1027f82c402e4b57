"""The cross-validation driver: a family fitted and scored fold by fold, every clip scored once
per repeat (folds.py); the pooled figures (mean and spread over repeats, per-label F1, the
confusion matrix summed over repeats); and the calibration of the out-of-fold answers."""
from pathlib import Path

import numpy as np

from export import calibrate, evaluate
from inference import segments

PRECISION = 0.85  # answers not flagged uncertain must be right this often, out of fold


def cross_validate(family, y: np.ndarray, labels: tuple[str, ...], inputs, protocol, options) -> tuple[dict, list]:
    """Pooled track-level figures of each repeat, their mean and spread, and each fold's accuracy;
    and the out-of-fold answers to calibrate on: per repeat, per fold, the (true label, segment
    probabilities) of the clips it scored whose label it was fitted on (a fold that scores all of a
    label's artists cannot be right on them, however it is calibrated). y: each clip's label index."""
    pooling = family.meta(labels).pooling
    repeats, folds, answers = [], {}, []
    for repeat in protocol:
        scored, by_fold = [None] * len(y), []
        for name, fit, score in repeat:
            trained = family.fit([inputs[i] for i in fit], y[fit], labels, options)
            for i, probabilities in zip(score, family.predict(trained, [inputs[i] for i in score]), strict=True):
                scored[i] = (int(y[i]), probabilities)
            folds[name] = evaluate.summarize([scored[i] for i in score], labels, pooling)["track_accuracy"]
            by_fold.append([scored[i] for i in score if y[i] in y[fit]])
            print(f"[{family.NAME}] {name}: fit {len(fit)}, score {len(score)}: track {folds[name]:.3f}", flush=True)
        repeats.append(evaluate.summarize(scored, labels, pooling))
        answers.append(by_fold)
    accuracy = [r["track_accuracy"] for r in repeats]
    return {"tracks": len(y), "segments": repeats[0]["segments"], "repeats": len(repeats),
            "track_accuracy": float(np.mean(accuracy)), "track_accuracy_min": min(accuracy),
            "track_accuracy_max": max(accuracy),
            "segment_accuracy": float(np.mean([r["segment_accuracy"] for r in repeats])),
            "f1": {g: float(np.mean([r["f1"][g] for r in repeats]).round(3)) for g in labels},
            "confusion": np.sum([r["confusion"] for r in repeats], axis=0).tolist(),
            "labels": list(labels), "folds": folds}, answers


def _tracks(scored, pooling: str, t: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Track probabilities [n, labels] with logits divided by t, and true labels."""
    return (np.array([segments.pool(calibrate.scaled(p, t), pooling) for _, p in scored]),
            np.array([y for y, _ in scored]))


def calibration(answers: list, pooling: str, diagram: Path, title: str) -> dict:
    """A temperature fitted on all out-of-fold answers (every repeat), the figures before and after
    it, the same after a temperature fitted without the fold scored (cross-fitted: honest), and
    the threshold under which answers are flagged uncertain (chosen on the calibrated answers);
    the reliability diagram of before and after drawn at `diagram`."""
    everything = [a for by_fold in answers for fold in by_fold for a in fold]

    def fitted(scored):
        y = _tracks(scored, pooling)[1]
        return calibrate.temperature(lambda t: _tracks(scored, pooling, t)[0], y)

    t = fitted(everything)
    raw, y = _tracks(everything, pooling)
    calibrated = _tracks(everything, pooling, t)[0]
    crossed = [(_tracks(fold, pooling, fitted([a for other in by_fold if other is not fold for a in other]))[0],
                _tracks(fold, pooling)[1]) for by_fold in answers for fold in by_fold]
    crossed_p, crossed_y = np.concatenate([p for p, _ in crossed]), np.concatenate([y for _, y in crossed])
    threshold, flagged = calibrate.uncertain_below(calibrated, y, PRECISION)
    kept = calibrated.max(axis=1) >= threshold
    calibrate.reliability_diagram({"before": (raw, y), f"after (T = {t:.2f})": (calibrated, y)}, diagram, title)
    return {"temperature": round(t, 4), "temperature_at_lowest": calibrate.at_lowest(t),
            "temperature_at_highest": calibrate.at_highest(t), "answers": len(y),
            "before": calibrate.figures(raw, y), "after": calibrate.figures(calibrated, y),
            "after_cross_fitted": calibrate.figures(crossed_p, crossed_y),
            "uncertain_below": round(threshold, 4), "flagged": flagged,
            "accuracy_not_flagged": float(np.mean(calibrated[kept].argmax(axis=1) == y[kept])) if kept.any() else None}


def plot_confusion(m: dict, path: Path, title: str):
    """A confusion-matrix picture of cross_validate()'s figures."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    matrix = np.array(m["confusion"])
    size = max(6.4, 0.45 * len(m["labels"]) + 2)
    fig, ax = plt.subplots(figsize=(size, size - 0.8))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(m["labels"])), m["labels"], rotation=45, ha="right")
    ax.set_yticks(range(len(m["labels"])), m["labels"])
    for (i, j), n in np.ndenumerate(matrix):
        if n:
            ax.text(j, i, n, ha="center", va="center", color="white" if n > matrix.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
