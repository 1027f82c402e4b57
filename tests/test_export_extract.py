"""export/extract.py: each clip's features, computed once through the function's own answer and
cached by content; clips that cannot be had are listed with the reason, the rest go on."""
import shutil

import numpy as np
import pytest

from export import extract, library
from inference import config

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
