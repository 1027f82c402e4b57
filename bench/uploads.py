"""Many concurrent large uploads against a local functions-framework server with deploy.sh's
settings: the gunicorn worker's RSS before, at its peak and after, and its temp files. Not a test.

    python bench/uploads.py --clients 50 --mb 20          # raw bodies of zeros: each 422 not_audio
    python bench/uploads.py --clients 50 --mb 20 --form   # the same bodies as multipart forms
    python bench/uploads.py --clients 100 --clip song.flac  # a real clip: statuses and latency under overload
"""
import argparse
import collections
import http.client
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from serving import process_tree, wait_until_up
from soak import start_server, worker_state


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--mb", type=float, default=20.0, help="MiB per upload (the cap is GENRE_MAX_UPLOAD_MB, 20)")
    parser.add_argument("--form", action="store_true", help="send multipart/form-data instead of a raw body")
    parser.add_argument("--clip", type=Path, help="upload this audio file instead of zeros (answers 200 or 503)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="another environment variable for the server, e.g. MALLOC_ARENA_MAX=8")
    args = parser.parse_args(argv)
    data = args.clip.read_bytes() if args.clip else bytes(int(args.mb * 2**20))
    if args.form:
        boundary = "bench-boundary"
        body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="zeros.wav"\r\n'
                f"Content-Type: audio/wav\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
        content_type = f"multipart/form-data; boundary={boundary}"
    else:
        body, content_type = data, "audio/wav"
    temp = Path(tempfile.mkdtemp(prefix="uploads-"))
    port = 20000 + os.getpid() % 1000
    server = start_server(temp, port, **dict(pair.split("=", 1) for pair in args.env))

    def upload(_) -> tuple[int, float]:
        """(status or -1, seconds)"""
        connection, began = http.client.HTTPConnection("127.0.0.1", port, timeout=120), time.monotonic()
        try:
            connection.request("POST", "/", body=body, headers={"Content-Type": content_type})
            answer = connection.getresponse()
            answer.read()
            return answer.status, time.monotonic() - began
        except OSError:
            return -1, time.monotonic() - began
        finally:
            connection.close()

    try:
        wait_until_up(f"http://127.0.0.1:{port}/")
        upload(0)  # warm: the model is loaded on the first upload
        worker = process_tree(server.pid)[-1]
        before = worker_state(worker, temp)
        began = time.monotonic()
        with ThreadPoolExecutor(args.clients) as pool:
            answers = list(pool.map(upload, range(args.clients)))
        elapsed = time.monotonic() - began
        time.sleep(2)
        after = worker_state(worker, temp)
    finally:
        server.terminate()
        server.wait(timeout=10)
    statuses = collections.Counter(status for status, _ in answers)
    kind = "multipart forms" if args.form else "raw bodies"
    what = f"of {args.clip.name}" if args.clip else f"of {args.mb:g} MiB of zeros"
    print(f"{args.clients} concurrent uploads {what} ({kind}) in {elapsed:.1f} s; "
          f"statuses {dict(statuses)}; server env {args.env or 'as deploy.sh'}")
    for status in sorted(statuses):
        seconds = sorted(s for code, s in answers if code == status)
        print(f"  {status}: latency p50 {seconds[len(seconds) // 2]:.1f} s, max {seconds[-1]:.1f} s")
    print(f"worker RSS before {before['rss_mib']:.0f} MiB, peak {after['peak_rss_mib']:.0f} MiB, "
          f"after {after['rss_mib']:.0f} MiB; temp files after {after['temp_files']}")
    return 0 if set(statuses) <= ({200, 503} if args.clip else {422}) and not after["temp_files"] else 1


if __name__ == "__main__":
    sys.exit(main())
