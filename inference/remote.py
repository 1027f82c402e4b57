"""A seekable, read-only file over HTTP(S) for the decoder: every connection (and every redirect)
passes the URL policy and goes to the address it checked; bytes and time are capped. Seeks use
Range requests where the server offers them; otherwise all that was read is kept in memory (within
the byte cap) so that seeking back costs no second download, and a read far ahead of what came
(FFmpeg probing a file's end for tags, a length or an index) is answered as the end of the file
unless skip_ahead is cleared (pipeline.window: where what is at the end is needed).

With ranges, what was read is kept too (up to KEEP_BYTES; once that is full, a seek for a new
range drops what lies farthest from it), and a seek asks for a new range only where nothing kept or
on its way covers it: FFmpeg probes a file's end by stepping back from it
(1, 2, 4, 8 KiB...) and then returns to the start, which cost a GET each (10 for a 30-s FLAC).
A seek a little ahead of the open response reads on through it (READ_ON_BYTES), and a new range
starts BACK_BYTES before the seek, for the steps back that follow."""
import io
import time
from urllib.parse import unquote, urljoin, urlsplit

import urllib3

from inference import errors, urlpolicy
from inference.config import Settings

MAX_REDIRECTS = 5
CONNECT_TIMEOUT_S = 5.0
CHUNK = 2**16
KEEP_BYTES = 8 * 2**20  # with ranges, bytes kept for seeks back (all of a 30-s window's, compressed)
READ_ON_BYTES = 2**16  # a seek at most this far ahead of the open response (without ranges: of all read) reads on
BACK_BYTES = 2**16  # a new range starts this far before the seek (FFmpeg's probes step back from it)
USER_AGENT = "genre-classifier/1.0"


class RemoteFile(io.RawIOBase):
    """The bytes of `url`, fetched on demand. `check` passes each URL (the link's policy by default),
    `refused` is the error for a status other than 200 and 206, and `ranged` asks for a range from the
    first request on (a server that answers Accept-Ranges only to a Range)."""

    def __init__(self, url: str, settings: Settings, deadline: float, headers: dict | None = None, *,
                 check=urlpolicy.check, refused=errors.upstream_status, ranged: bool = False,
                 proxy: str | None = None):
        super().__init__()
        self.url, self.settings, self.deadline, self.proxy = url, settings, deadline, proxy
        self.headers = dict(headers or {})
        self.check, self.refused, self.ranged_first = check, refused, ranged
        self.position, self.fetched, self.size, self.ranges = 0, 0, None, False
        self.cut = False  # the source hung up before the end
        self._response, self._at = None, 0  # the open response and the offset it will read next
        self._spans: dict[int, bytearray] = {}  # start -> the bytes read from there on (without ranges: one, at 0)
        self._open(0)
        self.skip_ahead = not self.ranges and self.size is not None  # see read

    def _remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise errors.timeout("fetching the audio took longer than the time budget")
        return left

    def _open(self, offset: int):
        """Read on from `offset`: a new response, and what it says of ranges and of the size."""
        self._release()
        self.url, response = self._connect(self.url, offset)
        self._response = response
        self._at = offset if response.status == 206 else 0
        if response.status == 206 or (not offset and response.headers.get("Accept-Ranges") == "bytes"):
            self.ranges = True
        elif self.ranges:  # it offered ranges, then ignored one: from here on, keep what is read
            self.ranges, self._spans = False, {}
        length = response.headers.get("Content-Length")
        if self.size is None and length and length.isdigit():
            self.size = int(length) + self._at

    def _connect(self, url: str, offset: int) -> tuple[str, urllib3.HTTPResponse]:
        """(the URL it ended at, its 200 or 206 response) for the bytes from `offset` on, following
        redirects; each one passes the URL policy."""
        for _ in range(MAX_REDIRECTS + 1):
            response = self._get(url, offset)
            if response.status in (301, 302, 303, 307, 308) and response.headers.get("Location"):
                url = urljoin(url, response.headers["Location"])
                response.release_conn()
                continue
            if response.status not in (200, 206):
                response.release_conn()
                raise self.refused(response.status)
            return url, response
        raise errors.source_unreachable("the audio link redirects too many times")

    def _get(self, url: str, offset: int) -> urllib3.HTTPResponse:
        """One GET of `url` from `offset` on, to the address the URL policy checked; no redirect followed."""
        host, port, address = self.check(url, self.settings)
        timeout = urllib3.Timeout(connect=min(CONNECT_TIMEOUT_S, self._remaining()), read=self._remaining())
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"User-Agent": USER_AGENT, **self.headers,
                   "Host": parts.netloc.rsplit("@", 1)[-1], "Accept-Encoding": "identity"}
        if self.proxy:  # the host is the proxy's to reach: a site may serve its media to the address that asked
            pool, path = _proxied(self.proxy, timeout), url
        elif parts.scheme == "https":
            pool = urllib3.HTTPSConnectionPool(address, port, timeout=timeout, retries=False,
                                               server_hostname=host, assert_hostname=host)
        else:
            pool = urllib3.HTTPConnectionPool(address, port, timeout=timeout, retries=False)
        if offset or self.ranged_first:
            headers["Range"] = f"bytes={offset}-"
        try:
            return pool.urlopen("GET", path, headers=headers, redirect=False, preload_content=False, release_conn=False)
        except urllib3.exceptions.TimeoutError:
            raise errors.timeout(f"{host} did not answer in time") from None
        except urllib3.exceptions.HTTPError as exc:
            raise errors.source_unreachable(f"could not fetch from {host}: {type(exc).__name__}") from None

    def _release(self):
        if self._response is not None:
            self._response.release_conn()
            self._response = None

    def _fetch(self, size: int) -> bytes:
        """Up to `size` bytes from the open response, counted against the byte cap."""
        self._remaining()
        if self._response is None:
            return b""
        try:
            data = self._response.read1(size)
        except urllib3.exceptions.TimeoutError:
            raise errors.timeout("the audio source stalled") from None
        except (urllib3.exceptions.HTTPError, OSError):
            if not self.fetched:
                raise errors.source_unreachable("the audio source broke off") from None
            self._release()  # cut off midway: what came is all there is
            self.cut = True
            return b""
        self.fetched += len(data)
        if self.fetched > self.settings.max_fetch_bytes:
            raise errors.source_too_large(self.settings.max_fetch_bytes)
        if not self.ranges or sum(map(len, self._spans.values())) + len(data) <= KEEP_BYTES:
            self._keep(self._at, data)
        self._at += len(data)
        return data

    def _keep(self, offset: int, data: bytes):
        """Keeps data read from `offset`, joined to the span that ends there."""
        start = next((s for s, kept in self._spans.items() if s + len(kept) == offset), None)
        if start is None:
            self._spans[offset] = bytearray(data)
        else:
            self._spans[start] += data

    def _from_kept(self, size: int) -> bytes:
        """Up to `size` kept bytes from the position on (b"" where none are kept)."""
        for start, kept in self._spans.items():
            if start <= self.position < start + len(kept):
                return bytes(kept[self.position - start:self.position - start + size])
        return b""

    def _distance(self, start: int) -> int:
        """How far the span kept from `start` lies from the position."""
        return max(start - self.position, self.position - start - len(self._spans[start]), 0)

    def _seek_to_position(self):
        """The open response brought to the position: read on through a short gap ahead, else a new range
        from BACK_BYTES before it (not before what is kept below it)."""
        gap = self.position - self._at
        if self.size is None:  # a range from the position on: its answer states the size
            self._open(self.position)
        elif self._response is None or not 0 <= gap <= READ_ON_BYTES:
            while sum(map(len, self._spans.values())) > KEEP_BYTES - CHUNK:  # full: the farthest from here go
                del self._spans[max(self._spans, key=self._distance)]
            below = [s + len(kept) for s, kept in self._spans.items() if s + len(kept) <= self.position]
            self._open(max(0, self.position - BACK_BYTES, *below))
        while self.ranges and self._at < self.position and self._fetch(self.position - self._at):
            pass

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self.size is not None  # an endless stream (a radio) is read as a stream

    def tell(self) -> int:
        return self.position

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes; a chunk for -1 (this file has no end to read all to)."""
        size = size if size >= 0 else CHUNK
        data = self._from_kept(size)
        if data or not size or (self.size is not None and self.position >= self.size):
            self.position += len(data)
            return data
        if self.ranges and self._at != self.position:
            self._seek_to_position()  # a server that ignores the range turns this to keeping mode
        if self.ranges:
            data = self._fetch(size)
        else:  # everything from the start is kept: read on to the position
            if self.skip_ahead and self.position > self._at + READ_ON_BYTES:
                return b""
            while self.position >= self._at and self._fetch(CHUNK):
                pass
            data = self._from_kept(size)
        self.position += len(data)
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            if self.size is None:
                raise OSError("size unknown")
            offset += self.size
        elif whence == io.SEEK_CUR:
            offset += self.position
        self.position = max(0, offset if self.size is None else min(offset, self.size))
        return self.position

    def abort(self):
        """Cut the connection from another thread (the client left): a read in progress returns at once."""
        response = self._response
        if response is not None:
            response.shutdown()

    def close(self):
        self._release()
        self._spans = {}
        super().close()


def _proxied(proxy: str, timeout: urllib3.Timeout) -> urllib3.ProxyManager:
    """A pool through the proxy (YTDLP_PROXY, http or https), its user:password@ as Proxy-Authorization."""
    parts = urlsplit(proxy)
    auth = {"proxy_basic_auth": f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"} \
        if parts.username is not None else {}
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    address = f"{parts.scheme}://{host}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    return urllib3.ProxyManager(address, proxy_headers=urllib3.make_headers(**auth), timeout=timeout, retries=False)
