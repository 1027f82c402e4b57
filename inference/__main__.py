"""python -m inference <file-or-url> [--start S] [--duration S]: print the function's JSON answer."""
import argparse
import json
import sys
from pathlib import Path

from inference import config, errors, pipeline
from inference.errors import ClassifyError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference", description=__doc__)
    parser.add_argument("source", help="an audio file, or a link (http/https)")
    parser.add_argument("--start", type=float)
    parser.add_argument("--duration", type=float)
    args = parser.parse_args(argv)
    settings = config.load()
    try:
        if "://" in args.source:
            answer = pipeline.link(args.source, settings, args.start, args.duration)
        else:
            path = Path(args.source)
            if path.stat().st_size > settings.max_upload_bytes:
                raise errors.upload_too_large(settings.max_upload_bytes)
            answer = pipeline.upload(path.read_bytes(), settings, args.start, args.duration, filename=path.name)
    except ClassifyError as exc:
        print(json.dumps(exc.body(), indent=2))
        return 1
    except OSError as exc:
        print(json.dumps(errors.unreadable_file(str(exc)).body(), indent=2))
        return 1
    print(json.dumps(answer, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
