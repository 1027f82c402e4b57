"""A hostile upstream on 127.0.0.1 for the tests: every way a source can stall, lie, never end or
point the function somewhere it must not go. Started and stopped by the tests (see Server)."""
import contextlib
import http.server
import json
import socket
import struct
import threading
import time
import urllib.parse
from functools import partial
from pathlib import Path

import numpy as np

import local_http

RATE = 22050


def _sine_pcm(seconds: float) -> bytes:
    t = np.arange(int(seconds * RATE)) / RATE
    return (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes()


def huge_wav_header(data_bytes: int = 0xFFFFFF00) -> bytes:
    """A mono 16-bit WAV header announcing ~27 hours of audio."""
    return (b"RIFF" + struct.pack("<I", data_bytes + 36) + b"WAVEfmt " +
            struct.pack("<IHHIIHH", 16, 1, 1, RATE, RATE * 2, 2, 16) + b"data" + struct.pack("<I", data_bytes))


class Handler(local_http.Handler):
    """local_http's folder server plus the hostile paths below; `canary` is a URL that must never
    be fetched, `folder` holds the real and the broken clips."""
    canary = "http://127.0.0.1:9"

    def do_GET(self):
        route = getattr(self, "route_" + self.path.lstrip("/").split("?")[0].replace(".", "_").replace("-", "_"), None)
        if route is None:
            return super().do_GET()
        with contextlib.suppress(ConnectionError):  # the function hung up: what it should do
            route()

    def _head(self, content_type: str, length: int | None = None, status: int = 200):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.send_header("Connection", "close")
        self.end_headers()

    def _clip(self, name: str) -> bytes:
        return Path(self.directory, name).read_bytes()

    def route_drip_flac(self):
        """Real FLAC bytes, one per second."""
        data = self._clip("song.flac")
        self._head("audio/flac", len(data))
        for i in range(len(data)):
            self.wfile.write(data[i:i + 1])
            self.wfile.flush()
            time.sleep(1)

    def route_cut_flac(self):
        """Announces the whole clip, sends 40% of it, hangs up (cleanly: every byte sent arrives)."""
        data = self._clip("song.flac")
        self._head("audio/flac", len(data))
        self.wfile.write(data[:len(data) * 2 // 5])
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_WR)
        self.connection.settimeout(10)
        while self.connection.recv(4096):  # until the function closes its end
            pass

    def route_radio(self):
        """An endless MP3 stream, no length (a web radio)."""
        data = self._clip("radio.mp3")
        self._head("audio/mpeg")
        while True:
            self.wfile.write(data)

    def route_huge_wav(self):
        """A WAV that says it lasts 27 hours, and streams for as long as anyone reads."""
        header, second = huge_wav_header(), _sine_pcm(1.0)
        self._head("audio/wav", len(header) + 0xFFFFFF00)
        self.wfile.write(header)
        while True:
            self.wfile.write(second)

    def route_garbage_mp3(self):
        data = np.random.default_rng(1).bytes(300_000)
        self._head("audio/mpeg", len(data))
        self.wfile.write(data)

    def _playlist(self, target: str):
        body = ("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n"
                + "".join(f"#EXTINF:10.0,\n{target}\n" for _ in range(3)) + "#EXT-X-ENDLIST\n").encode()
        self._head("application/vnd.apple.mpegurl", len(body))
        self.wfile.write(body)

    def route_passwd_m3u8(self):
        self._playlist("file:///etc/passwd")

    def route_metadata_m3u8(self):
        self._playlist("http://169.254.169.254/computeMetadata/v1/instance/service-accounts/default/token")

    def route_loopback_m3u8(self):
        self._playlist(f"{self.canary}/segment.ts")

    def route_loop(self):
        """A redirect to itself, for ever."""
        self.send_response(302)
        self.send_header("Location", "/loop")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def route_master_m3u8(self):
        """A master playlist whose one variant is a playlist on the server's own disk."""
        body = b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=128000,CODECS=\"mp4a.40.2\"\nfile:///etc/passwd.m3u8\n"
        self._head("application/vnd.apple.mpegurl", len(body))
        self.wfile.write(body)

    def route_live_m3u8(self):
        """A live HLS stream: segments, and no end."""
        body = ("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:6\n#EXT-X-MEDIA-SEQUENCE:100\n"
                + "".join(f"#EXTINF:6.0,\n{self.canary}/live{i}.aac\n" for i in range(3))).encode()
        self._head("application/vnd.apple.mpegurl", len(body))
        self.wfile.write(body)

    def _until_hung_up(self, chunk: bytes, pause: float, most: int = 2**40):
        """Writes chunk after chunk (pause s apart, `most` bytes at most) until the function hangs up, then
        notes in `ended` how long that took and how many bytes went (None until then)."""
        began, sent = time.monotonic(), 0
        self.ended[self.path] = None
        try:
            while sent < most:
                self.wfile.write(chunk)
                self.wfile.flush()
                sent += len(chunk)
                time.sleep(pause)
        except OSError:
            pass
        finally:
            self.ended[self.path] = (time.monotonic() - began, sent)

    def route_drip_html(self):
        """A page without end, a byte every 0.2 s: each read gets a byte, so no read times out."""
        self._head("text/html; charset=utf-8")
        self._until_hung_up(b" ", 0.2)

    def route_drip_headers_html(self):
        """A header that never ends, a byte every 0.2 s."""
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Slow: ")
        self._until_hung_up(b"a", 0.2)

    def route_huge_html(self):
        """A 200 MB page, as fast as it is read (yt-dlp reads a page whole)."""
        self._head("text/html; charset=utf-8", 200 * 2**20)
        self._until_hung_up(b"<p>" + b"x" * (2**20 - 3), 0, most=200 * 2**20)

    def route_many_audio_html(self):
        tags = "".join(f'<audio src="{self.canary}/track{i}.mp3"></audio>' for i in range(5000))
        body = f"<!doctype html><html><head><title>Many</title></head><body>{tags}</body></html>".encode()
        self._head("text/html; charset=utf-8", len(body))
        self.wfile.write(body)


class Canary(http.server.BaseHTTPRequestHandler):
    """Counts every request: the tests assert it stays at zero."""
    hits: list

    def do_GET(self):
        self.hits.append(self.path)
        self.send_error(404)

    do_POST = do_GET

    def log_message(self, *args):
        pass


class Server:
    """`with Server(folder) as hostile:` hostile.url serves the folder and the hostile paths;
    hostile.hits lists the requests that reached hostile.canary_url."""

    def __init__(self, folder: Path):
        self.hits = []
        self.canary = local_http.QuietServer(("127.0.0.1", 0), type("Counting", (Canary,), {"hits": self.hits}))
        self.canary_url = f"http://127.0.0.1:{self.canary.server_address[1]}"
        self.ended = {}  # path -> (seconds until the function hung up, bytes sent), None while it goes on
        handler = type("Hostile", (Handler,), {"canary": self.canary_url, "ended": self.ended})
        self.httpd = local_http.QuietServer(("127.0.0.1", 0), partial(handler, directory=str(folder)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        for server in (self.canary, self.httpd):
            threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        for server in (self.canary, self.httpd):
            server.shutdown()
            server.server_close()


def answer(**changes) -> dict:
    """A well-formed answer of the function (two labels, two segments), with changes."""
    return {"genre": "rock", "confidence": 0.9, "uncertain": False, "scores": {"jazz": 0.1, "rock": 0.9},
            "segments": 2, "timeline": [{"start": 0.0, "genre": "rock", "confidence": 0.9}] * 2,
            "window": {"start": 0.0, "duration": 6.0}, "source": {"kind": "upload", "title": "a", "duration": 6.0,
                                                                   "bytes": 1},
            "model": {"name": "m", "version": "1", "sha256": "0" * 64}, "timings_ms": {"total": 1.0}, **changes}


class Endpoint(http.server.BaseHTTPRequestHandler):
    """A hostile stand-in for the function at /<route>: what a broken deployment, a proxy or an attacker
    on the path could answer its clients. `canary` must never be reached; `features` is what /features
    answers as the answer's features."""
    canary = "http://127.0.0.1:9"
    features: dict = {}
    drip_s = 2.0

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        route = self.path.lstrip("/").split("?")[0].replace("-", "_") or "answer"
        with contextlib.suppress(ConnectionError, OSError):  # the client hung up: what it should do
            getattr(self, "route_" + route)()

    def _json(self, body, status: int = 200, **headers):
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", "Content-Length": str(len(data)), **headers}.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(data)

    def route_answer(self):
        self._json(answer(in_labels=0.97, uncertain_reasons=[]))  # fields a later server adds are accepted

    def route_drip(self):
        """200 and a length, then one byte every drip_s."""
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        for _ in range(1000):
            self.wfile.write(b" ")
            self.wfile.flush()
            time.sleep(self.drip_s)

    def route_drip_headers(self):
        """The status line, then a header one byte every drip_s."""
        self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        for _ in range(60000):
            self.wfile.write(b"a")
            self.wfile.flush()
            time.sleep(self.drip_s)

    def route_huge(self):
        """A 200 JSON answer of ?mb= MB (default 400), its length said (?chunked: not said)."""
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        size, said = int(float(query.get("mb", ["400"])[0]) * 2**20), "chunked" not in query
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length" if said else "Connection", str(size) if said else "close")
        self.end_headers()
        head = json.dumps(answer())[:-1].encode() + b', "x": "'
        self.wfile.write(head)
        block = b"a" * 2**20
        for sent in range(len(head), size - 2, len(block)):
            self.wfile.write(block[:min(len(block), size - 2 - sent)])
        self.wfile.write(b'"}')

    def route_oops(self):
        self._json(answer(error="oops"))

    def route_other_input(self):
        self._json(answer(input="/etc/passwd"))

    def route_nan(self):
        self._json(answer(x=float("nan")))  # Python's json writes NaN, which is not JSON

    def route_deep(self):
        data = b'{"genre": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def route_no_scores(self):
        self._json({k: v for k, v in answer().items() if k != "scores"})

    def route_busy(self):
        self._json({"error": {"code": "busy", "message": "later"}}, 503, Retry_After="999999")

    def route_big_number(self):
        """A confidence of 401 digits: JSON has no limit, a float has."""
        data = json.dumps(answer())[:-1].encode() + b', "x": 0}'
        data = data.replace(b'"confidence": 0.9,', b'"confidence": 1' + b"0" * 400 + b",", 1)
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def route_busy_till_99999(self):
        self._json({"error": {"code": "busy", "message": "later"}}, 503, Retry_After="Fri, 31 Dec 99999 23:59:59 GMT")

    def route_unknown_code(self):
        """A 404 in the function's shape whose code is none of the function's (a proxy, another service)."""
        self._json({"error": {"code": "x" * 100, "message": {"a": 1}}}, 404)

    def route_bad_location(self):
        """A redirect to a URL that cannot be parsed (?to=: its port or host)."""
        self.send_response(307)
        self.send_header("Location", urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)["to"][0])
        self.send_header("Content-Length", "0")
        self.end_headers()

    def route_away(self):
        """A redirect off the endpoint's origin, to the cloud's metadata service or the canary."""
        self.send_response(307)
        self.send_header("Location", f"{self.canary}/computeMetadata/v1/")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def route_home(self):
        """A redirect within the origin (a trailing slash, a new path)."""
        self.send_response(308)
        self.send_header("Location", "/answer")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def route_features(self):
        count = len(self.features.get("segments", [])) or 2  # the answer's own count agrees: only the features lie
        self._json(answer(segments=count, timeline=answer()["timeline"][:1] * count, features=self.features))


class EndpointServer:
    """`with EndpointServer() as hostile:` hostile.url answers as Endpoint; hostile.hits lists the
    requests that reached hostile.canary_url."""

    def __init__(self, features: dict | None = None, drip_s: float = 2.0):
        self.hits = []
        self.canary = local_http.QuietServer(("127.0.0.1", 0), type("Counting", (Canary,), {"hits": self.hits}))
        self.canary_url = f"http://127.0.0.1:{self.canary.server_address[1]}"
        handler = type("Hostile", (Endpoint,), {"canary": self.canary_url, "features": features or {},
                                                 "drip_s": drip_s})
        self.httpd = local_http.QuietServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    __enter__, __exit__ = Server.__enter__, Server.__exit__
