"""inference/resolve.py: yt-dlp's failures become clear errors; the JS runtime ships with us."""
import contextlib
import importlib.metadata
import io
import socket
import ssl
import subprocess
import threading
import time

import pytest
import trustme
import yt_dlp
from yt_dlp.extractor.common import InfoExtractor
from yt_dlp.networking.exceptions import RequestError, TransportError
from yt_dlp.utils import DownloadError, RegexNotFoundError, UnsupportedError

from inference import config, resolve
from inference.errors import ClassifyError

import local_http


def download_error(message: str, cause=None) -> DownloadError:
    return DownloadError(f"ERROR: [youtube] abc: {message}", (type(cause), cause, None) if cause else None)


@pytest.mark.parametrize("message, cause, status, code", [
    ("Sign in to confirm you're not a bot. Use --cookies-from-browser or --cookies for the authentication.",
     None, 503, "source_blocked"),
    ("Unsupported URL: https://example.com/", UnsupportedError("https://example.com/"), 422, "unsupported_url"),
    ("Unsupported URL: https://example.com/", None, 422, "unsupported_url"),
    ("Video unavailable. This video is private", None, 422, "source_unavailable"),
    ("Unable to download webpage: timed out", TransportError("timed out"), 504, "timeout"),
    ("Unable to download webpage: connection refused", TransportError("refused"), 502, "source_unreachable"),
    ("Requested format is not available", None, 422, "unsupported_url"),
])
def test_yt_dlp_failures_map_to_clear_errors(message, cause, status, code):
    error = resolve._error(download_error(message, cause))
    assert (error.status, error.code) == (status, code)
    assert "ERROR" not in error.message


def test_an_extractor_that_no_longer_reads_the_page_says_to_update_yt_dlp():
    """yt-dlp's own "please report this issue" failures (its expected=False errors) mean a changed site."""
    cause = RegexNotFoundError("Unable to extract player response")
    error = resolve._error(download_error(str(cause), cause))
    assert (error.status, error.code) == (502, "extractor_outdated")
    assert f"yt-dlp {importlib.metadata.version('yt-dlp')} could not read" in error.message
    assert "YTDLP_VERSION=latest ./deploy.sh" in error.message


class ChangedSiteIE(InfoExtractor):
    """An extractor as yt-dlp writes them, for a site that has changed since: its page no longer
    holds what the extractor looks for."""
    _VALID_URL = r"http://127\.0\.0\.1:\d+/changed-site/(?P<id>\w+)"

    def _real_extract(self, url):
        video_id = self._match_id(url)
        page = self._download_webpage(url, video_id)
        return {"id": video_id, "url": self._search_regex(r"var streamUrl = \"([^\"]+)\"", page, "stream URL")}


def test_a_changed_site_through_a_real_extractor_is_extractor_outdated(loopback, tmp_path, monkeypatch):
    (tmp_path / "changed-site").mkdir()
    (tmp_path / "changed-site" / "abc").write_text("<html><script>window.player = {streams: []}</script></html>")
    defaults = yt_dlp.YoutubeDL.add_default_info_extractors
    monkeypatch.setattr(yt_dlp.YoutubeDL, "add_default_info_extractors",
                        lambda ydl: (ydl.add_info_extractor(ChangedSiteIE()), defaults(ydl)))
    with local_http.Server(tmp_path) as url, pytest.raises(ClassifyError) as refused:
        resolve.resolve(f"{url}/changed-site/abc", loopback, 10)
    assert (refused.value.status, refused.value.code) == (502, "extractor_outdated")


@pytest.mark.parametrize("error, status, code", [
    (RequestError("No connection adapters were found for 'data:,x'"), 400, "url_not_allowed"),
    (RequestError("file:// URLs are disabled by default in yt-dlp for security reasons"), 400, "url_not_allowed"),
    (TransportError("connection reset"), 502, "source_unreachable"),
])
def test_request_errors_that_escape_yt_dlp_map_to_clear_errors(error, status, code):
    """extract_info lets these through unwrapped (a redirect to file: or data:, a playlist entry at file://)."""
    mapped = resolve._request_error(error)
    assert (mapped.status, mapped.code) == (status, code)


def test_bot_check_message_says_what_to_configure():
    error = resolve._error(download_error("Sign in to confirm you’re not a bot"))
    assert "YTDLP_COOKIES" in error.message and "YTDLP_PROXY" in error.message


def test_deno_from_the_wheel_is_given_to_yt_dlp():
    path = resolve._options(config.load(), 10)["js_runtimes"]["deno"]["path"]
    version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("deno ")


def test_proxy_reaches_yt_dlp(monkeypatch):
    monkeypatch.setenv("YTDLP_PROXY", "http://proxy.example:3128")
    options = resolve._options(config.load(), 10)
    assert options["proxy"] == "http://proxy.example:3128" and options["cachedir"] is False


def test_cookies_file_is_read_and_never_written(tmp_path, monkeypatch, served):
    """Cloud Run mounts secrets read-only; yt-dlp would save its cookie jar back on exit."""
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tSID\tsecret\n")
    cookies.chmod(0o444)
    before = cookies.read_bytes()
    monkeypatch.setenv("YTDLP_COOKIES", str(cookies))
    monkeypatch.setenv("GENRE_DEV_ALLOW_LOOPBACK_LINKS", "1")
    found = resolve.resolve(f"{served}/song.flac", config.load(), 10)
    assert found.media_url == f"{served}/song.flac"
    assert cookies.read_bytes() == before and list(tmp_path.iterdir()) == [cookies]


def test_a_cookies_file_changed_after_start_is_source_blocked_not_a_traceback(tmp_path, monkeypatch, served):
    """Checked at start (config); a secret's new version that yt-dlp cannot read fails every link: 503, named."""
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tSID\tsecret\n")
    monkeypatch.setenv("YTDLP_COOKIES", str(cookies))
    monkeypatch.setenv("GENRE_DEV_ALLOW_LOOPBACK_LINKS", "1")
    settings = config.load()
    cookies.write_text('[{"name": "SID", "value": "secret"}]')
    with pytest.raises(ClassifyError) as refused:
        resolve.resolve(f"{served}/song.flac", settings, 10)
    assert (refused.value.status, refused.value.code, refused.value.message) == (
        503, "source_blocked", "the function's cookies file (YTDLP_COOKIES) could not be read (LoadError); its "
                               "operator must fix it")


@pytest.fixture
def loopback(monkeypatch):
    monkeypatch.setenv("GENRE_DEV_ALLOW_LOOPBACK_LINKS", "1")
    return config.load()


def test_a_direct_link_is_named_by_its_domain(loopback, served):
    found = resolve.resolve(f"{served}/song.flac", loopback, 10)
    assert found.site == served.removeprefix("http://") and found.duration is None  # yt-dlp's domain keeps the port


def test_a_page_with_two_clips_resolves_to_the_first(loopback, served, media):
    (media / "two.html").write_text('<!doctype html><html><head><title>Two</title></head><body>'
                                    '<audio src="song.flac"></audio><audio src="other.flac"></audio></body></html>')
    try:
        found = resolve.resolve(f"{served}/two.html", loopback, 10)
    finally:
        (media / "two.html").unlink()
    assert found.media_url == f"{served}/song.flac"


@pytest.mark.parametrize("left, socket_timeout", [(0.2, 1.0), (7.0, 7.0), (100.0, 15.0)])
def test_yt_dlp_waits_on_a_socket_at_most_the_time_left_within_1_to_15_s(left, socket_timeout):
    assert resolve._options(config.load(), left)["socket_timeout"] == socket_timeout


def test_a_long_upstream_message_is_cut_at_300_characters():
    error = resolve._error(download_error("Video unavailable: " + "x" * 400))
    assert error.code == "source_unavailable" and error.message == ("abc: Video unavailable: " + "x" * 400)[:300]


@pytest.mark.parametrize("broken", ["missing", "no binary"])
def test_without_the_deno_wheel_yt_dlp_looks_for_deno_itself(monkeypatch, broken):
    import sys

    import deno
    if broken == "missing":
        monkeypatch.setitem(sys.modules, "deno", None)  # import deno raises ImportError
    else:
        monkeypatch.setattr(deno, "find_deno_bin", lambda: (_ for _ in ()).throw(FileNotFoundError("deno")))
    resolve._deno_path.cache_clear()
    try:
        assert resolve._deno_path() is None and "js_runtimes" not in resolve._options(config.load(), 10)
    finally:
        resolve._deno_path.cache_clear()


@pytest.mark.parametrize("info, live", [({"is_live": True}, True), ({"live_status": "is_upcoming"}, True),
                                        ({"live_status": "post_live"}, True), ({"live_status": "not_live"}, False),
                                        ({"is_live": False, "live_status": "was_live"}, False)])
def test_what_counts_as_live(info, live):
    assert resolve._live(info) == ("live" if live else None)


def test_a_dripping_https_page_is_hung_up_on_at_the_deadline(loopback, monkeypatch):
    """TLS wraps the socket the URL policy saw connect: the cut still reaches it (through its duplicate).
    yt-dlp is told not to check the test's certificate; what is tested is the hang-up."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(context)
    listener = socket.create_server(("127.0.0.1", 0))
    hung_up = []

    def drip():
        with context.wrap_socket(listener.accept()[0], server_side=True) as page:
            page.recv(4096)
            page.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n")
            began = time.monotonic()
            with contextlib.suppress(OSError):
                while True:  # a byte every 0.2 s: no read of it times out
                    page.sendall(b" ")
                    time.sleep(0.2)
            hung_up.append(time.monotonic() - began)

    threading.Thread(target=drip, daemon=True).start()
    options = resolve._options
    monkeypatch.setattr(resolve, "_options", lambda *args: {**options(*args), "nocheckcertificate": True})
    with pytest.raises(ClassifyError) as cut:
        resolve.resolve(f"https://127.0.0.1:{listener.getsockname()[1]}/page", loopback, 2.0)
    assert (cut.value.status, cut.value.code) == (504, "timeout")
    for _ in range(50):
        if hung_up:
            break
        time.sleep(0.1)
    listener.close()
    assert hung_up and hung_up[0] < 4, hung_up


def test_a_page_read_whole_is_read_a_chunk_at_a_time_up_to_the_cap():
    """yt-dlp's urllib handler reads a page with read(): it was read whole, however large, before it was counted."""
    class Body(io.BytesIO):
        asked: list = []

        def read(self, amt=None):
            self.asked.append(amt)
            return super().read(amt)

    body, pages = Body(b"x" * (resolve.MAX_PAGE_BYTES + 50 * 2**20)), resolve._Pages(None)
    with pytest.raises(ClassifyError) as too_large:
        resolve._Capped(body, pages).read()
    assert too_large.value.code == "source_too_large" and pages.too_large
    assert max(Body.asked) == resolve.PAGE_CHUNK and len(Body.asked) == resolve.MAX_PAGE_BYTES // resolve.PAGE_CHUNK + 1
