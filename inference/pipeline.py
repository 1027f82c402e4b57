"""The classification pipeline for a link or an uploaded clip: choose the window, fetch and decode
only it, run the model, and build the answer. Everything here raises ClassifyError for a bad
request or source."""
import contextlib
import io
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from inference import decode, errors, model, remote, resolve
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
           duration: float | None, known_seconds: float | None = None, upload_bytes: int | None = None) -> Window:
    """Open and decode the window to analyse. For an upload (upload_bytes given), a stated length its
    bytes could not hold is not trusted."""
    container = decode.open_audio(source)
    try:
        seconds = known_seconds or decode.probe_duration(container)
        if seconds and upload_bytes is not None and seconds > upload_bytes / MIN_UPLOAD_BYTES_PER_SECOND:
            seconds = None
        if seconds and seconds > settings.max_source_minutes * 60:
            raise errors.source_too_long(seconds, settings.max_source_minutes)
        start, duration = choose_window(start, duration, seconds, settings)
        audio = decode.read_window(container, start, duration, sample_rate, deadline, source.seekable())
    finally:
        container.close()
    return Window(audio, start, seconds)


def _analyse(source, settings: Settings, deadline: float, *, start: float | None, duration: float | None,
             known_seconds: float | None = None, upload_bytes: int | None = None,
             began: float, features: bool = False) -> tuple[dict, float | None, dict]:
    """Decode the window and score it: the answer's main part, the source's length, and the
    milliseconds that fetching and decoding (from `began`, a perf_counter) and inference took."""
    genre_model = model.get(settings.model_path)
    decoded = window(source, settings, deadline, genre_model.sample_rate, start=start, duration=duration,
                     known_seconds=known_seconds, upload_bytes=upload_bytes)
    audio, start = decoded.audio, decoded.start
    segment = genre_model.meta.segment_samples
    if len(audio) < segment:  # less than one segment: refused, not padded
        raise errors.too_short(len(audio) / genre_model.sample_rate, segment / genre_model.sample_rate)
    timings = {"fetch_decode": _ms(began)}
    began = time.perf_counter()
    with _slot(_inference_slots, settings):
        verdict = genre_model.classify(audio, start, features=features)
    timings["inference"] = _ms(began)
    return {**verdict, "window": {"start": round(start, 3), "duration": round(len(audio) / genre_model.sample_rate, 3)},
            "model": genre_model.info()}, decoded.source_seconds, timings


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)


def _answer(result: dict, source: dict, timings: dict, started: float) -> dict:
    return {**result, "source": source, "timings_ms": {**timings, "total": _ms(started)}}


def upload(data: bytes | BinaryIO, settings: Settings, start=None, duration=None, filename: str | None = None,
           features: bool = False) -> dict:
    """Classify an uploaded clip: bytes, or a seekable binary file (a spooled upload); with its
    segments' features if asked."""
    started = time.perf_counter()
    check_window(start, duration, settings)
    stream = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    size = stream.seek(0, io.SEEK_END)
    stream.seek(0)
    if not size:
        raise errors.empty_upload()
    with _slot(_cpu_slots, settings):
        deadline = time.monotonic() + settings.time_budget  # the budget counts the work, not the wait
        result, seconds, timings = _analyse(stream, settings, deadline, start=start, duration=duration,
                                            upload_bytes=size, began=started, features=features)
    source = {"kind": "upload", "title": filename, "duration": seconds, "bytes": size}
    return _answer(result, source, timings, started)


def link(url: str, settings: Settings, start=None, duration=None, features: bool = False) -> dict:
    """Classify the audio behind a link, with its segments' features if asked; bounded by the time budget
    (from when a fetch worker is free)."""
    started = time.perf_counter()
    check_window(start, duration, settings)
    if not _fetch_slots.acquire(timeout=settings.max_queue_s):
        raise errors.busy(RETRY_AFTER_S)
    deadline = time.monotonic() + settings.time_budget
    future = _workers.submit(_link, url, settings, start, duration, deadline, started, features)
    future.add_done_callback(lambda _: _fetch_slots.release())  # when it ends, even after our time-out
    try:
        return future.result(timeout=settings.time_budget + 1)
    except FutureTimeout:
        raise errors.timeout(f"the source took longer than {settings.time_budget:g} s") from None


def _link(url, settings, start, duration, deadline, started, features):
    found = resolve.resolve(url, settings, deadline - time.monotonic())
    resolved, began = _ms(started), time.perf_counter()
    with remote.RemoteFile(found.media_url, settings, deadline, found.headers) as media:
        try:
            result, seconds, timings = _analyse(media, settings, deadline, start=start, duration=duration,
                                                known_seconds=found.duration, began=began, features=features)
        except ClassifyError as error:
            if media.cut and error.code in ("not_audio", "no_audio"):
                raise errors.source_unreachable(f"the audio source broke off after {media.fetched} bytes") from None
            raise
        fetched = media.fetched
    source = {"kind": "link", "title": found.title, "duration": seconds, "site": found.site,
              "bytes_fetched": fetched, "yt_dlp": resolve.version()}
    return _answer(result, source, {"resolve": resolved, **timings}, started)
