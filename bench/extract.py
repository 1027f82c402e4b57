"""Feature extraction for training (export/extract.py): clips per second in this process (--jobs)
and through a local functions-framework server (--endpoint, N in flight), each with an empty cache.

    python bench/extract.py [--clips 40] [--jobs 2] [--in-flight 8]

The clips are the first of the shared GTZAN clips (30 s each: the function's whole default window).
Against one local server on the same cores the endpoint cannot be faster than this process; against
the deployed function the rate grows with the instances Cloud Functions starts (docs/training.md).
"""
import argparse
import os
import socket
import tempfile
import time
from pathlib import Path

from serving import GTZAN, wait_until_up
from soak import start_server

from export import extract, library  # noqa: E402 (serving puts the repository on sys.path)
from inference import config  # noqa: E402


def rate(found: library.Library, extractor: extract.Extractor) -> float:
    began = time.monotonic()
    kept, _ = extract.features(found, extractor)
    assert len(kept) == len(found.clips), found.skipped
    return len(kept) / (time.monotonic() - began)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="clips at once in this process")
    parser.add_argument("--in-flight", type=int, default=8, help="requests at once to the local server")
    args = parser.parse_args(argv)
    found = library.read(GTZAN)
    found.clips = found.clips[:args.clips]
    with tempfile.TemporaryDirectory() as folder:
        here = rate(found, extract.Extractor(config.DEFAULT_MODEL, jobs=args.jobs, cache=Path(folder) / "here"))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        (Path(folder) / "tmp").mkdir()
        server = start_server(Path(folder) / "tmp", port)
        try:
            wait_until_up(f"http://127.0.0.1:{port}/")
            remote = extract.Extractor(config.DEFAULT_MODEL, endpoint=f"http://127.0.0.1:{port}/", jobs=args.in_flight,
                                       cache=Path(folder) / "remote")
            there = rate(found, remote)
        finally:
            server.terminate()
            server.wait()
    print(f"{len(found.clips)} clips of 30 s: this process ({args.jobs} jobs) {here:.2f} clips/s; "
          f"a local functions-framework server ({args.in_flight} in flight) {there:.2f} clips/s")


if __name__ == "__main__":
    main()
