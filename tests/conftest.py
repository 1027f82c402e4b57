"""Shared fixtures: the GTZAN clips in ../shared, read-only; and the network fence (loopback only)."""
import dataclasses
import json
import os
import shutil
import struct
import sys
import tempfile
from pathlib import Path

import av
import numpy as np
import pytest

from inference import config

import local_http

FENCE = Path(__file__).resolve().parent / "loopback_only"
sys.path.insert(0, str(FENCE))
import loopback_only  # noqa: E402 (its folder is not on the path before)

GTZAN = Path(__file__).resolve().parents[2] / "shared" / "data" / "gtzan"
ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    """The network fence (tests/loopback_only/), here and in every Python process a test starts."""
    handle, log = tempfile.mkstemp(prefix="loopback-only-", suffix=".log")
    os.close(handle)
    os.environ[loopback_only.LOG] = log
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(FENCE), str(ROOT), os.environ.get("PYTHONPATH")]))
    loopback_only.install()


def pytest_unconfigure(config):
    Path(os.environ.pop(loopback_only.LOG)).unlink(missing_ok=True)


class Fence:
    """The attempts to reach beyond loopback logged since the test began."""

    def __init__(self):
        self.log = Path(os.environ[loopback_only.LOG])
        self.seen = self.log.stat().st_size

    def taken(self) -> list[str]:
        """The attempts not taken yet, which then no longer fail the test."""
        with open(self.log, "rb") as log:
            log.seek(self.seen)
            new = log.read()
        self.seen += len(new)
        return new.decode().splitlines()


@pytest.fixture(autouse=True)
def fence():
    """Fails the test during which any process of the tests tried to reach beyond loopback (a test
    that expects it takes them: fence.taken())."""
    watch = Fence()
    yield watch
    attempts = watch.taken()
    if attempts:
        pytest.fail("a connection beyond loopback was attempted (tests/loopback_only/):\n" + "\n".join(attempts))


@pytest.fixture(scope="session")
def gtzan() -> Path:
    if not (GTZAN / "README.md").exists():
        pytest.fail(f"the GTZAN clips are missing: expected them in {GTZAN}")
    return GTZAN

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
        pytest.fail(f"no model at {path}: train one with `python -m export train genre_musicnn --data "
                    f"../shared/data/gtzan --out {config.DEFAULT_MODEL}` (docs/training.md)")
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



def wav_of_format(tag: int, bits: int) -> bytes:
    """A mono WAV of 4.5 s of zeros whose header gives this format tag and bits per sample."""
    pcm = bytes(200_000)
    fmt = struct.pack("<IHHIIHH", 16, tag, 1, 22050, 44100, 2, bits)
    return b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVEfmt " + fmt + b"data" + struct.pack("<I", len(pcm)) + pcm


MANY_OBJECTS = 10_000
TRAIN_LABELS, TRAIN_PER_LABEL = ("classical", "hiphop", "metal"), 6
BUCKET_CLIPS = ("rock/rock.00000.flac", "rock/rock.00001.flac", "jazz/jazz.00000.flac", "jazz/jazz.00001.flac",
                "classical/classical.00000.flac", "classical/classical.00001.flac")


@pytest.fixture(scope="session")
def gcs(gtzan, tmp_path_factory):
    """A real Cloud Storage emulator on 127.0.0.1 (tests/gcs.py) holding the buckets `library` (tracks/
    LABEL/*.flac: GTZAN clips, and list.txt naming two; train/LABEL/: TRAIN_PER_LABEL clips of each of
    TRAIN_LABELS, and GTZAN's artists.csv; bad/: random bytes named .mp3, an empty .flac;
    many/: MANY_OBJECTS tiny objects), `private` (a clip, in no allowed bucket) and `results` (empty)."""
    import gcs as emulator
    root = tmp_path_factory.mktemp("buckets")
    tracks = root / "library" / "tracks"
    for clip in BUCKET_CLIPS:
        (tracks / clip).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(gtzan / clip, tracks / clip)
    (tracks / "list.txt").write_text(f"# two of them\n{BUCKET_CLIPS[0]}\ngs://library/tracks/{BUCKET_CLIPS[2]}\n")
    for label in TRAIN_LABELS:
        (root / "library" / "train" / label).mkdir(parents=True)
        for clip in sorted((gtzan / label).glob("*.flac"))[:TRAIN_PER_LABEL]:
            shutil.copy(clip, root / "library" / "train" / label / clip.name)
    shutil.copy(gtzan / "artists.csv", root / "library" / "train" / "artists.csv")
    (root / "library" / "bad").mkdir()
    (root / "library" / "bad" / "noise.mp3").write_bytes(np.random.default_rng(0).bytes(50_000))
    (root / "library" / "bad" / "empty.flac").write_bytes(b"")
    many = root / "library" / "many"
    many.mkdir()
    for i in range(MANY_OBJECTS):
        (many / f"{i:05d}.mp3").write_bytes(b"x")
    (root / "private").mkdir()
    shutil.copy(gtzan / CLIP, root / "private" / "song.flac")
    (root / "results").mkdir()
    (root / "results" / "README").write_text("results land here")  # an empty folder makes no bucket
    with emulator.start(root) as running:
        yield running


@pytest.fixture(scope="module")
def bucket_function(gcs, model_path, tmp_path_factory):
    """The function in its own process, reading the emulator's bucket `library`."""
    import function_server
    with function_server.start(tmp_path_factory.mktemp("function"), GENRE_MODEL=str(model_path),
                               GENRE_ALLOWED_BUCKETS="library", **gcs.env) as server:
        yield server


def service_account_key(folder: Path, token_url: str, email: str) -> Path:
    """A service account's key file (a new RSA key) whose token_uri is a local token endpoint
    (local_http.TokenEndpoint), as GOOGLE_APPLICATION_CREDENTIALS names one."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    path = folder / "key.json"
    path.write_text(json.dumps({"type": "service_account", "project_id": "p", "private_key_id": "k",
                                "private_key": key, "client_email": email, "client_id": "1",
                                "token_uri": f"{token_url}/token"}))
    return path
