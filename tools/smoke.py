"""Smoke check of a deployed (or local) function, e.g. from CI right after ./deploy.sh: it uploads
a clip it makes itself and fails unless the answer is well formed and comes from the expected model.

    python -m tools.smoke "$URL"                               # expects GENRE_MODEL, or the default model
    GENRE_TOKEN=$(gcloud auth print-identity-token) python -m tools.smoke "$URL"   # a private function
    python -m tools.smoke http://127.0.0.1:8080/ --model models/genre_cnn.onnx

The upload goes through the function's one client, inference/client.py (identity token, --timeout
per request, retries of 429, 503 and connection errors while instances start, each retry said on
stderr). Exit status: 0 well formed, 1 not (the reasons on stderr), 2 bad arguments."""
import argparse
import math
import os
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

from inference import batch, client, config, model
from inference.errors import ClassifyError

CLIP_SECONDS = 9  # three segments: enough for an answer that is not "uncertain" by its length alone
CLIP_RATE = 22050


def make_clip(path: Path):
    """A few seconds of a plucked chord over a beat, as 16-bit WAV: audio any model can score."""
    t = np.arange(CLIP_SECONDS * CLIP_RATE) / CLIP_RATE
    pluck = np.exp(-3 * (t % 0.5))
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) * pluck / 3
    noise = np.random.default_rng(0).standard_normal(t.size) * np.exp(-30 * (t % 0.25)) * 0.3
    samples = (np.clip(0.6 * chord + noise, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(CLIP_RATE)
        out.writeframes(samples.tobytes())


def problems(answer: dict, expected: dict) -> list[str]:
    """What is wrong with an answer to the clip, given the expected model's info() and labels."""
    if "error" in answer:
        return [f"HTTP {answer.get('status', '-')} {answer['error'].get('code')}: {answer['error'].get('message')}"]
    found = []
    served = answer.get("model") or {}
    want = {k: expected[k] for k in ("name", "version", "sha256")}
    if served != want:
        found.append(f"the model answering is {served}, not {want}")
    scores = answer.get("scores")
    if not isinstance(scores, dict) or list(scores) != expected["labels"]:
        found.append(f"the scores' labels are {list(scores or {})}, not the model's {expected['labels']}")
    elif not all(isinstance(s, float | int) and 0 <= s <= 1 for s in scores.values()) or \
            not math.isclose(sum(scores.values()), 1, abs_tol=1e-2):
        found.append(f"the scores are not probabilities summing to 1: {scores}")
    elif answer.get("genre") not in scores or answer.get("confidence") != scores[answer["genre"]]:
        found.append(f"the genre {answer.get('genre')!r} and its confidence do not match the scores")
    timeline = answer.get("timeline")
    if not isinstance(answer.get("uncertain"), bool) or not isinstance(timeline, list) or \
            answer.get("segments") != len(timeline) or not timeline:
        found.append("uncertain, segments and timeline are not as documented")
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.smoke", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="the function's URL (deployed, or local: http://127.0.0.1:8080/)")
    parser.add_argument("--model", type=Path, default=config.load().model_path,
                        help="the model it must be serving (default: $GENRE_MODEL, else the shipped default)")
    parser.add_argument("--token", default=os.environ.get("GENRE_TOKEN"),
                        help="identity token for a private function (default: $GENRE_TOKEN)")
    parser.add_argument("--retries", type=int, default=6, help="retries of 429, 503 and connection errors")
    batch.client_options(parser)
    args = parser.parse_args(argv)
    try:
        expected = model.checked(args.model)
    except ClassifyError as exc:
        parser.error(exc.message)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "smoke.wav"
        make_clip(clip)
        answer = client.Client(args.url, token=args.token, timeout_s=args.timeout, retries=args.retries,
                               max_wait_s=args.max_wait, max_upload_bytes=config.load().max_upload_bytes,
                               on_retry=lambda why: print(why, file=sys.stderr, flush=True))(str(clip))
    found = problems(answer, expected)
    if found:
        print(f"smoke check of {args.url} failed:", *found, sep="\n  ", file=sys.stderr)
        return 1
    print(f"ok: {args.url} answered {answer['genre']} ({answer['confidence']}) with {expected['name']} "
          f"{expected['version']} in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
