"""A hostile upstream on 127.0.0.1 for the tests: every way a source can stall, lie, never end or
point the function somewhere it must not go. Started and stopped by the tests (see Server)."""
import contextlib
import http.server
import socket
import struct
import threading
import time
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

    def log_message(self, *args):
        pass


class Server:
    """`with Server(folder) as hostile:` hostile.url serves the folder and the hostile paths;
    hostile.hits lists the requests that reached hostile.canary_url."""

    def __init__(self, folder: Path):
        self.hits = []
        self.canary = local_http.QuietServer(("127.0.0.1", 0), type("Counting", (Canary,), {"hits": self.hits}))
        self.canary_url = f"http://127.0.0.1:{self.canary.server_address[1]}"
        handler = type("Hostile", (Handler,), {"canary": self.canary_url})
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
