"""export/extract.py: each clip's features, computed once through the function's own answer and
cached by content; clips that cannot be had are listed with the reason, the rest go on."""
import io
import math
import os
import shutil
import socket
import threading
import zipfile

import numpy as np
import pytest

from export import extract, library
from inference import config, pipeline

import hostile_http
import local_http


@pytest.fixture
def clips_and_junk(gtzan, tmp_path):
    """Two real clips (one under a second name), a file that is no audio, and a dead link."""
    folder = tmp_path / "library"
    (folder / "rock").mkdir(parents=True)
    shutil.copy(gtzan / "rock" / "rock.00000.flac", folder / "rock" / "first.flac")
    shutil.copy(gtzan / "jazz" / "jazz.00000.flac", folder / "rock" / "second.flac")
    (folder / "rock" / "broken.mp3").write_bytes(b"ID3" + bytes(2000))
    return folder


def test_features_of_good_clips_cached_and_bad_ones_listed(clips_and_junk, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GENRE_DEV_ALLOW_LOOPBACK_LINKS", "1")
    with local_http.Server(clips_and_junk) as url:
        manifest = tmp_path / "m.csv"
        manifest.write_text(f"path,label\nlibrary/rock/first.flac,rock\nlibrary/rock/second.flac,jazz\n"
                            f"library/rock/broken.mp3,jazz\n{url}/missing.flac,rock\n")
        found = library.read(manifest)
        extractor = extract.Extractor(config.DEFAULT_MODEL, jobs=2, cache=tmp_path / "cache")
        kept, features = extract.features(found, extractor)
    assert [c.stem for c in kept] == ["first", "second"]
    assert all(f.shape == (10, 250) and f.dtype == np.float32 for f in features)
    assert "features of 4 clips (0 cached)" in capsys.readouterr().out
    assert len(found.skipped) == 2
    assert found.skipped[0].startswith(f"{manifest} line 4: ") and "not audio" in found.skipped[0]
    assert found.skipped[1].startswith(f"{manifest} line 5: ") and "404" in found.skipped[1]

    again = library.read(clips_and_junk)  # the same audio by other names: from the cache, nothing computed
    again.clips = [c for c in again.clips if c.stem != "broken"]
    kept_again, features_again = extract.features(again, extractor)
    assert "features of" not in capsys.readouterr().out
    assert sorted(f.tobytes() for f in features_again) == sorted(f.tobytes() for f in features)
    assert not list((tmp_path / "cache").rglob("*.tmp.npy"))


def test_a_model_without_features_cannot_extract(tmp_path):
    extractor = extract.Extractor(config.MODELS_DIR / "genre_cnn.onnx", cache=tmp_path)
    with pytest.raises(SystemExit, match="gives no features"):
        extractor.folder()


def test_audio_families_decode_files_and_list_what_they_cannot_read(clips_and_junk):
    found = library.read(clips_and_junk)
    kept, windows = extract.audio(found, 22050)
    assert [c.stem for c in kept] == ["first", "second"]
    assert [len(w) for w in windows] == [30 * 22050] * 2
    assert any("broken.mp3" in s and "not audio" in s for s in found.skipped)


@pytest.fixture(scope="module")
def one_clip(gtzan, tmp_path_factory):
    """A manifest of one real clip (6 s of it served as the default window, to be quick)."""
    folder = tmp_path_factory.mktemp("one")
    shutil.copy(gtzan / "rock" / "rock.00000.flac", folder / "song.flac")
    (folder / "m.csv").write_text("path,label\nsong.flac,rock\n")
    return folder / "m.csv"


@pytest.fixture
def short_window(monkeypatch):
    monkeypatch.setenv("GENRE_DEFAULT_START_S", "0")
    monkeypatch.setenv("GENRE_DEFAULT_DURATION_S", "6")


def wanted_id() -> str:
    return extract.Extractor(config.DEFAULT_MODEL).features_id()


@pytest.mark.parametrize("segments, why", [
    ([[float("nan")] * 250] * 2, "not the function's answer"), ([[0.5] * 3] * 2, "not 1 to 2 segments of 250"),
    ([], "not 2 rows of one width"), ([[0.5] * 250] * 3, "(3, 250)"),
    ([[0.5] * 250, [0.5] * 249], "not 2 rows of one width")],
    ids=["NaN", "width 3", "no segments", "3 segments of a 6-s window", "ragged"])
def test_features_an_endpoint_gets_wrong_are_the_clips_error_not_cached(one_clip, tmp_path, short_window, segments,
                                                                        why):
    """Checked before they are cached (were cached as they came, and every later run ended in a traceback)."""
    features = {"id": wanted_id(), "segments": segments}
    with hostile_http.EndpointServer(features=features) as endpoint:
        found = library.read(one_clip)
        extractor = extract.Extractor(config.DEFAULT_MODEL, f"{endpoint.url}/features", cache=tmp_path / "cache")
        kept, _ = extract.features(found, extractor)
    assert kept == [] and len(found.skipped) == 1 and why in found.skipped[0], found.skipped
    assert not list((tmp_path / "cache").rglob("*.npy"))


def test_an_endpoint_serving_other_features_is_refused(one_clip, tmp_path, short_window):
    """Their id must equal the extractor's, not merely be there."""
    with hostile_http.EndpointServer(features={"id": "other-backbone", "segments": [[0.5] * 250] * 2}) as endpoint:
        extractor = extract.Extractor(config.DEFAULT_MODEL, f"{endpoint.url}/features", cache=tmp_path)
        with pytest.raises(SystemExit, match="'other-backbone', not "):
            extract.features(library.read(one_clip), extractor)


def corrupt(path, how: str):
    good = np.load(path)
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "a header of 10^12 segments":
        claim = f"({10**12}, {good.shape[1]}), }}".encode()  # the header's padding keeps its length
        said = f"{good.shape}, }}".encode()
        path.write_bytes(path.read_bytes().replace(said + b" " * (len(claim) - len(said)), claim, 1))
    elif how == "pickled":
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif how == "a folder":
        path.unlink()
        (path / "inside").mkdir(parents=True)
    elif how == "a FIFO":  # was read for ever
        path.unlink()
        os.mkfifo(path)
    else:
        np.save(path, {"NaN": np.full_like(good, np.nan), "wrong width": good[:, :3], "float64": good.astype(float),
                       "no segments": good[:0], "1-D": good[0]}[how])


@pytest.mark.parametrize("how", ["truncated", "empty", "a header of 10^12 segments", "pickled", "NaN", "wrong width",
                                 "float64", "no segments", "1-D", "a folder", "a FIFO"])
def test_a_bad_cache_entry_is_named_discarded_and_computed_again(one_clip, tmp_path, short_window, capsys, how):
    extractor = extract.Extractor(config.DEFAULT_MODEL, cache=tmp_path / "cache")
    _, (first,) = extract.features(library.read(one_clip), extractor)
    (entry,) = (tmp_path / "cache").rglob("*.npy")
    corrupt(entry, how)
    capsys.readouterr()
    kept, (again,) = extract.features(library.read(one_clip), extractor)
    err = capsys.readouterr().err
    assert f"warning: {entry}: " in err and "discarded, computed again" in err, err
    assert np.array_equal(again, first) and np.array_equal(np.load(entry), first)


def npz_of(*headers) -> bytes:
    """An .npz whose arrays' headers claim (dtype, shape), each followed by its data (16 bytes of a big one)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as saved:
        for i, (dtype, shape) in enumerate(headers):
            member = io.BytesIO()
            np.lib.format.write_array_header_1_0(member, {"descr": dtype, "fortran_order": False, "shape": shape})
            size = math.prod(shape) * np.dtype(dtype).itemsize
            saved.writestr(f"arr_{i}.npy", member.getvalue() + bytes(size if size < 2**20 else 16))
    return out.getvalue()


@pytest.mark.parametrize("how", ["a header of 10^12 segments", "a header of float64", "a folder", "a FIFO"])
def test_a_bad_nonmusic_cache_entry_is_named_discarded_and_computed_again(tmp_path, monkeypatch, capsys, how):
    """Its arrays were loaded whole before their shapes were checked: a claim of 10^12 segments was a
    MemoryError; a folder was an IsADirectoryError, a FIFO read for ever."""
    extractor = extract.Extractor(config.DEFAULT_MODEL, cache=tmp_path / "cache")
    width = extractor.shape()[1]
    made = [np.ones((4, width), np.float32)]
    monkeypatch.setattr(extract.music, "nonmusic_features", lambda model: made)
    extract.nonmusic_features(extractor)
    (entry,) = (tmp_path / "cache").rglob("nonmusic-*.npz")
    entry.unlink()
    if how == "a folder":
        (entry / "inside").mkdir(parents=True)
    elif how == "a FIFO":
        os.mkfifo(entry)
    else:
        claim = ("<f4", (10**12, width)) if "10^12" in how else ("<f8", (4, width))
        entry.write_bytes(npz_of(("<f4", (4, width)), claim))
    capsys.readouterr()
    again = extract.nonmusic_features(extractor)
    err = capsys.readouterr().err
    assert f"warning: {entry}: " in err and "discarded, computed again" in err, err
    assert np.array_equal(again[0], made[0]) and entry.is_file()
    assert np.array_equal(extract.nonmusic_features(extractor)[0], made[0])  # from the cache, rewritten


def test_a_cache_write_cut_midway_leaves_nothing_at_the_entry(one_clip, tmp_path, short_window, monkeypatch):
    def dies_midway(file, arr, allow_pickle):
        with open(file, "wb") as f:
            f.write(b"\x93NUMPY half")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", dies_midway)
    extractor = extract.Extractor(config.DEFAULT_MODEL, cache=tmp_path / "cache")
    with pytest.raises(KeyboardInterrupt):
        extract.features(library.read(one_clip), extractor)
    assert list((tmp_path / "cache").rglob("*")) == [extractor.folder()]  # no entry, no temporary file


def test_a_file_changed_after_it_was_keyed_is_skipped_not_cached_under_its_old_key(gtzan, tmp_path, short_window):
    """Keyed by its bytes when the library is read, decoded later: features of other bytes must not be
    cached under that key (a later run of the old bytes would get them)."""
    shutil.copy(gtzan / "rock" / "rock.00000.flac", tmp_path / "song.flac")
    (tmp_path / "m.csv").write_text("path,label\nsong.flac,rock\n")
    found = library.read(tmp_path / "m.csv")
    shutil.copy(gtzan / "jazz" / "jazz.00000.flac", tmp_path / "song.flac")
    kept, _ = extract.features(found, extract.Extractor(config.DEFAULT_MODEL, cache=tmp_path / "cache"))
    assert kept == [] and found.skipped == [f"{tmp_path / 'm.csv'} line 2: the file changed while it was read "
                                            "(not cached): run again"], found.skipped
    assert not list((tmp_path / "cache").rglob("*.npy"))
    again = library.read(tmp_path / "m.csv")  # read anew: keyed by the bytes it now holds
    assert len(extract.features(again, extract.Extractor(config.DEFAULT_MODEL, cache=tmp_path / "cache"))[0]) == 1


def test_the_window_is_part_of_the_cache_key(monkeypatch):
    folders = set()
    for start, duration in (("60", "30"), ("0", "30"), ("60", "10")):
        monkeypatch.setenv("GENRE_DEFAULT_START_S", start)
        monkeypatch.setenv("GENRE_DEFAULT_DURATION_S", duration)
        folders.add(extract.Extractor(config.DEFAULT_MODEL).folder())
    assert len(folders) == 3


def test_two_links_to_the_same_audio_are_found_after_the_fetch(gtzan, tmp_path, monkeypatch, short_window):
    """Keyed by URL they are two clips; their features are one audio's: kept once under one label, an
    error naming both under two."""
    monkeypatch.setenv("GENRE_DEV_ALLOW_LOOPBACK_LINKS", "1")
    shutil.copy(gtzan / "rock" / "rock.00000.flac", tmp_path / "a.flac")
    extractor = extract.Extractor(config.DEFAULT_MODEL, cache=tmp_path / "cache")
    with local_http.Server(tmp_path) as url:
        (tmp_path / "m.csv").write_text(f"path,label\n{url}/a.flac,rock\n{url}/a.flac?copy,rock\n")
        found = library.read(tmp_path / "m.csv")
        kept, _ = extract.features(found, extractor)
        assert len(kept) == 1 and "the same audio as" in found.skipped[0], found.skipped
        (tmp_path / "m.csv").write_text(f"path,label\n{url}/a.flac,rock\n{url}/a.flac?copy,jazz\n")
        with pytest.raises(library.LibraryError, match="labelled 'rock' at .* and 'jazz' at "):
            extract.features(library.read(tmp_path / "m.csv"), extractor)


def test_local_extraction_waits_for_its_workers_never_busy(one_clip, short_window, monkeypatch):
    """Every CPU slot taken for 1 s, the server's queue limit 0.1 s: the clip waits its turn (was 503 busy)."""
    monkeypatch.setenv("GENRE_MAX_QUEUE_S", "0.1")
    worker = extract.Extractor(config.DEFAULT_MODEL).worker()
    slots = pipeline._cpu_slots
    taken = 0
    while slots.acquire(blocking=False):
        taken += 1
    threading.Timer(1.0, lambda: [slots.release() for _ in range(taken)]).start()
    row = worker(str(one_clip.parent / "song.flac"))
    assert "error" not in row and len(row["features"]["segments"]) == 2, row.get("error")


def test_an_endpoint_that_answers_no_clip_stops_the_run_naming_it(gtzan, tmp_path):
    """Each clip waited out its retries, and the run ended in "a classifier needs two labels or more; this
    library has none"."""
    rows = "".join(f"{p},{p.parent.name}\n" for g in ("rock", "jazz") for p in sorted((gtzan / g).glob("*.flac"))[:6])
    (tmp_path / "m.csv").write_text("path,label\n" + rows)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{unused.getsockname()[1]}"  # bound, not listening: refused
        extractor = extract.Extractor(config.DEFAULT_MODEL, dead, cache=tmp_path / "cache", jobs=2, retries=0)
        with pytest.raises(SystemExit) as stopped:
            extract.features(library.read(tmp_path / "m.csv"), extractor)
    said = str(stopped.value)
    assert said.startswith(f"stopped: {dead} answered none of the first {extract.UNANSWERED_STOP} clips (")
    assert said.endswith("is it deployed, and is the URL right?")
