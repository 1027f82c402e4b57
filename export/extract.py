"""What a family trains on, per clip, computed once: the segment features of a served model of its
family (its frozen backbone), or the decoded window itself (a family that learns from audio).

Features come from the function's own answer (`features: true`): computed in this process
(`--jobs` at once) or by the deployed function (`--endpoint URL`, N in flight), through the one
client of `python -m inference batch` (its retries, back-off and identity token), on the audio the
function would hear (its decoder and default window). Each clip's features are cached as soon as
they arrive, keyed by the audio's content and by what determines them (the model's features_id, the
window and the resampler), so crossval, train and option changes reuse them and a killed run resumes.
What comes in and what the cache holds is checked (one segment or more, as many as the window holds
at most, the model's width, finite numbers): a bad answer is the clip's error, a bad cache entry is
named, discarded and computed again. The same audio behind two links is found by its features."""
import contextlib
import dataclasses
import functools
import hashlib
import math
import os
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
from tqdm import tqdm

from export import music, nonmusic
from export.library import Clip, Library, LibraryError, unchanged
from inference import batch, client, config, contract, decode, pipeline, tokens
from inference.errors import ClassifyError

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "features"
UNCAPPED = 2**62  # the local run reads whole files of any size (the upload cap guards the server)
UNANSWERED_STOP = 8  # an --endpoint that answers none of the first this many clips stops the run


def progress(items, what: str, total: int | None = None):
    """A progress bar with a rate and an ETA on stderr."""
    return tqdm(items, desc=what, total=total, unit="clip", smoothing=0.1, mininterval=1.0, dynamic_ncols=True)


def settings(model_path: Path = config.DEFAULT_MODEL) -> config.Settings:
    """The function's settings (its window, its URL policy) with `model_path` served, uncapped uploads, any
    bucket the caller's credentials may read (GENRE_ALLOWED_BUCKETS guards the function only)."""
    return dataclasses.replace(config.load(), model_path=Path(model_path), max_upload_bytes=UNCAPPED,
                               allowed_buckets=None)


@dataclasses.dataclass(frozen=True)
class Extractor:
    """Where features come from: a served model of the family here, or the deployed function."""
    model_path: Path
    endpoint: str | None = None
    token: str | None = None
    jobs: int = 1
    token_command: str | None = None
    timeout: float = 120.0
    retries: int = 6
    cache: Path = CACHE
    max_wait: float = client.DEFAULT_MAX_WAIT_S

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
            token = tokens.choose(token=self.token, command=self.token_command, endpoint=self.endpoint)
            return client.Client(self.endpoint, token=token, timeout_s=self.timeout, retries=self.retries,
                                 max_wait_s=self.max_wait, max_upload_bytes=config.load().max_upload_bytes,
                                 fields={"features": True})
        return batch.Local(settings(self.model_path), None, None, features=True)

    def shape(self) -> tuple[int, int]:
        """(most segments, width) of a clip's features: as many segments as the default window holds, the
        width of the model's features output."""
        s = config.load()
        return max(1, math.ceil(s.default_duration / contract.SEGMENT_SECONDS)), _width(Path(self.model_path))


@functools.cache
def _model(path: Path) -> onnx.ModelProto:
    """A model, read once per run (every cache look-up asks for its features_id and width)."""
    return onnx.load(str(path))


def _meta(path: Path) -> contract.ModelMeta:
    return contract.ModelMeta.from_props({p.key: p.value for p in _model(path).metadata_props})


def _width(path: Path) -> int:
    output = next(o for o in _model(path).graph.output if o.name == contract.FEATURES_OUTPUT)
    return output.type.tensor_type.shape.dim[1].dim_value


def problem(array, most: int, width: int) -> str | None:
    """Why an array is not a clip's features [1..most, width] of finite float32, or None."""
    if not isinstance(array, np.ndarray):
        return f"not an array ({type(array).__name__})"
    return unfit(array.dtype, array.shape, most, width) or (
        None if np.isfinite(array).all() else "it holds NaN or infinity")


def unfit(dtype, shape: tuple, most: int, width: int) -> str | None:
    """Why an array of this dtype and shape is not a clip's features [1..most, width] of float32, or None."""
    if dtype != np.float32 or len(shape) != 2:
        return f"not a 2-D float32 array ({dtype}, {len(shape)}-D)"
    if shape[1] != width or not 1 <= shape[0] <= most:
        return f"its shape is {shape}, not 1 to {most} segments of {width}"
    return None


def features(library: Library, extractor: Extractor) -> tuple[list[Clip], list[np.ndarray]]:
    """The clips whose features could be had and their features [segments, n]; the others are added
    to library.skipped with the reason. LibraryError for the same audio under two labels."""
    folder, (most, width) = extractor.folder(), extractor.shape()
    folder.mkdir(parents=True, exist_ok=True)
    found = {c.item: _cached(folder / f"{c.key}.npy", most, width) for c in library.clips}
    todo = {c.read_as: c for c in library.clips if found[c.item] is None}
    if todo:
        where = extractor.endpoint or f"this process ({extractor.jobs} at once)"
        print(f"features of {len(todo)} clips ({len(library.clips) - len(todo)} cached) from {where}", flush=True)
    rows = progress(batch.run(extractor.worker(), list(todo), extractor.jobs), "features", len(todo)) if todo else ()
    for row in _until_refused(rows, extractor.endpoint):
        clip = todo[row["input"]]
        array, why = _answered(row, extractor.features_id(), extractor.endpoint, most, width)
        if not why and not unchanged(clip):  # its features are not those of the bytes it is keyed by
            why = "the file changed while it was read (not cached): run again"
        if why:
            library.skipped.append(f"{clip.origin}: {why}")
            continue
        _written(folder / f"{clip.key}.npy", functools.partial(np.save, arr=array, allow_pickle=False))
        found[clip.item] = array
    return _distinct(library, [(c, found[c.item]) for c in library.clips if found[c.item] is not None])


def _answered(row: dict, wanted: str, endpoint: str | None, most: int, width: int) -> tuple:
    """(features, None) from a row of the function, or (None, why not)."""
    if "error" in row:
        return None, row["error"]["message"]
    given = row.get("features") or {}
    if given.get("id") != wanted:
        raise SystemExit(f"{endpoint} serves a model whose features are {given.get('id')!r}, "
                         f"not {wanted!r}: deploy a model of this family, or use it as --extractor")
    try:
        array = np.asarray(given.get("segments"), np.float32)
    except (TypeError, ValueError):
        return None, "its features are not an array of numbers (not cached)"
    why = problem(array, most, width)
    return (None, f"its features are not usable: {why} (not cached)") if why else (array, None)


def _cached(path: Path, most: int, width: int) -> np.ndarray | None:
    """A cache entry that holds a clip's features; a bad one is named, removed and left to compute again."""
    if not path.exists():
        return None
    try:  # mapped: a header that claims a billion segments costs nothing before its shape is checked
        _regular(path)
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)
        why = problem(mapped, most, width)
        array = None if why else np.array(mapped)
        del mapped
    except (OSError, ValueError, EOFError) as exc:
        why = f"it cannot be read ({exc})"
    if why:
        _discard(path, why)
        return None
    return array


def _regular(path: Path):
    """ValueError unless a cache entry is a regular file (a folder's np.load fails, a FIFO's never ends)."""
    if not path.is_file():
        raise ValueError("not a regular file: a folder, a FIFO or a device")


def _discard(path: Path, why: str):
    """A bad cache entry named and removed where it can be (a folder with what it holds), to compute again."""
    print(f"warning: {path}: {why}: discarded, computed again", file=sys.stderr, flush=True)
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _distinct(library: Library, pairs: list[tuple[Clip, np.ndarray]]) -> tuple[list[Clip], list[np.ndarray]]:
    """The clips, each audio once: two whose features are equal (two links to one recording) are the same
    audio, kept once under one label; LibraryError naming both under two."""
    first, kept = {}, []
    for clip, array in pairs:
        digest = hashlib.sha256(array.tobytes()).hexdigest()
        other = first.setdefault(digest, clip)
        if other is clip:
            kept.append((clip, array))
        elif other.label != clip.label:
            raise LibraryError(f"the same audio is labelled {other.label!r} at {other.origin} and "
                               f"{clip.label!r} at {clip.origin}: keep one")
        else:
            library.skipped.append(f"{clip.origin}: the same audio as {other.origin} (kept once)")
    return [c for c, _ in kept], [a for _, a in kept]


def _written(path: Path, save):
    """save(a temporary path) then renamed to path: written whole or not at all, so a run killed
    mid-write leaves no broken file to resume from."""
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        save(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _until_refused(rows, endpoint: str | None):
    """The rows; the run stopped (what is cached stays for the next) when the function refuses the token,
    or when an endpoint answered none of the first UNANSWERED_STOP clips (it is down, or not there: each
    clip would wait out its retries, and the run end in "no labels")."""
    answered, unanswered = False, 0
    try:
        for row in rows:
            if row.get("error", {}).get("code") == "unreachable" and not answered:
                unanswered += 1
                if endpoint and unanswered >= UNANSWERED_STOP:
                    raise SystemExit(f"stopped: {endpoint} answered none of the first {unanswered} clips "
                                     f"({row['error']['message']}): is it deployed, and is the URL right?")
            else:
                answered = True
            yield row
    except tokens.Refused as exc:
        raise SystemExit(f"stopped: {exc}") from None


def _npz_unfit(path: Path, most: int, width: int) -> str | None:
    """Why an .npz's arrays are not features [1..most, width] of float32, judged from each one's .npy header
    before its data is read (a header may claim 10^12 segments), or None."""
    headers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    with zipfile.ZipFile(path) as saved:
        for name in saved.namelist():
            with saved.open(name) as f:
                version = np.lib.format.read_magic(f)
                if version not in headers:
                    return f"{name} is a .npy of version {version}"
                shape, _, dtype = headers[version](f)
                if why := unfit(dtype, shape, most, width):
                    return f"{name}: {why}"
    return None


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
    path, width = extractor.folder() / f"nonmusic-{made_by}.npz", extractor.shape()[1]
    most = math.ceil(nonmusic.ITEM_SECONDS / contract.SEGMENT_SECONDS)
    if path.exists():
        try:
            _regular(path)
            why = _npz_unfit(path, most, width)
            if not why:
                with np.load(path, allow_pickle=False) as saved:
                    found = [saved[f"arr_{i}"] for i in range(len(saved.files))]
                why = next(filter(None, (problem(a, most, width) for a in found)), None) if found else "it is empty"
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            why = f"it cannot be read ({exc})"
        if not why:
            return found
        _discard(path, why)
    print("features of the synthesized non-music (speech, noise, tones...)", flush=True)
    features = music.nonmusic_features(onnx.load(extractor.model_path))
    path.parent.mkdir(parents=True, exist_ok=True)
    _written(path, lambda tmp: np.savez(tmp, *features))
    return features
