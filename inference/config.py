"""Serving settings, read once from environment variables (the README lists them)."""
import os
from dataclasses import dataclass, field
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_MODEL = MODELS_DIR / "genre_musicnn.onnx"  # the better in cross-validation; models/genre_cnn.onnx is the other


def _float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def _list(name: str) -> tuple[str, ...]:
    return tuple(s.strip().lower() for s in os.environ.get(name, "").split(",") if s.strip())


@dataclass(frozen=True)
class Settings:
    model_path: Path = field(default_factory=lambda: Path(os.environ.get("GENRE_MODEL", DEFAULT_MODEL)))
    default_start: float = field(default_factory=lambda: _float("GENRE_DEFAULT_START_S", 60.0))
    default_duration: float = field(default_factory=lambda: _float("GENRE_DEFAULT_DURATION_S", 30.0))
    max_duration: float = field(default_factory=lambda: _float("GENRE_MAX_DURATION_S", 60.0))
    max_source_minutes: float = field(default_factory=lambda: _float("GENRE_MAX_SOURCE_MINUTES", 15.0))
    max_upload_bytes: int = field(default_factory=lambda: int(_float("GENRE_MAX_UPLOAD_MB", 20.0) * 2**20))
    max_fetch_bytes: int = field(default_factory=lambda: int(_float("GENRE_MAX_FETCH_MB", 30.0) * 2**20))
    time_budget: float = field(default_factory=lambda: _float("GENRE_TIME_BUDGET_S", 30.0))
    allowed_sites: tuple[str, ...] = field(default_factory=lambda: _list("GENRE_ALLOWED_SITES"))
    cors_origin: str = field(default_factory=lambda: os.environ.get("GENRE_CORS_ORIGIN", "*"))
    cookies_file: str | None = field(default_factory=lambda: os.environ.get("YTDLP_COOKIES") or None)
    proxy: str | None = field(default_factory=lambda: os.environ.get("YTDLP_PROXY") or None)
    # Tests serve clips from 127.0.0.1; nothing else may set this.
    testing_allow_loopback: bool = field(
        default_factory=lambda: os.environ.get("GENRE_TESTING_ALLOW_LOOPBACK") == "1")


def load() -> Settings:
    return Settings()
