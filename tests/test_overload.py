"""More uploads at once than the server has CPUs, against a real functions-framework server: a
request that cannot get a CPU soon is told to come back (503 busy, Retry-After), never timed out for
its wait; the batch client comes back and finishes every item."""
import dataclasses
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from inference import config, model, pipeline

import function_server
import hostile_http
import local_http
from conftest import ROOT

AT_ONCE = 16


def upload(url: str, data: bytes) -> tuple[int, str | None, str | None]:
    """(status, error code, Retry-After) of one raw upload."""
    request = urllib.request.Request(url + "?duration=6", data=data, headers={"Content-Type": "audio/flac"})
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, None, answer.headers["Retry-After"]
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())["error"]["code"], error.headers["Retry-After"]


def all_at_once(url: str, data: bytes, count: int = AT_ONCE) -> Counter:
    with ThreadPoolExecutor(count) as pool:
        return Counter(pool.map(lambda _: upload(url, data), range(count)))


@pytest.fixture(scope="module")
def clip(media) -> bytes:
    return (media / "song.flac").read_bytes()


def test_uploads_that_cannot_get_a_cpu_soon_are_told_to_retry(model_path, tmp_path, clip):
    with function_server.start(tmp_path, GENRE_MODEL=str(model_path), GENRE_MAX_QUEUE_S="0.2") as server:
        answers = all_at_once(server.url, clip)
    assert set(answers) <= {(200, None, None), (503, "busy", "5")}, answers
    assert answers[(200, None, None)] >= 2 and answers[(503, "busy", "5")] >= 1, answers


def test_the_time_budget_counts_the_work_not_the_wait(model_path, clip):
    """A 1-s budget and every CPU taken for 1.5 s: the upload waits, then decodes in far less (was 504
    timeout). In-process, so the wait passes the budget every time (a server loaded with uploads did
    only when its queue happened to pass 1 s)."""
    settings = dataclasses.replace(config.load(), model_path=model_path, time_budget=1.0, max_queue_s=None)
    model.get(model_path)  # loaded before: the budget is the decoding's
    taken = 0
    while pipeline._cpu_slots.acquire(blocking=False):
        taken += 1
    threading.Timer(1.5, lambda: [pipeline._cpu_slots.release() for _ in range(taken)]).start()
    assert pipeline.upload(clip, settings, duration=6)["segments"] == 2


def link(url: str) -> tuple[int, str | None, str | None]:
    """(status, error code, Retry-After) of one link request."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, None, answer.headers["Retry-After"]
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())["error"]["code"], error.headers["Retry-After"]


def test_links_beyond_the_fetch_workers_are_told_to_retry(model_path, tmp_path, media):
    """17 links to a source that stalls: 16 fetch workers wait out the 3-s budget (504), the 17th is
    busy after its 0.5 s of waiting for one (was queued, and 504 too)."""
    with local_http.Server(media) as source, \
            function_server.start(tmp_path, GENRE_MODEL=str(model_path), GENRE_DEV_ALLOW_LOOPBACK_LINKS="1",
                                  GENRE_TIME_BUDGET_S="3", GENRE_MAX_QUEUE_S="0.5") as server:
        url = f"{server.url}?url={source}/stall.flac"
        with ThreadPoolExecutor(17) as pool:
            answers = Counter(pool.map(lambda _: link(url), range(17)))
    assert answers == {(504, "timeout", None): 16, (503, "busy", "5"): 1}, answers


def test_batch_at_32_in_flight_finishes_every_item(model_path, tmp_path, clip):
    """The batch client retries a busy answer after its Retry-After."""
    (tmp_path / "server").mkdir()
    items = [tmp_path / f"song{i}.flac" for i in range(32)]
    for item in items:
        item.write_bytes(clip)
    with function_server.start(tmp_path / "server", GENRE_MODEL=str(model_path), GENRE_MAX_QUEUE_S="1") as server:
        done = subprocess.run([sys.executable, "-m", "inference", "batch", *map(str, items), "--endpoint", server.url,
                               "--jobs", "32", "--duration", "6"], cwd=ROOT, capture_output=True, text=True,
                              timeout=600)
        busy = sum('"busy"' in line for line in server.stdout.read_text().splitlines())
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(rows) == 32 and all("genre" in row for row in rows), done.stdout[:1000]
    assert busy >= 1, "no answer was busy: the test did not overload the server"


def requests_logged(server) -> Counter:
    """(status, error) of each request line the server logged."""
    lines = [json.loads(line) for line in server.stdout.read_text().splitlines() if line.startswith("{")]
    return Counter((line["status"], line["error"]) for line in lines if "httpRequest" in line)


def send_and_leave(port: int, request: bytes, stay_s: float = 0.0):
    """Send a whole request, stay stay_s, and hang up without reading the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        time.sleep(stay_s)


def test_uploads_whose_clients_left_are_abandoned(model_path, tmp_path, clip):
    """30 clients send a whole upload and hang up: none is decoded or inferred, each is logged 499
    client_gone (was: all 30 decoded, inferred and logged 200)."""
    head = (f"POST /?duration=6 HTTP/1.1\r\nHost: x\r\nContent-Type: audio/flac\r\n"
            f"Content-Length: {len(clip)}\r\n\r\n").encode()
    with function_server.start(tmp_path, GENRE_MODEL=str(model_path), GENRE_MAX_QUEUE_S="60") as server:
        port = int(server.url.rsplit(":", 1)[1].strip("/"))
        with ThreadPoolExecutor(30) as pool:
            list(pool.map(lambda _: send_and_leave(port, head + clip), range(30)))
        assert upload(server.url, clip)[0] == 200  # served after them: they were all done with
        logged, stderr = requests_logged(server), server.stderr.read_text()
    assert logged == {(499, "client_gone"): 30, (200, None): 1}, logged
    assert stderr == "", stderr[:2000]  # one line each, nothing else


def test_links_whose_clients_left_free_their_fetch_workers(model_path, tmp_path, media):
    """40 links to a source that stalls, their clients gone after 0.5 s: the fetches are abandoned, each
    logged, and a link sent next is answered 200 (was: every fetch worker held for the 30-s budget, the
    next link 503 busy)."""
    with local_http.Server(media) as source, \
            function_server.start(tmp_path, GENRE_MODEL=str(model_path), GENRE_DEV_ALLOW_LOOPBACK_LINKS="1",
                                  GENRE_MAX_QUEUE_S="5") as server:
        port = int(server.url.rsplit(":", 1)[1].strip("/"))
        request = f"GET /?url={source}/stall.flac HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n\r\n".encode()
        with ThreadPoolExecutor(40) as pool:
            list(pool.map(lambda _: send_and_leave(port, request, 0.5), range(40)))
        deadline = time.monotonic() + 20  # within the 30-s budget that held every worker
        while sum(requests_logged(server).values()) < 40 and time.monotonic() < deadline:
            time.sleep(0.2)
        answer = link(f"{server.url}?url={source}/song.flac&duration=3")
        time.sleep(1)
        logged, stderr = requests_logged(server), server.stderr.read_text()
    assert answer == (200, None, None) and stderr == "", stderr[:2000]
    assert logged == {(499, "client_gone"): 40, (200, None): 1}, logged


def test_links_whose_clients_left_hang_up_on_their_pages(model_path, tmp_path, media):
    """16 links to pages that drip, their clients gone after 1 s: each page asked for is hung up on then, its
    fetch worker free (was: read on until the 30-s budget; before that, for as long as the page dripped)."""
    with hostile_http.Server(media) as pages, \
            function_server.start(tmp_path, GENRE_MODEL=str(model_path), GENRE_DEV_ALLOW_LOOPBACK_LINKS="1",
                                  GENRE_MAX_QUEUE_S="5") as server:
        port, song = int(server.url.rsplit(":", 1)[1].strip("/")), f"{server.url}?url={pages.url}/song.flac&duration=3"
        assert link(song) == (200, None, None)  # yt-dlp imported: the pages are asked for before the clients leave
        requests = [f"GET /?url={urllib.parse.quote(f'{pages.url}/drip.html?i={i}', safe='')} HTTP/1.1\r\n"
                    "Host: x\r\nAccept: application/json\r\n\r\n".encode() for i in range(16)]
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda request: send_and_leave(port, request, 1.0), requests))
        deadline = time.monotonic() + 15  # half the budget that cut them before
        while None in pages.ended.values() and time.monotonic() < deadline:  # a page asked for, not yet hung up on
            time.sleep(0.2)
        ended = dict(pages.ended)
        assert link(song) == (200, None, None)
    # the pages asked for before their client left (the others were never asked for: cut at their connect)
    assert ended and None not in ended.values() and max(lasted for lasted, _ in ended.values()) < 15, ended
