"""Load and soak: N concurrent clients for M minutes against a local functions-framework server,
uploads and links (to a local web server serving GTZAN clips) mixed. Prints the request count,
errors, latency, and the worker's RSS, open files, threads and temp files at start and end; exits
1 on any error or on a leak of files or temp files. Not a test; CI smoke-runs it for seconds.

    python bench/soak.py --clients 8 --minutes 5
"""
import argparse
import collections
import functools
import http.server
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from serving import GTZAN, ROOT, percentile, process_tree, wait_until_up

from inference.config import SERVER_THREADS  # noqa: E402 (serving puts the repository on sys.path)


def worker_state(pid: int, temp: Path) -> dict:
    """RSS (MiB), open files and threads of the serving process, and files in its temp folder."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {"rss_mib": int(status["VmRSS"].split()[0]) / 1024, "peak_rss_mib": int(status["VmHWM"].split()[0]) / 1024,
            "open_files": len(os.listdir(f"/proc/{pid}/fd")), "threads": int(status["Threads"]),
            "temp_files": sum(len(files) for _, _, files in os.walk(temp))}


def start_server(temp: Path, port: int, stdout=subprocess.DEVNULL, **env_vars: str) -> subprocess.Popen:
    """functions-framework with deploy.sh's settings (and env_vars), its temp folder in temp, its log to stdout."""
    env = {**os.environ, "ORT_DISABLE_TELEMETRY": "1", "MALLOC_ARENA_MAX": "2", "THREADS": str(SERVER_THREADS),
           "TMPDIR": str(temp), "GENRE_DEV_ALLOW_LOOPBACK_LINKS": "1", **env_vars}  # the links point at 127.0.0.1
    return subprocess.Popen([str(Path(sys.executable).parent / "functions-framework"), "--target", "classify",
                             "--source", str(ROOT / "main.py"), "--host", "127.0.0.1", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=stdout, stderr=subprocess.DEVNULL)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class MediaServer(http.server.ThreadingHTTPServer):
    """The clips, whole files without ranges; the function hanging up once it has its window is normal."""
    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--clips", type=int, default=20, help="GTZAN clips to draw from")
    parser.add_argument("--only", choices=["uploads", "links"], help="one kind of request instead of both mixed")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="another environment variable for the server, e.g. MALLOC_ARENA_MAX=8")
    args = parser.parse_args(argv)
    every = sorted(GTZAN.glob("*/*.flac"))
    clips = every[::max(1, len(every) // args.clips)][:args.clips]
    bodies = {clip: clip.read_bytes() for clip in clips}
    media = MediaServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(GTZAN)))
    threading.Thread(target=media.serve_forever, daemon=True).start()
    media_url = f"http://127.0.0.1:{media.server_address[1]}"
    temp = Path(tempfile.mkdtemp(prefix="soak-"))
    port = 19000 + os.getpid() % 1000
    server = start_server(temp, port, **dict(pair.split("=", 1) for pair in args.env))
    url = f"http://127.0.0.1:{port}/"

    def call(i: int) -> tuple[str, int, float]:
        rng = random.Random(i)
        clip = rng.choice(clips)
        query = urllib.parse.urlencode({"duration": rng.choice([3, 10, 30])})
        share = {"uploads": 1.0, "links": 0.0}.get(args.only, 0.5)
        if rng.random() < share:
            kind, request = "upload", urllib.request.Request(f"{url}?{query}", data=bodies[clip],
                                                             headers={"Content-Type": "audio/flac"})
        else:
            link = f"{media_url}/{clip.relative_to(GTZAN).as_posix()}"
            kind, request = "link", urllib.request.Request(f"{url}?{query}&{urllib.parse.urlencode({'url': link})}")
        began = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                status = answer.status if "genre" in json.loads(answer.read()) else -1
        except urllib.error.HTTPError as error:
            status = error.code
        except OSError:
            status = -1
        return kind, status, (time.perf_counter() - began) * 1000

    try:
        wait_until_up(url)
        for i in range(4):  # warm up both paths (the first link imports yt-dlp)
            call(i)
        time.sleep(1)
        worker = process_tree(server.pid)[-1]  # gunicorn's worker serves the requests
        start = worker_state(worker, temp)
        results, stop = [], time.monotonic() + args.minutes * 60
        samples = []  # (seconds, worker RSS in MiB), every tenth of the run

        def sample():
            t0 = time.monotonic()
            while time.monotonic() < stop:
                samples.append((time.monotonic() - t0, worker_state(worker, temp)["rss_mib"]))
                time.sleep(max(1.0, args.minutes * 6))

        threading.Thread(target=sample, daemon=True).start()

        def client(c: int):
            i = c
            while time.monotonic() < stop:
                results.append(call(1000 + i))
                i += args.clients

        began = time.monotonic()
        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(client, range(args.clients)))
        elapsed = time.monotonic() - began
        time.sleep(2)  # let the last sockets close
        end = worker_state(worker, temp)
    finally:
        server.terminate()
        server.wait(timeout=10)
        media.shutdown()
    statuses = collections.Counter((kind, status) for kind, status, _ in results)
    errors = sum(n for (_, status), n in statuses.items() if status != 200)
    ms = [t for _, _, t in results]
    print(f"{args.clients} clients for {elapsed:.0f} s, {len(clips)} clips, {args.only or 'uploads and links mixed'}"
          f"{', server env ' + ' '.join(args.env) if args.env else ''}")
    print(f"requests {len(results)} ({len(results) / elapsed:.1f}/s), errors {errors}, "
          f"by kind and status: {dict(sorted(statuses.items()))}")
    if ms:
        print(f"latency p50 {statistics.median(ms):.0f} ms, p95 {percentile(ms, 95):.0f} ms, max {max(ms):.0f} ms")
    print(f"{'':18}{'start':>10}{'end':>10}")
    for key in ("rss_mib", "peak_rss_mib", "open_files", "threads", "temp_files"):
        print(f"{key:18}{start[key]:>10.0f}{end[key]:>10.0f}")
    print("worker RSS over the run: " + ", ".join(f"{t:.0f} s {mib:.0f} MiB" for t, mib in samples))
    leaks = [key for key in ("open_files", "temp_files") if end[key] > start[key]]
    if leaks:
        print("LEAK: " + ", ".join(leaks))
    return 1 if errors or leaks or not results else 0


if __name__ == "__main__":
    sys.exit(main())
