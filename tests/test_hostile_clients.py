"""Hostile clients against a real functions-framework server on 127.0.0.1: slow senders, deep JSON,
forms of many parts, huge headers, no Accept header. Each gets its documented answer, and a normal
request is still answered meanwhile."""
import contextlib
import json
import socket
import struct
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest

import function_server
import hostile_http

SLOW_CLIENTS = 16
ANSWER_WITHIN_S = 2.0  # the one timing assertion: generous for a normal request that needs no audio work


@pytest.fixture(scope="module")
def server(model_path, tmp_path_factory):
    with function_server.start(tmp_path_factory.mktemp("clients"), GENRE_MODEL=str(model_path)) as running:
        yield running


def post(server, body: bytes, content_type: str, query: str = "", **headers) -> tuple[int, str, bytes]:
    """(status, content type, body) of a POST."""
    request = urllib.request.Request(server.url + query, data=body, headers={"Content-Type": content_type, **headers})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def address(server) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(server.url)
    return parts.hostname, parts.port


def error_code(answer: tuple[int, str, bytes]) -> tuple[int, str]:
    status, content_type, body = answer
    assert content_type == "application/json", body[:200]
    return status, json.loads(body)["error"]["code"]


def test_slow_clients_do_not_starve_the_server(server):
    """16 clients sending a request one byte a second: each holds one of gunicorn's threads while it
    sends; a normal request must still be answered."""
    request = b"POST /?duration=3 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: audio/wav\r\nContent-Length: 100\r\n\r\n"
    with contextlib.ExitStack() as stack:
        slow = [stack.enter_context(socket.create_connection(address(server)))
                for _ in range(SLOW_CLIENTS)]
        for i in range(3):  # by now every slow client has a thread waiting for the rest of its request
            for sock in slow:
                sock.send(request[i:i + 1])
            time.sleep(1)
        began = time.monotonic()
        normal = urllib.request.Request(server.url, headers={"Accept": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(normal, timeout=ANSWER_WITHIN_S + 3)
        took = time.monotonic() - began
        assert answer.value.code == 400 and json.loads(answer.value.read())["error"]["code"] == "missing_url"
        assert took < ANSWER_WITHIN_S, f"a normal request took {took:.1f} s beside {SLOW_CLIENTS} slow clients"


def test_json_nested_deeper_than_the_decoder_goes_is_bad_json(server):
    body = b'{"url": ' + b"[" * 2000 + b"]" * 2000 + b"}"  # a 4 KB body
    assert error_code(post(server, body, "application/json")) == (400, "bad_json")


def test_a_form_with_too_many_parts_is_bad_form_not_too_large(server):
    boundary = "b0undary"
    parts = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="x{i}"\r\n\r\n1\r\n' for i in range(1001))
    body = (parts + f"--{boundary}--\r\n").encode()
    answer = post(server, body, f"multipart/form-data; boundary={boundary}")
    assert error_code(answer) == (400, "bad_form")
    assert "1000 parts" in json.loads(answer[2])["error"]["message"]


def test_a_get_without_accept_gets_the_page(server):
    with socket.create_connection(address(server), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head = answer.split(b"\r\n\r\n", 1)[0].decode()
    assert head.startswith("HTTP/1.1 200") and "Content-Type: text/html" in head, head


def test_requests_the_server_cannot_parse_get_json_errors(server):
    """gunicorn answers these before the function runs; main.py makes its answers JSON, not HTML."""
    assert error_code(post(server, b"{}", "application/json", **{"X-Big": "a" * 100_000})) == (431, "headers_too_large")
    with socket.create_connection(address(server), timeout=10) as sock:
        sock.sendall(b"NOT A REQUEST\r\n\r\n")
        head, _, body = sock.makefile("rb").read().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ") and b"Content-Type: application/json" in head
    assert json.loads(body)["error"]["code"] == "bad_request"
    assert error_code(post(server, b"{}", "application/json")) == (400, "missing_url")  # and the server is fine


@pytest.mark.parametrize("content_type, status, code", [("audio/wav", 413, "upload_too_large"),
                                                         ("text/plain", 415, "unsupported_media_type")])
def test_a_refused_200_mb_body_is_not_read(server, content_type, status, code):
    """functions-framework reads what the function left unread into memory after answering; a refused
    200-MB body must not cost 200 MB."""
    peak_before = server.status("VmHWM")
    with socket.create_connection(address(server), timeout=30) as sock:
        sock.sendall(f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
                     f"Content-Length: 200000000\r\n\r\n".encode())
        with contextlib.suppress(OSError):  # the server may close before it all came
            for _ in range(200):
                sock.sendall(bytes(10**6))
        answer = b""
        while b"}}" not in answer and (chunk := sock.recv(65536)):
            answer += chunk
    assert answer.startswith(f"HTTP/1.1 {status}".encode()) and code.encode() in answer, answer[:300]
    assert server.status("VmHWM") - peak_before < 64 * 1024, "the refused body was read into memory"


@pytest.fixture(scope="module")
def capped(model_path, tmp_path_factory):
    """A server whose uploads are capped at 0.5 MB."""
    with function_server.start(tmp_path_factory.mktemp("capped"), GENRE_MODEL=str(model_path),
                               GENRE_MAX_UPLOAD_MB="0.5") as running:
        yield running


def chunked(body: bytes):
    """The body as an iterable: urllib sends it with Transfer-Encoding: chunked, no Content-Length."""
    return (body[i:i + 65536] for i in range(0, len(body), 65536))


def multipart(data: bytes) -> tuple[bytes, str]:
    boundary = "b0undary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
            f"Content-Type: audio/wav\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("form", [False, True], ids=["raw", "multipart"])
def test_a_chunked_upload_over_the_cap_is_413(capped, form):
    """No Content-Length to refuse it by: the function stops reading past the cap (werkzeug, past the
    cap and the form's 64 KiB of room)."""
    body, content_type = multipart(bytes(700_000)) if form else (bytes(700_000), "audio/wav")
    assert error_code(post(capped, chunked(body), content_type)) == (413, "upload_too_large")
    status, _, _ = post(capped, b"", "application/json", Accept="application/json")
    assert status == 400  # and the server goes on


def float_wav(samples: np.ndarray, rate: int = 22050) -> bytes:
    """A mono 32-bit float WAV (format 3, IEEE float) of the samples, as they are."""
    data = samples.astype("<f4").tobytes()
    return (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 3, 1, rate, rate * 4, 4, 32) + b"data" + struct.pack("<I", len(data)) + data)


def sine(seconds: float, rate: int = 22050) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, 3e38, 1e6], ids=["NaN", "inf", "-inf", "3e38", "1e6"])
def test_samples_that_are_not_numbers_or_absurdly_loud_are_not_audio(server, value):
    """One such sample in 6 s of a float WAV: refused, and no answer ever holds NaN or Infinity."""
    samples = sine(6)
    samples[1000] = value
    status, content_type, body = post(server, float_wav(samples), "audio/wav", Accept="application/json")
    assert (status, json.loads(body)["error"]["code"]) == (422, "not_audio"), body[:300]
    assert b"NaN" not in body and b"Infinity" not in body


def test_a_float_wav_a_little_over_full_scale_is_audio(server):
    samples = sine(6) * 5  # peaks of 1.5: float masters go over full scale
    status, _, body = post(server, float_wav(samples), "audio/wav", Accept="application/json")
    assert status == 200 and json.loads(body)["segments"] == 2, body[:300]


def exchange(server, request: bytes) -> tuple[int, str]:
    """(status, error code) of a raw request; the client stops sending after it (half-close)."""
    with socket.create_connection(address(server), timeout=30) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        head, _, body = sock.makefile("rb").read().partition(b"\r\n\r\n")
    assert b"Content-Type: application/json" in head, head
    return int(head.split()[1]), json.loads(body)["error"]["code"]


def log_lines(server) -> list[dict]:
    return [json.loads(line) for line in server.stdout.read_text().splitlines()]


BODY_TYPES = ["application/json", "audio/wav", "application/x-www-form-urlencoded", "multipart/form-data; boundary=b"]
BAD_CHUNKS = {"size zz": b"zz\r\n{}\r\n0\r\n\r\n", "size -2": b"-2\r\n{}\r\n0\r\n\r\n",
              "data longer than its size": b'2\r\n{"url": "x"}\r\n0\r\n\r\n'}


@pytest.mark.parametrize("content_type", BODY_TYPES)
@pytest.mark.parametrize("chunks", BAD_CHUNKS.values(), ids=BAD_CHUNKS)
def test_a_malformed_chunked_body_is_a_bad_request(server, content_type, chunks):
    head = f"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert exchange(server, head.encode() + chunks) == (400, "bad_request")  # was 500 internal
    assert log_lines(server)[-1]["severity"] == "WARNING"


@pytest.mark.parametrize("content_type, sent", [
    ("application/json", b'{"url": "http'), ("audio/wav", hostile_http.huge_wav_header(40_000) + bytes(20_000)),
    ("application/x-www-form-urlencoded", b"url=http"), ("multipart/form-data; boundary=b", b"--b\r\n"),
])
def test_a_body_shorter_than_its_content_length_is_a_bad_request(server, content_type, sent):
    """The client half-closed before the end: its request is not classified as if complete (was, for audio)."""
    head = f"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {len(sent) * 2}\r\n\r\n"
    assert exchange(server, head.encode() + sent) == (400, "bad_request")


def test_a_client_that_leaves_mid_body_is_logged_as_its_fault(server):
    """It gets no answer; the log says 400, not a 500 with a stack trace (was NoMoreData)."""
    before = len(log_lines(server))
    for content_type in BODY_TYPES:
        with socket.create_connection(address(server), timeout=30) as sock:
            sock.sendall(f"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
                         f"Content-Length: 1000\r\n\r\nRIFF".encode())
    deadline = time.monotonic() + 10
    while len(log_lines(server)) < before + len(BODY_TYPES) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [line["status"] for line in log_lines(server)[before:]] == [400] * len(BODY_TYPES)


LINK_BODY = 2**16  # main.MAX_LINK_BODY_BYTES


@pytest.mark.parametrize("content_type, body", [
    ("application/json", b'{"url": "http://127.0.0.1:9/a.flac", "x": "' + b"a" * LINK_BODY + b'"}'),
    ("application/x-www-form-urlencoded", b"url=http%3A%2F%2F127.0.0.1%3A9%2Fa.flac&x=" + b"a" * LINK_BODY),
])
@pytest.mark.parametrize("sent", ["with its length", "chunked"])
def test_a_link_request_over_64_kb_is_413(server, content_type, body, sent):
    data = chunked(body) if sent == "chunked" else body
    assert error_code(post(server, data, content_type)) == (413, "body_too_large")


@pytest.mark.parametrize("content_type, body", [
    ("application/json", b'{"url": "http://127.0.0.1:9/a.flac"}'.ljust(LINK_BODY)),
    ("application/x-www-form-urlencoded", b"url=http%3A%2F%2F127.0.0.1%3A9%2Fa.flac&x=".ljust(LINK_BODY, b"a")),
])
def test_a_link_request_of_64_kb_is_read(capped, content_type, body):
    """At the cap: read, and refused only for its link (loopback, in a server without the test switch)."""
    assert error_code(post(capped, chunked(body), content_type)) == (400, "url_not_allowed")


def test_a_100_mb_chunked_json_body_costs_no_memory(server):
    """It was read whole (worker peak +700 MiB); now it is refused once 64 KB are read."""
    peak_before = server.status("VmHWM")
    with socket.create_connection(address(server), timeout=30) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        with contextlib.suppress(OSError):  # the server closes before it all came
            for _ in range(100):
                sock.sendall(b"100000\r\n" + b" " * 2**20 + b"\r\n")
        answer = b""
        while b"}}" not in answer and (chunk := sock.recv(65536)):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413") and b"body_too_large" in answer, answer[:300]
    assert server.status("VmHWM") - peak_before < 16 * 1024, "the refused body was read into memory"


def test_a_request_line_over_8190_bytes_is_414_at_once(server):
    """functions-framework sets no limit (limit_request_line 0): an 8-MB line cost 4.4 s of CPU, and the
    worker's memory grew for good; a line without its end was waited for."""
    rss_before = server.status("VmRSS")
    with socket.create_connection(address(server), timeout=10) as sock:
        with contextlib.suppress(OSError):  # the server may answer and close before it all went
            sock.sendall(b"GET /?url=" + b"a" * 8 * 2**20)  # and no end of line
        answer = b""
        while b"}}" not in answer and (chunk := sock.recv(65536)):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 414 ") and b"Content-Type: application/json" in head, head
    assert json.loads(body)["error"]["code"] == "request_line_too_long"
    assert server.status("VmRSS") - rss_before < 16 * 1024


def test_a_request_line_of_8000_bytes_is_read(server):
    request = urllib.request.Request(server.url + "?url=" + "a" * 7980, headers={"Accept": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=30)
    assert answer.value.code == 400 and json.loads(answer.value.read())["error"]["code"] == "invalid_url"


@pytest.mark.parametrize("content_type, status, code", [("audio/wav", 413, "upload_too_large"),
                                                         ("application/json", 413, "body_too_large"),
                                                         ("text/plain", 415, "unsupported_media_type")])
def test_a_python_client_sending_50_mb_reads_its_refusal(server, content_type, status, code):
    """urllib sends the whole body before it reads: the server drains it (bounded) after answering,
    so it sees the answer, not BrokenPipeError; the body never reaches memory."""
    peak_before = server.status("VmHWM")
    assert error_code(post(server, bytes(50 * 2**20), content_type)) == (status, code)
    assert server.status("VmHWM") - peak_before < 16 * 1024, "the refused body was read into memory"
