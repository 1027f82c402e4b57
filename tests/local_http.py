"""A throwaway HTTP server on 127.0.0.1 serving a folder, with byte-range support (like the CDNs
yt-dlp hands us) unless told otherwise."""
import base64
import contextlib
import http.client
import http.server
import json
import re
import sys
import threading
import time
import urllib.parse
from functools import partial

STALL_S = 20
AUDIO = (".flac", ".wav", ".mp3", ".ogg", ".m4a")


class Handler(http.server.SimpleHTTPRequestHandler):
    ranges = True

    def log_message(self, *args):
        pass

    def send_head(self):
        if self.path.startswith("/hang"):  # not even headers
            time.sleep(STALL_S)
            return None
        if self.path.startswith("/stall"):  # headers of an audio file, then silence
            self.send_response(200)
            self.send_header("Content-Type", "audio/flac")
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            time.sleep(STALL_S)
            return None
        if self.path.startswith("/status/"):  # /status/500 answers HTTP 500
            self.send_error(int(self.path.split("/")[2]))
            return None
        if self.path.startswith("/redirect?"):  # /redirect?to=URL[&status=N] answers 302 (or N) to URL
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            self.send_response(int(query.get("status", ["302"])[0]))
            self.send_header("Location", query["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        path = self.translate_path(self.path)
        if not (self.ranges and match) or not path.endswith(AUDIO):
            return super().send_head()
        try:
            f = open(path, "rb")  # noqa: SIM115 (send_head hands the open file to the server, which closes it)
        except OSError:
            self.send_error(404)
            return None
        size = f.seek(0, 2)
        start = min(int(match.group(1)), size)
        f.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        self.send_header("Content-Length", str(size - start))
        self.end_headers()
        return f

    def end_headers(self):
        if self.ranges and self.path.endswith(AUDIO):
            self.send_header("Accept-Ranges", "bytes")
        super().end_headers()


class NoRangeHandler(Handler):
    ranges = False


class IgnoredRangeHandler(Handler):
    """Says "Accept-Ranges: bytes", then answers every Range request with the whole file (200)."""

    def send_head(self):
        return http.server.SimpleHTTPRequestHandler.send_head(self)


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """A client that hangs up early (the function stops reading once it has its window) is normal."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class TokenEndpoint(http.server.BaseHTTPRequestHandler):
    """Google's OAuth token endpoint as a service account's key names it (token_uri): each POST (a signed
    assertion) answered with grant() as JSON."""

    def grant(self) -> dict:
        raise NotImplementedError

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps(self.grant()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Proxy(http.server.BaseHTTPRequestHandler):
    """An HTTP proxy, as a residential one is reached (YTDLP_PROXY=http://user:secret@HOST:PORT): it takes
    absolute-form GETs and HEADs for 127.0.0.1 only, with Basic user:secret (else 407), and notes each
    (method, path, Range) it forwarded in `seen`."""
    seen: list
    credentials = base64.b64encode(b"user:secret").decode()

    def do_GET(self):
        self._forward()

    def do_HEAD(self):
        self._forward()

    def _forward(self):
        target = urllib.parse.urlsplit(self.path)
        if self.headers.get("Proxy-Authorization") != f"Basic {self.credentials}" or target.hostname != "127.0.0.1":
            self.send_response(407)
            self.send_header("Proxy-Authenticate", 'Basic realm="test"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.seen.append((self.command, target.path, self.headers.get("Range")))
        upstream = http.client.HTTPConnection("127.0.0.1", target.port, timeout=10)
        upstream.request(self.command, target.path + (f"?{target.query}" if target.query else ""), headers={
            k: v for k, v in self.headers.items() if k.lower() not in ("proxy-authorization", "proxy-connection")})
        answer = upstream.getresponse()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("connection", "transfer-encoding", "keep-alive"):
                self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        while chunk := answer.read(2**16):
            self.wfile.write(chunk)
        upstream.close()

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def proxy():
    """`with proxy() as (url, seen):` a Proxy on 127.0.0.1, its URL with the credentials it asks for."""
    seen = []
    with serving(type("Seen", (Proxy,), {"seen": seen})) as url:
        yield url.replace("http://", "http://user:secret@"), seen


@contextlib.contextmanager
def serving(handler, tls=None):
    """`with serving(handler) as url:` http://127.0.0.1:PORT answered by a request handler class in
    a thread (https with an ssl context as tls)."""
    httpd = QuietServer(("127.0.0.1", 0), handler)
    if tls:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http{'s' if tls else ''}://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def Server(folder, ranges: bool | str = True):  # noqa: N802 (used as `with local_http.Server(folder) as url`)
    """`with Server(folder) as url:` serves folder at url; ranges: True (served), False (not
    offered) or "ignored" (offered, then ignored)."""
    handler = {True: Handler, False: NoRangeHandler, "ignored": IgnoredRangeHandler}[ranges]
    return serving(partial(handler, directory=str(folder)))
