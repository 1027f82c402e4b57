"""Shared fixtures: the GTZAN clips in ../shared, read-only."""
import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import av
import numpy as np
import pytest

from inference import config

import local_http

GTZAN = Path(__file__).resolve().parents[2] / "shared" / "data" / "gtzan"


@pytest.fixture(scope="session")
def gtzan() -> Path:
    if not (GTZAN / "README.md").exists():
        pytest.fail(f"the GTZAN clips are missing: expected them in {GTZAN}")
    return GTZAN

ROOT = Path(__file__).resolve().parents[1]
CLIP = "rock/rock.00000.flac"  # 30 s, 22050 Hz


@pytest.fixture(scope="session")
def media(gtzan, tmp_path_factory) -> Path:
    """A folder for the local web server: a real clip, a page embedding it, and bad sources."""
    folder = tmp_path_factory.mktemp("media")
    shutil.copy(gtzan / CLIP, folder / "song.flac")
    (folder / "page.html").write_text('<!doctype html><html><head><title>A rock song</title></head>'
                                      '<body><h1>Listen</h1><audio controls src="song.flac"></audio></body></html>')
    (folder / "empty.html").write_text("<!doctype html><html><body><p>no media here</p></body></html>")
    (folder / "noise.mp3").write_bytes(np.random.default_rng(0).bytes(50_000))
    return folder


@pytest.fixture(scope="session")
def served(media):
    """The media folder on http://127.0.0.1:PORT with byte ranges."""
    with local_http.Server(media) as url:
        yield url


@pytest.fixture(scope="session")
def model_path() -> Path:
    path = Path(os.environ.get("GENRE_MODEL", config.DEFAULT_MODEL))
    if not path.exists():
        pytest.fail(f"no model at {path}: train one with `python -m export train genre_musicnn` (see README)")
    return path


@pytest.fixture
def app():
    """The function as functions-framework loads it (this (re)imports main.py as `main`)."""
    import functions_framework
    return functions_framework.create_app(target="classify", source=str(ROOT / "main.py"))


@pytest.fixture
def settings(app, model_path, monkeypatch, tmp_path):
    """main.py's settings for a test: the model, loopback allowed, and a private temp folder."""
    import main
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    value = dataclasses.replace(main.SETTINGS, model_path=model_path, allow_loopback_links=True)
    monkeypatch.setattr(main, "SETTINGS", value)
    yield value
    assert not list(temp.iterdir()), "a request left files in the temp folder"


@pytest.fixture
def reconfigure(settings, monkeypatch):
    """reconfigure(field=value, ...): main.py's settings for the rest of the test, changed."""
    def change(**fields):
        import main
        monkeypatch.setattr(main, "SETTINGS", dataclasses.replace(settings, **fields))
    return change


@pytest.fixture
def client(app, settings):
    return app.test_client()


def encode(source, target, codec: str, fmt: str, seconds: float = 30, **options: str):
    """`seconds` of `source` re-encoded with PyAV (mono, 22050 Hz)."""
    with av.open(str(source)) as inp, av.open(str(target), "w", format=fmt, options=options) as out:
        stream = out.add_stream(codec, rate=22050, layout="mono")
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=22050)
        for frame in inp.decode(audio=0):
            if frame.time > seconds:
                break
            for chunk in resampler.resample(frame):
                out.mux(stream.encode(chunk))
        out.mux(stream.encode(None))
