"""Training on a library in a bucket of a real Cloud Storage emulator on 127.0.0.1 (tests/gcs.py): label
prefixes or a manifest of gs:// objects, the features computed by the function next to the data
(--endpoint), cached here."""
import csv
import os
import subprocess
import sys

import pytest

from export import library

from conftest import ROOT, TRAIN_LABELS, TRAIN_PER_LABEL

CLIPS = len(TRAIN_LABELS) * TRAIN_PER_LABEL


def export(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "export", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={**os.environ, **env})


def test_label_prefixes_and_their_artists_are_read_from_the_bucket(gcs, gtzan, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)
    found = library.read("gs://library/train/")
    assert found.labels == TRAIN_LABELS and len(found.clips) == CLIPS
    with open(gtzan / "artists.csv", newline="") as f:
        artists = {row["stem"]: row["artist"] for row in csv.DictReader(f)}
    assert all(c.item.startswith("gs://library/train/") for c in found.clips)
    assert [c.artist for c in found.clips] == [artists.get(c.stem, "") for c in found.clips]
    assert sum(bool(c.artist) for c in found.clips) >= CLIPS - 2
    assert found.clips[0].stem == "classical.00000"
    with pytest.raises(library.LibraryError, match="no label prefixes with audio objects"):
        library.read("gs://library/nothing/")


def test_crossval_on_a_bucket_computes_the_features_in_the_function_and_caches_them(gcs, gtzan, bucket_function,
                                                                                   tmp_path):
    cache = tmp_path / "cache"
    args = ["crossval", "genre_musicnn", "--cache", str(cache), "--endpoint", bucket_function.url, "--jobs", "2"]
    by_prefix = export(*args, "--data", "gs://library/train/", "--out", str(tmp_path / "a"), env=gcs.env)
    assert by_prefix.returncode == 0, by_prefix.stderr[-3000:]
    assert f"features of {CLIPS} clips (0 cached) from {bucket_function.url}" in by_prefix.stdout
    assert len(list(cache.rglob("*.npy"))) == CLIPS
    rows = [f"gs://library/train/{label}/{clip.name},{label}" for label in TRAIN_LABELS
            for clip in sorted((gtzan / label).glob("*.flac"))[:TRAIN_PER_LABEL]]
    (tmp_path / "manifest.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    by_manifest = export(*args, "--data", str(tmp_path / "manifest.csv"), "--out", str(tmp_path / "b"), env=gcs.env)
    assert by_manifest.returncode == 0, by_manifest.stderr[-3000:]
    assert "features of" not in by_manifest.stdout  # the same objects: their features all cached, none asked
    assert len(list(cache.rglob("*.npy"))) == CLIPS
