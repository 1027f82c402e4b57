"""inference/client.py through `python -m inference batch --endpoint`, against a hostile stand-in for
the function on 127.0.0.1 (tests/hostile_http.py's Endpoint): every attempt ends by its deadline,
answers are capped and checked before they are written, redirects stay on the endpoint's origin and
Retry-After cannot hold an item for ever."""
import json
import os
import subprocess
import sys
import time
import urllib.parse

import pytest

from inference import batch, client

import hostile_http
from conftest import ROOT

ITEM = "https://example.com/song"  # a link: sent as JSON, never fetched by the stand-in


def run_batch(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inference", "batch", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ))


@pytest.fixture(scope="module")
def endpoint():
    with hostile_http.EndpointServer(drip_s=0.5) as hostile:
        yield hostile


def only_row(done: subprocess.CompletedProcess) -> dict:
    assert "Traceback" not in done.stderr, done.stderr
    (line,) = done.stdout.splitlines()
    return json.loads(line)


@pytest.mark.parametrize("route", ["drip", "drip-headers"])
def test_an_endpoint_that_drips_is_cut_at_the_timeout(endpoint, route):
    """A byte every 0.5 s, of the body or of a header: each read is quick, the request is not
    (was: a per-read time-out, so the item ran for as long as the drip)."""
    began = time.monotonic()
    done = run_batch(ITEM, "--endpoint", f"{endpoint.url}/{route}", "--timeout", "2", "--retries", "0", timeout=60)
    took = time.monotonic() - began
    row = only_row(done)
    assert done.returncode == 1 and row["error"]["code"] == "unreachable"
    assert row["error"]["message"].endswith("within 2 s (--timeout)"), row
    assert took < 30, f"{took:.0f} s"


@pytest.mark.parametrize("query", ["mb=400", "mb=10&chunked=1"], ids=["400 MB said", "10 MB chunked"])
def test_an_answer_over_the_cap_is_refused_and_not_written(endpoint, tmp_path, query):
    out = tmp_path / "out.jsonl"
    done = run_batch(ITEM, "--endpoint", f"{endpoint.url}/huge?{query}", "--retries", "0", "--out", str(out))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert out.stat().st_size < 2000
    error = json.loads(out.read_text())["error"]
    assert error["code"] == "unreachable" and "over 4 MiB" in error["message"], error


@pytest.mark.parametrize("route, why", [("oops", "it holds ['error']"), ("other-input", "it holds ['input']"),
                                        ("no-scores", "it lacks ['scores']"), ("nan", "not the function's answer"),
                                        ("deep", "not the function's answer")])
def test_a_200_that_breaks_the_contract_is_the_items_error_and_resumes(endpoint, tmp_path, route, why):
    """Not written as an answer (a 200 with "error": "oops" was, and every later resume crashed); the
    row is the item's, whatever the answer says its input is; a resume asks again."""
    out = tmp_path / "out.jsonl"
    done = run_batch(ITEM, "--endpoint", f"{endpoint.url}/{route}", "--retries", "0", "--out", str(out))
    row = json.loads(out.read_text())
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert row["input"] == ITEM and row["error"]["code"] == "unreachable" and why in row["error"]["message"], row
    again = run_batch(ITEM, "--endpoint", f"{endpoint.url}/answer", "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert [r.get("genre") for r in map(json.loads, out.read_text().splitlines())] == ["rock"]


def test_a_number_too_large_for_a_float_is_the_items_error(endpoint):
    """math.isfinite of a 401-digit integer raised OverflowError: a traceback, and the rest of the run lost."""
    row = only_row(run_batch(ITEM, "--endpoint", f"{endpoint.url}/big-number", "--retries", "0"))
    assert row["error"]["code"] == "unreachable" and "confidence is not" in row["error"]["message"], row


def test_a_retry_after_of_a_year_past_9999_is_backed_off(endpoint):
    """urllib3 raises a plain ValueError for it: the run ended as "bad arguments" (exit 2)."""
    done = run_batch(ITEM, "--endpoint", f"{endpoint.url}/busy-till-99999", "--retries", "1", timeout=60)
    row = only_row(done)
    assert done.returncode == 1 and row["error"]["code"] == "busy", row


@pytest.mark.parametrize("location", ["http://127.0.0.1:99999/", "http://127.0.0.1:abc/", "http://[::1/x"])
def test_a_redirect_to_a_malformed_url_is_not_followed(endpoint, location):
    """A port out of range or not a number, a broken IPv6 host: the run ended as "bad arguments" (exit 2)."""
    done = run_batch(ITEM, "--endpoint", f"{endpoint.url}/bad-location?to={urllib.parse.quote(location)}",
                     "--retries", "0")
    row = only_row(done)
    assert done.returncode == 1 and row["error"]["code"] == "unreachable", row
    assert "to a malformed URL" in row["error"]["message"], row


def test_an_error_whose_code_is_not_the_functions_is_unreachable(endpoint):
    """It was written as the item's own error, counted as answered and never asked again."""
    row = only_row(run_batch(ITEM, "--endpoint", f"{endpoint.url}/unknown-code", "--retries", "0"))
    assert row["error"]["code"] == "unreachable" and "HTTP 404" in row["error"]["message"], row


def test_a_timeline_window_or_timings_out_of_contract_is_the_items_error():
    answer = hostile_http.answer
    for changes in ({"timeline": [None, None]}, {"timeline": [{"start": 0.0, "genre": "pop", "confidence": 0.9}] * 2},
                    {"timeline": [{"start": 0.0, "genre": ["rock"], "confidence": 0.9}] * 2},
                    {"timeline": [{"start": "0", "genre": "rock", "confidence": 0.9}] * 2},
                    {"timeline": [{"start": 0.0, "genre": "rock", "confidence": 0.9, "music": 7}] * 2},
                    {"window": None}, {"window": {"start": -1, "duration": 6}}, {"source": []},
                    {"timings_ms": {"total": "fast"}}):
        assert client.answer_problem(answer(**changes)), changes
    assert client.answer_problem(answer(timeline=[{"start": 3.0, "genre": "jazz", "confidence": 0.5, "music": 1.0,
                                                   "in_labels": 0.2}] * 2)) is None


def test_optional_fields_of_the_wrong_kind_are_the_items_error():
    """A CSV row joins uncertain_reasons: a number there was a TypeError after the answer was accepted."""
    for changes in ({"uncertain_reasons": 5}, {"in_labels": "high"}, {"music": 2.0}):
        assert client.answer_problem(hostile_http.answer(**changes)), changes
    assert client.answer_problem(hostile_http.answer(in_labels=None, music=None, uncertain_reasons=["x"])) is None


def test_fields_the_client_does_not_know_are_kept(endpoint):
    row = only_row(run_batch(ITEM, "--endpoint", f"{endpoint.url}/answer"))
    assert row["in_labels"] == 0.97 and row["uncertain_reasons"] == [] and row["input"] == ITEM


def test_a_redirect_off_the_endpoints_origin_is_not_followed(endpoint):
    """A 307 to another origin (the metadata server, here the canary) would re-send the upload there."""
    row = only_row(run_batch(ITEM, "--endpoint", f"{endpoint.url}/away", "--retries", "0"))
    assert row["error"]["code"] == "unreachable" and "to another origin" in row["error"]["message"], row
    assert endpoint.hits == []
    assert only_row(run_batch(ITEM, "--endpoint", f"{endpoint.url}/home"))["genre"] == "rock"  # its own origin


def test_retry_after_cannot_hold_an_item_longer_than_max_wait(endpoint):
    """503 with Retry-After: 999999 for ever: given up once the next wait would pass --max-wait (was up to
    12 minutes an item: 6 retries of 120 s)."""
    began = time.monotonic()
    done = run_batch(ITEM, "--endpoint", f"{endpoint.url}/busy", "--max-wait", "3", timeout=60)
    row = only_row(done)
    assert done.returncode == 1 and "--max-wait 3 s" in row["error"]["message"], row
    assert time.monotonic() - began < 30


def test_a_resumed_file_with_a_row_of_any_shape_is_no_crash(tmp_path):
    """A line whose error is not an object (written by an earlier version) is dropped and asked again."""
    out = tmp_path / "out.jsonl"
    out.write_text('{"input": "a", "genre": "rock", "error": "oops"}\n{"input": "b", "genre": "rock"}\n'
                   '{"input": "c", "error": {"code": 7}}\n{"input": "d", "status": "x", "error": {"code": "busy"}}\n')
    output = batch.Output(out, as_csv=False)
    output.close()
    assert output.done == {batch.digest("b")}


@pytest.mark.parametrize("where", ["here", "endpoint"])
def test_an_item_that_is_no_regular_file_is_unreadable_at_once(endpoint, tmp_path, where):
    """A FIFO would be waited on for a writer, /dev/zero read for ever."""
    os.mkfifo(tmp_path / "pipe.flac")
    (tmp_path / "list.txt").write_text(f"{tmp_path / 'pipe.flac'}\n/dev/zero\n")
    remote = ["--endpoint", f"{endpoint.url}/answer"] if where == "endpoint" else []
    done = run_batch(str(tmp_path / "list.txt"), *remote, timeout=60)
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [row["error"]["code"] for row in rows] == ["unreadable_file"] * 2, done.stderr
    assert all("not a regular file" in row["error"]["message"] for row in rows)
