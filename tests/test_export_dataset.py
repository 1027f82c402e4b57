"""export/dataset.py reads any GTZAN-layout folder, like the full GTZAN's wav and au copies."""
import numpy as np
import pytest
import soundfile as sf

from export import dataset


def tone(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def test_reads_wav_au_flac_under_a_genres_parent_at_any_rate(tmp_path):
    root = tmp_path / "genres_original"
    for genre, name, rate, fmt in [("blues", "blues.00000.wav", 22050, "WAV"), ("rock", "rock.00007.au", 22050, "AU"),
                                   ("pop", "pop.00003.flac", 16000, "FLAC")]:
        (root / genre).mkdir(parents=True)
        sf.write(root / genre / name, tone(2.0, rate), rate, format=fmt)
    (root / "blues" / "notes.txt").write_text("not a clip")
    (root / "rock" / "blues.00001.wav").write_bytes(b"")  # a clip in the wrong genre folder is ignored
    clips = dataset.find_clips(tmp_path)
    assert [(c.genre, c.stem) for c in clips] == [("blues", "blues.00000"), ("pop", "pop.00003"),
                                                  ("rock", "rock.00007")]
    loaded = dataset.load(clips, 22050)
    for _, audio in loaded:
        assert audio.dtype == np.float32 and audio.ndim == 1
        assert len(audio) == pytest.approx(2.0 * 22050, abs=2)


def test_unreadable_clip_is_skipped_with_a_warning(tmp_path):
    (tmp_path / "jazz").mkdir()
    (tmp_path / "jazz" / "jazz.00054.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    sf.write(tmp_path / "jazz" / "jazz.00055.wav", tone(1.0, 22050), 22050)
    with pytest.warns(UserWarning, match="jazz.00054"):
        loaded = dataset.load(dataset.find_clips(tmp_path), 22050)
    assert [c.stem for c, _ in loaded] == ["jazz.00055"]


def test_folder_without_clips_is_a_clear_error(tmp_path):
    (tmp_path / "blues").mkdir()
    (tmp_path / "blues" / "readme.txt").write_text("empty")
    with pytest.raises(dataset.DatasetError, match="no GTZAN clips"):
        dataset.find_clips(tmp_path)


def test_split_lists_select_the_artist_disjoint_clips(gtzan):
    clips = dataset.find_clips(gtzan)
    train, valid = dataset.read_split(gtzan / "splits", "train"), dataset.read_split(gtzan / "splits", "valid")
    assert not train & valid
    assert len([c for c in clips if c.stem in train]) == 60 and len([c for c in clips if c.stem in valid]) == 59
