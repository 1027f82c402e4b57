"""python -m inference <file-or-url> [--start S] [--duration S]: print the function's JSON answer (indented;
the server answers the same JSON on one line). python -m inference batch ...: a whole library (--help)."""
import argparse
import json
import sys

from inference import batch, config, pipeline
from inference.batch import WINDOW_HELP, seconds_argument
from inference.errors import ClassifyError

EXIT_STATUSES = """exit status: 0 an answer; 1 an error answer (its JSON printed: a bad file or link, an
unreadable file, ...); 2 bad arguments or settings (docs/configuration.md)"""


def main(argv=None) -> int:
    """Exit 2 with one line for a setting the function could not run with, as for a bad argument."""
    try:
        return _main(sys.argv[1:] if argv is None else argv)
    except config.SettingError as exc:
        print(f"python -m inference: error: {exc}", file=sys.stderr)
        return 2


def _main(argv: list[str]) -> int:
    if argv[:1] == ["batch"]:
        return batch.main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m inference", description=__doc__, epilog=EXIT_STATUSES)
    parser.add_argument("source", help="an audio file, or a link (http/https); `batch` for many")
    parser.add_argument("--start", type=seconds_argument, help=WINDOW_HELP["start"])
    parser.add_argument("--duration", type=seconds_argument, help=WINDOW_HELP["duration"])
    args = parser.parse_args(argv)
    settings = config.load()
    try:  # a window the function refuses (bad_parameter) is a bad argument here
        pipeline.check_window(args.start, args.duration, settings)
    except ClassifyError as exc:
        parser.error(exc.message)
    try:
        answer = batch.here(args.source, settings, args.start, args.duration)
    except ClassifyError as exc:
        answer = exc.body()
    except OSError as exc:
        answer = batch.unreadable(exc, args.source).body()
    print(json.dumps(answer, indent=2, allow_nan=False))
    return 1 if "error" in answer else 0


if __name__ == "__main__":
    sys.exit(main())
