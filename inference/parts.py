"""`batch --out gs://BUCKET/PREFIX/`: one shard's rows as part files in the bucket, objects that are
never rewritten (each created only if its name is free), written every FLUSH_ROWS rows or FLUSH_S
seconds. A re-run of the shard reads its parts back and skips what they answered.

    PREFIX/shard-00000-of-00004/part-000000.jsonl, part-000001.jsonl, ...

Only answered rows go into parts (answers and the item's own errors, 4xx); an item not answered
(unreachable, 5xx) is said on stderr and left for the re-run, so each item is in the parts once."""
import json
import re
import sys
import time

from inference import storage

FLUSH_ROWS = 1000
FLUSH_S = 60.0
PART = re.compile(r"shard-(\d{5})-of-(\d{5})/part-(\d{6})\.jsonl")


class Parts:
    """The results of shard `index` of `count` under the gs:// prefix `where`; `done`: the digests of the
    items its parts answered (`digest` makes them), `answered` tells which rows are kept."""

    def __init__(self, where: str, *, index: int, count: int, digest, answered):
        self.prefix = where if where.endswith("/") else where + "/"
        self.at = storage.parse(self.prefix, prefix=True)
        self.folder = f"{self.prefix}shard-{index:05d}-of-{count:05d}/"
        self.digest, self.answered = digest, answered
        self.done, self.rows, self.next_part, self.flushed_at = set(), [], 0, time.monotonic()
        for name in self._own_parts(index, count):
            self._read(name)

    def _own_parts(self, index: int, count: int) -> list[str]:
        """This shard's part files, in order; ValueError where the prefix holds another shard count's."""
        found = []
        for name in storage.names(self.prefix):
            match = PART.fullmatch(name.removeprefix(self.at.name))
            if not match:
                continue
            if int(match.group(2)) != count:
                raise ValueError(f"{self.prefix} holds the results of {int(match.group(2))} shards, not {count}: "
                                 f"run with --shard I/{int(match.group(2))} or write to another prefix")
            if int(match.group(1)) == index:
                found.append(name)
                self.next_part = max(self.next_part, int(match.group(3)) + 1)
        return sorted(found)

    def _read(self, name: str):
        """A part's answered items into `done` (a line of any other shape is ignored: parts hold only rows)."""
        with storage.open_text(f"{storage.SCHEME}{self.at.bucket}/{name}") as f:
            for line in f:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if isinstance(row, dict) and isinstance(row.get("input"), str):
                    self.done.add(self.digest(row["input"]))

    def write(self, row: dict):
        if not self.answered(row):
            print(f"not answered, left for the re-run: {json.dumps(row)}", file=sys.stderr)
            return
        self.rows.append(json.dumps(row) + "\n")
        if len(self.rows) >= FLUSH_ROWS or time.monotonic() - self.flushed_at >= FLUSH_S:
            self.flush()

    def flush(self):
        """The rows held as a new part; FileExistsError where another run took its name."""
        if self.rows:
            storage.create(f"{self.folder}part-{self.next_part:06d}.jsonl", "".join(self.rows).encode(),
                           content_type="application/x-ndjson")
            self.next_part, self.rows = self.next_part + 1, []
        self.flushed_at = time.monotonic()

    def close(self):
        self.flush()
