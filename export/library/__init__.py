"""A labelled music library to train on, in the forms the ecosystem uses: a folder of label folders
(folders.py; GTZAN is one), a CSV manifest of files or links (manifest.py), or files that carry
their own genre tag (folders.py). Every reader gives the same Library (clips.py): clips with a
label and an artist, and what it skipped and why; read() adds the artists of an artists.csv,
keys each clip by its content and resolves duplicates."""
import csv
import hashlib
from pathlib import Path

from export.library import folders, manifest
from export.library.clips import MIN_CLIPS, Clip, Library, LibraryError, check_sizes, checked_label
from inference.batch import is_link

__all__ = ["MIN_CLIPS", "Clip", "Library", "LibraryError", "check_sizes", "checked_label", "read"]
ARTISTS_FILE = "artists.csv"  # beside label folders: stem (file name without suffix), artist


def read(data, labels_from: str = "folders", artists=None, progress=None) -> Library:
    """The library at `data`: a CSV manifest, or a folder whose labels come from its label folders or
    from its files' genre tags; artists from `artists` (default: the folder's artists.csv, else the
    files' artist tags). Files are hashed (progress wraps the iteration) and duplicates resolved."""
    data = Path(data)
    if not data.exists():
        raise LibraryError(f"{data}: no such file or folder")
    if data.is_file():
        library = manifest.read(data)
    elif labels_from == "tags":
        library = folders.by_tags(data)
    else:
        library = folders.by_folder(data)
    library = _with_artists(library, Path(artists) if artists else data / ARTISTS_FILE, labels_from == "tags")
    return _deduplicated(library, progress or (lambda items, _: items))


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
