"""inference/remote.py's RemoteFile against local servers: what it asks for, what it follows,
what it keeps, and when it gives up."""
import contextlib
import dataclasses
import http.server
import io
import ssl
import time
import urllib.parse
from functools import partial

import numpy as np
import pytest

from inference import pipeline, remote
from inference.errors import ClassifyError

import local_http


class Recorder(local_http.Handler):
    """Serves the folder, noting each request's path and headers; /drop-once/NAME hangs up on the
    first request without an answer, then serves NAME."""
    seen: list = []

    def send_head(self):
        self.seen.append((self.path, dict(self.headers)))
        if self.path.startswith("/drop-once/"):
            if sum(path == self.path for path, _ in self.seen) == 1:
                self.close_connection = True
                return None
            self.path = self.path.removeprefix("/drop-once")
        return super().send_head()


@contextlib.contextmanager
def recording(folder, tls=None):
    """(port, requests): `folder` served with ranges (over TLS with an ssl context), and each
    request (path, headers)."""
    handler = type("Fresh", (Recorder,), {"seen": []})
    with local_http.serving(partial(handler, directory=str(folder)), tls) as url:
        yield int(url.rsplit(":", 1)[1]), handler.seen


@pytest.fixture
def recorded(media):
    """(url, requests): the media folder on http://127.0.0.1:PORT, and each request (path, headers)."""
    with recording(media) as (port, seen):
        yield f"http://127.0.0.1:{port}", seen


def open_remote(url, settings, seconds=10, headers=None):
    return remote.RemoteFile(url, settings, deadline=time.monotonic() + seconds, headers=headers)


def test_reads_a_chunk_when_no_size_is_given_and_nothing_for_zero(settings, recorded, media):
    url, _ = recorded
    data = (media / "song.flac").read_bytes()
    with open_remote(f"{url}/song.flac", settings) as media_file:
        assert media_file.read(0) == b"" and media_file.tell() == 0
        chunk = media_file.read()  # what has come, up to a chunk
        assert 1 < len(chunk) <= remote.CHUNK and chunk == data[:len(chunk)] and media_file.tell() == len(chunk)
        assert media_file.read(10) == data[len(chunk):len(chunk) + 10]


def test_what_it_sends(settings, recorded):
    url, requests = recorded
    with open_remote(f"{url}/song.flac", settings, headers={"Referer": "https://site.example/", "User-Agent": "UA"}) \
            as media_file:
        media_file.seek(1000)
        media_file.read(10)  # a little ahead: read on through the open response
        media_file.seek(300_000)
        media_file.read(10)
        media_file.read(10)  # on from there: the same response
    (first_path, first), (_, second) = requests
    assert first_path == "/song.flac" and "Range" not in first
    assert second["Range"] == f"bytes={300_000 - remote.BACK_BYTES}-"
    for headers in (first, second):
        assert headers["Referer"] == "https://site.example/" and headers["User-Agent"] == "UA"
        assert headers["Accept-Encoding"] == "identity" and headers["Host"] == urllib.parse.urlsplit(url).netloc


def test_what_was_read_is_kept_for_the_seeks_that_follow(settings, recorded, media):
    """FFmpeg's probe of a FLAC's end, then its return to the start: one range for the end (from
    BACK_BYTES before it), the steps back and the start from what was kept (was: a GET a seek, 10)."""
    url, requests = recorded
    data = (media / "song.flac").read_bytes()
    with open_remote(f"{url}/song.flac", settings) as media_file:
        assert exactly(media_file, 40_000) == data[:40_000]
        for back in (1_000, 3_000, 7_000, 15_000, 11_000, 4_000):
            media_file.seek(-back, io.SEEK_END)
            assert exactly(media_file, back) == data[-back:]
        media_file.seek(8_000)
        assert exactly(media_file, 100) == data[8_000:8_100]
        media_file.seek(0)
        assert exactly(media_file, 30_000) == data[:30_000]
    tail = len(data) - 1_000 - remote.BACK_BYTES
    assert [headers.get("Range") for _, headers in requests] == [None, f"bytes={tail}-"]


def exactly(media_file, size: int) -> bytes:
    """`size` bytes, read as the decoder reads: as many calls as it takes (a read gives what has come)."""
    data = b""
    while len(data) < size and (more := media_file.read(size - len(data))):
        data += more
    return data


def test_a_user_agent_of_its_own_when_the_site_names_none(settings, recorded):
    url, requests = recorded
    open_remote(f"{url}/song.flac", settings).close()
    assert requests[0][1]["User-Agent"] == remote.USER_AGENT


def test_size_and_seeking(settings, recorded, media):
    url, requests = recorded
    data = (media / "song.flac").read_bytes()
    with open_remote(f"{url}/song.flac", settings) as media_file:
        assert media_file.seekable() and media_file.size == len(data)
        assert media_file.seek(-10, io.SEEK_END) == len(data) - 10 and media_file.read(100) == data[-10:]
        assert media_file.seek(5) == 5 and media_file.seek(3, io.SEEK_CUR) == 8
        assert media_file.read(4) == data[8:12]
        assert media_file.seek(len(data) + 99) == len(data) and media_file.seek(-5) == 0
        assert media_file.read(4) == b"fLaC"
    assert media_file.fetched < len(data) // 2  # ranges: no second download of the whole file


def test_without_ranges_what_was_read_is_kept_for_seeking_back(settings, media):
    """A read far ahead is the end of the file (FFmpeg's probes of the end cost no download) until
    skip_ahead is cleared; then it reads on to there, and what came is kept."""
    data = (media / "song.flac").read_bytes()
    with local_http.Server(media, ranges=False) as url, open_remote(f"{url}/song.flac", settings) as media_file:
        assert not media_file.ranges and media_file.skip_ahead
        media_file.seek(-128, io.SEEK_END)
        assert media_file.read(128) == b"" and media_file.fetched <= 2 * remote.CHUNK
        media_file.seek(4)
        assert media_file.read(10) == data[4:14]
        media_file.skip_ahead = False
        media_file.seek(200_000)
        assert media_file.read(10) == data[200_000:200_010]
        media_file.seek(4)
        assert media_file.read(10) == data[4:14]
        assert media_file.fetched <= 200_000 + 2 * remote.CHUNK  # once, in chunks, up to what was asked


class LengthOnlyForRanges(local_http.Handler):
    """Offers ranges, but states no Content-Length for the whole file (it closes the connection at the end)."""

    def send_head(self):
        if "Range" in self.headers:
            return super().send_head()
        f = open(self.translate_path(self.path), "rb")  # noqa: SIM115 (the server closes it)
        self.send_response(200)
        self.send_header("Content-Type", "audio/flac")
        self.end_headers()
        return f


def test_a_size_first_stated_by_a_range_answer_counts_from_the_start(settings, media):
    data = (media / "song.flac").read_bytes()
    with local_http.serving(partial(LengthOnlyForRanges, directory=str(media))) as url, \
            open_remote(f"{url}/song.flac", settings) as media_file:
        assert media_file.size is None and media_file.ranges
        media_file.seek(1000)
        assert media_file.read(4) == data[1000:1004]
        assert media_file.size == len(data) and media_file.seekable()


def test_a_stream_of_unknown_length_is_not_seekable(settings):
    class Endless(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "audio/mpeg")
            self.end_headers()
            self.wfile.write(b"x" * 1000)

        def log_message(self, *args):
            pass
    with local_http.serving(Endless) as url, open_remote(f"{url}/radio", settings) as media_file:
        assert not media_file.seekable() and media_file.size is None
        with pytest.raises(OSError):
            media_file.seek(0, io.SEEK_END)
        assert media_file.read(10) == b"x" * 10


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_followed(settings, recorded, status):
    url, _ = recorded
    target = urllib.parse.quote(f"{url}/song.flac", safe="")
    with open_remote(f"{url}/redirect?status={status}&to={target}", settings) as media_file:
        assert media_file.read(4) == b"fLaC" and media_file.url == f"{url}/song.flac"


def test_five_redirects_are_followed_and_a_sixth_is_not(settings, recorded):
    url, _ = recorded

    def chain(hops: int) -> str:
        link = f"{url}/song.flac"
        for _ in range(hops):
            link = f"{url}/redirect?to=" + urllib.parse.quote(link, safe="")
        return link
    with open_remote(chain(5), settings) as media_file:
        assert media_file.read(4) == b"fLaC"
    with pytest.raises(ClassifyError) as refused:
        open_remote(chain(6), settings)
    assert refused.value.code == "source_unreachable"
    assert refused.value.message == "the audio link redirects too many times"


def test_a_redirect_without_a_location_is_the_sites_fault(settings, recorded):
    url, _ = recorded
    with pytest.raises(ClassifyError) as refused:
        open_remote(f"{url}/status/301", settings)
    assert refused.value.code == "source_unreachable" and "HTTP 301" in refused.value.message


def test_the_byte_cap_counts_every_byte_read(settings, recorded):
    url, _ = recorded
    capped = dataclasses.replace(settings, max_fetch_bytes=3 * remote.CHUNK)
    with open_remote(f"{url}/song.flac", capped) as media_file:
        while media_file.fetched < capped.max_fetch_bytes:  # up to the cap exactly: allowed
            assert media_file.read(capped.max_fetch_bytes - media_file.fetched)
        with pytest.raises(ClassifyError) as over:
            media_file.read(1)
    assert over.value.code == "source_too_large"


def test_half_a_second_left_is_enough_to_read(settings, recorded):
    url, _ = recorded
    with open_remote(f"{url}/song.flac", settings, seconds=0.5) as media_file:
        assert media_file.read(4) == b"fLaC"


def test_a_source_that_hangs_up_midway_is_cut(settings):
    class HangsUp(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            self.wfile.write(b"fLaC" + bytes(996))

        def log_message(self, *args):
            pass
    with local_http.serving(HangsUp) as url, open_remote(f"{url}/a.flac", settings) as media_file:
        got = b""
        while chunk := media_file.read(4096):
            got += chunk
        assert got == b"fLaC" + bytes(996) and media_file.cut and media_file.fetched == 1000


def test_an_expired_deadline_is_a_timeout(settings, recorded):
    url, _ = recorded
    with pytest.raises(ClassifyError) as late:
        open_remote(f"{url}/song.flac", settings, seconds=0)
    assert (late.value.code, late.value.message) == ("timeout", "fetching the audio took longer than the time budget")


@pytest.fixture
def https(media, tmp_path, monkeypatch):
    """(port, requests): the media folder on https://localhost:PORT with a certificate for
    "localhost" from a test CA, which the client is told to trust (SSL_CERT_FILE, read by OpenSSL)."""
    import trustme
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(context)
    authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    with recording(media, tls=context) as served:
        yield served


def test_https_checks_the_certificate_against_the_host_name(settings, https):
    port, _ = https
    with open_remote(f"https://localhost:{port}/song.flac", settings) as media_file:
        assert media_file.read(4) == b"fLaC"
    with pytest.raises(ClassifyError) as refused:  # the same server, by an address its certificate does not name
        open_remote(f"https://127.0.0.1:{port}/song.flac", settings)
    assert refused.value.code == "source_unreachable" and "SSLError" in refused.value.message


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_dropped_connection_is_not_retried(settings, request, scheme):
    if scheme == "https":
        port, requests = request.getfixturevalue("https")
        url = f"https://localhost:{port}"
    else:
        url, requests = request.getfixturevalue("recorded")
    with pytest.raises(ClassifyError) as failed:
        open_remote(f"{url}/drop-once/song.flac", settings)
    assert failed.value.code == "source_unreachable" and len(requests) == 1


def test_what_ffmpeg_returns_to_is_kept_past_keep_bytes(settings, media, tmp_path):
    """A 30-s FLAC followed by 8 MB of junk, more than is kept: FFmpeg probes the end back through
    the junk, then returns to the start. What is far from where it reads goes to keep what is near
    (was: whatever came first stayed, 190 GETs and 3.3 times the file)."""
    data = (media / "song.flac").read_bytes() + np.random.default_rng(0).bytes(remote.KEEP_BYTES)
    (tmp_path / "junk.flac").write_bytes(data)
    with recording(tmp_path) as (port, requests):
        answer = pipeline.link(f"http://127.0.0.1:{port}/junk.flac", settings)
    assert answer["window"] == {"start": pytest.approx(0.007, abs=0.01), "duration": 30.0}
    assert answer["source"]["bytes_fetched"] < 2 * len(data) and len(requests) < 40
