"""The cross-validation driver: a family fitted and scored fold by fold, every clip scored once
per repeat (folds.py), and the pooled figures: mean and spread over repeats, per-genre F1, the
confusion matrix summed over repeats."""
from pathlib import Path

import numpy as np

from export import evaluate


def cross_validate(family, clips, inputs, protocol, options) -> dict:
    """Pooled track-level figures of each repeat, their mean and spread, and each fold's accuracy."""
    repeats, folds = [], {}
    for repeat in protocol:
        scored = [None] * len(clips)
        for name, fit, score in repeat:
            trained = family.fit([inputs[i] for i in fit], [clips[i].genre for i in fit], options)
            for i, probabilities in zip(score, family.predict(trained, [inputs[i] for i in score]), strict=True):
                scored[i] = (evaluate.LABELS.index(clips[i].genre), probabilities)
            folds[name] = evaluate.summarize([scored[i] for i in score])["track_accuracy"]
            print(f"[{family.NAME}] {name}: fit {len(fit)}, score {len(score)}: track {folds[name]:.3f}", flush=True)
        repeats.append(evaluate.summarize(scored))
    accuracy = [r["track_accuracy"] for r in repeats]
    return {"tracks": len(clips), "repeats": len(repeats),
            "track_accuracy": float(np.mean(accuracy)), "track_accuracy_min": min(accuracy),
            "track_accuracy_max": max(accuracy),
            "segment_accuracy": float(np.mean([r["segment_accuracy"] for r in repeats])),
            "f1": {g: float(np.mean([r["f1"][g] for r in repeats]).round(3)) for g in evaluate.LABELS},
            "confusion": np.sum([r["confusion"] for r in repeats], axis=0).tolist(),
            "labels": list(evaluate.LABELS), "folds": folds}


def plot_confusion(m: dict, path: Path, title: str):
    """A confusion-matrix picture of cross_validate()'s figures."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    matrix = np.array(m["confusion"])
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
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
