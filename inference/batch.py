"""python -m inference batch INPUT...: classify a music library, in this process or with the deployed function.

INPUT: audio files, folders (searched recursively for audio files), lists (.txt, .m3u: one path or
link a line, `#` comments; `-` reads stdin). One JSON line per item, written as each finishes:
{"input": ..., ...the answer...} or {"input": ..., "status": ..., "error": {"code", "message"}}.
Exit status: 0 every item answered (4xx answers included), 1 some not, 2 bad arguments."""
import argparse
import contextlib
import csv
import dataclasses
import itertools
import json
import math
import os
import sys
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

from inference import client, config, decode, pipeline
from inference.client import error_row, unreadable
from inference.errors import ClassifyError

LISTS = {".txt", ".m3u", ".m3u8"}
# music and in_labels: P(music) and P(in the model's labels), empty for a model without those detectors;
# uncertain_reasons: their codes joined by spaces
CSV_COLUMNS = ["input", "genre", "confidence", "uncertain", "uncertain_reasons", "music", "in_labels", "status",
               "error"]


def is_link(item: str) -> bool:
    return "://" in item


def here(item: str, settings: config.Settings, start=None, duration=None, features: bool = False) -> dict:
    """The function's answer for a file or link, computed in this process (with the segments' features if
    asked); ClassifyError for a bad one. OSError for a file that cannot be read."""
    if is_link(item):
        return pipeline.link(item, settings, start, duration, features)
    path = Path(item)
    client.check_file(path, settings.max_upload_bytes)
    with open(path, "rb") as f:  # the decoder reads the file: no copy of it in memory
        return pipeline.upload(f, settings, start, duration, filename=path.name, features=features)


def failed(item: str, error: ClassifyError) -> dict:
    return error_row(item, error.code, error.message, error.status)


def answered(row: dict) -> bool:
    """An answer, or an error the item itself causes (4xx, an unreadable file): not worth retrying."""
    if "error" not in row:
        return True
    status = row.get("status") or 0
    return row["error"]["code"] != "unreachable" and isinstance(status, int) and status < 500


def is_row(row) -> bool:
    """A row as this command writes them: an input, and an error only as {"code": str, ...}."""
    return (isinstance(row, dict) and isinstance(row.get("input"), str)
            and ("error" not in row or isinstance(row["error"], dict) and isinstance(row["error"].get("code"), str)))


def find_items(inputs: list[str], stdin) -> list[str]:
    """Every file and link the inputs name, in order, each once. ValueError for an input that is missing."""
    found = []
    for given in inputs:
        path = Path(given)
        if given == "-":
            found += _lines(stdin, None)
        elif is_link(given):
            found.append(given)
        elif path.is_dir():
            found += sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in decode.SUFFIXES and p.is_file())
        elif not path.exists():
            raise ValueError(f"no such file or folder: {given}")
        elif path.suffix.lower() in LISTS:
            with open(path, encoding="utf-8") as f:
                found += _lines(f, path.parent)
        else:
            found.append(given)
    return list(dict.fromkeys(found))


def _lines(f, base: Path | None) -> list[str]:
    """The items of a list: links as they are, paths relative to the list's folder."""
    items = [line.strip() for line in f]
    return [item if is_link(item) or base is None else str(base / item)
            for item in items if item and not item.startswith("#")]


class Local:
    """The shipped model in this process; items wait for a worker however long it takes (the server's
    GENRE_MAX_QUEUE_S, answered "busy", is for callers it cannot see)."""

    def __init__(self, settings: config.Settings, start, duration, features: bool = False):
        self.settings = dataclasses.replace(settings, max_queue_s=None)
        self.start, self.duration, self.features = start, duration, features

    def __call__(self, item: str) -> dict:
        try:
            return {"input": item, **here(item, self.settings, self.start, self.duration, self.features)}
        except ClassifyError as exc:
            return failed(item, exc)
        except OSError as exc:
            return failed(item, unreadable(exc, item))


def run(work, items: list[str], jobs: int):
    """work(item) for each item on `jobs` threads, yielding rows as they finish; at most `jobs` in flight,
    so at most `jobs` decoded windows (or uploads) are alive at once."""
    pool = ThreadPoolExecutor(jobs, thread_name_prefix="batch")
    todo, pending = iter(items), set()
    try:
        while True:
            pending |= {pool.submit(work, item) for item in itertools.islice(todo, jobs - len(pending))}
            if not pending:
                return
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


class Output:
    """Rows as JSON lines or CSV, flushed one by one; an existing file is resumed: its answered items are
    returned by `done`, its cut-off last line and unanswered items dropped."""

    def __init__(self, path: Path | None, as_csv: bool):
        self.as_csv, self.done = as_csv, set()
        kept = self._resume(path) if path and path.exists() else []
        self.file = open(path, "a", encoding="utf-8", newline="") if path else sys.stdout  # noqa: SIM115
        self.csv = csv.DictWriter(self.file, CSV_COLUMNS, lineterminator="\n", extrasaction="ignore")
        if as_csv and not kept:
            self.csv.writeheader()

    def _resume(self, path: Path) -> list[str]:
        text = path.read_text(encoding="utf-8")
        lines = [line + "\n" for line in text.split("\n")[:-1]]  # without a last line cut off by a kill
        header, body = (lines[:1], lines[1:]) if self.as_csv else ([], lines)
        kept = []
        for line in body:
            row = self._parse(header, line)
            if row and answered(row) and row["input"] not in self.done:
                kept.append(line)
                self.done.add(row["input"])
        if "".join(header + kept) != text:
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text("".join(header + kept), encoding="utf-8")
            os.replace(tmp, path)
        return header + kept

    def _parse(self, header: list[str], line: str) -> dict | None:
        if not self.as_csv:
            with contextlib.suppress(ValueError):
                row = json.loads(line)
                return row if is_row(row) else None
            return None
        row = next(csv.DictReader(header + [line]), None)
        if not row or not row.get("input"):
            return None
        if row.get("error"):
            return error_row(row["input"], row["error"], "", int(row["status"]) if row.get("status") else None)
        return {"input": row["input"]}

    def write(self, row: dict):
        if self.as_csv:
            error = row.get("error") or {}
            self.csv.writerow({**row, "error": error.get("code", ""),
                               "uncertain": row.get("uncertain", ""), "status": row.get("status", ""),
                               "uncertain_reasons": " ".join(row.get("uncertain_reasons") or ())})
        else:
            self.file.write(json.dumps(row) + "\n")
        self.file.flush()

    def close(self):
        if self.file is not sys.stdout:
            self.file.close()


class Progress:
    """items done / total, rate, ETA and errors on one line of stderr, when it is a terminal."""

    def __init__(self, total: int, stream=sys.stderr):
        self.total, self.stream, self.done, self.errors = total, stream, 0, 0
        self.shown, self.began = stream.isatty(), time.monotonic()

    def step(self, row: dict):
        self.done += 1
        self.errors += "error" in row
        if self.shown:
            rate = self.done / max(time.monotonic() - self.began, 1e-9)
            eta = (self.total - self.done) / rate
            self.stream.write(f"\r{self.done}/{self.total} items, {rate:.2f}/s, ETA {eta:.0f} s, "
                              f"{self.errors} errors\033[K")
            self.stream.flush()

    def finish(self):
        if self.shown:
            self.stream.write("\n")


def summary(rows: list[dict], skipped: int, seconds: float) -> str:
    genres = Counter(row["genre"] for row in rows if "genre" in row)
    failed = Counter(row["error"]["code"] for row in rows if "error" in row)
    parts = [f"{len(rows)} items in {seconds:.1f} s ({len(rows) / max(seconds, 1e-9):.2f}/s)",
             ", ".join(f"{g} {n}" for g, n in genres.most_common()) or "no genre",
             "errors: " + (", ".join(f"{c} {n}" for c, n in failed.most_common()) or "none")]
    if skipped:
        parts.append(f"{skipped} skipped (already answered)")
    return "; ".join(parts)


EXIT_STATUSES = """exit status: 0 every item answered (a 4xx answer or an unreadable file counts as answered);
1 some were not (unreachable, or a 5xx); 2 bad arguments"""
# the window's options, as the API's start and duration (docs/api.md), for both command lines
_DEFAULT = {name: config.VARIABLES[name].default for name in
            ("GENRE_DEFAULT_START_S", "GENRE_DEFAULT_DURATION_S", "GENRE_MAX_DURATION_S")}
WINDOW_HELP = {"start": f"where the window starts, in seconds (default {_DEFAULT['GENRE_DEFAULT_START_S']}; the "
                        "middle of a source too short for the default window)",
               "duration": f"the window's length in seconds (default {_DEFAULT['GENRE_DEFAULT_DURATION_S']}, at most "
                           f"{_DEFAULT['GENRE_MAX_DURATION_S']})"}


def _seconds(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text}")
    return value


def client_options(parser: argparse.ArgumentParser):
    """--timeout and --max-wait, for every command with --endpoint (its --retries is its own)."""
    parser.add_argument("--timeout", type=_seconds, default=120.0,
                        help="seconds per request, connecting, sending and the whole answer together (--endpoint)")
    parser.add_argument("--max-wait", type=_seconds, default=client.DEFAULT_MAX_WAIT_S,
                        help="seconds an item may wait in all between its retries, whatever Retry-After says "
                             "(--endpoint; default %(default)g)")


def remote(args, *, start=None, duration=None, features: bool = False) -> client.Client:
    """The client of args.endpoint with the command line's options."""
    fields = {k: v for k, v in (("start", start), ("duration", duration)) if v is not None} | (
        {"features": True} if features else {})
    return client.Client(args.endpoint, token=args.token, timeout_s=args.timeout, retries=args.retries,
                         max_wait_s=args.max_wait, max_upload_bytes=config.load().max_upload_bytes, fields=fields)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m inference batch", description=__doc__, epilog=EXIT_STATUSES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="audio file, folder, list (.txt/.m3u) or -")
    parser.add_argument("--out", type=Path, help="results file (default: stdout); resumed if it exists")
    parser.add_argument("--csv", action="store_true", help="a CSV table instead of JSON lines")
    parser.add_argument("--endpoint", help="the deployed function's URL (default: classify in this process)")
    parser.add_argument("--token", default=os.environ.get("GENRE_TOKEN"),
                        help="identity token for a private function (default: $GENRE_TOKEN)")
    parser.add_argument("--jobs", type=int, help="items at once (default: the core count; 8 with --endpoint)")
    parser.add_argument("--retries", type=int, default=6, help="retries per request (--endpoint)")
    parser.add_argument("--start", type=_seconds, help=WINDOW_HELP["start"])
    parser.add_argument("--duration", type=_seconds, help=WINDOW_HELP["duration"])
    client_options(parser)
    return parser


def main(argv=None, stdin=sys.stdin) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    jobs = args.jobs if args.jobs is not None else 8 if args.endpoint else os.cpu_count() or 1
    if jobs < 1 or args.retries < 0:
        parser.error("--jobs must be at least 1 and --retries at least 0")
    if args.endpoint and not args.endpoint.startswith(("http://", "https://")):
        parser.error("--endpoint must be an http(s) URL")
    try:
        items = find_items(args.inputs, stdin)
        if args.endpoint:
            work = remote(args, start=args.start, duration=args.duration)
        else:
            settings = config.load()
            pipeline.check_window(args.start, args.duration, settings)
            work = Local(settings, args.start, args.duration)
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    except ClassifyError as exc:
        parser.error(exc.message)
    if not items:
        parser.error("no audio files or links found in " + " ".join(args.inputs))
    began = time.monotonic()
    output = Output(args.out, args.csv)
    todo = [item for item in items if item not in output.done]
    progress, rows = Progress(len(todo)), []
    try:
        for row in run(work, todo, jobs):
            output.write(row)
            progress.step(row)
            rows.append({k: row[k] for k in ("genre", "error") if k in row} | {"ok": answered(row)})
    finally:
        progress.finish()
        output.close()
    print(summary(rows, len(items) - len(todo), time.monotonic() - began), file=sys.stderr)
    return 0 if all(row["ok"] for row in rows) else 1
