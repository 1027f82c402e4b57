"""The classification pipeline for a link or an uploaded clip: choose the window, fetch and decode
only it, run the model, and build the answer. Everything here raises ClassifyError for a bad
request or source."""
import contextlib
import io
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

from inference import decode, errors, model, remote, resolve, storage
from inference.config import Settings
from inference.errors import ClassifyError

FETCH_WORKERS = 16
_workers = ThreadPoolExecutor(max_workers=FETCH_WORKERS, thread_name_prefix="fetch")
_fetch_slots = threading.BoundedSemaphore(FETCH_WORKERS)  # links wait here, not in the executor's queue
_cpu_slots = threading.BoundedSemaphore(os.cpu_count() or 1)  # uploads: decoding is CPU-bound too
# inference, links and uploads alike: onnxruntime's memory arena grows to the most runs at once and
# keeps that size (musicnn, 30 s: 138 MiB after 2 runs at once, 302 MiB after 8)
_inference_slots = threading.BoundedSemaphore(os.cpu_count() or 1)
# An upload whose header claims more seconds than its bytes could hold at 4 kbit/s (below AMR-NB's
# 4.75, the lowest rate of any accepted codec) is lying: its claim is not used.
MIN_UPLOAD_BYTES_PER_SECOND = 500
RETRY_AFTER_S = 5  # a busy answer's Retry-After
CLIENT_CHECK_S = 0.25  # how often a link's request looks whether its client is still there
Present = Callable[[], bool]  # whether the client is still there to read the answer


class ClientGone(Exception):
    """The client left before its answer was ready: the work is abandoned, and nothing is answered."""


def always() -> bool:
    return True


@contextlib.contextmanager
def _slot(slots: threading.BoundedSemaphore, settings: Settings):
    """One of `slots` for the block; 503 busy after settings.max_queue_s of waiting for it."""
    if not slots.acquire(timeout=settings.max_queue_s):
        raise errors.busy(RETRY_AFTER_S)
    try:
        yield
    finally:
        slots.release()


def check_window(start: float | None, duration: float | None, settings: Settings):
    """Refuse a start or duration out of range before any work is done."""
    if duration is not None and not 0 < duration <= settings.max_duration:
        raise errors.bad_parameter(f"duration must be above 0 and at most {settings.max_duration:g} s")
    if start is not None and start < 0:
        raise errors.bad_parameter("start must be 0 or more seconds")
    if start is not None and start >= settings.max_source_minutes * 60:  # also where the length is unknown
        raise errors.bad_parameter(f"start must be less than {settings.max_source_minutes * 60:g} s, the longest "
                                   "source accepted")


def choose_window(start: float | None, duration: float | None, source_seconds: float | None,
                  settings: Settings) -> tuple[float, float]:
    """(start, duration) to analyse: as asked, else DEFAULT_DURATION from DEFAULT_START, centred
    in a source too short for that."""
    length = settings.default_duration if duration is None else duration
    if start is not None:
        if source_seconds and start >= source_seconds:
            raise errors.bad_window(source_seconds)
        return start, length
    if source_seconds is None:
        return 0.0, length
    if source_seconds >= settings.default_start + length:
        return settings.default_start, length
    return max(0.0, (source_seconds - length) / 2), length


@dataclass(frozen=True)
class Window:
    """The decoded window: mono samples at the model's rate, where it starts, the source's length."""
    audio: np.ndarray
    start: float
    source_seconds: float | None


def window(source, settings: Settings, deadline: float, sample_rate: int, *, start: float | None,
           duration: float | None, known_seconds: float | None = None, upload_bytes: int | None = None,
           media: remote.RemoteFile | None = None) -> Window:
    """Open and decode the window to analyse. For an upload (upload_bytes given), a stated length its
    bytes could not hold is not trusted. A link's media (the file under source) that skips what lies far
    ahead (remote.RemoteFile.skip_ahead: no ranges) is decoded from its start; where it then states no
    length or does not decode, it is read again, through to its end (an Ogg's length, an M4A's index)."""
    asked = {"start": start, "duration": duration, "known_seconds": known_seconds, "upload_bytes": upload_bytes}
    if media is None or not media.skip_ahead:
        return _window(source, settings, deadline, sample_rate, seek=True, **asked)
    try:
        decoded = _window(source, settings, deadline, sample_rate, seek=False, **asked)
        if decoded.source_seconds:
            return decoded
    except ClassifyError as error:
        if error.code not in ("not_audio", "no_audio"):
            raise
    media.skip_ahead = False
    source.seek(0)
    return _window(source, settings, deadline, sample_rate, seek=True, **asked)


def _window(source, settings: Settings, deadline: float, sample_rate: int, *, start: float | None,
            duration: float | None, known_seconds: float | None, upload_bytes: int | None, seek: bool) -> Window:
    kept = decode.Kept(source)
    try:
        container = decode.open_audio(kept)
        try:
            seconds = known_seconds or decode.probe_duration(container)
            if seconds and upload_bytes is not None and seconds > upload_bytes / MIN_UPLOAD_BYTES_PER_SECOND:
                seconds = None
            if seconds and seconds > settings.max_source_minutes * 60:
                raise errors.source_too_long(seconds, settings.max_source_minutes)
            start, duration = choose_window(start, duration, seconds, settings)
            audio = decode.read_window(container, start, duration, sample_rate, deadline, seek and kept.seekable())
        finally:
            container.close()
    except ClassifyError:
        kept.raise_kept()  # the source's own failure, not what FFmpeg made of it
        raise
    kept.raise_kept()
    return Window(audio, start, seconds)


def _model(settings: Settings, features: bool) -> model.Model:
    """The model, checked to give features if they are asked for: before any fetch or decoding."""
    genre_model = model.get(settings.model_path)
    if features and not genre_model.meta.features_id:
        raise errors.bad_parameter(f"the model {genre_model.meta.name} has no features to give")
    return genre_model


def _decode(source, settings: Settings, deadline: float, genre_model: model.Model, *, start: float | None,
            duration: float | None, known_seconds: float | None = None, upload_bytes: int | None = None,
            media: remote.RemoteFile | None = None) -> Window:
    """The window to score, refused if it holds less than one segment (not padded)."""
    decoded = window(source, settings, deadline, genre_model.sample_rate, start=start, duration=duration,
                     known_seconds=known_seconds, upload_bytes=upload_bytes, media=media)
    segment = genre_model.meta.segment_samples
    if len(decoded.audio) < segment:
        raise errors.too_short(len(decoded.audio) / genre_model.sample_rate, segment / genre_model.sample_rate)
    return decoded


def _score(decoded: Window, genre_model: model.Model, settings: Settings, *, features: bool,
           present: Present) -> tuple[dict, float]:
    """The answer's main part and the milliseconds inference took, once an inference slot is free
    (503 busy after settings.max_queue_s) and if the client is still there."""
    with _slot(_inference_slots, settings):
        _still_wanted(present)
        began = time.perf_counter()
        verdict = genre_model.classify(decoded.audio, decoded.start, features=features)
        spent = _ms(began)
    seconds = round(len(decoded.audio) / genre_model.sample_rate, 3)
    return {**verdict, "window": {"start": round(decoded.start, 3), "duration": seconds},
            "model": genre_model.info()}, spent


def _still_wanted(present: Present):
    if not present():
        raise ClientGone


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)


def _answer(result: dict, source: dict, timings: dict, started: float) -> dict:
    return {**result, "source": source, "timings_ms": {**timings, "total": _ms(started)}}


def upload(data: bytes | BinaryIO, settings: Settings, start=None, duration=None, filename: str | None = None,
           features: bool = False, *, present: Present = always) -> dict:
    """Classify an uploaded clip: bytes, or a seekable binary file (a spooled upload); with its
    segments' features if asked. Abandoned (ClientGone) when present() says the client left."""
    started = time.perf_counter()
    check_window(start, duration, settings)
    stream = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    size = stream.seek(0, io.SEEK_END)
    stream.seek(0)
    if not size:
        raise errors.empty_upload()
    genre_model = _model(settings, features)
    with _slot(_cpu_slots, settings):
        _still_wanted(present)
        deadline = time.monotonic() + settings.time_budget  # the budget counts the work, not the wait
        decoded = _decode(stream, settings, deadline, genre_model, start=start, duration=duration, upload_bytes=size)
        decoding = _ms(started)
        result, inference = _score(decoded, genre_model, settings, features=features, present=present)
    source = {"kind": "upload", "title": filename, "duration": decoded.source_seconds, "bytes": size}
    return _answer(result, source, {"fetch_decode": decoding, "inference": inference}, started)


@dataclass
class _Job:
    """A link's fetch, run by a fetch worker, abandoned when its client leaves (or the backstop passes)."""
    abandoned: threading.Event = field(default_factory=threading.Event)
    media: remote.RemoteFile | None = None
    resolving: Callable[[], None] | None = None  # cuts the link's resolution: urlpolicy.guard's connections

    def abandon(self):
        self.abandoned.set()
        if (cut := self.resolving) is not None:
            cut()  # a page that drips is hung up on now, not at the deadline
        if (media := self.media) is not None:
            media.abort()  # a read blocked on a stalled source returns now, not at the deadline

    def resolve_cut_by(self, cut: Callable[[], None]):
        """Told by resolve() how to cut the resolution under way; cut at once if the client has left."""
        self.resolving = cut
        if self.abandoned.is_set():
            cut()


@dataclass(frozen=True)
class _Fetched:
    decoded: Window
    source: dict
    timings: dict


def link(url: str, settings: Settings, start=None, duration=None, features: bool = False, *,
         present: Present = always) -> dict:
    """Classify the audio behind a link, with its segments' features if asked. Fetching and decoding
    are bounded by the time budget (from when a fetch worker is free; 504 timeout), the wait for an
    inference slot by settings.max_queue_s (503 busy). Abandoned (ClientGone) when present() says the
    client left: before the fetch, during it (checked every CLIENT_CHECK_S) and before the inference."""
    started = time.perf_counter()
    check_window(start, duration, settings)
    if storage.is_gs(url):
        storage.check(url, settings)  # a bucket not allowed is refused before any wait
    genre_model = _model(settings, features)
    if not _fetch_slots.acquire(timeout=settings.max_queue_s):
        raise errors.busy(RETRY_AFTER_S)
    job, deadline = _Job(), time.monotonic() + settings.time_budget
    try:
        _still_wanted(present)
        future = _workers.submit(_fetch, url, settings, genre_model, job, deadline, started,
                                 start=start, duration=duration)
    except BaseException:
        _fetch_slots.release()
        raise
    future.add_done_callback(lambda _: _fetch_slots.release())  # when it ends, even after we stopped waiting
    fetched = _wait(future, job, deadline + 1, present)
    result, inference = _score(fetched.decoded, genre_model, settings, features=features, present=present)
    return _answer(result, fetched.source, {**fetched.timings, "inference": inference}, started)


def _wait(future, job: _Job, backstop: float, present: Present) -> _Fetched:
    """The fetch's result; 504 timeout past the backstop; ClientGone (the job told to stop) if the client leaves."""
    while True:
        try:
            return future.result(timeout=max(0.0, min(CLIENT_CHECK_S, backstop - time.monotonic())))
        except FutureTimeout:
            if not present():
                job.abandon()
                raise ClientGone from None
            if time.monotonic() >= backstop:
                job.abandon()
                raise errors.timeout("the source did not deliver within the time budget") from None


class _Watched(io.RawIOBase):
    """The media file, read until its job is abandoned (the decoder then stops at its next read)."""

    def __init__(self, media, job: _Job):
        super().__init__()
        self._media, self._job = media, job

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._media.seekable()

    def tell(self) -> int:
        return self._media.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._media.seek(offset, whence)

    def read(self, size: int = -1) -> bytes:
        if self._job.abandoned.is_set():
            raise ClientGone
        return self._media.read(size)


def _resolve(url: str, settings: Settings, deadline: float, job: _Job) -> resolve.Source:
    """What is known of a link's source before it is read: yt-dlp's findings, or a gs:// object's name."""
    if storage.is_gs(url):
        return resolve.Source(media_url=url, title=storage.parse(url).name.rsplit("/", 1)[-1], site="storage")
    return resolve.resolve(url, settings, deadline - time.monotonic(), cut_by=job.resolve_cut_by)


def _fetch(url, settings, genre_model, job: _Job, deadline, started, *, start, duration) -> _Fetched:
    if job.abandoned.is_set():  # the client left while this waited for a worker
        raise ClientGone
    found = _resolve(url, settings, deadline, job)
    resolved, began = _ms(started), time.perf_counter()
    if job.abandoned.is_set():
        raise ClientGone
    opened = storage.open_object(url, settings, deadline) if storage.is_gs(url) else \
        remote.RemoteFile(found.media_url, settings, deadline, found.headers, proxy=settings.proxy)
    with opened as media:
        job.media = media
        if job.abandoned.is_set():  # abandoned while the connection opened
            raise ClientGone
        try:
            decoded = _decode(_Watched(media, job), settings, deadline, genre_model, start=start,
                              duration=duration, known_seconds=found.duration, media=media)
        except ClassifyError as error:
            if media.cut and error.code in ("not_audio", "no_audio"):
                raise errors.source_unreachable(f"the audio source broke off after {media.fetched} bytes") from None
            raise
        fetched = media.fetched
    source = {"kind": "link", "title": found.title, "duration": decoded.source_seconds, "site": found.site,
              "bytes_fetched": fetched, "yt_dlp": resolve.version()}
    return _Fetched(decoded, source, {"resolve": resolved, "fetch_decode": _ms(began)})
