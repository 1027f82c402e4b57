"""inference/decode.py: which bodies look like audio, and which stream of a file is decoded."""
import io
import time

import av
import numpy as np
import pytest

from inference import decode

HEADS = {  # the first bytes of real files of each accepted container
    "flac": b"fLaC\x00\x00\x00\x22", "mp3 with ID3": b"ID3\x04\x00\x00", "ogg": b"OggS\x00\x02",
    "wav": b"RIFF\x24\x08\x00\x00WAVE", "aiff": b"FORM\x00\x00\x00\x4eAIFF", "au": b".snd\x00\x00\x00\x18",
    "webm, mka": b"\x1a\x45\xdf\xa3\x9f\x42\x86", "caf": b"caff\x00\x01", "amr": b"#!AMR\n",
    "wma": b"\x30\x26\xb2\x75\x8e\x66\xcf\x11\xa6\xd9", "ac3": b"\x0b\x77\x3b\x9c",
    "m4a": b"\x00\x00\x00\x20ftypM4A ", "mp3 frame, MPEG-1 layer III": b"\xff\xfb\x90\x64",
    "mp3 frame, MPEG-2.5": b"\xff\xe3\x18\xc4", "aac ADTS": b"\xff\xf1\x50\x80",
}
NOT_AUDIO = {
    "a form": b"url=https%3A%2F%2Fyoutu.be%2Fx", "JSON": b'{"url": "https://youtu.be/x"}', "empty": b"",
    "one 0xFF byte": b"\xff", "0xFF without a frame sync": b"\xff\xd8\xff\xe0\x00\x10JFIF",  # a JPEG
    "ftyp one byte early": b"\x00\x00\x00ftypM4A ", "0xFE then sync bits": b"\xfe\xfb\x90\x64",
}


@pytest.mark.parametrize("head", HEADS.values(), ids=HEADS)
def test_audio_heads(head):
    assert decode.looks_like_audio(head + bytes(16))


@pytest.mark.parametrize("head", NOT_AUDIO.values(), ids=NOT_AUDIO)
def test_heads_that_are_not_audio(head):
    assert not decode.looks_like_audio(head)


def test_two_bytes_of_frame_sync_are_enough():
    assert decode.looks_like_audio(b"\xff\xfb") and not decode.looks_like_audio(b"\xff")


def test_the_first_audio_stream_is_the_one_decoded(tmp_path):
    """A Matroska file with a 440-Hz tone as its first audio stream and silence as its second."""
    path, rate = tmp_path / "two.mka", 22050
    with av.open(str(path), "w", format="matroska") as out:
        streams = [out.add_stream("pcm_s16le", rate=rate, layout="mono") for _ in range(2)]
        t = np.arange(rate * 4) / rate
        for stream, signal in zip(streams, (0.5 * np.sin(2 * np.pi * 440 * t), np.zeros_like(t)), strict=True):
            frame = av.AudioFrame.from_ndarray((signal * 32767).astype("<i2")[None], format="s16", layout="mono")
            frame.sample_rate = rate
            out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
    with av.open(str(path)) as container:
        audio = decode.read_window(container, 0.0, 3.0, rate, time.monotonic() + 10, True)
    assert len(audio) == 3 * rate and np.abs(audio).max() > 0.4


class Unseekable(io.RawIOBase):
    """The bytes of a file as a live stream gives them: no seeking."""

    def __init__(self, data: bytes):
        self.data = io.BytesIO(data)

    def readable(self):
        return True

    def seekable(self):
        return False

    def readinto(self, buffer):
        chunk = self.data.read(len(buffer))
        buffer[:len(chunk)] = chunk
        return len(chunk)


def test_a_stream_that_cannot_seek_is_decoded_up_to_the_start_and_skipped(media):
    data = (media / "song.flac").read_bytes()
    with av.open(io.BytesIO(data)) as container:
        seeking = decode.read_window(container, 5.0, 6.0, 22050, time.monotonic() + 10, True)
    with decode.open_audio(Unseekable(data)) as container:
        streaming = decode.read_window(container, 5.0, 6.0, 22050, time.monotonic() + 10, False)
    assert len(streaming) == len(seeking) == 6 * 22050
    assert np.abs(streaming - seeking).max() < 1e-3
