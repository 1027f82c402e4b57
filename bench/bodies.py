"""Hostile request sizes against a local functions-framework server with deploy.sh's settings: the
answers, the time they took and the gunicorn worker's RSS before, at its peak and after. Not a test.

    python bench/bodies.py json --clients 4 --mb 30     # JSON bodies with a Content-Length, at once
    python bench/bodies.py chunked-json --mb 100        # one chunked JSON body
    python bench/bodies.py request-line --mb 8          # one GET whose request line is that long
"""
import argparse
import collections
import contextlib
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from local_server import running

CHUNK = 2**20


def _json(size: int):
    yield (f"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n"
           f"Connection: close\r\n\r\n").encode()
    head = b'{"url": "http://127.0.0.1:9/a.flac", "x": "'
    body = head + b"a" * (size - len(head) - 2) + b'"}'
    yield from (body[i:i + CHUNK] for i in range(0, len(body), CHUNK))


def _chunked_json(size: int):
    yield b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    for _ in range(size // CHUNK):
        yield f"{CHUNK:x}\r\n".encode() + b" " * CHUNK + b"\r\n"
    yield b"0\r\n\r\n"


def _request_line(size: int):
    yield b"GET /?url=" + b"a" * size + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


REQUESTS = {"json": _json, "chunked-json": _chunked_json, "request-line": _request_line}


def send(port: int, pieces) -> str:
    """The answer's status line (or what went wrong), after sending all it takes."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        with contextlib.suppress(OSError):  # the server may answer and close before it all went
            for piece in pieces:
                sock.sendall(piece)
        try:
            return sock.makefile("rb").readline().decode().strip() or "closed without an answer"
        except OSError as exc:
            return exc.__class__.__name__


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=REQUESTS)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--mb", type=float, default=30.0, help="MiB per request")
    args = parser.parse_args(argv)
    size = int(args.mb * 2**20)
    with running(21000) as server:
        before = server.state()
        began = time.monotonic()
        with ThreadPoolExecutor(args.clients) as pool:
            answers = collections.Counter(pool.map(lambda _: send(server.port, REQUESTS[args.kind](size)),
                                                   range(args.clients)))
        elapsed = time.monotonic() - began
        time.sleep(2)
        after = server.state()
    print(f"{args.clients} x {args.kind} of {args.mb:g} MiB in {elapsed:.1f} s: {dict(answers)}")
    print(f"worker RSS before {before['rss_mib']:.0f} MiB, peak {after['peak_rss_mib']:.0f} MiB, "
          f"after {after['rss_mib']:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
