"""`python -m inference batch --endpoint` at a million items: a list of N links and a results file that
answers all but the last `--missing` of them, resumed against a stand-in for the function on 127.0.0.1
(tests/stand_in.py, in its own process); then the same list's first `--dispatch` items sent afresh.
Prints the wall time, the peak RSS (/usr/bin/time) and the items sent a second. Not a test.

    python bench/million.py                                  # this checkout, 1,000,000 items
    python bench/million.py --repo ../main --items 1000000   # another checkout's command
    python bench/million.py --items 2000 --dispatch 500      # a smoke run
"""
import argparse
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import hostile_http  # noqa: E402 (tests/ is not a package)

LABELS = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")


def row(item: str) -> str:
    """A results line as long as the function's answer for a 30-s window (10 labels, 10 segments)."""
    timeline = [{"start": 3.0 * i, "genre": "rock", "confidence": 0.9} for i in range(10)]
    answer = hostile_http.answer(scores={label: 0.1 for label in LABELS}, genre="blues", confidence=0.1,
                                 segments=10, timeline=timeline)
    return json.dumps({"input": item, **answer}) + "\n"


def write_inputs(folder: Path, items: int, missing: int) -> tuple[Path, Path]:
    """links.txt (items lines) and results.jsonl (all but the last `missing` answered)."""
    links, results = folder / "links.txt", folder / "results.jsonl"
    template = row("ITEM")
    with open(links, "w") as listed, open(results, "w") as answered:
        for i in range(items):
            item = f"gs://my-music/catalogue/{i // 1000:04d}/track-{i:07d}.mp3"
            listed.write(item + "\n")
            if i < items - missing:
                answered.write(template.replace("ITEM", item, 1))
    return links, results


def measure(repo: Path, args: list[str]) -> tuple[str, str]:
    """("<seconds> s <peak RSS> KB", the summary line) of `python -m inference batch ARGS` in repo."""
    command = ["/usr/bin/time", "-f", "%e s %M KB", sys.executable, "-m", "inference", "batch", *args]
    done = subprocess.run(command, cwd=repo, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(repo)))
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    if done.returncode:
        raise SystemExit(f"exit {done.returncode}: {done.stderr[-2000:]}")
    return lines[-1], lines[-2]


def stand_in() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen([sys.executable, str(ROOT / "tests" / "stand_in.py"), str(port)])
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return process, f"http://127.0.0.1:{port}/"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=ROOT, help="the checkout whose command runs")
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--missing", type=int, default=1000, help="items the results file lacks (sent on resume)")
    parser.add_argument("--dispatch", type=int, default=20_000, help="items sent afresh, for the rate")
    parser.add_argument("--jobs", type=int, default=8)
    args = parser.parse_args()
    process, url = stand_in()
    try:
        with tempfile.TemporaryDirectory() as temp:
            folder = Path(temp)
            links, results = write_inputs(folder, args.items, args.missing)
            print(f"{args.items:,} links, a results file of {results.stat().st_size / 2**20:,.0f} MiB answering "
                  f"all but {args.missing:,}; --jobs {args.jobs}; {args.repo.resolve()}", flush=True)
            said, summary = measure(args.repo, [str(links), "--endpoint", url, "--out", str(results),
                                                "--jobs", str(args.jobs)])
            print(f"resume: {said} peak RSS; {summary}", flush=True)
            fresh = folder / "fresh.txt"
            with open(links) as f, open(fresh, "w") as out:
                out.writelines(itertools.islice(f, args.dispatch))
            said, summary = measure(args.repo, [str(fresh), "--endpoint", url, "--out", str(folder / "new.jsonl"),
                                                "--jobs", str(args.jobs)])
            print(f"dispatch: {said} peak RSS; {summary}", flush=True)
    finally:
        process.terminate()
        process.wait()


if __name__ == "__main__":
    main()
