"""Which clips a model is fitted on and which it is scored on, in cross-validation; and the class
weights every family trains with.

A protocol is a list of repeats; a repeat is a list of folds (name, fit indices, score indices)
that together score every clip exactly once. Both protocols keep every artist on one side:
- grouped(): StratifiedGroupKFold over all clips, artists as groups (a clip of unknown artist is
  its own group), stratified by label as far as the groups allow, repeated with several shuffles.
  It selects models;
- two_fold(): where the data has split lists (GTZAN's fault-filtered train and valid), the lists
  against each other: a second, harsher figure (each side fits on ~60 GTZAN clips with whole
  genres nearly missing).
"""
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

GROUPED_FOLDS, GROUPED_SEEDS = 5, (0, 1, 2)
TWO_FOLD = (("train", "valid"), ("valid", "train"))
SPLIT_SUFFIX = "_filtered.txt"  # a split list: splits/<name>_filtered.txt, a stem a line


def fold_count(groups: list[str]) -> int:
    """GROUPED_FOLDS, or as many folds as there are groups (artists) where they are fewer; ValueError
    under two, where no fold can keep an artist out of its fitting."""
    found = sorted(set(groups))
    if len(found) < 2:
        raise ValueError(f"cross-validation keeps each artist on one side of a fold, so it needs two artists or "
                         f"more; every clip here is by {found[0] if found else 'no one'!r}: give the clips' own "
                         "artists (an artist column, artists.csv or artist tags) or train without crossval")
    return min(GROUPED_FOLDS, len(found))


def grouped(y, groups: list[str], folds: int | None = None, seeds=GROUPED_SEEDS) -> list[list[tuple]]:
    """`len(seeds)` repeats of `folds`-fold (default: fold_count) cross-validation of labels y (indices)
    with no group on both sides of a fold. ValueError for a fold that would fit on one label only (every
    other label's clips by the artists it scores)."""
    folds, repeats, y = folds or fold_count(groups), [], np.asarray(y)
    for seed in seeds:
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        repeats.append([(f"seed {seed} fold {i}", fit.tolist(), score.tolist())
                        for i, (fit, score) in enumerate(splitter.split(np.zeros(len(y)), y, groups))])
        for name, fit, _ in repeats[-1]:
            if len(set(y[fit].tolist())) < 2:
                raise ValueError(f"cross-validation's {name} would fit on one label only: the other labels' clips "
                                 "are all by the artists it scores; add clips of other artists to them, or train "
                                 "without crossval")
    return repeats


def read_split(splits_dir: Path, name: str) -> set[str]:
    """The stems of a split list, e.g. splits/train_filtered.txt."""
    path = Path(splits_dir) / f"{name}{SPLIT_SUFFIX}"
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def two_fold(stems: list[str], splits_dir: Path) -> list[list[tuple]]:
    """One repeat: fit on one split list, score the other, both ways (clips named by file stem)."""
    repeat = []
    for fit_on, score_on in TWO_FOLD:
        fit, score = read_split(splits_dir, fit_on), read_split(splits_dir, score_on)
        repeat.append((f"{fit_on}->{score_on}", [i for i, s in enumerate(stems) if s in fit],
                       [i for i, s in enumerate(stems) if s in score]))
    return [repeat]


def class_weights(y: np.ndarray) -> dict[int, float]:
    """Keras class_weight that balances the classes present in y."""
    counts = np.bincount(y)
    return {i: len(y) / (np.count_nonzero(counts) * n) for i, n in enumerate(counts) if n}
