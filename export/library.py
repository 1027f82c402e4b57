"""A labelled music library to train on, in the forms the ecosystem uses: a folder of label folders
(the label is the folder's name, files at any depth below it; GTZAN is one), a CSV manifest
(`path,label[,artist]`: files relative to it or absolute, or http(s) links), or files that carry
their own genre tag (ID3 TCON, Vorbis GENRE, MP4 (c)gen). Every reader gives the same Library:
clips with a label and an artist, and what it skipped and why."""
import csv
import hashlib
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from inference import decode
from inference.batch import is_link
from inference.errors import ClassifyError

# A label needs this many clips: grouped 5-fold cross-validation scores each label in every fold
# only if every fold can hold one of its clips, and learns it in every fold only with more than one.
MIN_CLIPS = 5
MAX_LABEL_CHARS = 64  # a label is shown on the page and in every answer: a name, not a sentence
ARTISTS_FILE = "artists.csv"  # beside label folders: stem (file name without suffix), artist
MANIFEST_COLUMNS = ("path", "label")


class LibraryError(Exception):
    """The library cannot be trained on; the message names the file or row and says what to do."""


@dataclass(frozen=True)
class Clip:
    item: str  # a file's path or an http(s) link, as the function's client takes it
    label: str
    artist: str  # "" when unknown: the clip is then its own group in cross-validation
    origin: str  # where it was named, for messages
    key: str = ""  # sha256 of the file's bytes (of a link's URL): the same audio is found by it

    @property
    def stem(self) -> str:
        """The file name without suffix (GTZAN's split lists and artists.csv name clips so)."""
        return Path(self.item).stem


@dataclass
class Library:
    clips: list[Clip]
    skipped: list[str] = field(default_factory=list)  # "origin: why", listed at the end of a run

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(sorted({c.label for c in self.clips}, key=str.casefold))

    @property
    def groups(self) -> list[str]:
        """Each clip's group for cross-validation: its artist, else itself."""
        return [c.artist or f"clip:{c.item}" for c in self.clips]

    def fingerprint(self) -> str:
        """What the clips are and how they are labelled, to tie a model to its cross-validation."""
        return hashlib.sha256("\n".join(sorted(f"{c.key} {c.label}" for c in self.clips)).encode()).hexdigest()[:16]


def read(data, labels_from: str = "folders", artists=None, progress=None) -> Library:
    """The library at `data`: a CSV manifest, or a folder whose labels come from its label folders or
    from its files' genre tags; artists from `artists` (default: the folder's artists.csv, else the
    files' artist tags). Files are hashed (progress wraps the iteration) and duplicates resolved."""
    data = Path(data)
    if not data.exists():
        raise LibraryError(f"{data}: no such file or folder")
    if data.is_file():
        library = _from_manifest(data)
    elif labels_from == "tags":
        library = _from_tags(data)
    else:
        library = _from_folders(data)
    library = _with_artists(library, Path(artists) if artists else data / ARTISTS_FILE, labels_from == "tags")
    return _deduplicated(library, progress or (lambda items, _: items))


def _audio_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """(audio files, other files) below a folder, at any depth, hidden ones left out, sorted."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not any(
        part.startswith(".") for part in p.relative_to(folder).parts))
    return ([p for p in files if p.suffix.lower() in decode.SUFFIXES],
            [p for p in files if p.suffix.lower() not in decode.SUFFIXES])


def _from_folders(root: Path) -> Library:
    clips, skipped = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        audio, other = _audio_files(folder)
        if not audio:
            skipped.append(f"{folder}: no audio files in this label folder (left out)")
            continue
        label = checked_label(folder.name, str(folder))
        clips += [Clip(str(p), label, "", str(p)) for p in audio]
        skipped += [f"{p}: not an audio file name ({', '.join(sorted(decode.SUFFIXES))})" for p in other]
    if not clips:
        raise LibraryError(f"{root}: no label folders with audio files (expected {root}/<label>/<files>)")
    return Library(clips, skipped)


def _from_tags(root: Path) -> Library:
    audio, _ = _audio_files(root)
    clips, skipped = [], []
    for path in audio:
        tags = file_tags(path)
        if not tags.get("genre"):
            skipped.append(f"{path}: no genre tag")
            continue
        clips.append(Clip(str(path), checked_label(tags["genre"], str(path)), tags.get("artist", ""), str(path)))
    if not clips:
        raise LibraryError(f"{root}: none of its {len(audio)} audio files has a genre tag")
    return Library(clips, skipped)


def _from_manifest(path: Path) -> Library:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in MANIFEST_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise LibraryError(f"{path}: the header has no {' and no '.join(missing)} column "
                               f"(it needs path,label and may have artist; found {reader.fieldnames})")
        clips = []
        for row in reader:
            origin = f"{path} line {reader.line_num}"
            item, label = (row.get("path") or "").strip(), (row.get("label") or "").strip()
            if not item:
                raise LibraryError(f"{origin}: no path")
            if not is_link(item):
                item = str(Path(item) if Path(item).is_absolute() else path.parent / item)
            clips.append(Clip(item, checked_label(label, origin), (row.get("artist") or "").strip(), origin))
    if not clips:
        raise LibraryError(f"{path}: no rows")
    return Library(clips)


def checked_label(label: str, origin: str) -> str:
    """The label, stripped; LibraryError if no model's metadata, page or folder could hold it."""
    label = unicodedata.normalize("NFC", label.strip())
    why = ("it is empty" if not label else
           f"it is longer than {MAX_LABEL_CHARS} characters" if len(label) > MAX_LABEL_CHARS else
           "it holds a control character" if any(unicodedata.category(ch)[0] == "C" for ch in label) else
           "it holds a slash (no folder can be named so)" if "/" in label or "\\" in label else
           "it is a folder's own name" if label in (".", "..") else None)
    if why:
        raise LibraryError(f"{origin}: the label {label!r} cannot be used: {why}")
    return label


def file_tags(path: Path) -> dict[str, str]:
    """A file's genre and artist tags (lower-cased keys of the container's and its audio stream's
    metadata, as FFmpeg names them); {} for a file the decoder cannot open."""
    try:
        with open(path, "rb") as f:
            container = decode.open_audio(f)
            try:
                found = {**container.streams.audio[0].metadata, **container.metadata}
            finally:
                container.close()
    except (OSError, ClassifyError):
        return {}
    tags = {k.lower(): v.strip() for k, v in found.items()}
    return {k: tags[k] for k in ("genre", "artist") if tags.get(k)}


def _with_artists(library: Library, artists: Path, from_tags: bool) -> Library:
    """Artists from an artists.csv (stem, artist) where there is one; tags already gave theirs."""
    if from_tags or not artists.is_file():
        return library
    with open(artists, newline="", encoding="utf-8-sig") as f:
        known = {row["stem"]: (row.get("artist") or "").strip() for row in csv.DictReader(f)}
    library.clips = [c if c.artist else Clip(c.item, c.label, known.get(c.stem, ""), c.origin) for c in library.clips]
    return library


def _deduplicated(library: Library, progress) -> Library:
    """Each clip keyed by its content; the same audio twice under one label is kept once, under two
    labels it is an error naming both."""
    first, clips = {}, []
    for clip in progress(library.clips, "hashing"):
        keyed = Clip(clip.item, clip.label, clip.artist, clip.origin, _key(clip))
        if keyed.key in first:
            other = first[keyed.key]
            if other.label != keyed.label:
                raise LibraryError(f"the same audio is labelled {other.label!r} at {other.origin} and "
                                   f"{keyed.label!r} at {keyed.origin}: keep one")
            library.skipped.append(f"{keyed.origin}: the same audio as {other.origin} (kept once)")
            continue
        first[keyed.key] = keyed
        clips.append(keyed)
    return Library(clips, library.skipped)


def _key(clip: Clip) -> str:
    if is_link(clip.item):
        return hashlib.sha256(clip.item.encode()).hexdigest()
    try:
        with open(clip.item, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as exc:
        return f"unreadable:{clip.item}:{exc.strerror}"


def check_sizes(library: Library) -> None:
    """LibraryError unless there are two labels or more, each of at least MIN_CLIPS clips."""
    counts = Counter(c.label for c in library.clips)
    if len(counts) < 2:
        raise LibraryError(f"a classifier needs two labels or more; this library has {dict(counts) or 'none'}")
    small = {label: n for label, n in counts.items() if n < MIN_CLIPS}
    if small:
        raise LibraryError(f"labels with fewer than {MIN_CLIPS} usable clips (cross-validation needs one per fold): "
                           + ", ".join(f"{label!r} {n}" for label, n in sorted(small.items()))
                           + ": add clips, merge them into another label, or leave them out")
