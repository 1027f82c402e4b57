"""inference/resolve.py: yt-dlp's failures become clear errors; the JS runtime ships with us."""
import subprocess

import pytest
from yt_dlp.networking.exceptions import TransportError
from yt_dlp.utils import DownloadError, UnsupportedError

from inference import config, resolve


def download_error(message: str, cause=None) -> DownloadError:
    return DownloadError(f"ERROR: [youtube] abc: {message}", (type(cause), cause, None) if cause else None)


@pytest.mark.parametrize("message, cause, status, code", [
    ("Sign in to confirm you're not a bot. Use --cookies-from-browser or --cookies for the authentication.",
     None, 503, "source_blocked"),
    ("Unsupported URL: https://example.com/", UnsupportedError("https://example.com/"), 422, "unsupported_url"),
    ("Video unavailable. This video is private", None, 422, "source_unavailable"),
    ("Unable to download webpage: timed out", TransportError("timed out"), 504, "timeout"),
    ("Unable to download webpage: connection refused", TransportError("refused"), 502, "source_unreachable"),
    ("Requested format is not available", None, 422, "unsupported_url"),
])
def test_yt_dlp_failures_map_to_clear_errors(message, cause, status, code):
    error = resolve._error(download_error(message, cause))
    assert (error.status, error.code) == (status, code)
    assert "ERROR" not in error.message


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
    monkeypatch.setenv("GENRE_TESTING_ALLOW_LOOPBACK", "1")
    found = resolve.resolve(f"{served}/song.flac", config.load(), 10)
    assert found.media_url == f"{served}/song.flac"
    assert cookies.read_bytes() == before and list(tmp_path.iterdir()) == [cookies]
