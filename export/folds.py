"""Which clips a model is fitted on and which it is scored on, in cross-validation; and the class
weights every family trains with.

A protocol is a list of repeats; a repeat is a list of folds (name, fit indices, score indices)
that together score every clip exactly once. Both protocols keep every artist on one side:
- grouped(): StratifiedGroupKFold over all clips, artists as groups (an unidentified clip is its
  own artist), stratified by genre as far as the groups allow, repeated with several shuffles.
  It selects models;
- two_fold(): the fault-filtered train and valid lists against each other: a second, harsher
  figure (each side fits on ~60 clips with whole genres nearly missing).
"""
import csv
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from export import dataset
from inference.contract import LABELS

GROUPED_FOLDS, GROUPED_SEEDS = 5, (0, 1, 2)
TWO_FOLD = (("train", "valid"), ("valid", "train"))


def artists(path: Path, stems) -> list[str]:
    """The artist of each stem from an artists.csv (stem, artist, title); an unidentified stem
    (no row, or an empty artist) is its own artist."""
    with open(path, newline="") as f:
        known = {row["stem"]: row["artist"].strip() for row in csv.DictReader(f)}
    return [known.get(stem) or f"unidentified:{stem}" for stem in stems]


def grouped(clips, groups: list[str], folds: int = GROUPED_FOLDS, seeds=GROUPED_SEEDS) -> list[list[tuple]]:
    """`len(seeds)` repeats of `folds`-fold cross-validation with no group on both sides of a fold."""
    y = [LABELS.index(c.genre) for c in clips]
    repeats = []
    for seed in seeds:
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        repeats.append([(f"seed {seed} fold {i}", fit.tolist(), score.tolist())
                        for i, (fit, score) in enumerate(splitter.split(np.zeros(len(y)), y, groups))])
    return repeats


def two_fold(clips, splits_dir: Path) -> list[list[tuple]]:
    """One repeat: fit on one split list, score the other, both ways."""
    repeat = []
    for fit_on, score_on in TWO_FOLD:
        fit, score = dataset.read_split(splits_dir, fit_on), dataset.read_split(splits_dir, score_on)
        repeat.append((f"{fit_on}->{score_on}", [i for i, c in enumerate(clips) if c.stem in fit],
                       [i for i, c in enumerate(clips) if c.stem in score]))
    return [repeat]


def class_weights(y: np.ndarray) -> dict[int, float]:
    """Keras class_weight that balances the classes present in y."""
    counts = np.bincount(y, minlength=len(LABELS))
    return {i: len(y) / (np.count_nonzero(counts) * n) for i, n in enumerate(counts) if n}
