"""The serving benchmark runs (a tiny count in CI); it prints figures and asserts none of them."""
import subprocess
import sys

from conftest import ROOT


def test_serving_benchmark_smoke_run():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "serving.py"), "--clips", "1", "--repeat", "1",
                           "--requests", "2", "--concurrency", "2", "--skip-install-size"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for line in ("cold start: fresh process -> first answer", "peak RSS of that process",
                 "warm features + inference, 30 s, p50", "HTTP upload of a 30-s clip", "errors 0"):
        assert line in done.stdout, done.stdout
