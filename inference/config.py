"""Serving settings, read once from environment variables: VARIABLES is the one list of them (the
table in docs/configuration.md and deploy.sh's pass-through follow it; tests check)."""
import http.cookiejar
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

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
    Variable("YTDLP_PROXY", "", "an http(s) proxy URL (e.g. a residential proxy): links are resolved and their "
                                "audio fetched through it"),
    Variable("GENRE_DEV_ALLOW_LOOPBACK_LINKS", "", "`1` lets links reach this machine (127.0.0.1, ::1): for local "
                                                   "development and the tests; **`deploy.sh` refuses it**",
             deployed=False),
)}


MAX_NUMBER = 1e6  # the largest number a setting takes (seconds, minutes, MB): larger ones overflow timers
SITE = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")  # a domain, IDNs as xn--
BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")  # Cloud Storage's bucket names
ORIGIN = re.compile(r"\*|https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
PROXY_SCHEMES = ("http", "https")  # yt-dlp's proxies and urllib3's (the media's fetch, inference/remote.py)


class SettingError(ValueError):
    """A setting's value the function cannot run with; its message names the variable and what it takes."""


def _text(name: str) -> str:
    return os.environ.get(name, VARIABLES[name].default)


def _refused(name: str, takes: str, *, secret: bool = False) -> SettingError:
    """The error naming the variable, and its value unless it may hold a secret (a proxy's password)."""
    return SettingError(f"{name}{'' if secret else f'={_text(name)!r}'}: {takes}")


def _float(name: str, least: float = 0.0, *, above: bool = True) -> float:
    """A number from `least` (above it where `above`) to MAX_NUMBER."""
    try:
        value = float(_text(name))
    except ValueError:
        value = math.nan
    if not (least < value if above else least <= value) or not value <= MAX_NUMBER:  # NaN fails both
        raise _refused(name, f"must be a number {'above' if above else 'from'} {least:g} "
                             f"{'and at most' if above else 'to'} {MAX_NUMBER:,.0f}")
    return value


def _list(name: str, pattern: re.Pattern, example: str) -> tuple[str, ...]:
    """A comma-separated list of names, each matching `pattern`, lowercased; unset: empty."""
    text = _text(name)
    names = tuple(s.strip().lower() for s in text.split(",") if s.strip())
    if text.strip() and not names or not all(pattern.fullmatch(n) for n in names):
        raise _refused(name, f"must be comma-separated names such as {example} (or unset)")
    return names


def _cors_origin() -> str:
    if not ORIGIN.fullmatch(_text("GENRE_CORS_ORIGIN")):
        raise _refused("GENRE_CORS_ORIGIN", "must be * or one origin such as https://example.com (unset: *)")
    return _text("GENRE_CORS_ORIGIN")


def _proxy() -> str | None:
    text = _text("YTDLP_PROXY")
    try:
        parts = urlsplit(text)
        ok = parts.scheme in PROXY_SCHEMES and bool(parts.hostname) and (parts.port or 0) >= 0
    except ValueError:  # a port that is no number or out of range
        ok = False
    if text and not ok:
        raise _refused("YTDLP_PROXY", f"must be a URL such as http://HOST:PORT ({', '.join(PROXY_SCHEMES)}), or unset",
                      secret=True)
    return text or None


def _cookies() -> str | None:
    """YTDLP_COOKIES, checked as yt-dlp reads it for each link (a cookies.txt in Netscape format)."""
    path = _text("YTDLP_COOKIES")
    if not path:
        return None
    from yt_dlp.cookies import YoutubeDLCookieJar  # the function's yt-dlp; not imported unless set

    try:
        if not Path(path).is_file():  # a FIFO would block
            raise OSError("not a file")
        YoutubeDLCookieJar(path).load(ignore_discard=True, ignore_expires=True)
    except (OSError, http.cookiejar.LoadError) as exc:
        raise _refused("YTDLP_COOKIES", f"must be a readable cookies.txt in Netscape format ({exc})") from None
    return path


def _model_path() -> Path:
    if os.environ.get("GENRE_MODEL") == "":
        raise _refused("GENRE_MODEL", "is empty: name an .onnx file, or unset it for the default")
    return Path(os.environ.get("GENRE_MODEL", DEFAULT_MODEL))


def _loopback() -> bool:
    if _text("GENRE_DEV_ALLOW_LOOPBACK_LINKS") not in ("", "0", "1"):
        raise _refused("GENRE_DEV_ALLOW_LOOPBACK_LINKS", "must be 1 (on), 0 or unset (off)")
    return _text("GENRE_DEV_ALLOW_LOOPBACK_LINKS") == "1"


@dataclass(frozen=True)
class Settings:
    model_path: Path = field(default_factory=_model_path)
    default_start: float = field(default_factory=lambda: _float("GENRE_DEFAULT_START_S", above=False))
    default_duration: float = field(default_factory=lambda: _float("GENRE_DEFAULT_DURATION_S"))
    max_duration: float = field(default_factory=lambda: _float("GENRE_MAX_DURATION_S"))
    max_source_minutes: float = field(default_factory=lambda: _float("GENRE_MAX_SOURCE_MINUTES"))
    max_upload_bytes: int = field(default_factory=lambda: int(_float("GENRE_MAX_UPLOAD_MB") * 2**20))
    max_fetch_bytes: int = field(default_factory=lambda: int(_float("GENRE_MAX_FETCH_MB") * 2**20))
    time_budget: float = field(default_factory=lambda: _float("GENRE_TIME_BUDGET_S"))
    # None: no limit (the command line)
    max_queue_s: float | None = field(default_factory=lambda: _float("GENRE_MAX_QUEUE_S", above=False))
    allowed_sites: tuple[str, ...] = field(
        default_factory=lambda: _list("GENRE_ALLOWED_SITES", SITE, "youtube.com,youtu.be"))
    # None: any bucket (the command line reads with its caller's own credentials)
    allowed_buckets: tuple[str, ...] | None = field(
        default_factory=lambda: _list("GENRE_ALLOWED_BUCKETS", BUCKET, "my-music (no gs://)"))
    cors_origin: str = field(default_factory=_cors_origin)
    cookies_file: str | None = field(default_factory=_cookies)
    proxy: str | None = field(default_factory=_proxy)
    # Local development and the tests serve clips from this machine; deploy.sh refuses it.
    allow_loopback_links: bool = field(default_factory=_loopback)


def load() -> Settings:
    """The settings of the environment; SettingError naming the first variable whose value cannot be run with."""
    settings = Settings()
    if settings.default_duration > settings.max_duration:
        raise _refused("GENRE_DEFAULT_DURATION_S", f"must be at most GENRE_MAX_DURATION_S ({settings.max_duration:g})")
    return settings


if __name__ == "__main__":  # deploy.sh checks the settings it would deploy
    try:
        load()
    except SettingError as exc:
        raise SystemExit(str(exc)) from None
