"""gs:// links read by the function (inference/storage.py) from a real Cloud Storage emulator on 127.0.0.1
(tests/gcs.py): allowed buckets only, ranged reads of the window, the caps, and every refusal's code."""
import http.server
import json
import time

import pytest
from test_function import check_answer

from inference import storage

import function_server
import local_http
from conftest import BUCKET_CLIPS, GTZAN, service_account_key

ROCK = "gs://library/tracks/" + BUCKET_CLIPS[0]


@pytest.fixture
def in_bucket(client, reconfigure, gcs, monkeypatch):
    """The function in this process, reading the emulator's bucket `library` only."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)
    reconfigure(allowed_buckets=("library",))
    return client


def test_an_allowed_object_is_classified_reading_only_the_window(in_bucket, gcs):
    answer = in_bucket.post("/", json={"url": ROCK, "start": 24, "duration": 3})
    assert answer.status_code == 200, answer.json
    check_answer(answer.json, segments=1)
    assert answer.json["source"]["kind"] == "link" and answer.json["source"]["site"] == "storage"
    assert answer.json["source"]["title"] == "rock.00000.flac"
    assert answer.json["source"]["bytes_fetched"] < 0.5 * (GTZAN / BUCKET_CLIPS[0]).stat().st_size


def test_the_same_object_gives_the_same_scores_as_its_upload(in_bucket):
    by_link = in_bucket.post("/", json={"url": ROCK, "start": 6, "duration": 12}).json
    upload = in_bucket.post("/?start=6&duration=12", data=(GTZAN / BUCKET_CLIPS[0]).read_bytes(),
                            content_type="audio/flac").json
    assert by_link["scores"] == upload["scores"] and by_link["window"] == upload["window"]


@pytest.mark.parametrize("url, status, code", [
    ("gs://private/song.flac", 400, "bucket_not_allowed"),
    ("gs://library/tracks/rock/none.flac", 422, "source_unavailable"),
    ("gs://nobucket/x.flac", 400, "bucket_not_allowed"),
    ("gs://library/bad/noise.mp3", 422, "not_audio"),
    ("gs://library/bad/empty.flac", 422, "not_audio"),
    ("gs://library", 400, "invalid_url"),
    ("gs://library/", 400, "invalid_url"),
    ("gs://Library_/x.flac", 400, "invalid_url"),
    ("gs://library/a\nb.flac", 400, "invalid_url"),
], ids=["other-bucket", "missing-object", "no-bucket", "not-audio", "empty", "no-object", "no-object-slash",
        "bad-bucket-name", "newline"])
def test_bad_gs_links_get_their_code(in_bucket, gcs, url, status, code):
    before = len(gcs.requests())
    answer = in_bucket.post("/", json={"url": url})
    assert (answer.status_code, answer.json["error"]["code"]) == (status, code), answer.json
    if status == 400:
        assert len(gcs.requests()) == before  # refused before any read


def test_a_link_to_one_generation_reads_that_version_and_not_a_rewrite(in_bucket, gcs, gtzan):
    """gs://B/O#GENERATION (gsutil's spelling): that version is read; once rewritten, it is no more."""
    blob = storage.client().bucket("library").blob("pinned/one.flac")
    blob.upload_from_filename(gtzan / BUCKET_CLIPS[0])
    first = storage.version("gs://library/pinned/one.flac")
    assert first == f"gs://library/pinned/one.flac#{blob.generation}"
    live = in_bucket.post("/", json={"url": "gs://library/pinned/one.flac", "duration": 6}).json
    answer = in_bucket.post("/", json={"url": first, "duration": 6})
    assert answer.status_code == 200 and answer.json["scores"] == live["scores"], answer.json
    assert answer.json["source"]["title"] == "one.flac"
    assert any(f"generation={blob.generation}" in line for line in gcs.requests()[-3:])
    blob.upload_from_filename(gtzan / BUCKET_CLIPS[2])
    gone = in_bucket.post("/", json={"url": first, "duration": 6})
    assert (gone.status_code, gone.json["error"]["code"]) == (422, "source_unavailable")
    assert gone.json["error"]["message"].endswith(
        f"at generation {first.rpartition('#')[2]} (rewritten or deleted since)")
    assert storage.version("gs://library/pinned/one.flac") != first


def test_no_bucket_is_read_by_default(client, gcs, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)
    answer = client.post("/", json={"url": ROCK})
    assert (answer.status_code, answer.json["error"]["code"]) == (400, "bucket_not_allowed")
    assert "none (GENRE_ALLOWED_BUCKETS is empty)" in answer.json["error"]["message"]


def test_the_byte_cap_and_the_duration_cap_hold(in_bucket, reconfigure, settings):
    reconfigure(allowed_buckets=("library",), max_fetch_bytes=100_000)
    answer = in_bucket.post("/", json={"url": ROCK, "start": 0, "duration": 30})
    assert (answer.status_code, answer.json["error"]["code"]) == (422, "source_too_large")
    reconfigure(allowed_buckets=("library",), max_source_minutes=0.25)
    answer = in_bucket.post("/", json={"url": ROCK})
    assert (answer.status_code, answer.json["error"]["code"]) == (422, "source_too_long")


class Refusing(http.server.BaseHTTPRequestHandler):
    """What Cloud Storage answers an identity without storage.objects.get on the bucket (no emulator
    enforces IAM)."""

    def do_GET(self):
        body = json.dumps({"error": {"code": 403, "message": "caller does not have storage.objects.get access"}})
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


def test_a_read_iam_refuses_is_403_storage_forbidden(client, reconfigure, monkeypatch):
    reconfigure(allowed_buckets=("library",))
    with local_http.serving(Refusing) as url:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", url.removeprefix("http://"))  # host:port, as gcloud sets it
        answer = client.post("/", json={"url": ROCK})
    assert (answer.status_code, answer.json["error"]["code"]) == (403, "storage_forbidden")


class Stalling(http.server.BaseHTTPRequestHandler):
    """Storage that sends an object's headers, then nothing (a read the time budget must end)."""

    def do_GET(self):
        self.send_response(206)
        self.send_header("Content-Type", "audio/flac")
        self.send_header("Content-Range", "bytes 0-999999/1000000")
        self.send_header("Content-Length", "1000000")
        self.end_headers()
        time.sleep(4)

    def log_message(self, *args):
        pass


def test_a_read_that_stalls_ends_at_the_time_budget(client, reconfigure, monkeypatch):
    reconfigure(allowed_buckets=("library",), time_budget=1.0)
    with local_http.serving(Stalling) as url:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
        began = time.monotonic()
        answer = client.post("/", json={"url": ROCK})
    assert (answer.status_code, answer.json["error"]["code"]) == (504, "timeout")
    assert time.monotonic() - began < 3.5


def test_the_deployed_function_reads_the_bucket_its_setting_names(gcs, model_path, tmp_path):
    """functions-framework in its own process: GENRE_ALLOWED_BUCKETS and STORAGE_EMULATOR_HOST from the
    environment, as deploy.sh and Cloud Run set them."""
    import urllib.request
    with function_server.start(tmp_path, GENRE_MODEL=str(model_path), GENRE_ALLOWED_BUCKETS="library",
                               **gcs.env) as server:
        for url, status in ((ROCK, 200), ("gs://private/song.flac", 400)):
            request = urllib.request.Request(server.url, json.dumps({"url": url}).encode(),
                                             {"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    got, body = response.status, json.load(response)
            except urllib.error.HTTPError as exc:
                got, body = exc.code, json.load(exc)
            assert got == status, body
    assert body["error"]["code"] == "bucket_not_allowed"


def test_parse_names_bucket_and_object():
    assert storage.parse("gs://b-1.x/a/b c.flac") == storage.Location("b-1.x", "a/b c.flac")
    assert storage.parse("gs://bkt/", prefix=True) == storage.Location("bkt", "")
    assert storage.parse("gs://bkt/a/x.flac#1796295289997305") == storage.Location("bkt", "a/x.flac", 1796295289997305)
    assert str(storage.Location("b", "a/x.flac", 12)) == "gs://b/a/x.flac#12"
    assert storage.parse("gs://bkt/a#b.flac").name == "a#b.flac" and storage.parse("gs://bkt/x#0").name == "x#0"
    assert storage.parse("gs://bkt/p#3", prefix=True) == storage.Location("bkt", "p#3")
    assert storage.media_url(storage.Location("b", "x", 12)).endswith("/o/x?alt=media&generation=12")
    assert storage.media_url(storage.Location("b", "a/b c.flac")).endswith("/storage/v1/b/b/o/a%2Fb%20c.flac?alt=media")


class AccessTokens(local_http.TokenEndpoint):
    """Access tokens access-1, access-2... of an hour."""
    issued: list

    def grant(self) -> dict:
        self.issued.append(f"access-{len(self.issued) + 1}")
        return {"access_token": self.issued[-1], "expires_in": 3600, "token_type": "Bearer"}


def test_the_function_reads_with_its_own_identitys_access_token(tmp_path, monkeypatch):
    """Application Default Credentials (here a service account's key whose token_uri is on 127.0.0.1):
    one token for the reads until it is stale, read-only scope; none for an emulator."""
    handler = type("Issuing", (AccessTokens,), {"issued": []})
    with local_http.serving(handler) as token_url:
        key = service_account_key(tmp_path, token_url, "fn@p.iam.gserviceaccount.com")
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
        monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
        storage._credentials.cache_clear()
        try:
            assert storage._authorization() == storage._authorization() == {"Authorization": "Bearer access-1"}
            assert storage._credentials().scopes == [storage.READ_SCOPE]
            storage._credentials().token = None  # stale: refreshed on the next read
            assert storage._authorization() == {"Authorization": "Bearer access-2"}
            monkeypatch.setenv("STORAGE_EMULATOR_HOST", "127.0.0.1:9")
            assert storage._authorization() == {}
        finally:
            storage._credentials.cache_clear()
    assert handler.issued == ["access-1", "access-2"]
