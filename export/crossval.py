"""Artist-disjoint 2-fold cross-validation (fit train -> score valid, fit valid -> score train)
for each architecture, scored through the exported ONNX; plus the seed's own leaky protocol.

    python -m export.crossval --data ../shared/data/gtzan --out models/ [--epochs 40]

Writes <out>/crossval.json and <out>/confusion.png (the default architecture's pooled confusion).
"""
import argparse
import json
import tempfile
from pathlib import Path

import keras
import numpy as np

from export import architectures, dataset, evaluate, to_onnx, train
from export.frontend import Frontend
from inference import segments, spec

FOLDS = (("train", "valid"), ("valid", "train"))
LEAKY_TEST_FRACTION = 0.25


def cross_validate(loaded, splits_dir, arch: str, epochs: int, per_clip: int) -> dict:
    """Pooled track/segment metrics over both folds, and each fold's own accuracy."""
    labels, pooled, folds = None, [], {}
    for fit_on, score_on in FOLDS:
        fit_stems, score_stems = dataset.read_split(splits_dir, fit_on), dataset.read_split(splits_dir, score_on)
        model = train.fit([x for x in loaded if x[0].stem in fit_stems], arch, epochs, per_clip)
        with tempfile.TemporaryDirectory() as tmp:
            path = to_onnx.save(model, tmp, {})
            labels, predictions = evaluate.predict(path, [x for x in loaded if x[0].stem in score_stems])
        fold = evaluate.summarize(labels, predictions)
        folds[f"{fit_on}->{score_on}"] = {k: fold[k] for k in ("tracks", "track_accuracy", "segment_accuracy")}
        print(f"[{arch}] fit {fit_on} -> score {score_on}: track {fold['track_accuracy']:.3f}", flush=True)
        pooled += predictions
    return dict(evaluate.summarize(labels, pooled), folds=folds)


def leaky_seed(loaded, epochs: int, seed: int = train.SEED) -> dict:
    """The seed's protocol: every clip cut into 3-s segments, a random segment split (leaks tracks)."""
    keras.utils.set_random_seed(seed)
    audio = [segments.split(a, spec.SEGMENT_SAMPLES) for _, a in loaded]
    x = Frontend()(np.concatenate(audio))
    y = np.concatenate([np.full(len(a), spec.LABELS.index(c.genre)) for (c, _), a in zip(loaded, audio)])
    order = np.random.default_rng(seed).permutation(len(y))
    cut = int(len(y) * LEAKY_TEST_FRACTION)
    test, fit = order[:cut], order[cut:]
    model = architectures.seed()
    model.fit(x[fit], y[fit], epochs=epochs, batch_size=32, verbose=2)
    accuracy = float(np.mean(np.argmax(model.predict(x[test], verbose=0), axis=1) == y[test]))
    return {"segments_fit": len(fit), "segments_scored": len(test), "segment_accuracy": accuracy}


def plot_confusion(m: dict, path: Path, title: str):
    """A confusion-matrix picture of summarize()'s figures."""
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="GTZAN-layout folder with splits/")
    parser.add_argument("--out", default="models")
    parser.add_argument("--splits-dir", help="folder of <split>_filtered.txt (default: DATA/splits)")
    parser.add_argument("--arch", nargs="+", choices=architectures.ARCHITECTURES, default=["seed", "cnn"])
    parser.add_argument("--epochs", type=int, default=train.EPOCHS)
    parser.add_argument("--per-clip", type=int, default=train.SEGMENTS_PER_CLIP)
    parser.add_argument("--no-leaky", action="store_true", help="skip the seed's leaky protocol")
    args = parser.parse_args(argv)

    splits_dir = args.splits_dir or Path(args.data) / "splits"
    loaded = dataset.load(dataset.find_clips(args.data))
    results = {"protocol": "2-fold artist-disjoint: fit train -> score valid, fit valid -> score train; "
                           "pooled over both folds; scored through the exported ONNX",
               "clips": len(loaded), "epochs": args.epochs, "segments_per_clip": args.per_clip}
    for arch in args.arch:
        results[arch] = cross_validate(loaded, splits_dir, arch, args.epochs, args.per_clip)
        print(f"== {arch}: pooled 2-fold cross-validation\n{evaluate.report(results[arch])}", flush=True)
    if not args.no_leaky:
        results["seed_leaky"] = leaky_seed(loaded, args.epochs)
        print(f"== seed, leaky random segment split: {results['seed_leaky']}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "crossval.json").write_text(json.dumps(results, indent=2) + "\n")
    shown = args.arch[-1]
    plot_confusion(results[shown], out / "confusion.png",
                   f"{shown}: 2-fold artist-disjoint CV, track level ({results[shown]['track_accuracy']:.0%})")


if __name__ == "__main__":
    main()
