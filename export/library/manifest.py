"""A CSV manifest: a header `path,label` and an optional `artist` column; paths relative to the
CSV or absolute, or http(s) links. UTF-8 (Excel's "CSV UTF-8" too) or UTF-16."""
import csv
import io
from pathlib import Path

from export.library.clips import Clip, Library, LibraryError, checked_label, read_text
from inference.batch import is_link

COLUMNS = ("path", "label")


def read(path: Path) -> Library:
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    try:
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise LibraryError(f"{path}: the header has no {' and no '.join(missing)} column "
                               f"(it needs path,label and may have artist; found {reader.fieldnames})")
        clips = [_clip(row, path, f"{path} line {reader.line_num}") for row in reader]
    except csv.Error as exc:  # a field over csv's limit (128 KB), a stray quote...
        raise LibraryError(f"{path} line {reader.line_num + 1}: {exc}") from None  # the line it could not read
    if not clips:
        raise LibraryError(f"{path}: no rows")
    return Library(clips)


def _clip(row: dict, path: Path, origin: str) -> Clip:
    item, label = (row.get("path") or "").strip(), (row.get("label") or "").strip()
    if not item:
        raise LibraryError(f"{origin}: no path")
    if "\0" in item:
        raise LibraryError(f"{origin}: the path holds a NUL byte")
    if not is_link(item):
        item = str(Path(item) if Path(item).is_absolute() else path.parent / item)
    return Clip(item, checked_label(label, origin), (row.get("artist") or "").strip(), origin)
