"""What one gs:// request costs the function: GTZAN clips in a Cloud Storage emulator on 127.0.0.1
(fake-gcs-server, as the tests start it), the function in a functions-framework process reading them,
`python -m inference batch gs://... --endpoint` sending them. Prints, per request, the answer's own
timings (p50 / p95), the worker's CPU seconds (what a saturated instance bills) and the wall time at
--jobs 1 and at one request per core. Not a test; docs/batch.md's cost arithmetic starts from it.

    python bench/bucket.py                 # 40 clips (4 of each label)
    python bench/bucket.py --per-label 1   # a smoke run
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
import function_server  # noqa: E402 (tests/ is not a package)
import gcs  # noqa: E402

GTZAN = ROOT.parent / "shared" / "data" / "gtzan"
TICKS_S = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User and system CPU seconds of a process (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_S


def lay_out(folder: Path, per_label: int) -> int:
    """A bucket `library` holding per_label clips of each GTZAN label under tracks/; the clip count."""
    count = 0
    for label in sorted(p for p in GTZAN.iterdir() if p.is_dir()):
        for clip in sorted(label.glob("*.flac"))[:per_label]:
            target = folder / "library" / "tracks" / label.name / clip.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(clip, target)
            count += 1
    return count


def media_gets(emulator) -> int:
    """The object reads (ranged GETs of the media) the emulator has served."""
    return sum("alt=media" in line for line in emulator.requests())


def run(server, emulator, jobs: int, out: Path) -> tuple[list[dict], float, float]:
    """(rows, wall seconds, worker CPU seconds) of one batch over the bucket."""
    before, began = cpu_s(server.worker), time.monotonic()
    done = subprocess.run([sys.executable, "-m", "inference", "batch", "gs://library/tracks/", "--endpoint",
                           server.url, "--jobs", str(jobs), "--out", str(out)], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, **emulator.env})
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    return rows, time.monotonic() - began, cpu_s(server.worker) - before


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-label", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        clips = lay_out(folder / "buckets", args.per_label)
        (folder / "function").mkdir()
        with gcs.start(folder / "buckets") as emulator, \
                function_server.start(folder / "function", GENRE_ALLOWED_BUCKETS="library", **emulator.env) as server:
            run(server, emulator, 1, folder / "warm.jsonl")  # the model loaded, the caches warm
            for jobs in (1, os.cpu_count() or 1):
                gets = media_gets(emulator)
                rows, wall_s, cpu = run(server, emulator, jobs, folder / f"jobs{jobs}.jsonl")
                gets = media_gets(emulator) - gets
                totals = sorted(row["timings_ms"]["total"] for row in rows)
                fetched = statistics.median(row["source"]["bytes_fetched"] for row in rows)
                print(f"{clips} gs:// clips of 30 s, --jobs {jobs}: answer's total p50 {statistics.median(totals):.0f} "
                      f"ms, p95 {totals[int(0.95 * (len(totals) - 1))]:.0f} ms; worker CPU {cpu / clips * 1000:.0f} "
                      f"ms a request; wall {wall_s / clips * 1000:.0f} ms a request ({clips / wall_s:.2f}/s); "
                      f"median {fetched / 1024:.0f} KiB fetched in {gets / clips:.1f} GETs; errors "
                      f"{sum('error' in row for row in rows)}",
                      flush=True)


if __name__ == "__main__":
    main()
