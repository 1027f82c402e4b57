"""What a family trains on, per clip, computed once: the segment features of a served model of its
family (its frozen backbone), or the decoded window itself (a family that learns from audio).

Features come from the function's own answer (`features: true`): computed in this process
(`--jobs` at once) or by the deployed function (`--endpoint URL`, N in flight), through the one
client of `python -m inference batch` (its retries, back-off and identity token), on the audio the
function would hear (its decoder and default window). Each clip's features are cached as soon as
they arrive, keyed by the audio's content and by what determines them (the model's features_id, the
window and the resampler), so crossval, train and option changes reuse them and a killed run resumes."""
import dataclasses
import functools
import hashlib
import math
import os
from pathlib import Path

import numpy as np
import onnx
from tqdm import tqdm

from export import music, nonmusic
from export.library import Clip, Library
from inference import batch, config, contract, decode, pipeline
from inference.errors import ClassifyError

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "features"
UNCAPPED = 2**62  # the local run reads whole files of any size (the upload cap guards the server)


def progress(items, what: str, total: int | None = None):
    """A progress bar with a rate and an ETA on stderr."""
    return tqdm(items, desc=what, total=total, unit="clip", smoothing=0.1, mininterval=1.0, dynamic_ncols=True)


def settings(model_path: Path = config.DEFAULT_MODEL) -> config.Settings:
    """The function's settings (its window, its URL policy) with `model_path` served, uncapped uploads."""
    return dataclasses.replace(config.load(), model_path=Path(model_path), max_upload_bytes=UNCAPPED)


@dataclasses.dataclass(frozen=True)
class Extractor:
    """Where features come from: a served model of the family here, or the deployed function."""
    model_path: Path
    endpoint: str | None = None
    token: str | None = None
    jobs: int = 1
    timeout: float = 120.0
    retries: int = 6
    cache: Path = CACHE

    def features_id(self) -> str:
        meta = _meta(Path(self.model_path))
        if not meta.features_id:
            raise SystemExit(f"{self.model_path} gives no features (its metadata has no features_id): "
                             "use a model of this family exported by this version of export/")
        return meta.features_id

    def folder(self) -> Path:
        """The cache folder of these features and this window."""
        s = config.load()
        what = f"{self.features_id()} window {s.default_start:g}+{s.default_duration:g} resampler {decode.RESAMPLER}"
        return self.cache / hashlib.sha256(what.encode()).hexdigest()[:16]

    def worker(self):
        if self.endpoint:
            return batch.Remote(self.endpoint, self.token, None, None, self.jobs, self.timeout, self.retries,
                                features=True)
        return batch.Local(settings(self.model_path), None, None, features=True)


@functools.cache
def _meta(path: Path) -> contract.ModelMeta:
    """A model's metadata, read once per run (every cache look-up asks for its features_id)."""
    return contract.ModelMeta.from_props({p.key: p.value for p in onnx.load(str(path)).metadata_props})


def features(library: Library, extractor: Extractor) -> tuple[list[Clip], list[np.ndarray]]:
    """The clips whose features could be had and their features [segments, n]; the others are added
    to library.skipped with the reason."""
    folder, wanted = extractor.folder(), extractor.features_id()
    folder.mkdir(parents=True, exist_ok=True)
    todo = {c.item: c for c in library.clips if not (folder / f"{c.key}.npy").exists()}
    if todo:
        where = extractor.endpoint or f"this process ({extractor.jobs} at once)"
        print(f"features of {len(todo)} clips ({len(library.clips) - len(todo)} cached) from {where}", flush=True)
    rows = progress(batch.run(extractor.worker(), list(todo), extractor.jobs), "features", len(todo)) if todo else ()
    for row in rows:
        clip = todo[row["input"]]
        found = row.get("features") or {}
        if found.get("id") != wanted and "error" not in row:
            raise SystemExit(f"{extractor.endpoint} serves a model whose features are {found.get('id')!r}, "
                             f"not {wanted!r}: deploy a model of this family, or use it as --extractor")
        if "error" in row:
            library.skipped.append(f"{clip.origin}: {row['error']['message']}")
            continue
        _written(folder / f"{clip.key}.npy", functools.partial(np.save, arr=np.asarray(found["segments"], np.float32)))
    kept = [c for c in library.clips if (folder / f"{c.key}.npy").exists()]
    return kept, [np.load(folder / f"{c.key}.npy") for c in kept]


def _written(path: Path, save):
    """save(a temporary path) then renamed to path: written whole or not at all, so a run killed
    mid-write leaves no broken file to resume from."""
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp{path.suffix}")
    save(tmp)
    os.replace(tmp, path)


def audio(library: Library, sample_rate: int) -> tuple[list[Clip], list[np.ndarray]]:
    """The clips that decode and their default windows at sample_rate, as the function decodes them;
    the others are added to library.skipped with the reason."""
    s, kept, windows = settings(), [], []
    for clip in progress(library.clips, "decoding"):
        if batch.is_link(clip.item):
            library.skipped.append(f"{clip.origin}: links are read by families with a backbone only (--extractor)")
            continue
        try:
            with open(clip.item, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                window = pipeline.window(f, s, math.inf, sample_rate, start=None, duration=None, upload_bytes=size)
        except (ClassifyError, OSError) as exc:
            library.skipped.append(f"{clip.origin}: {getattr(exc, 'message', None) or exc}")
            continue
        kept.append(clip)
        windows.append(window.audio)
    return kept, windows


def nonmusic_features(extractor: Extractor) -> list[np.ndarray]:
    """The extractor's features of the synthesized non-music (export/nonmusic.py), computed once:
    cached beside the clips' features, keyed by the generator's source and seed."""
    made_by = hashlib.sha256(Path(nonmusic.__file__).read_bytes() + str(nonmusic.SEED).encode()).hexdigest()[:16]
    path = extractor.folder() / f"nonmusic-{made_by}.npz"
    if not path.exists():
        print("features of the synthesized non-music (speech, noise, tones...)", flush=True)
        features = music.nonmusic_features(onnx.load(extractor.model_path))
        path.parent.mkdir(parents=True, exist_ok=True)
        _written(path, lambda tmp: np.savez(tmp, *features))
    with np.load(path) as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files))]
