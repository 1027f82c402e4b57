"""Reading a GTZAN-layout folder: <genre>/<genre>.000NN.{wav,au,flac}, at any depth (genres/ or
genres_original/ parents), any sample rate, decoded to mono float32 at the rate a family asks for."""
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np

from inference.contract import LABELS

EXTENSIONS = (".wav", ".au", ".flac")
_STEM = re.compile(r"^([a-z]+)\.\d{5}$")


class DatasetError(Exception):
    """The folder holds no usable GTZAN clip."""


@dataclass(frozen=True)
class Clip:
    path: Path
    genre: str
    stem: str  # e.g. "blues.00012", as in the split lists


def find_clips(root) -> list[Clip]:
    """Every GTZAN-named clip under root, sorted by stem."""
    clips = []
    for path in Path(root).rglob("*"):
        match = _STEM.match(path.stem)
        if (path.suffix.lower() in EXTENSIONS and match and match.group(1) in LABELS
                and path.parent.name == match.group(1)):
            clips.append(Clip(path, match.group(1), path.stem))
    if not clips:
        raise DatasetError(f"no GTZAN clips (<genre>/<genre>.000NN.wav|au|flac) under {root}")
    return sorted(clips, key=lambda c: c.stem)


def read_split(splits_dir, name: str) -> set[str]:
    """The stems of a split list, e.g. splits/train_filtered.txt."""
    path = Path(splits_dir) / f"{name}_filtered.txt"
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def load(clips: list[Clip], sample_rate: int) -> list[tuple[Clip, np.ndarray]]:
    """Decode each clip (mono, at sample_rate); an unreadable one is skipped with a warning."""
    loaded = []
    for clip in clips:
        try:
            audio, _ = librosa.load(clip.path, sr=sample_rate, mono=True)
        except Exception as exc:  # soundfile and audioread raise many types
            warnings.warn(f"skipping unreadable clip {clip.path}: {exc}", stacklevel=2)
            continue
        if len(audio) == 0:
            warnings.warn(f"skipping empty clip {clip.path}", stacklevel=2)
            continue
        loaded.append((clip, audio.astype(np.float32)))
    if not loaded:
        raise DatasetError("none of the clips could be decoded")
    return loaded


def select(clips: list[Clip], splits_dir, split: str) -> list[Clip]:
    """The clips of a split list ('all' keeps every clip)."""
    if split == "all":
        return clips
    stems = read_split(splits_dir, split)
    return [c for c in clips if c.stem in stems]
