"""The export command line as a newcomer meets it: what --help says, and where crossval and train
write when run as the docs show (nothing tracked)."""
import subprocess
import sys

import pytest

from export.__main__ import _parser

from conftest import ROOT


@pytest.mark.parametrize("command, written", [("crossval", "{out}/crossval_genre_musicnn.json"),
                                               ("train", "{out}"), ("train", "{out.parent}/genre_musicnn.power.onnx"),
                                               ("train", "{out.parent}/genre_musicnn.json")])
def test_crossval_and_train_run_as_the_docs_show_rewrite_no_tracked_file(command, written):
    """docs/training.md's `crossval|train genre_musicnn --data ../shared/data/gtzan`, no --out (was models/:
    crossval rewrote the shipped figures, train the shipped model, its twin and its card)."""
    out = _parser().parse_args([command, "genre_musicnn", "--data", "../shared/data/gtzan"]).out
    path = written.format(out=out)
    tracked = subprocess.run(["git", "ls-files", path], cwd=ROOT, capture_output=True, text=True, check=True)
    ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT)
    assert tracked.stdout == "" and ignored.returncode == 0, path


def _help(*command: str) -> str:
    done = subprocess.run([sys.executable, "-m", "export", *command, "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return " ".join(done.stdout.split())


def test_the_help_says_where_the_options_are_and_what_they_default_to():
    assert "python -m export crossval FAMILY --help" in _help("crossval")  # was: the families alone
    options = _help("crossval", "genre_musicnn")
    assert "--out OUT the folder for what it writes (default: runs/;" in options
    assert "--head {clip,segment} clip: one regression" in options  # was: no help
    assert "--out OUT the model file, crossval's figures read beside it (default: runs/genre_musicnn.onnx;" in _help(
        "train", "genre_musicnn")
