"""`python -m inference batch`: a folder or list in, one line per item out, here or against a real
functions-framework process; retries, resume after a kill, CSV, exit statuses."""
import csv
import http.server
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from inference import batch, contract, storage

import function_server
import hostile_http
import local_http
from conftest import ROOT, wav_of_format

GENRES = ("blues", "jazz", "metal", "rock")
NOWHERE = "http://127.0.0.1:9/"  # nothing listens on the discard port


def run_batch(model_path, *args, stdin=None, **env_vars) -> subprocess.CompletedProcess:
    env = dict(os.environ, GENRE_MODEL=str(model_path), GENRE_DEV_ALLOW_LOOPBACK_LINKS="1", **env_vars)
    return subprocess.run([sys.executable, "-m", "inference", "batch", *args], cwd=ROOT, env=env, input=stdin,
                          capture_output=True, text=True, timeout=300)


def rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def library(gtzan, tmp_path_factory):
    """A folder of 8 shared clips in genre subfolders, and a text file that is not audio."""
    folder = tmp_path_factory.mktemp("library")
    for genre in GENRES:
        (folder / genre).mkdir()
        for clip in sorted((gtzan / genre).glob("*.flac"))[:2]:
            shutil.copy(clip, folder / genre / clip.name)
    (folder / "notes.txt").write_text("not a list of songs\n")
    return folder


def test_the_summary_line():
    answers = [{"input": "a", "genre": "rock"}, {"input": "b", "genre": "rock"}, {"input": "c", "genre": "jazz"},
               {"input": "d", "error": {"code": "not_audio"}}]
    tally = batch.Tally()
    for row in answers:
        tally.add(row)
    assert tally.summary(2, 0.5) == ("4 items in 0.5 s (8.00/s); rock 2, jazz 1; errors: not_audio 1; "
                                              "2 skipped (already answered)")


@pytest.mark.parametrize("row, final", [
    ({"input": "a", "genre": "rock"}, True),
    ({"input": "a", "error": {"code": "unreadable_file"}}, True),  # this machine's own error: no status
    ({"input": "a", "error": {"code": "bad_window"}, "status": 422}, True),
    ({"input": "a", "error": {"code": "busy"}, "status": 499}, True),
    ({"input": "a", "error": {"code": "internal"}, "status": 500}, False),
    ({"input": "a", "error": {"code": "unreachable"}}, False),
])
def test_which_rows_resume_leaves_alone(row, final):
    assert batch.answered(row) is final


def test_progress_only_on_a_terminal():
    class Stream(io.StringIO):
        def __init__(self, tty):
            super().__init__()
            self.tty = tty

        def isatty(self):
            return self.tty

    shown, hidden = Stream(True), Stream(False)
    for stream in (shown, hidden):
        progress = batch.Progress(stream)
        progress.step({"genre": "rock"})
        progress.step({"error": {"code": "not_audio"}})
        progress.finish()
    assert hidden.getvalue() == ""
    lines = shown.getvalue().split("\r")[1:]
    assert [line.split(" items")[0] for line in lines] == ["1", "2"]
    assert lines[0].endswith("0 errors\033[K") and lines[1].endswith("1 errors\033[K\n")


def test_documented_defaults():
    args = batch._parser().parse_args(["x.flac"])
    assert (args.jobs, args.retries, args.timeout, args.max_wait, args.start, args.duration) == \
        (None, 6, 120, 300, None, None)


def test_the_progress_line_counts_items_and_rate(monkeypatch):
    clock = iter([100.0, 100.5, 101.0])
    monkeypatch.setattr(batch, "time", type("Clock", (), {"monotonic": staticmethod(lambda: next(clock))}))
    stream = io.StringIO()
    stream.isatty = lambda: True
    progress = batch.Progress(stream)  # began at 100 s
    progress.step({"genre": "rock"})  # at 100.5 s: 1 item in 0.5 s
    progress.step({"error": {"code": "not_audio"}})  # at 101 s: 2 in 1 s
    assert stream.getvalue().split("\r")[1:] == ["1 items, 2.00/s, 0 errors\033[K", "2 items, 2.00/s, 1 errors\033[K"]



def test_local_mode_over_a_folder(model_path, library, tmp_path):
    out = tmp_path / "results.jsonl"
    done = run_batch(model_path, str(library), "--duration", "3", "--jobs", "2", "--out", str(out))
    assert done.returncode == 0, done.stderr
    answers = rows(out)
    assert sorted(a["input"] for a in answers) == sorted(str(p) for p in library.rglob("*.flac"))
    for answer in answers:
        assert answer["genre"] in contract.LABELS and answer["segments"] == 1 and answer["source"]["kind"] == "upload"
        assert answer["source"]["title"] == os.path.basename(answer["input"])
    assert "8 items in" in done.stderr and "errors: none" in done.stderr
    assert float(done.stderr.split("8 items in ")[1].split(" s")[0]) < 600
    assert "\r" not in done.stderr, "no progress bar when stderr is not a terminal"


def test_a_folder_is_walked_as_it_is_read(tmp_path):
    """The first item comes before the walk has ended (a folder added after it still comes): the whole walk was
    sorted first, so a library of a million files sent nothing until it was all listed."""
    folder = tmp_path
    for sub in ("a", "b"):
        (folder / sub).mkdir()
    (folder / "a" / "1.flac").write_bytes(b"")
    (folder / "b.txt").write_bytes(b"")
    walk = storage.under(str(folder))
    assert next(walk) == str(folder / "a" / "1.flac")
    (folder / "b" / "2.mp3").write_bytes(b"")  # b is walked after a
    assert list(walk) == [str(folder / "b" / "2.mp3")]


def test_a_folders_names_that_are_no_regular_file_are_error_rows(model_path, tmp_path):
    """A broken link or a FIFO of an audio name was skipped without a word."""
    (tmp_path / "gone.flac").symlink_to(tmp_path / "nowhere.flac")
    os.mkfifo(tmp_path / "pipe.flac")
    done = run_batch(model_path, str(tmp_path))
    assert done.returncode == 0, done.stderr  # an unreadable file counts as answered
    codes = {Path(row["input"]).name: row["error"]["code"] for row in map(json.loads, done.stdout.splitlines())}
    assert codes == {"gone.flac": "unreadable_file", "pipe.flac": "unreadable_file"}, done.stdout


def test_mixed_list_with_a_bad_path_and_links(model_path, media, served, tmp_path):
    shutil.copy(media / "song.flac", tmp_path / "song.flac")
    listing = tmp_path / "list.txt"
    listing.write_text(f"# my songs\nsong.flac\n\nmissing.flac\n{served}/song.flac\n{served}/noise.mp3\nsong.flac\n")
    done = run_batch(model_path, str(listing), "-", "--duration", "3", stdin=f"{served}/page.html\n")
    assert done.returncode == 0, done.stderr  # every item answered, errors included
    by_input = {row["input"]: row for row in map(json.loads, done.stdout.splitlines())}
    assert len(done.stdout.splitlines()) == len(by_input) == 5  # song.flac listed twice, answered once
    assert by_input[str(tmp_path / "song.flac")]["genre"] == by_input[f"{served}/song.flac"]["genre"]
    assert by_input[f"{served}/page.html"]["source"]["kind"] == "link"
    assert by_input[str(tmp_path / "missing.flac")]["error"]["code"] == "unreadable_file"
    assert by_input[f"{served}/noise.mp3"] == {"input": f"{served}/noise.mp3", "status": 422,
                                               "error": by_input[f"{served}/noise.mp3"]["error"]}
    assert by_input[f"{served}/noise.mp3"]["error"]["code"] == "not_audio"
    assert "not_audio 1" in done.stderr and "unreadable_file 1" in done.stderr


@pytest.mark.parametrize("remote", [False, True], ids=["here", "remote"])
def test_a_listed_name_holding_a_nul_byte_is_an_error_row_and_the_batch_goes_on(model_path, tmp_path, flaky,
                                                                                 remote):
    """Was "error: embedded null byte", exit 2, after the first item (a ValueError checking the file)."""
    url, seen = flaky
    (tmp_path / "list.txt").write_bytes(b"gone.flac\nfoo\x00bar.flac\nlost.flac\n")
    where = ["--endpoint", url] if remote else []
    done = run_batch(model_path, str(tmp_path / "list.txt"), "--jobs", "1", *where)
    assert done.returncode == 0 and not seen, done.stderr
    errors = {row["input"]: row["error"] for row in map(json.loads, done.stdout.splitlines())}
    assert errors[str(tmp_path / "foo\x00bar.flac")] == {
        "code": "unreadable_file", "message": f"a file name cannot hold a NUL byte: {tmp_path / 'foo'}\\0bar.flac"}
    assert {Path(item).name for item in errors} == {"gone.flac", "foo\x00bar.flac", "lost.flac"}


def test_lists_in_latin_1_or_with_a_bom_name_their_files_and_resume(model_path, tmp_path):
    """A byte that is not UTF-8 ended the run mid-way (exit 2); a BOM was taken as part of the first path.
    A list's line names the file of its bytes, as a folder's walk or the command line does."""
    latin = tmp_path / os.fsdecode(b"caf\xe9.flac")
    for path in latin, tmp_path / "song.flac":
        path.write_bytes(b"")  # found: an empty upload, not an unreadable file
    (tmp_path / "old.m3u").write_bytes(b"#EXTM3U\ncaf\xe9.flac\n")
    (tmp_path / "new.m3u8").write_bytes("\ufeffsong.flac\n".encode())
    out, args = tmp_path / "out.csv", [str(tmp_path / "old.m3u"), str(tmp_path / "new.m3u8"), "--csv", "--out",
                                       str(tmp_path / "out.csv")]
    done = run_batch(model_path, *args)
    assert done.returncode == 0, done.stderr
    first = out.read_bytes()
    assert {row["input"]: row["error"] for row in csv.DictReader(io.StringIO(first.decode("utf-8", "surrogateescape")))
            } == {str(latin): "empty_upload", str(tmp_path / "song.flac"): "empty_upload"}
    again = run_batch(model_path, *args)
    assert again.returncode == 0 and "2 skipped" in again.stderr, again.stderr
    assert out.read_bytes() == first


def test_a_list_on_stdin_that_is_not_utf_8(model_path, tmp_path):
    (tmp_path / os.fsdecode(b"caf\xe9.flac")).write_bytes(b"")
    done = subprocess.run([sys.executable, "-m", "inference", "batch", "-"], cwd=ROOT, capture_output=True,
                          input=b"\xef\xbb\xbf" + os.fsencode(tmp_path) + b"/caf\xe9.flac\n", timeout=60,
                          env=dict(os.environ, GENRE_MODEL=str(model_path)))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["error"]["code"] == "empty_upload"


def test_a_file_name_that_is_not_utf_8_is_uploaded(model_path, tmp_path, flaky):
    """Was "error: 'utf-8' codec can't encode character", exit 2: the name is sent as it reads."""
    url, seen = flaky
    (tmp_path / os.fsdecode(b"caf\xe9.flac")).write_bytes(b"fLaC")
    done = run_batch(model_path, str(tmp_path), "--endpoint", url, "--retries", "0")
    assert json.loads(done.stdout)["input"] == str(tmp_path / os.fsdecode(b"caf\xe9.flac")), done.stderr
    assert b'filename="caf?.flac"' in seen[0][0]


def test_a_file_without_a_decoder_is_an_error_row_and_the_batch_goes_on(model_path, media, tmp_path):
    """Was a traceback from the command line and no row at all (an AttributeError out of the decoder)."""
    shutil.copy(media / "song.flac", tmp_path / "song.flac")
    (tmp_path / "odd.wav").write_bytes(wav_of_format(0x1234, 16))
    done = run_batch(model_path, str(tmp_path), "--duration", "3", "--jobs", "1")
    assert done.returncode == 0, done.stderr
    by_input = {row["input"]: row for row in map(json.loads, done.stdout.splitlines())}
    assert by_input[str(tmp_path / "song.flac")]["genre"] in contract.LABELS
    assert by_input[str(tmp_path / "odd.wav")] == {"input": str(tmp_path / "odd.wav"), "status": 422, "error": {
        "code": "not_audio", "message": "the audio's codec cannot be decoded"}}


def test_remote_mode_against_a_real_server(model_path, media, served, tmp_path):
    clip = tmp_path / "song.flac"
    shutil.copy(media / "song.flac", clip)
    items = [str(clip), f"{served}/song.flac", f"{served}/missing.flac"]
    local = run_batch(model_path, *items, "--duration", "6")
    with function_server.start(tmp_path, GENRE_MODEL=str(model_path), GENRE_DEV_ALLOW_LOOPBACK_LINKS="1") as server:
        remote = run_batch(model_path, *items, "--duration", "6", "--endpoint", server.url, "--jobs", "3")
    assert local.returncode == remote.returncode == 0, remote.stderr
    here, there = ({row["input"]: row for row in map(json.loads, done.stdout.splitlines())} for done in (local, remote))
    assert set(there) == set(items)
    for item in items[:2]:
        assert there[item]["scores"] == pytest.approx(here[item]["scores"], abs=2e-4)
        assert there[item]["segments"] == 2
    assert there[str(clip)]["source"]["title"] == "song.flac"  # sent as a multipart upload with its name
    assert there[items[2]]["status"] == 422 and there[items[2]]["error"]["code"] == "source_unavailable"


class Flaky(http.server.BaseHTTPRequestHandler):
    """Answers 429, 503, then 503 with Retry-After: 1, then 200; a link ending in /bad gets 400 every time."""
    seen: list = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((body, self.headers.get("Authorization")))
        if b"/bad" in body:
            self._send(400, {"error": {"code": "invalid_url", "message": "no"}})
        elif (count := sum(b"/bad" not in b for b, _ in self.seen)) <= 3:
            # urllib3 retries a 429 or 503 with Retry-After whatever it is asked, so only the last has one
            later = {"Retry-After": "1"} if count == 3 else {}
            self._send(429 if count == 1 else 503, {"error": {"code": "busy", "message": "try later"}}, later)
        else:
            self._send(200, hostile_http.answer())

    def _send(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in dict(headers).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def flaky():
    Flaky.seen = []
    with local_http.serving(Flaky) as url:
        yield f"{url}/", Flaky.seen


def test_remote_retries_429_and_503_honouring_retry_after_and_not_400(model_path, media, tmp_path, flaky):
    url, seen = flaky
    clip = tmp_path / "song.flac"
    shutil.copy(media / "song.flac", clip)
    began = time.monotonic()
    done = run_batch(model_path, str(clip), "--endpoint", url, "--jobs", "1", "--start", "0", GENRE_TOKEN="id-token-1")
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - began >= 1, "Retry-After: 1 was not waited for"
    assert json.loads(done.stdout)["genre"] == "rock" and "; rock 1; errors: none" in done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr  # the summary, nothing else
    assert len(seen) == 4
    for body, authorization in seen:  # the upload was sent whole each time, with the window asked
        assert clip.read_bytes() in body and b'filename="song.flac"' in body
        assert b'name="start"\r\n\r\n0.0\r\n' in body
        assert authorization == "Bearer id-token-1"
    seen.clear()
    done = run_batch(model_path, "http://example.com/bad", "--endpoint", url, "--token", "t2")
    assert done.returncode == 0 and len(seen) == 1 and seen[0][1] == "Bearer t2"
    assert json.loads(done.stdout)["status"] == 400


class Busy(http.server.BaseHTTPRequestHandler):
    """The first request: 503 with Retry-After: 2; then 200. Notes when each came."""
    came: list = []

    log_message = Flaky.log_message
    _send = Flaky._send

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.came.append(time.monotonic())
        if len(self.came) == 1:
            self._send(503, {"error": {"code": "busy", "message": "try later"}}, {"Retry-After": "2"})
        else:
            self._send(200, hostile_http.answer())


def test_remote_waits_as_long_as_retry_after_says(model_path):
    """2 s, measured between the two requests the server saw (the backoff alone waits at most 0.5 s)."""
    Busy.came = []
    with local_http.serving(Busy) as url:
        done = run_batch(model_path, "http://example.com/song", "--endpoint", f"{url}/", "--jobs", "1")
    assert done.returncode == 0 and json.loads(done.stdout)["genre"] == "rock", done.stderr
    assert len(Busy.came) == 2 and Busy.came[1] - Busy.came[0] >= 2, Busy.came


def test_an_unreachable_endpoint_is_named_with_the_reason(model_path):
    done = run_batch(model_path, "https://example.com/a", "--endpoint", NOWHERE, "--retries", "0")
    message = json.loads(done.stdout)["error"]["message"]
    assert message.startswith(f"no answer from {NOWHERE}: ") and "Connection refused" in message, message
    assert "Max retries exceeded" not in message  # the cause, not urllib3's wrapper


@pytest.mark.parametrize("table", [False, True], ids=["jsonl", "csv"])
def test_unreachable_endpoint_exits_1_and_is_retried_on_resume(model_path, tmp_path, flaky, table):
    out, form = tmp_path / "out.jsonl", ["--csv"] if table else []
    nowhere = f"http://127.0.0.1:{function_server.free_port()}/"
    done = run_batch(model_path, "https://example.com/a", "--endpoint", nowhere, "--retries", "1", "--out", str(out),
                     *form)
    assert done.returncode == 1, done.stderr
    written = list(csv.DictReader(io.StringIO(out.read_text()))) if table else rows(out)
    assert [row["error"]["code"] if not table else row["error"] for row in written] == ["unreachable"]
    url, seen = flaky
    again = run_batch(model_path, "https://example.com/a", "--endpoint", url, "--out", str(out), *form)
    assert again.returncode == 0 and len(seen) == 4
    written = list(csv.DictReader(io.StringIO(out.read_text()))) if table else rows(out)
    assert [row.get("genre") for row in written] == ["rock"]  # the failed line is replaced, not kept


@pytest.mark.parametrize("status", [200, 404])
def test_a_page_that_is_not_the_functions_answer_is_unreachable(model_path, tmp_path, status):
    """A proxy's or a single-sign-on login page (which answers 200): an error row quoting its first 200 characters."""
    page = ("<html><body>Sign in to continue " + "x" * 300 + "</body></html>").encode()

    class LoginPage(Flaky):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(status)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
    with local_http.serving(LoginPage) as url:
        done = run_batch(model_path, "https://example.com/a", "--endpoint", f"{url}/")
    error = json.loads(done.stdout)["error"]
    assert done.returncode == 1 and error["code"] == "unreachable"
    assert error["message"].startswith(f"HTTP {status} from ") and error["message"].endswith(": " + page[:200].decode())


def test_a_file_over_the_upload_cap_or_gone_is_not_sent(model_path, media, tmp_path, flaky):
    url, seen = flaky
    (tmp_path / "list.txt").write_text(f"{media / 'song.flac'}\n{tmp_path / 'gone.flac'}\n")
    done = run_batch(model_path, str(tmp_path / "list.txt"), "--endpoint", url, "--jobs", "1",
                     GENRE_MAX_UPLOAD_MB="0.1")
    assert done.returncode == 0 and not seen  # an answer for each item (its error): nothing to retry
    big, gone = [json.loads(line)["error"] for line in done.stdout.splitlines()]
    assert big == {"code": "upload_too_large", "message": "uploads are limited to 0.1 MB"}
    assert gone == {"code": "unreadable_file", "message": f"No such file or directory: {tmp_path / 'gone.flac'}"}


@pytest.mark.parametrize("remote", [False, True], ids=["here", "remote"])
def test_a_file_of_exactly_the_upload_cap_is_classified(model_path, tmp_path, flaky, remote):
    url, seen = flaky
    (tmp_path / "exact.flac").write_bytes(bytes(2**19))  # 0.5 MB of zeros: the decoder's to judge, not the cap
    where = ["--endpoint", url, "--retries", "0"] if remote else []
    done = run_batch(model_path, str(tmp_path / "exact.flac"), *where, GENRE_MAX_UPLOAD_MB="0.5")
    row = json.loads(done.stdout)
    assert row["error"]["code"] == ("busy" if remote else "not_audio") and len(seen) == remote


def test_zero_retries_is_one_attempt(model_path, tmp_path):
    done = run_batch(model_path, "https://example.com/a", "--endpoint", NOWHERE, "--retries", "0")
    assert done.returncode == 1 and json.loads(done.stdout)["error"]["code"] == "unreachable", done.stderr


def test_remote_mode_sends_8_requests_at_once_by_default(model_path):
    """Ten links to a function that takes 1.5 s to answer each: 8 in flight (the default), never more."""
    lock, flight = threading.Lock(), {"now": 0, "most": 0}

    class Slow(Flaky):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                flight["now"] += 1
                flight["most"] = max(flight["most"], flight["now"])
            time.sleep(1.5)
            with lock:
                flight["now"] -= 1
            self._send(200, hostile_http.answer())
    links = "".join(f"https://example.com/{i}\n" for i in range(10))
    with local_http.serving(Slow) as url:
        done = run_batch(model_path, "-", "--endpoint", f"{url}/", stdin=links)
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 10
    assert flight["most"] == 8


def test_resume_after_a_kill_answers_every_item_once(model_path, gtzan, tmp_path):
    clips = [str(p) for genre in GENRES for p in sorted((gtzan / genre).glob("*.flac"))[:5]]
    listing, out = tmp_path / "list.txt", tmp_path / "out.jsonl"
    listing.write_text("\n".join(clips) + "\n")
    env = dict(os.environ, GENRE_MODEL=str(model_path))
    command = [sys.executable, "-m", "inference", "batch", str(listing), "--duration", "3", "--jobs", "1",
               "--out", str(out)]
    first = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while (not out.exists() or out.read_text().count("\n") < 3) and time.monotonic() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    written = out.read_text().count("\n")
    assert 3 <= written < len(clips), "the run was not cut mid-way"
    with open(out, "a") as f:
        f.write('["not", "a", "row"]\n')  # a line of JSON that is no answer is dropped
        f.write('{"input": "' + clips[-1] + '", "genre": "ro')  # a line cut off by the kill
    second = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    inputs = [row["input"] for row in rows(out)]
    assert sorted(inputs) == sorted(clips), "every item exactly once"
    assert f"{written} skipped" in second.stderr


def test_resume_drops_a_line_of_json_nested_too_deep(model_path, tmp_path):
    """Was a RecursionError traceback: only ValueError was taken for a line that is no row."""
    out, gone = tmp_path / "out.jsonl", str(tmp_path / "gone.flac")
    (tmp_path / "list.txt").write_text(gone + "\n")
    out.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    done = run_batch(model_path, str(tmp_path / "list.txt"), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert [row["input"] for row in rows(out)] == [gone]


@pytest.mark.parametrize("table", [[], ["--csv"]], ids=["jsonl", "csv"])
def test_resume_of_a_complete_output_runs_nothing_again(model_path, library, tmp_path, table):
    """Every line complete, the last one too: all skipped, and not one row rewritten."""
    out = tmp_path / "out"
    args = [str(library / "rock"), "--duration", "3", "--out", str(out), *table]
    assert run_batch(model_path, *args).returncode == 0
    first = out.read_bytes()
    again = run_batch(model_path, *args)
    assert again.returncode == 0 and "2 skipped" in again.stderr and "0 items" in again.stderr, again.stderr
    assert out.read_bytes() == first


def test_csv_table_and_its_resume(model_path, library, tmp_path):
    out = tmp_path / "out.csv"
    items = [str(library / "rock"), str(tmp_path / "gone.flac")]
    (tmp_path / "list.txt").write_text("\n".join(items[1:]) + "\n")
    args = [items[0], str(tmp_path / "list.txt"), "--duration", "3", "--csv", "--out", str(out)]
    assert run_batch(model_path, *args).returncode == 0
    table = list(csv.DictReader(io.StringIO(out.read_text())))
    assert list(table[0]) == ["input", "genre", "confidence", "uncertain", "uncertain_reasons", "music", "in_labels",
                              "status", "error"]
    assert len(table) == 3 and {row["error"] for row in table} == {"", "unreadable_file"}
    for row in table:
        assert (row["genre"] in contract.LABELS and 0 < float(row["confidence"]) <= 1) or row["error"]
    with open(out, "a") as f:
        f.write("\n")  # a blank line (an edit by hand) is dropped on resume
    again = run_batch(model_path, *args)
    assert again.returncode == 0 and "3 skipped" in again.stderr
    assert list(csv.DictReader(io.StringIO(out.read_text()))) == table


@pytest.mark.parametrize("junk", ["/tmp/x.flac,,,,,,,abc,unreachable\n", '"' + "x" * 200_000 + '",,,,,,,,\n',
                                  '"cut off\nmidway', "too,few\n"],
                         ids=["status not a number", "a field over csv's limit", "an open quote", "too few fields"])
def test_csv_resume_drops_a_record_that_is_no_row(model_path, tmp_path, junk):
    """A status that is no number stopped the run before it began (exit 2), a field over 131072
    characters was a _csv.Error traceback."""
    out, items = tmp_path / "out.csv", [str(tmp_path / "gone.flac"), str(tmp_path / "lost.flac")]
    (tmp_path / "list.txt").write_text("\n".join(items) + "\n")
    args = [str(tmp_path / "list.txt"), "--csv", "--out", str(out), "--jobs", "1"]
    assert run_batch(model_path, *args).returncode == 0
    first = out.read_text()
    out.write_text(first + junk)
    again = run_batch(model_path, *args)
    assert again.returncode == 0 and "2 skipped" in again.stderr, again.stderr
    assert out.read_text() == first


def test_csv_resume_under_another_header_is_refused_and_the_file_kept(model_path, tmp_path):
    """Another CSV given as --out (another program's, a wrong name): every record of it would be dropped."""
    out, gone = tmp_path / "out.csv", str(tmp_path / "gone.flac")
    (tmp_path / "list.txt").write_text(gone + "\n")
    out.write_text(f"genre,input\nrock,{gone}\n")
    done = run_batch(model_path, str(tmp_path / "list.txt"), "--csv", "--out", str(out))
    assert done.returncode == 2 and "is not a CSV this command wrote" in done.stderr, done.stderr
    assert out.read_text() == f"genre,input\nrock,{gone}\n"


def test_a_csv_on_stdout_writes_a_file_name_that_is_not_utf_8_as_its_bytes(model_path, tmp_path):
    """Under a strict UTF-8 stdout (a UTF-8 locale's), such a name was a UnicodeEncodeError mid-run."""
    name = "caf\xe9.flac".encode("latin-1")
    (tmp_path / os.fsdecode(name)).write_bytes(b"")
    done = subprocess.run([sys.executable, "-m", "inference", "batch", str(tmp_path), "--csv"], cwd=ROOT,
                          env=dict(os.environ, GENRE_MODEL=str(model_path), PYTHONIOENCODING="utf-8:strict"),
                          capture_output=True, timeout=300)
    assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr
    assert done.stdout.splitlines()[1].startswith(os.fsencode(str(tmp_path)) + b"/" + name + b",,"), done.stdout


def test_csv_resume_reads_a_file_name_holding_a_newline_once(model_path, tmp_path):
    """The file was read a line at a time: such a name was never found, sent again and written twice."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "two\nlines.flac").write_bytes(b"")
    out, args = tmp_path / "out.csv", [str(tmp_path / "in"), "--csv", "--out", str(tmp_path / "out.csv")]
    assert run_batch(model_path, *args).returncode == 0
    first = out.read_text()
    again = run_batch(model_path, *args)
    assert again.returncode == 0 and "1 skipped" in again.stderr, again.stderr
    assert out.read_text() == first
    assert [row["input"] for row in csv.DictReader(io.StringIO(first))] == [str(tmp_path / "in" / "two\nlines.flac")]


@pytest.mark.parametrize("args", [["nowhere/"], ["--jobs", "0", "x.flac"], ["--endpoint", "ftp://h/", "x.flac"],
                                  ["--duration", "0", "x.flac"], ["--duration", "nan", "x.flac"],
                                  ["--start", "-1", "x.flac"], ["--retries", "-1", "x.flac"],
                                  ["--endpoint", NOWHERE, "--start", "-1", "x.flac"],
                                  ["--endpoint", NOWHERE, "--duration", "inf", "x.flac"], ["EMPTY"], []])
def test_bad_arguments_exit_2(model_path, tmp_path, args):
    (tmp_path / "EMPTY").mkdir()
    (tmp_path / "x.flac").write_bytes(b"")
    done = subprocess.run([sys.executable, "-m", "inference", "batch", *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ["PYTHONPATH"]])))
    assert done.returncode == 2 and "error:" in done.stderr, done.stderr
