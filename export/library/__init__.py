"""A labelled music library to train on, in the forms the ecosystem uses: a folder of label folders
(folders.py; GTZAN is one), a CSV manifest of files or links (manifest.py), or files that carry
their own genre tag (folders.py). Every reader gives the same Library (clips.py): clips with a
label and an artist, and what it skipped and why; read() adds the artists of an artists.csv,
keys each clip by its content and resolves duplicates. Only regular files are read: a row naming a
device, a FIFO, a folder or a file of /proc, /sys or /dev is left out with the reason."""
import csv
import dataclasses
import hashlib
import io
import os
import stat
from collections import Counter, defaultdict
from pathlib import Path

from export.library import clips, folders, manifest
from export.library.clips import MIN_CLIPS, Clip, Library, LibraryError, check_sizes, checked_label, versioned
from inference import storage
from inference.batch import is_link
from inference.errors import ClassifyError

__all__ = ["MIN_CLIPS", "Clip", "Library", "LibraryError", "check_sizes", "checked_label", "read", "unchanged"]
ARTISTS_FILE = "artists.csv"  # beside label folders: stem (file name without suffix), artist
SYSTEM_FOLDERS = ("/proc", "/sys", "/dev")  # what lies there is not a recording, whatever stat says


def read(data, labels_from: str = "folders", artists=None, progress=None) -> Library:
    """The library at `data`: a CSV manifest, or a folder whose labels come from its label folders or
    from its files' genre tags; artists from `artists` (default: the folder's artists.csv, else the
    files' artist tags). Files are hashed (progress wraps the iteration) and duplicates resolved. A gs://
    prefix's label folders are prefixes; its objects are links, read where the features are computed and
    keyed by their URL and generation (a rewritten object's cached features are not reused)."""
    if storage.is_gs(str(data)):
        root = str(data).rstrip("/") + "/"
        library, at = folders.by_prefix(root), Path(artists) if artists else root + ARTISTS_FILE
    else:
        data = Path(data)
        if not data.exists():
            raise LibraryError(f"{data}: no such file or folder")
        if not (data.is_file() or data.is_dir()) or _system(data):
            raise LibraryError(f"{data}: not a CSV manifest or a folder")
        if data.is_file():
            library = manifest.read(data)
        elif labels_from == "tags":
            library = folders.by_tags(data)
        else:
            library = folders.by_folder(data)
        at = None if labels_from == "tags" else Path(artists) if artists else data / ARTISTS_FILE  # tags gave theirs
    library = _deduplicated(_with_artists(library, at), progress or (lambda items, _: items))
    library.warnings += clips.look_alikes(library.labels)
    return library


def _with_artists(library: Library, artists: Path | str | None) -> Library:
    """Artists from an artists.csv (stem, artist), a file or a bucket's object, where there is one."""
    text = _artists_text(artists)
    if text is None:
        return library
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        if "stem" not in (reader.fieldnames or []):
            raise LibraryError(f"{artists}: the header has no stem column (it needs stem,artist; found "
                               f"{reader.fieldnames})")
        rows = [(row["stem"], (row.get("artist") or "").strip()) for row in reader]
    except csv.Error as exc:
        raise LibraryError(f"{artists} line {reader.line_num + 1}: {exc}") from None  # the line it could not read
    named = defaultdict(set)
    for stem, artist in rows:
        named[stem].add(artist)
    known = dict(rows)
    library.warnings += [f"{artists} names the stem {stem!r} with {len(who)} artists ({', '.join(sorted(who))}): "
                         f"every file of that stem takes the last, {known[stem]!r}" for stem, who in named.items()
                         if len(who) > 1]
    shared = sorted((stem, n) for stem, n in Counter(c.stem for c in library.clips
                                                     if not c.artist and c.stem in known).items() if n > 1)
    if shared:  # one line: "01 Track" may be in every album
        library.warnings.append(
            f"{len(shared)} file stems are shared by several files ({', '.join(f'{s!r} {n}' for s, n in shared[:3])}"
            f"{', ...' if len(shared) > 3 else ''}): {artists} gives all the files of a stem one artist (name the "
            "files apart, or give each file's artist in a manifest's artist column)")
    library.clips = [c if c.artist else dataclasses.replace(c, artist=known.get(c.stem, "")) for c in library.clips]
    return library


def _artists_text(artists: Path | str | None) -> str | None:
    """The text of an artists.csv: a file (UTF-8 or UTF-16), or a gs:// object; None where there is none."""
    if isinstance(artists, str):
        try:
            with storage.open_text(artists) as f:
                return f.read()
        except FileNotFoundError:
            return None
    return clips.read_text(artists) if artists is not None and artists.is_file() else None


def _deduplicated(library: Library, progress) -> Library:
    """Each clip keyed by its content; the same audio twice under one label is kept once, under two
    labels it is an error naming both."""
    first, kept = {}, []
    for clip in progress(library.clips, "hashing"):
        keyed, why = (clip, None) if clip.key else _keyed(clip)
        if why:
            library.skipped.append(f"{clip.origin}: {clip.item}: {why} (left out)")
            continue
        if keyed.key in first:
            other = first[keyed.key]
            if other.label != keyed.label:
                raise LibraryError(f"the same audio is labelled {other.label!r} at {other.origin} and "
                                   f"{keyed.label!r} at {keyed.origin}: keep one")
            library.skipped.append(f"{keyed.origin}: the same audio as {other.origin} (kept once)")
            continue
        first[keyed.key] = keyed
        kept.append(keyed)
    return Library(kept, library.skipped, library.warnings)


def _keyed(clip: Clip) -> tuple[Clip | None, str | None]:
    """(The clip keyed by the sha256 of a file's bytes, of a gs:// object's version or of a link's URL,
    None), or (None, why it cannot be read)."""
    if storage.is_gs(clip.item):
        try:
            return versioned(clip, storage.version(clip.item)), None
        except (OSError, ClassifyError) as exc:
            return None, f"cannot be read ({exc})"
    if is_link(clip.item):
        return dataclasses.replace(clip, key=hashlib.sha256(clip.item.encode()).hexdigest()), None
    try:
        if not stat.S_ISREG(os.stat(clip.item).st_mode):  # stat, not open: a FIFO's open waits for a writer
            return None, "not a regular file (a device, a FIFO or a folder)"
        if _system(Path(clip.item)):
            return None, f"a file of {', '.join(SYSTEM_FOLDERS)}, not a recording"
        with open(clip.item, "rb") as f:
            return dataclasses.replace(clip, key=hashlib.file_digest(f, "sha256").hexdigest()), None
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"


def unchanged(clip: Clip) -> bool:
    """Whether a file still holds the bytes it was keyed by (a link or a gs:// object's version always
    does: a link is keyed by its URL, a version is read as it was keyed)."""
    if is_link(clip.item) or storage.is_gs(clip.item):
        return True
    keyed, _ = _keyed(clip)
    return keyed is not None and keyed.key == clip.key


def _system(path: Path) -> bool:
    resolved = str(path.resolve())
    return any(resolved == top or resolved.startswith(top + "/") for top in SYSTEM_FOLDERS)
