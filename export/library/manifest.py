"""A CSV manifest: a header `path,label` and an optional `artist` column; paths relative to the
CSV or absolute, or http(s) links."""
import csv
from pathlib import Path

from export.library.clips import Clip, Library, LibraryError, checked_label
from inference.batch import is_link

COLUMNS = ("path", "label")


def read(path: Path) -> Library:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
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
