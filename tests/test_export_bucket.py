"""Training on a library in a bucket of a real Cloud Storage emulator on 127.0.0.1 (tests/gcs.py): label
prefixes or a manifest of gs:// objects, the features computed by the function next to the data
(--endpoint), cached here."""
import csv
import os
import subprocess
import sys

import numpy as np
import pytest

from export import extract, library
from inference import storage

from conftest import ROOT, TRAIN_LABELS, TRAIN_PER_LABEL

CLIPS = len(TRAIN_LABELS) * TRAIN_PER_LABEL


def export(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "export", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={**os.environ, **env})


def test_label_prefixes_and_their_artists_are_read_from_the_bucket(gcs, gtzan, monkeypatch):
    """From the listing and artists.csv alone: no request per object (its version is in the listing)."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)
    before = len(gcs.requests())
    found = library.read("gs://library/train/")
    asked = gcs.requests()[before:]
    assert len(asked) == 2 and "/o?" in asked[0] and "/o/train%2Fartists.csv?alt=media" in asked[1], asked
    assert all(c.version == f"{c.item}#{storage.version(c.item).rpartition('#')[2]}" for c in found.clips)
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


def test_an_object_rewritten_under_its_name_is_new_audio_and_its_features_are_computed_again(
        gcs, gtzan, model_path, monkeypatch, tmp_path, capsys):
    """A bucket's clips are keyed by URL and generation (by prefix and by manifest alike): a rewritten
    object's cached features are not reused, the others' are; a manifest's missing object is skipped."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)
    bucket, one, two = storage.client().bucket("results"), "gs://results/rewrite/a/one.flac", "gs://results/rewrite/b/two.flac"
    bucket.blob("rewrite/a/one.flac").upload_from_filename(gtzan / "rock/rock.00000.flac")
    bucket.blob("rewrite/b/two.flac").upload_from_filename(gtzan / "jazz/jazz.00000.flac")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"path,label\n{one},a\n{two},b\ngs://results/rewrite/a/none.flac,a\n")
    extractor = extract.Extractor(model_path, cache=tmp_path / "cache")

    def features(data):
        found = library.read(data)
        clips, arrays = extract.features(found, extractor)
        return {c.item: c.key for c in clips}, {c.item: a for c, a in zip(clips, arrays, strict=True)}, found.skipped

    keys, before, _ = features("gs://results/rewrite/")
    assert "features of 2 clips (0 cached)" in capsys.readouterr().out
    by_manifest, _, skipped = features(manifest)
    assert by_manifest == keys and "features of" not in capsys.readouterr().out
    assert skipped == [f"{manifest} line 4: gs://results/rewrite/a/none.flac: cannot be read "
                       "(no such bucket or object: gs://results/rewrite/a/none.flac) (left out)"]
    bucket.blob("rewrite/a/one.flac").upload_from_filename(gtzan / "rock/rock.00001.flac")
    after, features_after, _ = features("gs://results/rewrite/")
    assert "features of 1 clips (1 cached)" in capsys.readouterr().out
    assert after[two] == keys[two] and after[one] != keys[one]
    assert np.array_equal(features_after[two], before[two]) and not np.array_equal(features_after[one], before[one])


def test_an_object_rewritten_while_its_features_are_computed_is_left_out_not_cached_as_its_listed_version(
        gcs, gtzan, model_path, monkeypatch, tmp_path):
    """The function reads the version the listing keyed (gs://B/O#GENERATION): an object rewritten in
    between is refused and left out, so no other audio's features are cached under that version."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)
    bucket = storage.client().bucket("results")
    for name, clip in (("race/a/one.flac", "rock/rock.00000.flac"), ("race/b/two.flac", "jazz/jazz.00000.flac")):
        bucket.blob(name).upload_from_filename(gtzan / clip)
    extractor = extract.Extractor(model_path, cache=tmp_path / "cache")
    listed = library.read("gs://results/race/")
    bucket.blob("race/a/one.flac").upload_from_filename(gtzan / "rock/rock.00001.flac")
    clips, _ = extract.features(listed, extractor)
    assert [c.item for c in clips] == ["gs://results/race/b/two.flac"]
    assert listed.skipped == [f"gs://results/race/a/one.flac: no such object in the bucket at generation "
                              f"{listed.clips[0].version.rpartition('#')[2]} (rewritten or deleted since)"]
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 1
    again = library.read("gs://results/race/")
    clips, arrays = extract.features(again, extractor)
    assert len(clips) == 2 and not again.skipped and len(list((tmp_path / "cache").rglob("*.npy"))) == 2
