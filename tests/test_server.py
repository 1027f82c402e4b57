"""The function as users and CI run it: a real `functions-framework --target classify` process on
127.0.0.1, called with curl."""
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from inference import config, model

import function_server
import local_http
from conftest import ROOT


@pytest.fixture(scope="module")
def server(model_path, tmp_path_factory):
    """A functions-framework process with the test switch set and a 2-MB upload cap."""
    assert shutil.which("curl"), "curl is needed to call the server"
    with function_server.start(tmp_path_factory.mktemp("server"), GENRE_MODEL=str(model_path),
                               GENRE_DEV_ALLOW_LOOPBACK_LINKS="1", GENRE_MAX_UPLOAD_MB="2") as running:
        yield running


def curl(*args) -> tuple[int, dict]:
    """(HTTP status, JSON body) of a curl call."""
    out = subprocess.run(["curl", "-sS", "--max-time", "60", "-w", "\n%{http_code}", *args],
                         capture_output=True, text=True, check=True).stdout
    body, status = out.rsplit("\n", 1)
    return int(status), json.loads(body)


@pytest.fixture
def no_leftovers(server):
    yield
    assert not list(server.temp.iterdir()), "the server left files in its temp folder"


def test_link_by_get_and_post(server, served, no_leftovers):
    url = server.url
    status, body = curl("-G", url, "--data-urlencode", f"url={served}/song.flac")
    assert status == 200 and body["segments"] == 10 and body["source"]["kind"] == "link", body
    assert body["source"]["yt_dlp"] == importlib.metadata.version("yt-dlp")
    status, body = curl("-X", "POST", url, "-H", "Content-Type: application/json",
                        "-d", json.dumps({"url": f"{served}/page.html", "start": 10, "duration": 6}))
    assert status == 200 and body["window"] == {"start": 10.0, "duration": 6.0} and body["segments"] == 2, body
    assert body["source"]["title"] == "A rock song (1)"  # the page's <title>, its first media (yt-dlp numbers them)


def test_uploads(server, media, no_leftovers):
    url = server.url
    clip = str(media / "song.flac")
    status, raw = curl(url + "?duration=9", "-H", "Content-Type: audio/flac", "--data-binary", f"@{clip}")
    assert status == 200 and raw["segments"] == 3, raw
    status, form = curl(url, "-F", f"file=@{clip}", "-F", "duration=9")
    assert status == 200 and form["source"]["title"] == "song.flac", form
    assert form["scores"] == pytest.approx(raw["scores"], abs=2e-4)
    status, plain = curl(url + "?duration=9", "--data-binary", f"@{clip}")  # curl's default type: a form
    assert status == 200 and plain["scores"] == raw["scores"], plain


@pytest.mark.parametrize("args, status, code", [
    (["-H", "Accept: application/json"], 400, "missing_url"),
    (["-X", "POST"], 400, "missing_url"),
    (["-H", "Content-Type: application/json", "-d", "{nope"], 400, "bad_json"),
    (["-G", "--data-urlencode", "url=file:///etc/passwd"], 400, "invalid_url"),
    (["-G", "--data-urlencode", "url=ftp://127.0.0.1/a.mp3"], 400, "invalid_url"),
    (["-G", "--data-urlencode", "url=http://169.254.169.254/computeMetadata/v1/"], 400, "url_not_allowed"),
    (["-H", "Content-Type: audio/mpeg", "--data-binary", "not audio at all"], 422, "not_audio"),
    (["-H", "Content-Type: application/octet-stream", "--data-binary", ""], 400, "empty_upload"),
    (["-H", "Content-Type: text/csv", "-d", "a,b"], 415, "unsupported_media_type"),
    (["-X", "PATCH"], 405, "method_not_allowed"),
    (["--data-binary", "not audio, not a form"], 415, "unsupported_media_type"),
])
def test_bad_input(server, args, status, code, no_leftovers):
    got, body = curl(server.url, *args)
    assert (got, body["error"]["code"]) == (status, code), body


def test_oversize_upload(server, tmp_path, no_leftovers):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * 2**20))
    for args in (["-H", "Content-Type: audio/wav", "--data-binary", f"@{big}"], ["-F", f"file=@{big}"],
                 ["-H", "Content-Type: audio/wav", "-H", "Transfer-Encoding: chunked", "--data-binary", f"@{big}"]):
        status, body = curl(server.url, *args)
        assert (status, body["error"]["code"]) == (413, "upload_too_large"), args


def test_preflight(server):
    out = subprocess.run(["curl", "-sS", "-i", "-X", "OPTIONS", server.url, "-H", "Origin: https://a.example",
                          "-H", "Access-Control-Request-Method: POST"], capture_output=True, text=True).stdout
    assert out.startswith("HTTP/1.1 204") and "Access-Control-Allow-Origin: *" in out


def test_page_for_a_browser_json_for_an_api_client(server):
    page = subprocess.run(["curl", "-sS", "-i", server.url, "-H", "Accept: text/html,*/*;q=0.8"],
                          capture_output=True, text=True, check=True).stdout
    head, html = page.split("\n\n", 1)
    assert head.startswith("HTTP/1.1 200") and "Content-Type: text/html; charset=utf-8" in head
    assert "Content-Security-Policy: default-src 'none'" in head
    assert '<label for="url">' in html and '<input id="file"' in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "the page must not load anything from elsewhere"
    status, body = curl(server.url, "-H", "Accept: application/json")
    assert (status, body["error"]["code"]) == (400, "missing_url")


def test_one_structured_log_line_per_request(server, served, media):
    """Each request logs one JSON line in Cloud Logging's shape on stdout; never the link's path or
    query, nor uploaded bytes; nothing else on stdout or stderr."""
    before = len(server.stdout.read_text().splitlines())
    secret = "token=s3cr3t-query"
    curl("-G", server.url, "--data-urlencode", f"url={served}/song.flac?{secret}", "--data-urlencode", "duration=3")
    curl("-G", server.url, "--data-urlencode", f"url={served}/missing-{secret}.flac")
    curl(server.url, "-H", "Content-Type: audio/mpeg", "--data-binary", "not audio but s3cr3t bytes")
    lines = server.stdout.read_text().splitlines()[before:]
    assert len(lines) == 3, lines
    link, missing, upload = (json.loads(line) for line in lines)
    for entry, severity, status, error in ((link, "INFO", 200, None), (missing, "WARNING", 422, "source_unavailable"),
                                           (upload, "WARNING", 422, "not_audio")):
        assert (entry["severity"], entry["status"], entry["error"]) == (severity, status, error), entry
        assert entry["duration_ms"] > 0 and entry["httpRequest"]["status"] == status
        assert entry["httpRequest"]["latency"].endswith("s") and entry["message"]
    assert link["kind"] == "link" and link["site"] == "127.0.0.1" and link["genre"] in link["message"]
    assert upload["kind"] == "upload" and upload["site"] is None
    assert "s3cr3t" not in "".join(lines) and "song.flac" not in "".join(lines)
    assert server.stderr.read_text() == "", "the server wrote to stderr"


def test_one_start_up_line_names_the_model_its_labels_the_threads_and_the_address(server, model_path):
    first = json.loads(server.stdout.read_text().splitlines()[0])
    found = model.Model(model_path)
    assert first["severity"] == "INFO" and first["model"] == {**found.info(), "labels": list(found.labels)}
    assert (first["threads"], first["address"]) == (config.SERVER_THREADS, server.url[7:-1])
    assert first["yt_dlp"] == importlib.metadata.version("yt-dlp")
    for part in (found.meta.name, found.meta.version, found.sha256[:12], ", ".join(found.labels), server.url[7:-1]):
        assert part in first["message"]


def test_a_missing_model_is_named_at_start_and_in_every_answer(tmp_path, media):
    """The server still starts (and answers 503) so that the cause is seen, in the log and the answer."""
    missing = tmp_path / "no-such-model.onnx"
    with function_server.start(tmp_path, GENRE_MODEL=str(missing)) as running:
        status, body = curl(running.url, "-H", "Content-Type: audio/flac", "--data-binary", f"@{media / 'song.flac'}")
        first = json.loads(running.stdout.read_text().splitlines()[0])
    cause = f"the model {missing} could not be loaded: FileNotFoundError: No such file or directory"
    assert (status, body["error"]) == (503, {"code": "model_unavailable", "message": cause})
    assert first["severity"] == "ERROR" and first["model"] is None and first["message"].startswith(cause)


def test_every_log_line_has_a_documented_kind(server):
    before = len(server.stdout.read_text().splitlines())
    assert curl(server.url, "-X", "PATCH")[0] == 405
    assert curl(server.url, "-H", "Content-Type: text/csv", "-d", "a,b")[0] == 415
    assert curl(server.url + "nowhere")[0] == 404
    kinds = [json.loads(line)["kind"] for line in server.stdout.read_text().splitlines()[before:]]
    assert kinds == ["other", "other", "other"]
    docs = (ROOT / "docs" / "api.md").read_text()
    assert "`link`, `upload`, `page`, `preflight`, `other`" in docs


def test_concurrent_requests_get_their_own_answers(server, gtzan, no_leftovers):
    """The seed wrote every request to one file; here 16 requests for 8 different clips, links and
    uploads at once, each get the answer the same clip gets alone."""
    clips = [sorted((gtzan / genre).glob("*.flac"))[0] for genre in ("blues", "classical", "country", "disco",
                                                                    "hiphop", "jazz", "metal", "reggae")]
    with local_http.Server(gtzan) as media:
        def by_link(clip):
            return curl("-G", server.url, "--data-urlencode", f"url={media}/{clip.relative_to(gtzan).as_posix()}",
                        "-d", "duration=9")
        def by_upload(clip):
            return curl(server.url + "?duration=9", "-H", "Content-Type: audio/flac", "--data-binary", f"@{clip}")
        alone = {clip: by_upload(clip)[1]["scores"] for clip in clips}
        jobs = [(call, clip) for clip in clips for call in (by_link, by_upload)]
        with ThreadPoolExecutor(len(jobs)) as pool:
            answers = list(pool.map(lambda job: job[0](job[1]), jobs))
    assert len({json.dumps(a) for a in alone.values()}) == len(clips), "the clips should score differently"
    for (_, clip), (status, body) in zip(jobs, answers, strict=True):
        assert status == 200, body
        assert body["scores"] == pytest.approx(alone[clip], abs=2e-4), clip.name


def test_the_first_links_of_a_fresh_instance_may_arrive_together(model_path, served, tmp_path):
    """yt-dlp is imported on the first link; four at once once gave 500s (an import race)."""
    with function_server.start(tmp_path, GENRE_MODEL=str(model_path), GENRE_DEV_ALLOW_LOOPBACK_LINKS="1") as fresh:
        def link(i):
            return curl("-G", fresh.url, "--data-urlencode", f"url={served}/song.flac", "-d", f"start={i}",
                        "-d", "duration=3")
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(link, range(4)))
    assert [status for status, _ in answers] == [200] * 4, answers


def test_import_main_loads_no_training_stack():
    code = ("import sys, main; bad = {m.split('.')[0] for m in sys.modules} & "
            "{'tensorflow', 'keras', 'librosa', 'numba', 'sklearn'}; print(sorted(bad))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "[]"  # after main's start-up line


def test_cli_prints_the_same_json(model_path, media, served):
    env = dict(os.environ, GENRE_MODEL=str(model_path), GENRE_DEV_ALLOW_LOOPBACK_LINKS="1")
    def run(*args):
        return subprocess.run([sys.executable, "-m", "inference", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
    by_file = run(str(media / "song.flac"), "--duration", "6")
    by_link = run(f"{served}/song.flac", "--duration", "6")
    for done in (by_file, by_link):
        assert done.returncode == 0, done.stderr
    file_answer, link_answer = json.loads(by_file.stdout), json.loads(by_link.stdout)
    assert by_file.stdout.startswith('{\n  "genre": ')  # for people: indented by two
    assert file_answer["segments"] == 2 and file_answer["scores"] == pytest.approx(link_answer["scores"], abs=2e-4)
    missing = run(str(media / "nothing.flac"))
    assert missing.returncode == 1 and json.loads(missing.stdout)["error"]["code"] == "unreadable_file"
    assert run(str(media / "song.flac"), "--start", "soon").returncode == 2


@pytest.mark.parametrize("args", [["--start", "nan"], ["--start", "inf"], ["--start", "-5"], ["--start", "900"],
                                  ["--duration", "nan"], ["--duration", "0"], ["--duration", "61"]])
def test_cli_refuses_a_window_the_function_would_as_bad_arguments(media, args):
    """Exit 2, as docs/api.md says, for what the function answers 400 bad_parameter (was exit 1 with its
    JSON, and for nan a traceback: NaN is not JSON)."""
    done = subprocess.run([sys.executable, "-m", "inference", str(media / "song.flac"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == "" and "error: " in done.stderr, done.stderr
    assert "Traceback" not in done.stderr

@pytest.mark.parametrize("command, statuses", [
    (["inference"], "exit status: 0 an answer; 1 an error answer"),
    (["inference", "batch"], "exit status: 0 every item answered"),
])
def test_cli_help_says_what_the_window_options_do_and_the_exit_statuses(command, statuses):
    done = subprocess.run([sys.executable, "-m", *command, "--help"], cwd=ROOT, capture_output=True, text=True)
    text = " ".join(done.stdout.split())
    assert done.returncode == 0 and "--start START where the window starts, in seconds (default 60;" in text
    assert "--duration DURATION the window's length in seconds (default 30, at most 60)" in text
    assert statuses in text


def test_a_source_over_the_fetch_cap_logs_one_line_whatever_ffmpeg_does(model_path, media, tmp_path):
    """The cap is hit inside FFmpeg's reads; FFmpeg reads on: one JSON line and nothing on stderr (was
    12 "PyAV library exception being dropped" tracebacks, 130-143 lines)."""
    with local_http.Server(media, ranges=False) as source, \
            function_server.start(tmp_path, GENRE_MODEL=str(model_path), GENRE_DEV_ALLOW_LOOPBACK_LINKS="1",
                                  GENRE_MAX_FETCH_MB="0.2") as running:
        before = len(running.stdout.read_text().splitlines())
        for window in ("start=20", "start=0"):
            status, body = curl("-G", running.url, "--data-urlencode", f"url={source}/song.flac", "-d", window)
            assert (status, body["error"]["code"]) == (422, "source_too_large"), body
        lines = running.stdout.read_text().splitlines()[before:]
        stderr = running.stderr.read_text()
    assert [json.loads(line)["error"] for line in lines] == ["source_too_large"] * 2, lines
    assert stderr == "", stderr[:3000]


def test_the_readmes_first_curl_works_as_shown(server):
    """Run from this folder as written (was `-F file=@song.flac`: no such file, curl exit 26, nothing printed);
    the answer is the README's: the same genre, scores and title."""
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"```bash\n(curl -s localhost:8080 [^\n]+)\n```", readme).group(1)
    example = json.loads(re.search(r"```json\n(\{\"genre\".*?)\n```", readme, re.S).group(1)
                         .replace(', "... one per 3-s segment"', ""))
    port = server.url.rsplit(":", 1)[1].strip("/")
    done = subprocess.run(command.replace("localhost:8080", f"127.0.0.1:{port}"), shell=True, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.count("\n") == 0, (done.returncode, done.stderr)
    answer = json.loads(done.stdout)
    assert (answer["genre"], answer["scores"], answer["music"]) == (example["genre"], example["scores"],
                                                                    example["music"])
    assert answer["source"] == example["source"] and answer["model"] == example["model"]


def test_the_api_docs_log_example_names_the_shipped_model():
    """docs/api.md's start-up line quotes the shipped model's sha256 (was d8ef8f99fef5, a model ago)."""
    example = (ROOT / "docs" / "api.md").read_text().split("## Logs", 1)[1]
    found = model.checked(config.DEFAULT_MODEL)
    assert f"{found['name']} {found['version']} (sha256 {found['sha256'][:12]}," in example
    assert f'"sha256": "{found["sha256"][:8]}...' in example


def test_a_setting_it_cannot_run_with_stops_the_function_and_the_command_with_one_line(tmp_path, media):
    """The server logs one JSON line naming the variable and exits 2 (a deploy keeps the revision that
    runs); the command line exits 2 too. Both used to end in a traceback that named no variable."""
    command = [os.path.join(os.path.dirname(sys.executable), "functions-framework"), "--target", "classify",
               "--source", str(ROOT / "main.py"), "--host", "127.0.0.1", "--port", str(function_server.free_port())]
    env = dict(os.environ, GENRE_MAX_UPLOAD_MB="abc")
    server = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert server.returncode == 2 and "Traceback" not in server.stderr, server.stderr
    assert [json.loads(line) for line in server.stdout.splitlines()] == [
        {"severity": "ERROR", "message": "GENRE_MAX_UPLOAD_MB='abc': must be a number above 0 and at most 1,000,000; "
                                         "the function does not start"}]
    cli = subprocess.run([sys.executable, "-m", "inference", str(media / "song.flac")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert (cli.returncode, cli.stdout) == (2, "") and cli.stderr == (
        "python -m inference: error: GENRE_MAX_UPLOAD_MB='abc': must be a number above 0 and at most 1,000,000\n")


def test_only_the_path_slash_and_one_of_each_parameter_get_the_page(server):
    """"//" and "/%2F" were the page (werkzeug reads them as "/"), and so was ?features=1&features=1 (any
    parameter twice is 400 bad_parameter, docs/api.md)."""
    for path in ("//", "/%2F", "/%2f/"):
        status, body = curl("--path-as-is", server.url.rstrip("/") + path)
        assert (status, body["error"]["code"]) == (404, "not_found"), path
    status, body = curl(server.url + "?features=1&features=1")
    assert (status, body["error"]["code"]) == (400, "bad_parameter")


def test_the_page_and_get_answers_vary_by_accept_and_unparsable_requests_carry_cors(server):
    """GET / is the page or JSON by its Accept: without Vary a shared cache could answer one with the other.
    gunicorn's own answers (414 here) lacked the CORS header every other error has: a page could not read them."""
    for accept in ("text/html", "application/json"):
        head = subprocess.run(["curl", "-sS", "-i", server.url, "-H", f"Accept: {accept}"], capture_output=True,
                              text=True, check=True).stdout.split("\n\n", 1)[0]  # text: \r\n read as \n
        assert "\nVary: Accept\n" in head, head
    long_line = subprocess.run(["curl", "-sS", "-i", server.url + "?url=" + "a" * 9000], capture_output=True,
                               text=True, check=True).stdout
    assert long_line.startswith("HTTP/1.1 414") and "\nAccess-Control-Allow-Origin: *\n" in long_line


def test_a_link_is_resolved_and_its_audio_fetched_through_the_proxy(model_path, media, served):
    """YTDLP_PROXY: yt-dlp read the page through it, but the audio was fetched from this machine's own
    address, which a site that ties its media links to the address that asked (YouTube) refuses."""
    with local_http.proxy() as (proxy, seen):
        env = dict(os.environ, GENRE_MODEL=str(model_path), GENRE_DEV_ALLOW_LOOPBACK_LINKS="1", YTDLP_PROXY=proxy)
        done = subprocess.run([sys.executable, "-m", "inference", f"{served}/song.flac", "--duration", "6"], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert json.loads(done.stdout)["segments"] == 2
        assert any(method == "GET" and path == "/song.flac" and ranged for method, path, ranged in seen), seen
        wrong = dict(env, YTDLP_PROXY=proxy.replace("secret", "wrong"))
        refused = subprocess.run([sys.executable, "-m", "inference", f"{served}/song.flac"], cwd=ROOT, env=wrong,
                                 capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and json.loads(refused.stdout)["error"] == {
        "code": "source_unreachable",
        "message": "the function's proxy (YTDLP_PROXY) refused its credentials (HTTP 407)"}
