"""Many concurrent large uploads (or links) against a local functions-framework server with
deploy.sh's settings: the answers, and the gunicorn worker's RSS before, at its peak and after, and
its temp files. Not a test.

    python bench/uploads.py --clients 50 --mb 20          # raw bodies of zeros: each 422 not_audio
    python bench/uploads.py --clients 50 --mb 20 --form   # the same bodies as multipart forms
    python bench/uploads.py --clients 100 --clip song.flac  # a real clip: statuses and latency under overload
    python bench/uploads.py --clients 16 --clip song.flac --link --env GENRE_TIME_BUDGET_S=6
                                                          # the clip as a link to a local web server
    python bench/uploads.py --clients 30 --clip song.flac --leave 0   # clients that hang up after sending:
                                                          # what the server logged for them
"""
import argparse
import collections
import functools
import http.client
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from local_server import running
from soak import MediaServer, QuietHandler


def _body(args) -> tuple[bytes, str]:
    """The request's body and Content-Type."""
    data = args.clip.read_bytes() if args.clip else bytes(int(args.mb * 2**20))
    if not args.form:
        return data, "audio/wav"
    boundary = "bench-boundary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="zeros.wav"\r\n'
            f"Content-Type: audio/wav\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _request(method: str, path: str, body: bytes | None, headers: dict) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (head + f"Content-Length: {len(body or b'')}\r\n\r\n").encode() + (body or b"")


def _send(port: int, request: bytes, leave: float | None) -> tuple[int, float]:
    """(status, or -1 for none, or 0 for a client that hung up leave seconds after sending; seconds)"""
    began = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        try:
            sock.sendall(request)
            if leave is not None:
                time.sleep(leave)
                return 0, time.monotonic() - began
            answer = http.client.HTTPResponse(sock)
            answer.begin()
            answer.read()
            return answer.status, time.monotonic() - began
        except OSError:
            return -1, time.monotonic() - began


def _all_logged(server, count: int, wait_s: float = 120) -> collections.Counter:
    """What the server logged, once it has logged count requests (or after wait_s)."""
    deadline = time.monotonic() + wait_s
    while sum((logged := server.logged()).values()) < count and time.monotonic() < deadline:
        time.sleep(0.5)
    return logged


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--mb", type=float, default=20.0, help="MiB per upload (the cap is GENRE_MAX_UPLOAD_MB, 20)")
    parser.add_argument("--form", action="store_true", help="send multipart/form-data instead of a raw body")
    parser.add_argument("--clip", type=Path, help="upload this audio file instead of zeros (answers 200 or 503)")
    parser.add_argument("--link", action="store_true", help="send --clip as a link to a local web server")
    parser.add_argument("--leave", type=float, metavar="SECONDS",
                        help="clients hang up this long after sending, unanswered: prints what the server logged")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="another environment variable for the server, e.g. MALLOC_ARENA_MAX=8")
    args = parser.parse_args(argv)
    if args.link and not args.clip:
        parser.error("--link needs --clip")
    media = MediaServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(args.clip.parent))) \
        if args.link else None
    if media:
        threading.Thread(target=media.serve_forever, daemon=True).start()
        link = f"http://127.0.0.1:{media.server_address[1]}/{args.clip.name}"
        request = _request("GET", f"/?url={link}", None, {"Accept": "application/json"})
    else:
        request = _request("POST", "/", *(lambda body, kind: (body, {"Content-Type": kind}))(*_body(args)))
    with running(20000, **dict(pair.split("=", 1) for pair in args.env)) as server:
        if args.clip:
            _send(server.port, _request("POST", "/?duration=3", args.clip.read_bytes(),
                                        {"Content-Type": "audio/flac"}), None)  # warm: the model loaded
        else:
            _send(server.port, request, None)
        before = server.state()
        began = time.monotonic()
        with ThreadPoolExecutor(args.clients) as pool:
            answers = list(pool.map(lambda _: _send(server.port, request, args.leave), range(args.clients)))
        elapsed = time.monotonic() - began
        logged = _all_logged(server, args.clients + 2)  # and the start's OPTIONS, the warm-up
        after = server.state()
    if media:
        media.shutdown()
    statuses = collections.Counter(status for status, _ in answers)
    kind = "links" if args.link else "multipart forms" if args.form else "raw bodies"
    what = f"of {args.clip.name}" if args.clip else f"of {args.mb:g} MiB of zeros"
    print(f"{args.clients} concurrent {'requests' if args.link else 'uploads'} {what} ({kind}) in {elapsed:.1f} s; "
          f"statuses {dict(statuses)}; server env {args.env or 'as deploy.sh'}")
    if args.leave is not None:
        print(f"  the clients hung up {args.leave:g} s after sending, unanswered")
    print("  the server logged (with the warm-up): " + ", ".join(f"{n} x {status} {error or ''}".rstrip()
                                                                for (status, error), n in sorted(logged.items())
                                                                if status != 204))
    for status in sorted(set(statuses) - {0}):  # 0: the clients that left
        seconds = sorted(s for code, s in answers if code == status)
        print(f"  {status}: latency p50 {seconds[len(seconds) // 2]:.1f} s, max {seconds[-1]:.1f} s")
    print(f"worker RSS before {before['rss_mib']:.0f} MiB, peak {after['peak_rss_mib']:.0f} MiB, "
          f"after {after['rss_mib']:.0f} MiB; temp files after {after['temp_files']}")
    expected = {0} if args.leave is not None else {200, 503} if args.clip else {422}
    return 0 if set(statuses) <= expected and not after["temp_files"] else 1


if __name__ == "__main__":
    sys.exit(main())
