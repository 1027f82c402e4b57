"""The function as users and CI run it: a real `functions-framework --target classify` process on
127.0.0.1, called with curl."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from conftest import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(model_path, tmp_path_factory):
    """(base URL, its temp folder) of a functions-framework process with the test switch set."""
    assert shutil.which("curl"), "curl is needed to call the server"
    temp = tmp_path_factory.mktemp("server-tmp")
    port = free_port()
    env = dict(os.environ, GENRE_MODEL=str(model_path), GENRE_TESTING_ALLOW_LOOPBACK="1", TMPDIR=str(temp),
               GENRE_MAX_UPLOAD_MB="2")
    bin_dir = os.path.dirname(sys.executable)
    process = subprocess.Popen([os.path.join(bin_dir, "functions-framework"), "--target", "classify",
                                "--source", str(ROOT / "main.py"), "--host", "127.0.0.1", "--port", str(port)],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(150):
        if process.poll() is not None:
            pytest.fail(f"functions-framework exited: {process.stdout.read()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield url, temp
    process.terminate()
    process.wait(timeout=10)


def curl(*args) -> tuple[int, dict]:
    """(HTTP status, JSON body) of a curl call."""
    out = subprocess.run(["curl", "-sS", "--max-time", "60", "-w", "\n%{http_code}", *args],
                         capture_output=True, text=True, check=True).stdout
    body, status = out.rsplit("\n", 1)
    return int(status), json.loads(body)


@pytest.fixture
def no_leftovers(server):
    yield
    assert not list(server[1].iterdir()), "the server left files in its temp folder"


def test_link_by_get_and_post(server, served, no_leftovers):
    url, _ = server
    status, body = curl("-G", url, "--data-urlencode", f"url={served}/song.flac")
    assert status == 200 and body["segments"] == 10 and body["source"]["kind"] == "link", body
    status, body = curl("-X", "POST", url, "-H", "Content-Type: application/json",
                        "-d", json.dumps({"url": f"{served}/page.html", "start": 10, "duration": 6}))
    assert status == 200 and body["window"] == {"start": 10.0, "duration": 6.0} and body["segments"] == 2, body
    assert body["source"]["title"]


def test_uploads(server, media, no_leftovers):
    url, _ = server
    clip = str(media / "song.flac")
    status, raw = curl(url + "?duration=9", "-H", "Content-Type: audio/flac", "--data-binary", f"@{clip}")
    assert status == 200 and raw["segments"] == 3, raw
    status, form = curl(url, "-F", f"file=@{clip}", "-F", "duration=9")
    assert status == 200 and form["source"]["title"] == "song.flac", form
    assert form["scores"] == pytest.approx(raw["scores"], abs=1e-6)


@pytest.mark.parametrize("args, status, code", [
    ([], 400, "missing_url"),
    (["-X", "POST"], 400, "missing_url"),
    (["-H", "Content-Type: application/json", "-d", "{nope"], 400, "bad_json"),
    (["-G", "--data-urlencode", "url=file:///etc/passwd"], 400, "invalid_url"),
    (["-G", "--data-urlencode", "url=ftp://127.0.0.1/a.mp3"], 400, "invalid_url"),
    (["-G", "--data-urlencode", "url=http://169.254.169.254/computeMetadata/v1/"], 400, "url_not_allowed"),
    (["-H", "Content-Type: audio/mpeg", "--data-binary", "not audio at all"], 422, "not_audio"),
    (["-H", "Content-Type: application/octet-stream", "--data-binary", ""], 400, "empty_upload"),
    (["-H", "Content-Type: text/csv", "-d", "a,b"], 415, "unsupported_media_type"),
    (["-X", "PATCH"], 405, "method_not_allowed"),
])
def test_bad_input(server, args, status, code, no_leftovers):
    got, body = curl(server[0], *args)
    assert (got, body["error"]["code"]) == (status, code), body


def test_oversize_upload(server, tmp_path, no_leftovers):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * 2**20))
    for args in (["-H", "Content-Type: audio/wav", "--data-binary", f"@{big}"], ["-F", f"file=@{big}"],
                 ["-H", "Content-Type: audio/wav", "-H", "Transfer-Encoding: chunked", "--data-binary", f"@{big}"]):
        status, body = curl(server[0], *args)
        assert (status, body["error"]["code"]) == (413, "upload_too_large"), args


def test_preflight(server):
    out = subprocess.run(["curl", "-sS", "-i", "-X", "OPTIONS", server[0], "-H", "Origin: https://a.example",
                          "-H", "Access-Control-Request-Method: POST"], capture_output=True, text=True).stdout
    assert out.startswith("HTTP/1.1 204") and "Access-Control-Allow-Origin: *" in out


def test_import_main_loads_no_training_stack():
    code = "import sys, main; bad = {m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'librosa', 'numba', 'sklearn'}; print(sorted(bad))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cli_prints_the_same_json(model_path, media, served):
    env = dict(os.environ, GENRE_MODEL=str(model_path), GENRE_TESTING_ALLOW_LOOPBACK="1")
    run = lambda *args: subprocess.run([sys.executable, "-m", "inference", *args], cwd=ROOT, env=env,
                                       capture_output=True, text=True, timeout=120)
    by_file = run(str(media / "song.flac"), "--duration", "6")
    by_link = run(f"{served}/song.flac", "--duration", "6")
    for done in (by_file, by_link):
        assert done.returncode == 0, done.stderr
    file_answer, link_answer = json.loads(by_file.stdout), json.loads(by_link.stdout)
    assert file_answer["segments"] == 2 and file_answer["scores"] == pytest.approx(link_answer["scores"], abs=1e-6)
    missing = run(str(media / "nothing.flac"))
    assert missing.returncode == 1 and json.loads(missing.stdout)["error"]["code"] == "unreadable_file"
