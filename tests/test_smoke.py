"""tools/smoke.py, CI's check after a deploy, against a real local functions-framework server and
stubs that answer something else."""
import http.server
import json
import subprocess
import sys

import pytest

import function_server
import hostile_http
import local_http
from conftest import ROOT


@pytest.fixture(scope="module")
def server(model_path, tmp_path_factory):
    with function_server.start(tmp_path_factory.mktemp("smoke"), GENRE_MODEL=str(model_path)) as running:
        yield running


def smoke(*args, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.smoke", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={"PATH": "/usr/bin:/bin", **env})


def test_a_well_formed_answer_from_the_expected_model_passes(server, model_path):
    done = smoke(server.url, "--model", str(model_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"ok: {server.url} answered ") and done.stderr == ""


def test_another_model_than_expected_fails(server, model_path):
    other = ROOT / "models" / ("genre_cnn.onnx" if model_path.name != "genre_cnn.onnx" else "genre_musicnn.onnx")
    done = smoke(server.url, "--model", str(other))
    assert done.returncode == 1 and "the model answering is" in done.stderr, done.stderr


class Impostor(http.server.BaseHTTPRequestHandler):
    """A 200 in the function's shape but wrong: two labels whose scores do not sum to 1; it notes
    the Authorization header it got."""
    seen: list = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append(self.headers.get("Authorization"))
        body = json.dumps(hostile_http.answer(genre="a", scores={"a": 0.9, "b": 0.9}, segments=1,
                                              timeline=[{"start": 0, "genre": "a", "confidence": 0.9}],
                                              model={"name": "x", "version": "1", "sha256": "0" * 64})).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_an_answer_of_the_wrong_shape_fails_and_the_token_is_sent(model_path):
    with local_http.serving(Impostor) as url:
        done = smoke(f"{url}/", "--model", str(model_path), GENRE_TOKEN="t0k3n")
    assert done.returncode == 1 and Impostor.seen == ["Bearer t0k3n"]
    assert "the model answering is" in done.stderr and "not the model's" in done.stderr


def test_no_function_at_the_url_fails_with_the_cause(model_path):
    with local_http.serving(http.server.BaseHTTPRequestHandler) as url:  # answers 501 to a POST
        done = smoke(f"{url}/", "--model", str(model_path))
    assert done.returncode == 1 and "unreachable" in done.stderr, done.stderr


def test_a_model_that_cannot_be_read_is_a_bad_argument(tmp_path):
    done = smoke("http://127.0.0.1:9/", "--model", str(tmp_path / "none.onnx"))
    assert done.returncode == 2 and "could not be loaded" in done.stderr


def test_an_answer_whose_error_is_a_string_fails_without_a_traceback(model_path):
    """A 200 holding "error": "oops" (was AttributeError)."""
    with hostile_http.EndpointServer() as endpoint:
        done = smoke(f"{endpoint.url}/oops", "--model", str(model_path))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "not the function's answer: it holds ['error']" in done.stderr


def test_a_dead_port_says_each_retry(model_path):
    """Connection refused is retried (an instance starting), and said at once, not after a silent half-minute."""
    done = smoke("http://127.0.0.1:9/", "--model", str(model_path), "--retries", "1", "--timeout", "5")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("retry 1 of 1 in 0.0 s: no answer from http://127.0.0.1:9/: ")
    assert "Connection refused" in done.stderr
