"""The function's clients against a hostile endpoint on 127.0.0.1 (tests/hostile_http.py's Endpoint):
each command's wall time and peak RSS (/usr/bin/time) and how it ended. Not a test.

    python bench/client.py                        # this checkout's commands
    python bench/client.py --repo ../main --limit 120   # another checkout's, each killed after 120 s

Options a checkout's command line lacks (--max-wait, export's --timeout) are left out for it.
"""
import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import hostile_http  # noqa: E402 (tests/ is not a package)

ITEM = "https://example.com/song"
CLIP = ROOT.parent / "shared" / "data" / "gtzan" / "rock" / "rock.00000.flac"


def cases(url: str, manifest: Path, cache: Path) -> list[tuple[str, list[str], list[str], list[str]]]:
    """(what, the command, its arguments, options given only where the checkout's command has them)."""
    batch = [sys.executable, "-m", "inference", "batch"]
    remote = [ITEM, "--timeout", "5", "--retries", "0", "--endpoint"]
    export = [sys.executable, "-m", "export", "crossval", "genre_musicnn"]
    return [
        ("batch, a body a byte every 2 s", batch, remote + [f"{url}/drip"], []),
        ("batch, a header a byte every 2 s", batch, remote + [f"{url}/drip-headers"], []),
        ("batch, a 400-MB answer, its length said", batch, remote + [f"{url}/huge?mb=400"], []),
        ("batch, a 400-MB answer, chunked", batch, remote + [f"{url}/huge?mb=400&chunked=1"], []),
        ("batch, a 307 to another origin (--retries 6)", batch, [ITEM, "--endpoint", f"{url}/away"], []),
        ("batch, 503 Retry-After: 999999 (--retries 6)", batch, [ITEM, "--endpoint", f"{url}/busy"],
         ["--max-wait", "30"]),
        ("smoke --timeout 5, a body a byte every 2 s", [sys.executable, "-m", "tools.smoke"],
         [f"{url}/drip", "--timeout", "5"], ["--retries", "0"]),
        ("export crossval --endpoint, a body a byte every 2 s", export,
         ["--data", str(manifest), "--retries", "0", "--cache", str(cache), "--out", str(cache / "out"),
          "--endpoint", f"{url}/drip"], ["--timeout", "5"]),
    ]


def takes(command: list[str], option: str, repo: Path) -> bool:
    """Whether the checkout's command has the option."""
    helped = subprocess.run([*command, "--help"], cwd=repo, capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(repo)))
    return option in helped.stdout


def measure(command: list[str], repo: Path, limit: float, look_for: str = "") -> str:
    """"<seconds> s <peak RSS> KB, exit N: what it said last" (a batch row's error; with look_for, the
    first line of stderr holding it)."""
    began = time.monotonic()
    with subprocess.Popen(["/usr/bin/time", "-f", "%e s %M KB", *command], cwd=repo, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(repo)),
                          start_new_session=True) as running:
        try:
            stdout, stderr = running.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(running.pid, signal.SIGKILL)  # the command under time too
            running.communicate()
            return f"still running at {time.monotonic() - began:.0f} s (killed)"
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("Command exited")]
    said = stdout.strip().splitlines()[-1] if not running.returncode and stdout.strip() else \
        lines[-2] if len(lines) > 1 else ""
    with contextlib.suppress(ValueError, KeyError, TypeError, IndexError):
        said = json.loads(stdout.splitlines()[-1])["error"]["message"]  # batch's row
    said = next((line for line in lines if look_for and look_for in line), said)
    return f"{lines[-1]}, exit {running.returncode}: {said[:150]}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=ROOT, help="the checkout whose commands run")
    parser.add_argument("--limit", type=float, default=300, help="seconds before a command is killed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, hostile_http.EndpointServer() as endpoint:
        manifest = Path(folder) / "m.csv"
        manifest.write_text(f"path,label\n{CLIP},rock\n")
        for what, command, arguments, options in cases(endpoint.url, manifest, Path(folder) / "cache"):
            extra = options if options and takes(command, options[0], args.repo) else []
            said = measure(command + arguments + extra, args.repo.resolve(), args.limit)
            print(f"| {what} {' '.join(extra)} | {said} |", flush=True)
        print(f"requests that reached the canary: {len(endpoint.hits)}")


if __name__ == "__main__":
    main()
