"""Label folders: <label>/<any depth>/<audio file>, the label the folder's name (GTZAN is one; a
label with a slash, "Hip-Hop/Rap", is a folder named with %2F for it: "Hip-Hop%2FRap"), on this
machine or as prefixes of a bucket; or, with the labels from the files' genre tags, every audio file
below a folder."""
from collections import defaultdict
from pathlib import Path

from export.library.clips import Clip, Library, LibraryError, checked_label, versioned
from inference import decode, storage
from inference.errors import ClassifyError


def audio_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """(audio files, other files) below a folder, at any depth, hidden ones left out, sorted; a link to
    nothing is an other file (skipped, said)."""
    files = sorted(p for p in folder.rglob("*") if (p.is_file() or p.is_symlink() and not p.exists()) and not any(
        part.startswith(".") for part in p.relative_to(folder).parts))
    return ([p for p in files if p.suffix.lower() in decode.SUFFIXES and p.exists()],
            [p for p in files if p.suffix.lower() not in decode.SUFFIXES or not p.exists()])


def _why_not(path: Path) -> str:
    """Why a file below a label folder is not a clip."""
    if not path.exists():
        return f"{path}: a link to nothing ({path.readlink()})"
    return f"{path}: not an audio file name ({', '.join(sorted(decode.SUFFIXES))})"


def _label(name: str, origin: str, named: dict[str, list[str]]) -> str:
    """A label folder's (or prefix's) label, its name noted under it in `named` (see _merged)."""
    label = checked_label(name.replace("%2F", "/").replace("%2f", "/"), origin)
    named[label].append(name)
    return label


def _merged(named: dict[str, list[str]]) -> list[str]:
    """Warnings for folders whose names are one label (spaces at the ends, a composed or decomposed
    accent as macOS writes it, %2F or %2f): their clips are that label's."""
    return [f"the label folders {' and '.join(map(repr, names))} are one label, {label!r} (names read alike: "
            "spaces at the ends, accents composed or not, %2F for /): rename one to keep them apart"
            for label, names in named.items() if len(names) > 1]


def by_folder(root: Path) -> Library:
    clips, named = [], defaultdict(list)
    skipped = [f"{p}: an audio file outside the label folders (left out: its folder names its label)"
               for p in sorted(root.iterdir()) if p.is_file() and p.suffix.lower() in decode.SUFFIXES]
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        audio, other = audio_files(folder)
        if not audio:
            skipped.append(f"{folder}: no audio files in this label folder (left out)")
            continue
        label = _label(folder.name, str(folder), named)
        clips += [Clip(str(p), label, "", str(p)) for p in audio]
        skipped += [_why_not(p) for p in other]
    if not clips:
        raise LibraryError(f"{root}: no label folders with audio files (expected {root}/<label>/<files>)")
    return Library(clips, skipped, _merged(named))


def by_prefix(root: str) -> Library:
    """gs://BUCKET/PREFIX/<label>/<any depth>/<audio object>: the label the first prefix below root."""
    root = root if root.endswith("/") else root + "/"
    found, skipped = defaultdict(list), []
    for item, version in storage.versions(root):
        label, _, rest = item.removeprefix(root).partition("/")
        if not rest or label.startswith("."):
            skipped.append(f"{item}: not in a label prefix ({root}<label>/...)")
            continue
        found[label].append((item, version))
    if not found:
        raise LibraryError(f"{root}: no label prefixes with audio objects (expected {root}<label>/<objects>)")
    named = defaultdict(list)
    clips = [versioned(Clip(item, label, "", item), version) for name in sorted(found)
             for label in [_label(name, f"{root}{name}/", named)] for item, version in found[name]]
    return Library(clips, skipped, _merged(named))


def by_tags(root: Path) -> Library:
    audio, _ = audio_files(root)
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


def file_tags(path: Path) -> dict[str, str]:
    """A file's genre and artist tags (ID3 TCON, Vorbis GENRE, MP4 (c)gen...: lower-cased keys of the
    container's and its audio stream's metadata, as FFmpeg names them); {} for a file it cannot open."""
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
