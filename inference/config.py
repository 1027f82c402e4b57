"""Serving settings, read once from environment variables: VARIABLES is the one list of them (the
table in docs/configuration.md and deploy.sh's pass-through follow it; tests check)."""
import os
from dataclasses import dataclass, field
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_MODEL = MODELS_DIR / "genre_musicnn.onnx"  # the better in cross-validation; models/genre_cnn.onnx is the other
# functions-framework's THREADS (gunicorn's threads; its default is 4 per core), as deploy.sh sets it
# and the tests' and benchmarks' servers use it: 63 clients stuck sending still leave one thread (docs/hardening.md)
SERVER_THREADS = 64


@dataclass(frozen=True)
class Variable:
    name: str
    default: str  # as it would be written in the environment; "" for unset
    what: str  # for docs/configuration.md (Markdown)
    deployed: bool = True  # deploy.sh passes it on to the function when it is set


VARIABLES = {v.name: v for v in (
    Variable("GENRE_MODEL", f"models/{DEFAULT_MODEL.name}",
             "the ONNX model; `models/genre_cnn.onnx` is the small MFCC CNN (49% of new artists' tracks right "
             "instead of 68.3%, at a twentieth of the compute)"),
    Variable("GENRE_DEFAULT_START_S", "60", "where the default window starts"),
    Variable("GENRE_DEFAULT_DURATION_S", "30", "the default window's length"),
    Variable("GENRE_MAX_DURATION_S", "60", "the longest window a caller may ask for"),
    Variable("GENRE_MAX_SOURCE_MINUTES", "15", "longer sources are refused"),
    Variable("GENRE_MAX_UPLOAD_MB", "20", "upload size cap"),
    Variable("GENRE_MAX_FETCH_MB", "30", "download cap per request"),
    Variable("GENRE_TIME_BUDGET_S", "30", "time budget for resolving, fetching and decoding a link (an upload's "
                                          "decoding: counted from when it gets a CPU); over it, 504 `timeout`. "
                                          "The wait for a CPU to infer on is not counted: `GENRE_MAX_QUEUE_S`"),
    Variable("GENRE_MAX_QUEUE_S", "10", "how long a request may wait for a CPU (an upload's decoding, any "
                                        "inference) or a fetch worker (a link) before it is answered 503 `busy`"),
    Variable("GENRE_ALLOWED_SITES", "", "comma-separated domains, e.g. `youtube.com,youtu.be,soundcloud.com`; "
                                        "unset: any"),
    Variable("GENRE_ALLOWED_BUCKETS", "", "comma-separated Cloud Storage buckets whose `gs://BUCKET/OBJECT` links "
                                          "the function reads with its own identity (docs/batch.md); unset: none"),
    Variable("GENRE_CORS_ORIGIN", "*", "the `Access-Control-Allow-Origin` answered"),
    Variable("YTDLP_COOKIES", "", "path to a cookies.txt (Netscape format) of a signed-in browser, for YouTube's "
                                  "bot check; `deploy.sh` sets it from `YTDLP_COOKIES_SECRET`", deployed=False),
    Variable("YTDLP_PROXY", "", "a proxy URL for yt-dlp (e.g. a residential proxy)"),
    Variable("GENRE_DEV_ALLOW_LOOPBACK_LINKS", "", "`1` lets links reach this machine (127.0.0.1, ::1): for local "
                                                   "development and the tests; **`deploy.sh` refuses it**",
             deployed=False),
)}


def _text(name: str) -> str:
    return os.environ.get(name, VARIABLES[name].default)


def _float(name: str) -> float:
    return float(_text(name))


def _list(name: str) -> tuple[str, ...]:
    return tuple(s.strip().lower() for s in _text(name).split(",") if s.strip())


@dataclass(frozen=True)
class Settings:
    model_path: Path = field(default_factory=lambda: Path(os.environ.get("GENRE_MODEL", DEFAULT_MODEL)))
    default_start: float = field(default_factory=lambda: _float("GENRE_DEFAULT_START_S"))
    default_duration: float = field(default_factory=lambda: _float("GENRE_DEFAULT_DURATION_S"))
    max_duration: float = field(default_factory=lambda: _float("GENRE_MAX_DURATION_S"))
    max_source_minutes: float = field(default_factory=lambda: _float("GENRE_MAX_SOURCE_MINUTES"))
    max_upload_bytes: int = field(default_factory=lambda: int(_float("GENRE_MAX_UPLOAD_MB") * 2**20))
    max_fetch_bytes: int = field(default_factory=lambda: int(_float("GENRE_MAX_FETCH_MB") * 2**20))
    time_budget: float = field(default_factory=lambda: _float("GENRE_TIME_BUDGET_S"))
    max_queue_s: float | None = field(default_factory=lambda: _float("GENRE_MAX_QUEUE_S"))  # None: no limit
    allowed_sites: tuple[str, ...] = field(default_factory=lambda: _list("GENRE_ALLOWED_SITES"))
    # None: any bucket (the command line reads with its caller's own credentials)
    allowed_buckets: tuple[str, ...] | None = field(default_factory=lambda: _list("GENRE_ALLOWED_BUCKETS"))
    cors_origin: str = field(default_factory=lambda: _text("GENRE_CORS_ORIGIN"))
    cookies_file: str | None = field(default_factory=lambda: _text("YTDLP_COOKIES") or None)
    proxy: str | None = field(default_factory=lambda: _text("YTDLP_PROXY") or None)
    # Local development and the tests serve clips from this machine; deploy.sh refuses it.
    allow_loopback_links: bool = field(
        default_factory=lambda: _text("GENRE_DEV_ALLOW_LOOPBACK_LINKS") == "1")


def load() -> Settings:
    return Settings()
