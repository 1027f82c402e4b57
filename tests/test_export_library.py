"""export/library.py: a labelled library from label folders, a CSV manifest or the files' genre tags;
every bad input named with its file or row."""
import av
import numpy as np
import pytest
import soundfile as sf

from export import library
from export.library import LibraryError


def tone(path, hz: float = 440.0, seconds: float = 1.0, rate: int = 22050, **tags: str):
    """A tone written with PyAV in the container the suffix names, with its metadata tags."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    if path.suffix in (".wav", ".flac", ".au") and not tags:
        sf.write(path, samples, rate)
        return path
    codec, fmt = {".mp3": ("libmp3lame", "mp3"), ".ogg": ("libopus", "ogg"), ".m4a": ("aac", "ipod"),
                  ".flac": ("flac", "flac")}[path.suffix]
    if codec == "libopus":  # Opus takes 48 kHz (8, 12, 16, 24 too), not 22.05
        samples, rate = np.interp(np.arange(int(seconds * 48000)) / 48000, t, samples).astype(np.float32), 48000
    with av.open(str(path), "w", format=fmt) as out:
        out.metadata.update(tags)
        stream = out.add_stream(codec, rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples[None], format="flt", layout="mono")
        frame.sample_rate = rate
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=rate)
        for chunk in resampler.resample(frame):
            out.mux(stream.encode(chunk))
        out.mux(stream.encode(None))
    return path


def test_label_folders_with_free_names_any_depth_and_any_container(tmp_path):
    tone(tmp_path / "drum & bass" / "2024" / "live" / "Track 01 (edit).mp3")
    tone(tmp_path / "drum & bass" / "b.flac", 500)
    tone(tmp_path / "música popular" / "x.ogg", 600)
    tone(tmp_path / "música popular" / "y.wav", 700)
    (tmp_path / "música popular" / "cover.jpg").write_bytes(b"\xff\xd8")
    (tmp_path / "música popular" / ".DS_Store").write_bytes(b"junk")
    (tmp_path / "empty").mkdir()
    found = library.read(tmp_path)
    assert found.labels == ("drum & bass", "música popular")
    assert sorted((c.label, c.stem) for c in found.clips) == [
        ("drum & bass", "Track 01 (edit)"), ("drum & bass", "b"), ("música popular", "x"), ("música popular", "y")]
    assert any("cover.jpg: not an audio file" in s for s in found.skipped)
    assert any(s.startswith(str(tmp_path / "empty")) and "no audio files" in s for s in found.skipped)
    assert not any(".DS_Store" in s for s in found.skipped)
    assert all(len(c.key) == 64 for c in found.clips) and len({c.key for c in found.clips}) == 4


def test_a_manifest_of_relative_and_absolute_paths_and_links(tmp_path):
    tone(tmp_path / "audio" / "a.wav")
    absolute = tone(tmp_path / "elsewhere" / "b.wav", 500)
    manifest = tmp_path / "lists" / "mine.csv"
    manifest.parent.mkdir()
    manifest.write_text(f"path,label,artist\n../audio/a.wav,Calm,Ann\n{absolute},Loud,\n"
                        "https://example.com/c.mp3,Loud,Bob\n")
    found = library.read(manifest)
    assert [(c.item, c.label, c.artist) for c in found.clips] == [
        (str(manifest.parent / "../audio/a.wav"), "Calm", "Ann"), (str(absolute), "Loud", ""),
        ("https://example.com/c.mp3", "Loud", "Bob")]
    assert found.clips[1].origin == f"{manifest} line 3"
    assert found.groups[1] == f"clip:{absolute}" and found.groups[2] == "Bob"


@pytest.mark.parametrize("header, missing", [("file,label", "path"), ("path,genre", "label"),
                                            ("", "path and no label")])
def test_a_manifest_without_its_columns_says_which(tmp_path, header, missing):
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"{header}\nx.wav,rock\n")
    with pytest.raises(LibraryError, match=f"no {missing} column"):
        library.read(manifest)


def test_labels_from_id3_vorbis_and_mp4_genre_tags(tmp_path):
    tone(tmp_path / "a" / "one.mp3", genre="Afrobeat", artist="Fela")
    tone(tmp_path / "b" / "two.ogg", 500, genre="K-Pop", artist="Band")
    tone(tmp_path / "three.m4a", 600, genre="Afrobeat")
    tone(tmp_path / "untagged.flac", 700)
    found = library.read(tmp_path, labels_from="tags")
    assert sorted((c.stem, c.label, c.artist) for c in found.clips) == [
        ("one", "Afrobeat", "Fela"), ("three", "Afrobeat", ""), ("two", "K-Pop", "Band")]
    assert found.skipped == [f"{tmp_path / 'untagged.flac'}: no genre tag"]


def test_the_same_audio_under_two_labels_names_both(tmp_path):
    tone(tmp_path / "rock" / "a.wav")
    (tmp_path / "pop").mkdir()
    (tmp_path / "pop" / "copy.wav").write_bytes((tmp_path / "rock" / "a.wav").read_bytes())
    with pytest.raises(LibraryError) as error:
        library.read(tmp_path)
    assert str(tmp_path / "rock" / "a.wav") in str(error.value)
    assert str(tmp_path / "pop" / "copy.wav") in str(error.value)


def test_the_same_audio_twice_under_one_label_is_kept_once(tmp_path):
    tone(tmp_path / "rock" / "a.wav")
    (tmp_path / "rock" / "b.wav").write_bytes((tmp_path / "rock" / "a.wav").read_bytes())
    found = library.read(tmp_path)
    assert [c.stem for c in found.clips] == ["a"]
    assert found.skipped == [f"{tmp_path / 'rock' / 'b.wav'}: the same audio as {tmp_path / 'rock' / 'a.wav'} "
                             "(kept once)"]


@pytest.mark.parametrize("label, why", [("", "empty"), ("a" * 65, "longer than 64"), ("tab\there", "control"),
                                        ("rock/pop", "slash"), ("..", "folder's own name")])
def test_a_label_nothing_can_hold_is_refused_with_its_row(tmp_path, label, why):
    manifest = tmp_path / "m.csv"
    manifest.write_text(f'path,label\nx.wav,"{label}"\n')
    with pytest.raises(LibraryError, match=why) as error:
        library.read(manifest)
    assert f"{manifest} line 2" in str(error.value)


def test_one_label_or_too_few_clips_are_refused(tmp_path):
    single = library.Library([library.Clip(f"{i}.wav", "rock", "", f"{i}.wav") for i in range(9)])
    with pytest.raises(LibraryError, match="two labels or more"):
        library.check_sizes(single)
    few = library.Library(single.clips + [library.Clip(f"p{i}.wav", "pop", "", f"p{i}.wav") for i in range(4)])
    with pytest.raises(LibraryError, match="fewer than 5 usable clips.*'pop' 4"):
        library.check_sizes(few)
    library.check_sizes(library.Library(few.clips + [library.Clip("p9.wav", "pop", "", "p9.wav")]))


def test_gtzan_is_a_library_of_label_folders_with_its_artists(gtzan):
    found = library.read(gtzan)
    assert len(found.clips) == 119 and len(found.labels) == 10 and found.labels[0] == "blues"
    assert sum(bool(c.artist) for c in found.clips) == 114 and len(set(found.groups)) == 55 + 5
    assert any("splits: no audio files" in s for s in found.skipped)  # its split lists are no label


def test_a_missing_library_is_named(tmp_path):
    with pytest.raises(LibraryError, match="no such file or folder"):
        library.read(tmp_path / "nothing")
    (tmp_path / "loose.wav").write_bytes(b"")
    with pytest.raises(LibraryError, match="no label folders with audio files"):
        library.read(tmp_path)
