"""export/library.py: a labelled library from label folders, a CSV manifest or the files' genre tags;
every bad input named with its file or row."""
import os
import subprocess
import sys

import av
import numpy as np
import pytest
import soundfile as sf

from export import library
from export.library import LibraryError

from conftest import ROOT


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
                                        ("rock\\pop", "backslash"), ("..", "folder's own name")])
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


def test_rows_that_are_no_regular_file_are_left_out_with_the_reason(tmp_path):
    """Were read for ever (/dev/zero at 100% CPU, a FIFO waiting for a writer) or as empty (/proc)."""
    good = tone(tmp_path / "a.wav")
    os.mkfifo(tmp_path / "pipe.wav")
    (tmp_path / "folder.wav").mkdir()
    rows = ["/dev/zero", "/dev/urandom", str(tmp_path / "pipe.wav"), "/proc/self/environ", str(tmp_path / "folder.wav"),
            "x" * 300 + ".wav", "gone.wav", str(good)]
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\n" + "".join(f"{row},rock\n" for row in rows))
    found = library.read(manifest)
    assert [c.item for c in found.clips] == [str(good)]
    why = ["not a regular file"] * 2 + ["not a regular file", "a file of /proc", "not a regular file",
                                        "File name too long", "No such file"]
    assert len(found.skipped) == 7
    for line, (skipped, reason) in enumerate(zip(found.skipped, why, strict=True), start=2):
        assert skipped.startswith(f"{manifest} line {line}: ") and reason in skipped, skipped


@pytest.mark.parametrize("data, said", [("path,label\nx\0y.wav,rock\n", "line 2: "),
                                        ("path,label\n" + "a" * 200_000 + ".wav,rock\n", "line 2: field larger")],
                         ids=["NUL byte", "200-KB field"])
def test_a_manifest_row_no_file_can_be_is_named(tmp_path, data, said):
    manifest = tmp_path / "m.csv"
    manifest.write_text(data)
    with pytest.raises(LibraryError, match=f"{manifest} {said}"):
        library.read(manifest)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"], ids=["Excel's CSV UTF-8 (a BOM)", "UTF-16"])
def test_manifests_and_artists_in_utf_8_with_a_bom_or_utf_16_are_read(tmp_path, encoding):
    tone(tmp_path / "Motörhead" / "Ace.wav")
    (tmp_path / "m.csv").write_text("path,label\nMotörhead/Ace.wav,Métal\n", encoding=encoding)
    (tmp_path / "artists.csv").write_text("stem,artist\nAce,Motörhead\n", encoding=encoding)
    found = library.read(tmp_path / "m.csv", artists=tmp_path / "artists.csv")
    assert [(c.label, c.artist) for c in found.clips] == [("Métal", "Motörhead")]


def test_latin_1_csvs_and_artists_without_stem_are_named(tmp_path):
    tone(tmp_path / "a.wav")
    (tmp_path / "m.csv").write_text("path,label\na.wav,rock\na.wav,Métal\n", encoding="latin-1")
    with pytest.raises(LibraryError, match=f"{tmp_path / 'm.csv'} line 3: not UTF-8 text .*CSV UTF-8"):
        library.read(tmp_path / "m.csv")
    (tmp_path / "m.csv").write_text("path,label\na.wav,rock\n")
    (tmp_path / "artists.csv").write_text("stem,artist\na,Motörhead\n", encoding="latin-1")
    with pytest.raises(LibraryError, match=f"{tmp_path / 'artists.csv'} line 2: not UTF-8"):
        library.read(tmp_path / "m.csv", artists=tmp_path / "artists.csv")
    (tmp_path / "artists.csv").write_text("file,artist\na,Motörhead\n")
    with pytest.raises(LibraryError, match="artists.csv: the header has no stem column"):
        library.read(tmp_path / "m.csv", artists=tmp_path / "artists.csv")


def test_a_label_of_exactly_64_characters_is_kept(tmp_path):
    tone(tmp_path / "a.wav")
    (tmp_path / "m.csv").write_text(f"path,label\na.wav,{'a' * 64}\n")
    assert library.read(tmp_path / "m.csv").labels == ("a" * 64,)


def test_a_library_under_a_dot_folder_is_found(tmp_path):
    """Hidden files and folders inside the library are left out; the folders above it may be hidden."""
    tone(tmp_path / ".music" / "rock" / "a.wav")
    tone(tmp_path / ".music" / "rock" / ".hidden" / "b.wav", 500)
    assert [c.stem for c in library.read(tmp_path / ".music").clips] == ["a"]


def test_slashes_in_labels_in_every_form(tmp_path):
    """iTunes' Hip-Hop/Rap and R&B/Soul: as they are in a manifest and a tag; a folder spells the slash %2F."""
    tone(tmp_path / "Hip-Hop%2FRap" / "a.wav")
    assert library.read(tmp_path).labels == ("Hip-Hop/Rap",)
    (tmp_path / "m.csv").write_text("path,label\nHip-Hop%2FRap/a.wav,Hip-Hop/Rap\n")
    assert library.read(tmp_path / "m.csv").labels == ("Hip-Hop/Rap",)
    tone(tmp_path / "tags" / "b.mp3", genre="R&B/Soul")
    assert library.read(tmp_path / "tags", labels_from="tags").labels == ("R&B/Soul",)


def test_labels_that_differ_by_case_or_look_alike_letters_are_warned_about(tmp_path):
    labels = ("Rock", "rock", "r\u043eck", "ｊａｚｚ", "jazz")  # a Cyrillic o; full-width letters
    rows = [f"{tone(tmp_path / f'{i}.wav', 300 + 50 * i).name},{label}\n" for i, label in enumerate(labels)]
    (tmp_path / "m.csv").write_text("path,label\n" + "".join(rows))
    found = library.read(tmp_path / "m.csv")
    assert len(found.labels) == 5  # two labels each, as given
    assert found.warnings == ["the label 'r\u043eck' mixes CYRILLIC and LATIN letters: a look-alike of another label? "
                              "(rename its clips' label if so)",
                              "the labels 'Rock' and 'rock' differ only by case or width: two labels, as given "
                              "(give them one spelling to merge them)",
                              "the labels 'jazz' and 'ｊａｚｚ' differ only by case or width: two labels, as given "
                              "(give them one spelling to merge them)"]


def test_the_five_clips_rule_counts_the_clips_that_decode(tmp_path):
    """A label of five files, one of them no audio: four usable clips, refused (not trained on)."""
    rows = [f"{tone(tmp_path / f'{label}{i}.wav', 200 + 40 * i + 400 * j, seconds=4).name},{label}\n"
            for j, label in enumerate(("calm", "loud")) for i in range(5)]
    (tmp_path / "calm4.wav").write_bytes(b"RIFF" + bytes(5000))
    (tmp_path / "m.csv").write_text("path,label\n" + "".join(rows))
    done = subprocess.run([sys.executable, "-m", "export", "crossval", "genre_cnn", "--data", str(tmp_path / "m.csv"),
                           "--out", str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "fewer than 5 usable clips" in done.stderr and "'calm' 4" in done.stderr


def test_label_folders_whose_names_are_one_label_are_warned_about(tmp_path):
    """Spaces at the ends, an accent decomposed (as macOS writes names), %2F and %2f: one label each, said
    (their clips were merged silently: country trained as "Rock")."""
    names = ["Rock", "Rock ", "Mu\u0301sica", "Música", "A%2FB", "A%2fB"]
    for i, name in enumerate(names):
        tone(tmp_path / name / f"{i}.wav", 300 + 50 * i)
    found = library.read(tmp_path)
    assert found.labels == ("A/B", "Música", "Rock")
    said = [w for w in found.warnings if w.startswith("the label folders")]
    assert said == [f"the label folders {a!r} and {b!r} are one label, {label!r} (names read alike: spaces at the "
                    "ends, accents composed or not, %2F for /): rename one to keep them apart"
                    for a, b, label in (("A%2FB", "A%2fB", "A/B"), ("Mu\u0301sica", "Música", "Música"),
                                        ("Rock", "Rock ", "Rock"))]


def test_stems_an_artists_csv_cannot_tell_apart_are_warned_about(tmp_path):
    """artists.csv is keyed by file stem: "01 Track" of two albums took the last row's artist for both."""
    for album, label in (("a", "Rock"), ("b", "Jazz")):
        for i in range(2):
            tone(tmp_path / label / album / f"0{i + 1} Track.wav", 300 + 100 * i + (album == "b") * 50)
    (tmp_path / "artists.csv").write_text("stem,artist\n01 Track,Morphine\n02 Track,Morphine\n"
                                          "01 Track,James Carter\n")
    found = library.read(tmp_path)
    assert found.warnings == [
        f"{tmp_path / 'artists.csv'} names the stem '01 Track' with 2 artists (James Carter, Morphine): every file of "
        "that stem takes the last, 'James Carter'",
        f"2 file stems are shared by several files ('01 Track' 2, '02 Track' 2): {tmp_path / 'artists.csv'} gives "
        "all the files of a stem one artist (name the files apart, or give each file's artist in a manifest's artist "
        "column)"]


def test_a_link_to_nothing_and_audio_outside_the_label_folders_are_left_out_with_the_reason(tmp_path):
    """Both were left out without a word."""
    tone(tmp_path / "Rock" / "a.wav")
    tone(tmp_path / "stray.wav")
    (tmp_path / "Rock" / "gone.flac").symlink_to(tmp_path / "nowhere.flac")
    found = library.read(tmp_path)
    assert [c.stem for c in found.clips] == ["a"]
    assert found.skipped == [f"{tmp_path / 'stray.wav'}: an audio file outside the label folders (left out: its "
                             "folder names its label)",
                             f"{tmp_path / 'Rock' / 'gone.flac'}: a link to nothing ({tmp_path / 'nowhere.flac'})"]
    with pytest.raises(LibraryError, match=r"^a classifier needs two labels or more; this library has only 'Rock' "
                                           r"\(1 clip\)$"):
        library.check_sizes(found)
