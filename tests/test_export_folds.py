"""export/folds.py's grouped cross-validation on libraries of few artists: as many folds as the
artists allow (at least 2) with a warning, or a refusal that says what was found and what to do."""
import os
import subprocess
import sys

import numpy as np
import pytest

from export import __main__ as cli
from export import folds, library

from conftest import ROOT

LABELS = ["rock"] * 5 + ["jazz"] * 5


def test_fewer_artists_than_folds_get_a_fold_each():
    groups = ["a", "b", "c"] * 3 + ["a"]
    for repeat in folds.grouped(np.array([0] * 5 + [1] * 5), groups):
        assert len(repeat) == 3
        assert sorted(i for _, _, score in repeat for i in score) == list(range(10))
        for _, fit, score in repeat:
            assert not {groups[i] for i in fit} & {groups[i] for i in score}


def test_one_artist_is_refused_saying_what_to_do():
    with pytest.raises(ValueError, match="every clip here is by 'Various Artists': give the clips' own artists"):
        folds.fold_count(["Various Artists"] * 10)


def test_a_fold_that_would_fit_on_one_label_is_refused():
    """Two labels, each all one artist's: each fold would fit on the other label alone (was a LogisticRegression
    of one class); three such labels leave two to fit on, and go on."""
    with pytest.raises(ValueError, match="would fit on one label only"):
        folds.grouped(np.array([0] * 5 + [1] * 5), ["r"] * 5 + ["j"] * 5)
    assert len(folds.grouped(np.array([0] * 5 + [1] * 5 + [2] * 5), ["r"] * 5 + ["j"] * 5 + ["c"] * 5)[0]) == 3


def test_crossval_warns_of_fewer_folds(capsys):
    found = library.Library([library.Clip(f"{i}.flac", label, f"artist {i % 3}", f"row {i}")
                             for i, label in enumerate(LABELS)])
    assert cli._fold_count(found, np.array([0] * 5 + [1] * 5)) == 3
    assert "warning: 3 artists (or clips of unknown artist) for 5 folds: 3-fold" in capsys.readouterr().err
    assert folds.fold_count([f"clip:{i}" for i in range(10)]) == folds.GROUPED_FOLDS


def test_crossval_of_one_artist_ends_in_a_message(gtzan, tmp_path):
    """Was sklearn's "Cannot have number of splits n_splits=5 greater than the number of groups"."""
    rows = [f"{p},{g},Various Artists\n" for g in ("rock", "jazz") for p in sorted((gtzan / g).glob("*"))[:5]]
    (tmp_path / "m.csv").write_text("path,label,artist\n" + "".join(rows))
    done = subprocess.run([sys.executable, "-m", "export", "crossval", "genre_musicnn", "--data",
                           str(tmp_path / "m.csv"), "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")],
                          cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "GENRE_DEFAULT_START_S": "0", "GENRE_DEFAULT_DURATION_S": "3"})
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "error: cross-validation keeps each artist on one side" in done.stderr
