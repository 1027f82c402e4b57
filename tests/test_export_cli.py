"""The export command line as a newcomer meets it: what --help says, and where crossval writes
when run as the README shows (nothing tracked)."""
import subprocess
import sys

from export.__main__ import _parser

from conftest import ROOT


def test_crossval_run_as_the_readme_shows_rewrites_no_tracked_file():
    """The README's `crossval genre_musicnn --data ../shared/data/gtzan`, no --out (was models/: the shipped
    models' crossval_genre_musicnn.json and PNGs rewritten)."""
    out = _parser().parse_args(["crossval", "genre_musicnn", "--data", "../shared/data/gtzan"]).out
    tracked = subprocess.run(["git", "ls-files", str(out)], cwd=ROOT, capture_output=True, text=True, check=True)
    ignored = subprocess.run(["git", "check-ignore", "-q", f"{out}/crossval_genre_musicnn.json"], cwd=ROOT)
    assert tracked.stdout == "" and ignored.returncode == 0, out


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
    assert "--out OUT the model file (default: models/genre_musicnn.onnx)" in _help("train", "genre_musicnn")
