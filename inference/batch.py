"""python -m inference batch INPUT...: classify a music library, in this process or with the deployed function.

INPUT: audio files, folders (searched recursively for audio files), lists (.txt, .m3u: one path or
link a line, `#` comments; `-` reads stdin). One JSON line per item, written as each finishes:
{"input": ..., ...the answer...} or {"input": ..., "status": ..., "error": {"code", "message"}}.
Exit status: 0 every item answered (4xx answers included), 1 some not, 2 bad arguments."""
import argparse
import contextlib
import csv
import dataclasses
import hashlib
import itertools
import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

from inference import client, config, decode, parts, pipeline, storage, tokens
from inference.client import error_row, unreadable
from inference.errors import ClassifyError

LISTS = {".txt", ".m3u", ".m3u8"}
# how bytes that are not UTF-8 in a list's line or a CSV's field are read and written: as the bytes of a file
# name, as a folder's walk and the command line give them (a Latin-1 .m3u names its Latin-1 files)
NOT_UTF8 = "surrogateescape"
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


def digest(item: str) -> int:
    """An item's 64-bit digest: what resume and the de-duplication keep of it, and what places it in a shard."""
    return int.from_bytes(hashlib.blake2b(item.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")


@dataclasses.dataclass(frozen=True)
class Shard:
    """Shard `index` of `count`: the items whose digest is `index` modulo `count`, whatever the order."""
    index: int = 0
    count: int = 1

    def __contains__(self, item: str) -> bool:
        return self.holds(digest(item))

    def holds(self, key: int) -> bool:
        """Whether an item of this digest is this shard's."""
        return key % self.count == self.index

    @classmethod
    def parse(cls, text: str) -> "Shard":
        index, _, count = text.partition("/")
        if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
            raise argparse.ArgumentTypeError(f"a shard is I/N with 0 <= I < N, not {text}")
        return cls(int(index), int(count))


def default_shard() -> Shard:
    """This task's shard in a Cloud Run job (CLOUD_RUN_TASK_INDEX of CLOUD_RUN_TASK_COUNT), else the whole."""
    count = os.environ.get("CLOUD_RUN_TASK_COUNT")
    try:
        return Shard.parse(f"{os.environ.get('CLOUD_RUN_TASK_INDEX', '0')}/{count}") if count else Shard()
    except argparse.ArgumentTypeError as exc:
        raise ValueError(f"CLOUD_RUN_TASK_INDEX/CLOUD_RUN_TASK_COUNT: {exc}") from None


def check_inputs(inputs: list[str]):
    """ValueError for a local input that is missing: before anything runs (a bucket's are found as listed)."""
    for given in inputs:
        if given != "-" and not is_link(given) and not Path(given).exists():
            raise ValueError(f"no such file or folder: {given}")


def find_items(inputs: list[str], stdin) -> Iterator[str]:
    """Every file and link the inputs name, streamed in order (a bucket's listing page by page)."""
    for given in inputs:
        path = Path(given)
        if given == "-":
            if hasattr(stdin, "reconfigure"):  # sys.stdin, as a list file is read
                stdin.reconfigure(encoding="utf-8-sig", errors=NOT_UTF8)
            yield from _lines(stdin, None)
        elif storage.is_gs(given):
            yield from _in_bucket(given)
        elif is_link(given):
            yield given
        elif path.is_dir():
            yield from storage.under(given)
        elif path.suffix.lower() in LISTS:
            with open(path, encoding="utf-8-sig", errors=NOT_UTF8) as f:
                yield from _lines(f, path.parent)
        else:
            yield given


def _in_bucket(given: str) -> Iterator[str]:
    """A gs:// input: an audio object (pinned to a #GENERATION or not), a list (its relative lines under the
    list's prefix), or a prefix."""
    suffix = storage.suffix(given)
    if suffix in decode.SUFFIXES:
        yield given
    elif suffix in LISTS:
        with storage.open_text(given) as f:
            yield from _lines(f, given.rsplit("/", 1)[0] + "/")
    else:
        yield from storage.under(given)


def _lines(f, base: Path | str | None) -> Iterator[str]:
    """The items of a list: links as they are, paths relative to the list's folder (or gs:// prefix)."""
    for line in f:
        item = line.strip()
        if item and not item.startswith("#"):
            yield item if is_link(item) or base is None else str(base / item) if isinstance(base, Path) \
                else base + item


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


def run(work, items: Iterable[str], jobs: int):
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
    """Rows as JSON lines or CSV, flushed one by one; an existing file is resumed: the digests of its
    answered items are `done`, its cut-off last record and unanswered items dropped. The file is read a
    record at a time (a JSON line; a CSV record, whose quoted name may hold a newline), and rewritten
    only where a record is dropped."""

    def __init__(self, path: Path | None, as_csv: bool):
        self.as_csv, self.done = as_csv, set()
        kept = self._resume(path) if path and path.exists() else False
        if not path and as_csv:  # a file name that is not UTF-8 is written as its bytes, as in a file
            sys.stdout.reconfigure(errors=NOT_UTF8)
        self.file = open(path, "a", encoding="utf-8", errors=NOT_UTF8, newline="") if path else sys.stdout  # noqa: SIM115
        self.csv = csv.DictWriter(self.file, CSV_COLUMNS, lineterminator="\n", extrasaction="ignore")
        if as_csv and not kept:
            self.csv.writeheader()

    def _resume(self, path: Path) -> bool:
        """Whether the file holds a header or a row to keep."""
        out, at, kept = None, 0, False  # out: the rewrite, begun at the first record dropped; at: the offset read to
        with open(path, "rb") as f:
            for record, row in _csv_records(f) if self.as_csv else _json_records(f):  # ValueError: not ours
                if self._keeps(row):
                    kept = True
                    if out:
                        out.write(record)
                elif not out:
                    out = self._rewrite(path, at)
                at += len(record)
        if out:
            out.close()
            os.replace(out.name, path)
        return kept

    def _keeps(self, row: dict | None) -> bool:
        """Whether a record is kept: the CSV's header ({}), or an answer to an item not kept yet (now `done`)."""
        if row == {}:
            return True
        if not row or not answered(row) or (key := digest(row["input"])) in self.done:
            return False
        self.done.add(key)
        return True

    @staticmethod
    def _rewrite(path: Path, upto: int):
        """A temporary file beside `path` holding its first `upto` bytes, to go on with."""
        out = open(path.with_name(path.name + ".tmp"), "wb")  # noqa: SIM115 (closed by _resume)
        with open(path, "rb") as f:
            while upto > 0 and (chunk := f.read(min(upto, 2**20))):
                out.write(chunk)
                upto -= len(chunk)
        return out

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


def _json_records(f) -> Iterator[tuple[bytes, dict | None]]:
    """A JSON-lines file's lines: (the line, the row it holds or None)."""
    for line in f:
        row = None
        if line.endswith(b"\n"):
            with contextlib.suppress(ValueError, RecursionError):  # RecursionError: nested too deep
                row = json.loads(line.decode("utf-8", "replace"))
        yield line, row if is_row(row) else None


def _csv_records(f) -> Iterator[tuple[bytes, dict | None]]:
    """A CSV file's records, read as strict CSV: (the record's bytes, the row it holds or None); the
    header first, its row {} (a cut-off one None); ValueError where the header is not this command's. A
    record is read within csv's field limit."""
    lines, header = [], None  # lines: those of the record being read; header: whether it is this command's

    def text():
        for line in f:
            lines.append(line)
            yield line.decode("utf-8", NOT_UTF8)
    reader = csv.reader(text(), strict=True)
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error:  # an open quote at the end, a field over the limit...
            fields = None
        record = b"".join(lines)
        lines.clear()
        whole = record.endswith(b"\n") and fields is not None
        if header is None:
            if whole and fields != CSV_COLUMNS:  # another file: resuming would drop every record of it
                raise ValueError("it is not a CSV this command wrote (its header is not its columns): give --out "
                                 "a new file, or one it wrote")
            header = whole
            yield record, {} if header else None
        else:
            ours = header and whole and len(fields) == len(CSV_COLUMNS)
            yield record, _csv_row(dict(zip(CSV_COLUMNS, fields, strict=True))) if ours else None


def _csv_row(found: dict) -> dict | None:
    """The row a CSV record's fields hold, or None where they are not a row this command writes."""
    try:
        status = int(found["status"]) if found.get("status") else None
    except ValueError:
        return None
    if not found.get("input"):
        return None
    return error_row(found["input"], found["error"], "", status) if found.get("error") else {"input": found["input"]}


class Progress:
    """Items done, rate and errors on one line of stderr, when it is a terminal (the total is not known
    while a listing streams)."""

    def __init__(self, stream=sys.stderr):
        self.stream, self.done, self.errors = stream, 0, 0
        self.shown, self.began = stream.isatty(), time.monotonic()

    def step(self, row: dict):
        self.done += 1
        self.errors += "error" in row
        if self.shown:
            rate = self.done / max(time.monotonic() - self.began, 1e-9)
            self.stream.write(f"\r{self.done} items, {rate:.2f}/s, {self.errors} errors\033[K")
            self.stream.flush()

    def finish(self):
        if self.shown:
            self.stream.write("\n")


class Tally:
    """What the summary says, counted as rows come (no row is kept)."""

    def __init__(self):
        self.rows, self.genres, self.failed, self.all_answered = 0, Counter(), Counter(), True

    def add(self, row: dict):
        self.rows += 1
        self.genres.update([row["genre"]] if "genre" in row else [])
        self.failed.update([row["error"]["code"]] if "error" in row else [])
        self.all_answered = self.all_answered and answered(row)

    def summary(self, skipped: int, seconds: float) -> str:
        parts = [f"{self.rows} items in {seconds:.1f} s ({self.rows / max(seconds, 1e-9):.2f}/s)",
                 ", ".join(f"{g} {n}" for g, n in self.genres.most_common()) or "no genre",
                 "errors: " + (", ".join(f"{c} {n}" for c, n in self.failed.most_common()) or "none")]
        if skipped:
            parts.append(f"{skipped} skipped (already answered)")
        return "; ".join(parts)


EXIT_STATUSES = """exit status: 0 every item answered (a 4xx answer or an unreadable file counts as answered);
1 some were not (unreachable, or a 5xx), or the function refused the token and no new one could be had
(the items not answered are left for the resume); 2 bad arguments"""
# the window's options, as the API's start and duration (docs/api.md), for both command lines
_DEFAULT = {name: config.VARIABLES[name].default for name in
            ("GENRE_DEFAULT_START_S", "GENRE_DEFAULT_DURATION_S", "GENRE_MAX_DURATION_S")}
WINDOW_HELP = {"start": f"where the window starts, in seconds (default {_DEFAULT['GENRE_DEFAULT_START_S']}; the "
                        "middle of a source too short for the default window)",
               "duration": f"the window's length in seconds (default {_DEFAULT['GENRE_DEFAULT_DURATION_S']}, at most "
                           f"{_DEFAULT['GENRE_MAX_DURATION_S']})"}


def seconds_argument(text: str) -> float:
    """A command line's seconds: a number, finite and not negative (argparse's type)."""
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text}")
    return value


def client_options(parser: argparse.ArgumentParser):
    """--timeout and --max-wait, for every command with --endpoint (its --retries is its own)."""
    parser.add_argument("--timeout", type=seconds_argument, default=120.0,
                        help="seconds per request, connecting, sending and the whole answer together (--endpoint)")
    parser.add_argument("--max-wait", type=seconds_argument, default=client.DEFAULT_MAX_WAIT_S,
                        help="seconds an item may wait in all between its retries, whatever Retry-After says "
                             "(--endpoint; default %(default)g)")


def remote(args, *, start=None, duration=None, features: bool = False) -> client.Client:
    """The client of args.endpoint with the command line's options."""
    fields = {k: v for k, v in (("start", start), ("duration", duration)) if v is not None} | (
        {"features": True} if features else {})
    token = tokens.choose(token=args.token, command=getattr(args, "token_command", None), endpoint=args.endpoint)
    return client.Client(args.endpoint, token=token, timeout_s=args.timeout, retries=args.retries,
                         max_wait_s=args.max_wait, max_upload_bytes=config.load().max_upload_bytes, fields=fields)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m inference batch", description=__doc__, epilog=EXIT_STATUSES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="audio file, folder, list (.txt/.m3u) or -")
    parser.add_argument("--out", help="results file (default: stdout), resumed if it exists; or gs://BUCKET/PREFIX/: "
                                      "this shard's results as part files there, resumed from them")
    parser.add_argument("--csv", action="store_true", help="a CSV table instead of JSON lines")
    parser.add_argument("--endpoint", help="the deployed function's URL (default: classify in this process)")
    parser.add_argument("--token", default=os.environ.get("GENRE_TOKEN"),
                        help="identity token for a private function, sent as it is (default: $GENRE_TOKEN)")
    parser.add_argument("--token-command", metavar="CMD", default=os.environ.get("GENRE_TOKEN_COMMAND"),
                        help="prints an identity token; run at the start and again when the token is refused or "
                             "about to expire, e.g. 'gcloud auth print-identity-token' (default: "
                             "$GENRE_TOKEN_COMMAND; without either: google-auth's credentials, for an https "
                             "endpoint)")
    parser.add_argument("--jobs", type=int, help="items at once (default: the core count; 8 with --endpoint)")
    parser.add_argument("--retries", type=int, default=6, help="retries per request (--endpoint)")
    parser.add_argument("--shard", type=Shard.parse, metavar="I/N",
                        help="this run's share of the items: those whose digest is I modulo N, whatever the listing's "
                             "order (default: CLOUD_RUN_TASK_INDEX/CLOUD_RUN_TASK_COUNT in a Cloud Run job, else all)")
    parser.add_argument("--start", type=seconds_argument, help=WINDOW_HELP["start"])
    parser.add_argument("--duration", type=seconds_argument, help=WINDOW_HELP["duration"])
    client_options(parser)
    return parser


class Todo:
    """The items of one shard not answered before (`done`: digests), each once, as an iterator; each
    item is in `done` or in `sent`, never both, so the two sets hold one digest per distinct item."""

    def __init__(self, items: Iterator[str], shard: Shard, done: set[int]):
        self.items, self.shard, self.done, self.sent, self.skipped = items, shard, done, set(), 0

    def __iter__(self) -> Iterator[str]:
        for item in self.items:
            key = digest(item)  # once an item: a million of them are hashed
            if not self.shard.holds(key):
                continue
            if key in self.done:
                self.skipped += 1
            elif key not in self.sent:
                self.sent.add(key)
                yield item


def _work(args):
    """What answers an item: the function's client with --endpoint, else this process (which reads any
    bucket the caller's credentials may: GENRE_ALLOWED_BUCKETS is the function's guard)."""
    if args.endpoint:
        return remote(args, start=args.start, duration=args.duration)
    settings = dataclasses.replace(config.load(), allowed_buckets=None)
    pipeline.check_window(args.start, args.duration, settings)
    return Local(settings, args.start, args.duration)


def _first(items: Iterator[str], inputs: list[str], parser) -> Iterator[str]:
    """The items, once one is known to exist (none: bad arguments, before any output is opened)."""
    first = next(items, None)
    if first is None:
        parser.error("no audio files or links found in " + " ".join(inputs))
    return itertools.chain([first], items)


def _output(args, shard: Shard):
    """Where the rows go: part files under a gs:// prefix, a local file, or stdout."""
    if not (args.out and storage.is_gs(args.out)):
        return Output(Path(args.out) if args.out else None, args.csv)
    if args.csv:
        raise ValueError("--csv writes a local file; results in a bucket are JSON lines")
    return parts.Parts(args.out, index=shard.index, count=shard.count, digest=digest, answered=answered)


def main(argv=None, stdin=sys.stdin) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    jobs = args.jobs if args.jobs is not None else 8 if args.endpoint else os.cpu_count() or 1
    if jobs < 1 or args.retries < 0:
        parser.error("--jobs must be at least 1 and --retries at least 0")
    if args.endpoint and not args.endpoint.startswith(("http://", "https://")):
        parser.error("--endpoint must be an http(s) URL")
    try:
        check_inputs(args.inputs)
        shard, work = args.shard or default_shard(), _work(args)
        items = _first(find_items(args.inputs, stdin), args.inputs, parser)
        began, output = time.monotonic(), _output(args, shard)
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    except ClassifyError as exc:
        parser.error(exc.message)
    todo, progress, tally = Todo(items, shard, output.done), Progress(), Tally()
    try:
        for row in run(work, todo, jobs):
            output.write(row)
            progress.step(row)
            tally.add(row)
    except (ValueError, OSError, ClassifyError) as exc:  # the inputs, read as the run goes
        print(f"{parser.prog}: error: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 2
    except tokens.Refused as exc:  # the items in flight are not written: a resume sends them again
        print(f"{parser.prog}: stopped: {exc}", file=sys.stderr)
        return 1
    finally:
        progress.finish()
        output.close()
    print(tally.summary(todo.skipped, time.monotonic() - began), file=sys.stderr)
    return 0 if tally.all_answered else 1
