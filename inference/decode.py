"""Decode a window of audio from a file-like object to mono float32 at the model's rate (PyAV).

The demuxer sees only the file object we hand it (no URL of its own), only common audio/video
container formats are allowed, and any nested open is limited to http(s)/tls/tcp."""
import io
import time

import av
import numpy as np

from inference import errors

FORMATS = "mov,matroska,webm,ogg,mp3,flac,wav,aac,au,aiff,asf,caf,w64,amr,ac3,eac3"
# The file names of those formats: what `batch` and export/ take for audio in a folder.
SUFFIXES = frozenset({".aac", ".aif", ".aiff", ".au", ".flac", ".m4a", ".mka", ".mp3", ".mp4", ".oga", ".ogg", ".opus",
                      ".wav", ".webm", ".wma"})
OPTIONS = {"format_whitelist": FORMATS, "protocol_whitelist": "http,https,tls,tcp"}
# libswresample's defaults (a 32-tap filter cut at 0.97 of the new Nyquist) let through a
# quarter of the octave above it: at 16 kHz, 4.5 times the energy in 7.6-8 kHz that a sharp
# (soxr) resampler leaves. Twice the taps cut at 0.95 leave 1.02 times, for ~6 ms more per 30 s.
RESAMPLER = {"filter_size": "64", "cutoff": "0.95"}
# The first bytes of the containers above (an MP3 without ID3 starts with an MPEG frame sync: 11 bits set).
SIGNATURES = (b"fLaC", b"ID3", b"OggS", b"RIFF", b"FORM", b".snd", b"\x1a\x45\xdf\xa3", b"caff", b"#!AMR",
              b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", b"\x0b\x77")
MAX_SAMPLE_RATE = 768_000  # the highest of any common format (DXD's 352.8 kHz, doubled)
# Full scale is 1.0; float formats may go over it (a master's overs), never this far: 24 dB above it.
MAX_PEAK = 16.0


class Kept(io.RawIOBase):
    """A source as PyAV reads it: the source's own failure (the fetch's byte cap or time, a client
    gone) is kept and handed to FFmpeg as the end of the file, to be raised once PyAV returns
    (raise_kept). Raised inside PyAV, it would be printed to stderr as "PyAV library exception being
    dropped" at each read FFmpeg tries after it, a dozen tracebacks a request."""

    def __init__(self, source):
        super().__init__()
        self.source, self.error = source, None  # no name: a file's is no hint to FFmpeg, as an upload has none

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self.source.seekable()

    def tell(self) -> int:
        return self.source.tell()

    def read(self, size: int = -1) -> bytes:
        if self.error is None:
            try:
                return self.source.read(size)
            except Exception as exc:  # noqa: BLE001 (raised by raise_kept, outside FFmpeg)
                self.error = exc
        return b""

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if self.error is None:
            try:
                return self.source.seek(offset, whence)
            except Exception as exc:  # noqa: BLE001 (as read)
                self.error = exc
        return offset

    def raise_kept(self):
        """The source's failure, if it had one: the cause of whatever FFmpeg made of it."""
        if self.error is not None:
            raise self.error


def looks_like_audio(head: bytes) -> bool:
    """Whether bytes start like one of the accepted audio containers (for bodies sent with the wrong type)."""
    return (head.startswith(SIGNATURES) or head[4:8] == b"ftyp"
            or len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


def probe_duration(container) -> float | None:
    """The container's duration in seconds, where it states one."""
    return container.duration / av.time_base if container.duration else None


def open_audio(source):
    """An open PyAV container with at least one audio stream; ClassifyError if it is not audio."""
    try:
        container = av.open(source, mode="r", container_options=OPTIONS)  # "r": a temporary file says "w+b"
    except (av.FFmpegError, ValueError, OSError):
        raise errors.not_audio() from None
    if not container.streams.audio:
        container.close()
        raise errors.not_audio("the file holds no audio stream")
    return container


def read_window(container, start: float, duration: float, sample_rate: int, deadline: float,
                seekable: bool) -> np.ndarray:
    """Mono float32 samples of [start, start + duration) seconds of the first audio stream. A source
    that cannot seek (a live stream) is decoded from where it is, up to `start` skipped."""
    stream = container.streams.audio[0]
    if stream.codec_context is None:  # FFmpeg has no decoder for its codec (a WAV's unknown format tag)
        raise errors.not_audio("the audio's codec cannot be decoded")
    if (stream.sample_rate or 0) > MAX_SAMPLE_RATE:  # resampling from 2^31 Hz takes hundreds of MB, then fails
        raise errors.not_audio(f"the audio's sample rate ({stream.sample_rate} Hz) is above "
                               f"{MAX_SAMPLE_RATE // 1000} kHz, the highest accepted")
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate, options=RESAMPLER)
    wanted, skip = int(duration * sample_rate), 0
    chunks, have = [], 0
    try:
        if start > 0 and seekable:
            container.seek(int(start * av.time_base), backward=True, any_frame=False)
        for frame in container.decode(stream):
            if time.monotonic() > deadline:
                raise errors.timeout("decoding the audio took longer than the time budget")
            if frame.time is not None and frame.time + frame.samples / frame.sample_rate <= start:
                continue
            if not chunks and frame.time is not None and frame.time < start:
                skip = int((start - frame.time) * sample_rate)
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray()[0])
                have += out.samples
            if have >= wanted + skip:
                break
        else:
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray()[0])
    except (av.FFmpegError, ValueError, OSError, EOFError, MemoryError):
        if not chunks:
            raise errors.not_audio("the audio could not be decoded") from None
    if not chunks:
        raise errors.no_audio()
    audio = np.concatenate(chunks)[skip:skip + wanted]
    if not len(audio):
        raise errors.no_audio()
    if not np.all(np.abs(audio) <= MAX_PEAK):  # NaN compares False: refused with the infinite and the absurd
        raise errors.not_audio(f"the audio holds samples that are not numbers or beyond {MAX_PEAK:g} times full scale")
    return np.ascontiguousarray(audio, dtype=np.float32)
