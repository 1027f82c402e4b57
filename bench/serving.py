"""Serving benchmark: this function's path against the reference paths, on the same clips.

    python bench/serving.py [--clips 4] [--repeat 30] [--requests 40] [--skip-install-size]

Prints one table. (a) = librosa MFCC + onnxruntime CNN; (b) = the seed's way (Keras model load +
predict on librosa MFCCs); (c) = the default model's peer, musicnn the way its package runs it
(librosa log-mel patches + the original TF1 graph restored from its checkpoint). Needs
requirements-dev.txt (TensorFlow and librosa, for the references). Measures, never asserts.
"""
import argparse
import concurrent.futures
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GTZAN = ROOT.parent / "shared" / "data" / "gtzan"
MFCC_MODEL = ROOT / "models" / "genre_cnn.onnx"  # references (a) and (b) use its MFCC CNN
sys.path.insert(0, str(ROOT))
from inference.config import DEFAULT_MODEL  # noqa: E402


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


PEAK_RSS = """
def peak_rss_mib():  # VmHWM starts afresh at exec, unlike ru_maxrss, which a forked child inherits
    status = open("/proc/self/status").read().splitlines()
    return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
"""


def run_child(code: str, *args) -> dict:
    """Run `code` in a fresh interpreter; it prints one JSON line."""
    code = PEAK_RSS + code
    env = dict(os.environ, ORT_DISABLE_TELEMETRY="1", TF_CPP_MIN_LOG_LEVEL="3")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return dict(result, wall_s=wall)


OURS_COLD = """
import json, sys, time
t = time.perf_counter()
import main
from inference import pipeline
answer = pipeline.upload(open(sys.argv[1], "rb").read(), main.SETTINGS)
print(json.dumps({"first_json_s": time.perf_counter() - t, "genre": answer["genre"],
                  "rss_mib": peak_rss_mib()}))
"""

REF_A_COLD = """
import json, sys, time
t = time.perf_counter()
import librosa, numpy as np, onnxruntime as ort, onnx, onnx.utils
sys.path.insert(0, ".")
from inference import segments
rate, n_mfcc = int(sys.argv[3]), int(sys.argv[4])
y, _ = librosa.load(sys.argv[1], sr=rate, duration=30)
session = ort.InferenceSession(sys.argv[2])
mfcc = np.stack([librosa.feature.mfcc(y=s, sr=rate, n_mfcc=n_mfcc).T for s in segments.split(y, 3 * rate)])
session.run(None, {"mfcc": mfcc})
print(json.dumps({"first_json_s": time.perf_counter() - t, "rss_mib": peak_rss_mib()}))
"""

REF_B_COLD = """
import json, sys, time
t = time.perf_counter()
import keras, librosa, numpy as np
sys.path.insert(0, ".")
from inference import segments
rate, n_mfcc = int(sys.argv[3]), int(sys.argv[4])
model = keras.models.load_model(sys.argv[2])
y, _ = librosa.load(sys.argv[1], sr=rate, duration=30)
mfcc = np.stack([librosa.feature.mfcc(y=s, sr=rate, n_mfcc=n_mfcc).T for s in segments.split(y, 3 * rate)])
model.predict(mfcc, verbose=0)
print(json.dumps({"first_json_s": time.perf_counter() - t, "rss_mib": peak_rss_mib()}))
"""

REF_C_COLD = """
import json, sys, time
t = time.perf_counter()
import librosa, numpy as np
sys.path.insert(0, ".")
from export import musicnn
tags = musicnn.original()
y, _ = librosa.load(sys.argv[1], sr=musicnn.SAMPLE_RATE, duration=30)
mel = musicnn.log_mel(y)
tags(np.stack([mel[i:i + musicnn.N_FRAMES] for i in range(0, len(mel) - musicnn.N_FRAMES + 1, musicnn.N_FRAMES)]))
print(json.dumps({"first_json_s": time.perf_counter() - t, "rss_mib": peak_rss_mib()}))
"""


def musicnn_patches(y16k):
    """musicnn's extractor: log-mel of the whole clip, cut into non-overlapping 187-frame patches."""
    import numpy as np

    from export import musicnn
    mel = musicnn.log_mel(y16k)
    return np.stack([mel[i:i + musicnn.N_FRAMES] for i in range(0, len(mel) - musicnn.N_FRAMES + 1, musicnn.N_FRAMES)])


def reference_models(folder: Path) -> tuple[Path, Path]:
    """(a) the shipped model's CNN alone (from its 'mfcc' tensor), (b) the seed network as a .keras file."""
    import onnx.utils
    cnn = folder / "cnn_only.onnx"
    onnx.utils.extract_model(str(MFCC_MODEL), str(cnn), ["mfcc"], ["probabilities"])
    from export.families import genre_cnn
    seed = folder / "seed.keras"
    genre_cnn.seed_network(10).save(seed)  # the seed demo: GTZAN's 10 genres
    return cnn, seed


def warm(clips, repeat, model_path) -> dict:
    """p50/p95 ms of features + inference on 30 s of audio, per path, in this process."""
    import librosa
    import numpy as np
    import onnxruntime as ort

    from export.families import genre_cnn
    from inference import model, segments
    ours = model.Model(model_path)
    from export import musicnn
    times = {"ours": [], "a": [], "b": [], "c": []}
    original = musicnn.original()
    cnn_session = ort.InferenceSession(str(reference_models.cnn), providers=["CPUExecutionProvider"])
    seed = genre_cnn.seed_network(10)
    rate, n_mfcc = genre_cnn.SAMPLE_RATE, genre_cnn.FEATURES["n_mfcc"]

    def paths(y) -> dict:
        """Each path's work on the clip y (at the MFCC CNN's rate), as a call."""
        ours_audio = y if ours.sample_rate == rate else librosa.resample(y, orig_sr=rate, target_sr=ours.sample_rate)
        y16k = librosa.resample(y, orig_sr=rate, target_sr=musicnn.SAMPLE_RATE)

        def mfcc():
            return np.stack([librosa.feature.mfcc(y=s, sr=rate, n_mfcc=n_mfcc).T
                             for s in segments.split(y, genre_cnn.SEGMENT_SAMPLES)])
        return {"ours": lambda: ours.classify(ours_audio),
                "a": lambda: cnn_session.run(None, {"mfcc": mfcc()}),
                "b": lambda: seed(mfcc(), training=False),
                "c": lambda: original(musicnn_patches(y16k))}

    for path in clips:
        for name, call in paths(librosa.load(path, sr=rate, duration=30)[0]).items():
            call()
            for _ in range(repeat):
                t = time.perf_counter()
                call()
                times[name].append((time.perf_counter() - t) * 1000)
    return {k: (statistics.median(v), percentile(v, 95)) for k, v in times.items()}


def process_tree(pid: int) -> list[int]:
    """pid and its descendants (functions-framework serves from a gunicorn worker process)."""
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(c) for c in (task / "children").read_text().split()]
    return [pid] + [p for c in children for p in process_tree(c)]


def peak_rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024


def wait_until_up(url: str):
    """Until the local server at url answers (at most ~10 s)."""
    for _ in range(100):
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="OPTIONS"), timeout=1)
            return
        except OSError:
            time.sleep(0.1)


def server_figures(clips, requests: int, concurrency: int) -> dict:
    """Upload latency (one client) and throughput (`concurrency` clients) of a real local server."""
    port = 18000 + os.getpid() % 1000
    env = dict(os.environ, ORT_DISABLE_TELEMETRY="1", MALLOC_ARENA_MAX="2")  # as deploy.sh sets them
    bin_dir = Path(sys.executable).parent
    server = subprocess.Popen([str(bin_dir / "functions-framework"), "--target", "classify", "--source",
                               str(ROOT / "main.py"), "--host", "127.0.0.1", "--port", str(port)],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    bodies = [Path(c).read_bytes() for c in clips]

    def post(i):
        request = urllib.request.Request(url, data=bodies[i % len(bodies)], headers={"Content-Type": "audio/flac"})
        t = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                ok = answer.status == 200 and "genre" in json.loads(answer.read())
        except Exception:
            ok = False
        return (time.perf_counter() - t) * 1000, ok

    try:
        wait_until_up(url)
        post(0)
        single = [post(i) for i in range(requests)]
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            loaded = list(pool.map(post, range(requests)))
        elapsed = time.perf_counter() - started
        rss = max(peak_rss_mib(pid) for pid in process_tree(server.pid))
    finally:
        server.terminate()
        server.wait(timeout=10)
    single_ms = [ms for ms, _ in single]
    return {"upload_p50": statistics.median(single_ms), "upload_p95": percentile(single_ms, 95),
            "rps": len(loaded) / elapsed, "load_p95": percentile([ms for ms, _ in loaded], 95),
            "errors": sum(not ok for _, ok in loaded) + sum(not ok for _, ok in single), "server_rss_mib": rss}


def install_size() -> float:
    """MiB of a fresh virtualenv with requirements.txt installed."""
    folder = Path(tempfile.mkdtemp(prefix="bench-venv-"))
    try:
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
        subprocess.run([str(folder / "bin" / "pip"), "install", "-q", "-r", str(ROOT / "requirements.txt")],
                       check=True, capture_output=True)
        return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=4, help="GTZAN clips used (30 s each)")
    parser.add_argument("--repeat", type=int, default=30, help="warm runs per clip and path")
    parser.add_argument("--requests", type=int, default=40, help="HTTP requests per server measurement")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--skip-install-size", action="store_true")
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="the function's model (default: its default)")
    args = parser.parse_args(argv)
    os.environ["GENRE_MODEL"] = args.model  # for the cold-start child and the server

    clips = [str(p) for p in sorted(GTZAN.glob("*/*.00000.flac"))[: args.clips]]
    card = json.loads(MFCC_MODEL.with_suffix(".json").read_text())
    mfcc_args = (card["sample_rate"], str(card["features"]["n_mfcc"]))
    with tempfile.TemporaryDirectory() as tmp:
        reference_models.cnn, seed_path = reference_models(Path(tmp))
        cold = {"ours": run_child(OURS_COLD, clips[0]),
                "a": run_child(REF_A_COLD, clips[0], str(reference_models.cnn), *mfcc_args),
                "b": run_child(REF_B_COLD, clips[0], str(seed_path), *mfcc_args),
                "c": run_child(REF_C_COLD, clips[0])}
        warm_ms = warm(clips, args.repeat, args.model)
    http = server_figures(clips, args.requests, args.concurrency)
    size = None if args.skip_install_size else install_size()

    paths = ("ours", "a", "b", "c")
    rows = [("cold start: fresh process -> first answer (s)", *(cold[k]["first_json_s"] for k in paths)),
            ("peak RSS of that process (MiB)", *(cold[k]["rss_mib"] for k in paths)),
            ("warm features + inference, 30 s, p50 (ms)", *(warm_ms[k][0] for k in paths)),
            ("warm features + inference, 30 s, p95 (ms)", *(warm_ms[k][1] for k in paths))]
    print(f"{'':48} {'this function':>14} {'(a) librosa+ORT':>16} {'(b) Keras seed':>15} {'(c) musicnn TF1':>16}")
    for name, *values in rows:
        print(f"{name:48} {values[0]:14.3f} {values[1]:16.3f} {values[2]:15.3f} {values[3]:16.3f}")
    print(f"HTTP upload of a 30-s clip, one client: p50 {http['upload_p50']:.1f} ms, p95 {http['upload_p95']:.1f} ms")
    print(f"HTTP, {args.concurrency} concurrent clients, {args.requests} uploads: {http['rps']:.1f} requests/s, "
          f"p95 {http['load_p95']:.1f} ms, errors {http['errors']}; server peak RSS {http['server_rss_mib']:.0f} MiB")
    if size is not None:
        print(f"installed size of requirements.txt in a fresh virtualenv: {size:.0f} MiB")
    print(f"model: {args.model} ({Path(args.model).stat().st_size / 2**20:.1f} MiB); (a) and (b): the MFCC CNN; "
          "(c): musicnn's MSD network alone (tags)")
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; clips: {len(clips)} x 30 s")


if __name__ == "__main__":
    main()
