"""`python -m export crossval` over a feature cache with one bad entry, in each way an entry goes bad:
the wall time, the peak RSS (/usr/bin/time) and how the run ended. Not a test.

    python bench/cache.py                         # this checkout's export
    python bench/cache.py --repo ../main          # another checkout's

Ten GTZAN clips (disco and country, each by several artists), the default window; the first run fills the cache.
"""
import argparse
import csv
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from client import ROOT, measure

GTZAN = ROOT.parent / "shared" / "data" / "gtzan"


def library(folder: Path) -> Path:
    with open(GTZAN / "artists.csv", newline="") as f:
        artists = {row["stem"]: row["artist"] for row in csv.DictReader(f)}
    clips = [p for genre in ("disco", "country") for p in sorted((GTZAN / genre).glob("*.flac"))[:5]]
    manifest = folder / "m.csv"
    manifest.write_text("path,label,artist\n" + "".join(
        f"{p},{p.parent.name},{artists.get(p.stem) or p.stem}\n" for p in clips))
    return manifest


BAD = {"truncated": lambda path, good: path.write_bytes(path.read_bytes()[:100]),
       "empty": lambda path, good: path.write_bytes(b""),
       "pickled": lambda path, good: np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True),
       "NaN": lambda path, good: np.save(path, np.full_like(good, np.nan)),
       "width 3": lambda path, good: np.save(path, good[:, :3]),
       "float64": lambda path, good: np.save(path, good.astype(np.float64)),
       "no segments": lambda path, good: np.save(path, good[:0]),
       "20,000 segments": lambda path, good: np.save(path, np.resize(good, (20_000, good.shape[1])))}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=ROOT, help="the checkout whose export runs")
    parser.add_argument("--limit", type=float, default=600, help="seconds before a run is killed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        command = [sys.executable, "-m", "export", "crossval", "genre_musicnn", "--data", str(library(folder)),
                   "--cache", str(folder / "cache"), "--out", str(folder / "out")]
        def run(look_for: str = "") -> str:
            said = measure(command, args.repo.resolve(), args.limit, look_for).replace(f"{folder}/", "")
            return re.sub(r"([0-9a-f]{8})[0-9a-f]{56}", r"\1...", said)

        print(f"| the cache filled | {run()} |", flush=True)
        entry = sorted((folder / "cache").rglob("*.npy"))[0]
        good = np.load(entry)
        for name, spoil in BAD.items():
            shutil.copy(entry, folder / "good.npy")
            spoil(entry, good)
            print(f"| an entry {name} | {run('discarded')} |", flush=True)
            shutil.copy(folder / "good.npy", entry)


if __name__ == "__main__":
    main()
