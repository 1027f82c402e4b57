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


def _export(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "export", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_a_split_list_or_model_file_that_cannot_be_is_refused_before_any_work(gtzan, tmp_path):
    """--split of a list that is not there (a typo, a library without splits/) was a traceback; --out a
    folder trained in full, then failed to write; a --splits-dir that is no folder was ignored."""
    (tmp_path / "Rock").mkdir()
    (tmp_path / "Rock" / "a.flac").symlink_to(gtzan / "rock" / "rock.00000.flac")
    cases = [(["train", "genre_musicnn", "--data", str(gtzan), "--split", "vaild", "--out", str(tmp_path / "m.onnx")],
              f"error: --split vaild: no list vaild_filtered.txt in {gtzan / 'splits'}; --split takes test, train, "
              "valid, all"),
             (["evaluate", "--model", "models/genre_cnn.onnx", "--data", str(tmp_path), "--split", "valid"],
              "error: --split valid: no list valid_filtered.txt in DATA/splits (none here; --splits-dir names one); "
              "--split takes all"),
             (["train", "genre_musicnn", "--data", str(gtzan), "--out", str(tmp_path)],
              f"error: --out {tmp_path}: name the model's file, e.g. {tmp_path / 'mine.onnx'}"),
             (["train", "genre_musicnn", "--data", str(gtzan), "--out", str(tmp_path / "m.txt")],
              f"error: --out {tmp_path / 'm.txt'}: the model's file ends in .onnx"),
             (["crossval", "genre_musicnn", "--data", str(gtzan), "--splits-dir", str(tmp_path / "none")],
              f"error: --splits-dir {tmp_path / 'none'} is not a folder"),
             (["crossval", "genre_musicnn", "--data", str(tmp_path)],  # was said after every clip's features
              "error: a classifier needs two labels or more; this library has only 'Rock' (1 clip)")]
    for args, said in cases:
        done = _export(*args)
        assert done.returncode == 1 and done.stderr.splitlines()[-1] == said, done.stderr
        assert "Traceback" not in done.stderr and "features of" not in done.stdout  # refused before extracting
