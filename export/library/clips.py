"""What every reader of a library gives: clips with a label and an artist, and what was skipped."""
import codecs
import dataclasses
import hashlib
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# A label needs this many clips: grouped 5-fold cross-validation scores each label in every fold
# only if every fold can hold one of its clips, and learns it in every fold only with more than one.
MIN_CLIPS = 5
MAX_LABEL_CHARS = 64  # a label is shown on the page and in every answer: a name, not a sentence


class LibraryError(Exception):
    """The library cannot be trained on; the message names the file or row and says what to do."""


@dataclass(frozen=True)
class Clip:
    item: str  # a file's path or an http(s) link, as the function's client takes it
    label: str
    artist: str  # "" when unknown: the clip is then its own group in cross-validation
    origin: str  # where it was named, for messages
    key: str = ""  # sha256 of a file's bytes, a gs:// object's URL#generation or a link's URL: its audio
    version: str = ""  # a gs:// object's URL#generation (storage.version): the one version keyed and read

    @property
    def read_as(self) -> str:
        """What the function is given to read: a gs:// object's version (a rewrite of it is refused, not
        read under the old version's key), else the item."""
        return self.version or self.item

    @property
    def stem(self) -> str:
        """The file name without suffix (GTZAN's split lists and artists.csv name clips so)."""
        return Path(self.item).stem


def versioned(clip: Clip, version: str) -> Clip:
    """The clip of a gs:// object keyed by its version (storage.version): a rewritten object is new audio."""
    return dataclasses.replace(clip, key=hashlib.sha256(version.encode()).hexdigest(), version=version)


@dataclass
class Library:
    clips: list[Clip]
    skipped: list[str] = field(default_factory=list)  # "origin: why", listed at the end of a run
    warnings: list[str] = field(default_factory=list)  # what may be a mistake, listed with the skipped

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


def checked_label(label: str, origin: str) -> str:
    """The label, stripped; LibraryError if no model's metadata or page could hold it. A slash is a
    label's own (iTunes' "Hip-Hop/Rap"); a label folder spells it %2F (folders.py)."""
    label = unicodedata.normalize("NFC", label.strip())
    why = ("it is empty" if not label else
           f"it is longer than {MAX_LABEL_CHARS} characters" if len(label) > MAX_LABEL_CHARS else
           "it holds a control character" if any(unicodedata.category(ch)[0] == "C" for ch in label) else
           "it holds a backslash (write a slash)" if "\\" in label else
           "it is a folder's own name" if label in (".", "..") else None)
    if why:
        raise LibraryError(f"{origin}: the label {label!r} cannot be used: {why}")
    return label


def check_sizes(library: Library) -> None:
    """LibraryError unless there are two labels or more, each of at least MIN_CLIPS clips."""
    counts = Counter(c.label for c in library.clips)
    if len(counts) < 2:
        has = ", ".join(f"only {label!r} ({n} clip{'s' * (n != 1)})" for label, n in counts.items()) or "none"
        raise LibraryError(f"a classifier needs two labels or more; this library has {has}")
    small = {label: n for label, n in counts.items() if n < MIN_CLIPS}
    if small:
        raise LibraryError(f"labels with fewer than {MIN_CLIPS} usable clips (cross-validation needs one per fold): "
                           + ", ".join(f"{label!r} {n}" for label, n in sorted(small.items()))
                           + ": add clips, merge them into another label, or leave them out")


def look_alikes(labels) -> list[str]:
    """Warnings for labels that differ only by case, width or accents' encoding (equal once NFKC-normalized
    and case-folded), and for labels that mix letters of two scripts (a Cyrillic о in "rоck")."""
    found, warnings = {}, []
    for label in sorted(labels):
        found.setdefault(unicodedata.normalize("NFKC", label).casefold(), []).append(label)
        scripts = sorted({unicodedata.name(ch, "?").split()[0] for ch in label if ch.isalpha()})
        if len(scripts) > 1:
            warnings.append(f"the label {label!r} mixes {' and '.join(scripts)} letters: a look-alike of another "
                            "label? (rename its clips' label if so)")
    warnings += [f"the labels {' and '.join(map(repr, same))} differ only by case or width: two labels, as given "
                 "(give them one spelling to merge them)" for same in found.values() if len(same) > 1]
    return warnings


def read_text(path: Path) -> str:
    """A CSV's text: UTF-8 (with or without Excel's byte-order mark) or UTF-16 with its mark;
    LibraryError naming the file and line for anything else (latin-1...)."""
    data = path.read_bytes()
    encoding = "utf-16" if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise LibraryError(f"{path} line {line}: not {encoding.split('-sig')[0].upper()} text (byte "
                           f"{data[exc.start]:#04x}): save it as \"CSV UTF-8\"") from None
