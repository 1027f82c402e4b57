"""The benchmark and the soak run (tiny counts in CI); they print figures and no time is asserted."""
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


def test_soak_smoke_run():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "soak.py"), "--clients", "2", "--minutes", "0.1",
                           "--clips", "4"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "errors 0" in done.stdout and "LEAK" not in done.stdout, done.stdout
    for line in ("rss_mib", "open_files", "temp_files", "worker RSS over the run"):
        assert line in done.stdout, done.stdout


def test_uploads_benchmark_smoke_run():
    for form in ([], ["--form"]):
        command = [sys.executable, str(ROOT / "bench" / "uploads.py"), "--clients", "3", "--mb", "2", *form]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr[-3000:]
        assert "statuses {422: 3}" in done.stdout and "temp files after 0" in done.stdout, done.stdout


def test_extraction_and_head_fit_benchmarks_smoke_run():
    extraction = subprocess.run([sys.executable, str(ROOT / "bench" / "extract.py"), "--clips", "2", "--jobs", "1",
                                 "--in-flight", "2"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert extraction.returncode == 0, extraction.stderr[-3000:]
    assert "2 clips of 30 s: this process (1 jobs)" in extraction.stdout and "local functions-framework server (2 " \
        "in flight)" in extraction.stdout, extraction.stdout
    fit = subprocess.run([sys.executable, str(ROOT / "bench" / "head_fit.py"), "--clips", "500", "--labels", "5"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert "500 clips x 10 segments, 5 labels: fit" in fit.stdout and "peak RSS" in fit.stdout, fit.stdout


def test_bodies_benchmark_smoke_run():
    for kind, status in (("json", "413"), ("chunked-json", "413"), ("request-line", "414")):
        command = [sys.executable, str(ROOT / "bench" / "bodies.py"), kind, "--clients", "2", "--mb", "1"]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr[-3000:]
        assert f"'HTTP/1.1 {status} " in done.stdout and "worker RSS before" in done.stdout, done.stdout


def test_music_benchmark_smoke_run():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "music.py"), "--repeat", "1"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for line in ("without music: classify 30 s", "with music: classify 30 s", "the detector's nodes alone"):
        assert line in done.stdout, done.stdout


def test_in_labels_benchmark_smoke_run():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "in_labels.py"), "--repeat", "1"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for line in ("without in_labels: classify 30 s", "with in_labels: classify 30 s", "the detector's nodes alone"):
        assert line in done.stdout, done.stdout
    assert "Removing initializer" not in done.stderr  # every constant the detector adds is used


def test_million_benchmark_smoke_run():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "million.py"), "--items", "300", "--missing", "20",
                           "--dispatch", "50"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "resume: " in done.stdout and "20 items in" in done.stdout and "280 skipped" in done.stdout, done.stdout
    assert "dispatch: " in done.stdout and "50 items in" in done.stdout and "peak RSS" in done.stdout, done.stdout


def test_bucket_benchmark_smoke_run():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "bucket.py"), "--per-label", "1"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "10 gs:// clips of 30 s, --jobs 1" in done.stdout and "errors 0" in done.stdout, done.stdout
    assert "worker CPU" in done.stdout and "GETs" in done.stdout, done.stdout
