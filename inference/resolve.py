"""Resolve a link with yt-dlp, without downloading: the media URL of one audio format and what
is known of the source (title, duration, site). yt-dlp is imported on the first link, not at
start-up: it is a third of the function's import time and uploads never need it."""
import contextlib
import functools
import http.cookiejar
import importlib.metadata
import re
import threading
import time
from dataclasses import dataclass, field

from inference import errors, urlpolicy
from inference.config import Settings
from inference.errors import ClassifyError

# direct http(s) formats only (no HLS/DASH manifests): audio alone if offered, else the smallest
# muxed file; we stream and decode only the analysed window of it
FORMAT = "bestaudio[protocol=https]/bestaudio[protocol=http]/worst[protocol=https]/worst[protocol=http]"
LIVE = ("is_live", "is_upcoming", "post_live")
MAX_PAGE_BYTES = 16 * 2**20  # a page yt-dlp reads, whole and in memory (YouTube's largest, its player: ~3 MB)
PAGE_CHUNK = 2**20  # a page read whole is read this much at a time, counted
BOT_CHECK = re.compile(r"confirm you.re not a bot|sign in to confirm|cookies", re.I)


@dataclass
class Source:
    media_url: str
    headers: dict = field(default_factory=dict)
    title: str | None = None
    duration: float | None = None
    site: str | None = None


class _Pages:
    """The pages yt-dlp reads for one link, each read through a _Capped body (yt-dlp reads a page whole,
    however large); too_large once one passed MAX_PAGE_BYTES. close() closes every one: a response yt-dlp
    let go of unread (a page cut short, an error) would keep its connection until garbage collection."""

    def __init__(self, urlopen):
        self._urlopen, self._opened, self.too_large = urlopen, [], False

    def urlopen(self, request):
        response = self._urlopen(request)
        response.fp = _Capped(response.fp, self)
        self._opened.append(response)
        return response

    def close(self):
        for response in self._opened:
            with contextlib.suppress(Exception):  # whatever state yt-dlp left it in
                response.close()


class _Capped:
    """A page's body, refused once it passes MAX_PAGE_BYTES; everything else is the body's own."""

    def __init__(self, body, pages: _Pages):
        self._body, self._pages, self._read = body, pages, 0

    def read(self, amt: int | None = None, **kwargs) -> bytes:
        """Up to amt bytes; all of the rest for None, read a chunk at a time (never more than the cap whole)."""
        if amt is None or amt < 0:
            return b"".join(iter(lambda: self.read(PAGE_CHUNK, **kwargs), b""))
        data = self._body.read(amt, **kwargs)
        self._read += len(data)
        if self._read > MAX_PAGE_BYTES:
            self._pages.too_large = True
            raise errors.page_too_large(MAX_PAGE_BYTES)
        return data

    def __getattr__(self, name):
        return getattr(self._body, name)


class _Quiet:
    def debug(self, msg): pass
    def info(self, msg): pass
    def warning(self, msg): pass
    def error(self, msg): pass


@functools.cache
def version() -> str:
    """yt-dlp's version, from its package's metadata (without importing it)."""
    return importlib.metadata.version("yt-dlp")


@functools.cache
def _deno_path() -> str | None:
    """For YouTube's JavaScript challenges: the deno binary shipped by the `deno` wheel, wherever
    the platform put it (the function's PATH may not hold the virtualenv's bin/); None: yt-dlp
    looks for a deno on PATH."""
    try:
        import deno
        return deno.find_deno_bin()
    except (ImportError, OSError):
        return None


_first_use = threading.Lock()


def _yt_dlp():
    """The yt_dlp module, imported (and deno looked up) by one thread at a time: the first links
    often arrive together, and neither a package import nor sysconfig's first read (which deno's
    lookup does) is safe to race (seen: sysconfig.get_config_var("EXE") -> None, a 500)."""
    with _first_use:
        import yt_dlp
        _deno_path()
    return yt_dlp


def _live(info: dict, incomplete: bool = False) -> str | None:
    """yt-dlp's match_filter: a live stream is handed back before format selection (which would
    fail on its HLS-only formats), so that resolve() can say it is live."""
    return "live" if info.get("is_live") or info.get("live_status") in LIVE else None


def _options(settings: Settings, timeout: float) -> dict:
    options = {"format": FORMAT, "noplaylist": True, "playlist_items": "1", "skip_download": True,
               "quiet": True, "no_warnings": True, "logger": _Quiet(), "cachedir": False,
               "socket_timeout": max(1.0, min(timeout, 15.0)), "noprogress": True, "match_filter": _live}
    if _deno_path():
        options["js_runtimes"] = {"deno": {"path": _deno_path()}}
    if settings.proxy:
        options["proxy"] = settings.proxy
    return options


def _error(exc) -> ClassifyError:
    """The ClassifyError for a yt-dlp DownloadError."""
    from yt_dlp.networking.exceptions import TransportError
    from yt_dlp.utils import ExtractorError, UnsupportedError
    cause = exc.exc_info[1] if exc.exc_info else None
    message = re.sub(r"^ERROR:\s*(\[[^\]]+\]\s*)?", "", str(exc)).strip()
    if BOT_CHECK.search(message):
        return errors.source_blocked()
    if isinstance(cause, UnsupportedError) or "Unsupported URL" in message:
        return errors.unsupported_url()
    status = getattr(cause, "status", None) or getattr(getattr(cause, "cause", None), "status", None)
    if status:
        return errors.upstream_status(status)
    if isinstance(cause, TransportError):
        if "timed out" in str(cause).lower():
            return errors.timeout("the site did not answer in time")
        return errors.source_unreachable()
    if "timed out" in message.lower():
        return errors.timeout("the site did not answer in time")
    if "requested format is not available" in message.lower():
        return errors.unsupported_url("the link offers no audio this function can stream")
    if isinstance(cause, ExtractorError) and not cause.expected:  # a page it no longer understands
        return errors.extractor_outdated(version())
    return errors.source_unavailable(message[:300])


def _request_error(exc) -> ClassifyError:
    """The ClassifyError for a RequestError yt-dlp lets through: a redirect, or a playlist's entry, to
    a URL of a scheme it has no handler for or refuses (seen: file:, data:, ftp:, gopher:)."""
    from yt_dlp.networking.exceptions import TransportError
    if isinstance(exc, TransportError):
        return errors.source_unreachable()
    return errors.url_not_allowed("the link leads to a URL that is not http(s)")


def _failure(exc: Exception | None, pages: _Pages, guarded) -> ClassifyError | None:
    """The ClassifyError for what extract_info raised (None: not one we know, a defect), or for its
    pages cut short (exc None)."""
    from yt_dlp.networking.exceptions import RequestError
    from yt_dlp.utils import DownloadError
    if pages.too_large:
        return errors.page_too_large(MAX_PAGE_BYTES)
    if guarded.cut_off:  # whatever broke when its connections were cut
        return errors.timeout("the site did not answer in time")
    if isinstance(exc, ClassifyError):
        return exc
    if isinstance(exc, RequestError):  # not wrapped in a DownloadError: a URL no handler takes (file:, data:, ftp:)
        return _request_error(exc)
    if isinstance(exc, DownloadError):
        if urlpolicy.refused():  # a redirect or a request of the extractor to a private address
            return errors.url_not_allowed()
        return _error(exc)
    return None


def _load_cookies(jar, path: str):
    """YTDLP_COOKIES into a link's jar; checked at start (config), so a failure here is a file changed since
    (a secret's new version): source_blocked, the operator's to fix, never a traceback per link."""
    try:
        jar.load(path, ignore_discard=True, ignore_expires=True)
    except (OSError, http.cookiejar.LoadError) as exc:
        raise errors.source_blocked(f"the function's cookies file (YTDLP_COOKIES) could not be read "
                                    f"({exc.__class__.__name__}); its operator must fix it") from None


def resolve(url: str, settings: Settings, timeout: float, *, cut_by=None) -> Source:
    """The media behind `url`; ClassifyError for refused, unreadable, live or too long sources, for a
    page over MAX_PAGE_BYTES, and a timeout when `timeout` seconds pass (its connections are cut then,
    however slowly a site drips). cut_by, if given, is handed the function that cuts them sooner (its
    client left)."""
    yt_dlp = _yt_dlp()
    deadline = time.monotonic() + timeout
    urlpolicy.check(url, settings)
    with yt_dlp.YoutubeDL(_options(settings, timeout)) as ydl, \
            urlpolicy.guard(settings, urlpolicy.addresses(settings.proxy), deadline) as guarded:
        if cut_by:
            cut_by(guarded.cut)
        pages = _Pages(ydl.urlopen)
        ydl.urlopen = pages.urlopen  # every request of the extractors goes through YoutubeDL.urlopen
        if settings.cookies_file:  # loaded, never written back (the secret mount is read-only)
            _load_cookies(ydl.cookiejar, settings.cookies_file)
        try:
            info = ydl.extract_info(url, download=False)
        except Exception as exc:
            failure = _failure(exc, pages, guarded)
            if failure is None:
                raise
            raise failure from None
        finally:
            pages.close()  # the sites hung up on now (the guard's duplicates close as it ends)
        if pages.too_large or guarded.cut_off:  # what yt-dlp made of a page cut short is not to be trusted
            raise _failure(None, pages, guarded)
    while info.get("_type") == "playlist":
        entries = [e for e in info.get("entries") or [] if e]
        if not entries:
            raise errors.unsupported_url()
        info = entries[0]
    if _live(info):
        raise errors.live_stream()
    duration = info.get("duration")
    if duration and duration > settings.max_source_minutes * 60:
        raise errors.source_too_long(duration, settings.max_source_minutes)
    if not info.get("url"):
        raise errors.unsupported_url("the link offers no audio this function can stream")
    return Source(media_url=info["url"], headers=dict(info.get("http_headers") or {}),
                  title=info.get("title"), duration=float(duration) if duration else None,
                  site=info.get("extractor_key") if info.get("extractor_key") != "Generic"
                  else info.get("webpage_url_domain"))
