"""Train a genre CNN on a GTZAN-layout folder and export it to ONNX.

    python -m export.train --data ../shared/data/gtzan --out models/ [--arch cnn|seed] [--split train]
"""
import argparse
import json
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from export import architectures, augment, dataset, to_onnx
from export.frontend import Frontend
from inference import spec

SEED = 1234
EPOCHS = 20
SEGMENTS_PER_CLIP = 40  # random offsets drawn per clip, each augmented


def training_set(loaded, per_clip: int, rng: np.random.Generator, front: Frontend):
    """MFCCs of augmented random segments of every clip, and their label indices."""
    audio = np.concatenate([augment.augment(augment.random_segments(a, per_clip, rng), rng)
                            for _, a in loaded])
    labels = np.repeat([spec.LABELS.index(c.genre) for c, _ in loaded], per_clip)
    return front(audio), labels


def fit(loaded, arch: str = "cnn", epochs: int = EPOCHS, per_clip: int = SEGMENTS_PER_CLIP,
        seed: int = SEED) -> keras.Model:
    """Train `arch` on the decoded clips; deterministic for a given seed."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    x, y = training_set(loaded, per_clip, np.random.default_rng(seed), Frontend())
    if arch == "seed":
        model = architectures.seed()
    else:
        model = architectures.cnn(*architectures.cnn_input_stats(x))
    counts = np.bincount(y, minlength=len(spec.LABELS))
    weights = {i: len(y) / (np.count_nonzero(counts) * n) for i, n in enumerate(counts) if n}
    model.fit(x, y, epochs=epochs, batch_size=32, shuffle=True, class_weight=weights, verbose=2)
    return model


def select(clips, splits_dir, split: str):
    """The clips of a split list ('all' keeps every clip)."""
    if split == "all":
        return clips
    stems = dataset.read_split(splits_dir, split)
    return [c for c in clips if c.stem in stems]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="GTZAN-layout folder")
    parser.add_argument("--out", default="models", help="folder for the .onnx and .json")
    parser.add_argument("--arch", choices=architectures.ARCHITECTURES, default="cnn")
    parser.add_argument("--split", default="all", help="train on this split list only (train, valid, all)")
    parser.add_argument("--splits-dir", help="folder of <split>_filtered.txt (default: DATA/splits)")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--per-clip", type=int, default=SEGMENTS_PER_CLIP)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)

    clips = select(dataset.find_clips(args.data), args.splits_dir or Path(args.data) / "splits", args.split)
    loaded = dataset.load(clips)
    started = time.perf_counter()
    model = fit(loaded, args.arch, args.epochs, args.per_clip, args.seed)
    seconds = time.perf_counter() - started
    card = {"arch": args.arch, "parameters": model.count_params(),
            "training": {"data": str(args.data), "split": args.split, "clips": len(loaded),
                         "epochs": args.epochs, "segments_per_clip": args.per_clip,
                         "seed": args.seed, "seconds": round(seconds, 1)}}
    crossval = Path(args.out) / "crossval.json"
    if crossval.exists():  # written by export.crossval into the same folder
        results = json.loads(crossval.read_text())
        card["metrics"] = {"protocol": results["protocol"], "epochs": results["epochs"], **{
            name: {k: results[name][k] for k in ("tracks", "track_accuracy", "segment_accuracy", "f1", "folds")
                   if k in results[name]} if name != "seed_leaky" else results[name]
            for name in ("cnn", "seed", "seed_leaky") if name in results}}
    path = to_onnx.save(model, args.out, card)
    print(f"trained {args.arch} on {len(loaded)} clips in {seconds:.0f} s -> {path}")


if __name__ == "__main__":
    main()
