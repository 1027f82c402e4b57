"""inference/config.py: every setting from its environment variable, and the documented defaults."""
from pathlib import Path

import pytest

from inference import config

from conftest import ROOT


@pytest.fixture
def environment(monkeypatch):
    """No setting in the environment; set(NAME=value, ...) to give some."""
    for name in config.VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return lambda **values: [monkeypatch.setenv(name, value) for name, value in values.items()]


def test_defaults(environment):
    assert config.load() == config.Settings(
        model_path=ROOT / "models" / "genre_musicnn.onnx", default_start=60.0, default_duration=30.0,
        max_duration=60.0, max_source_minutes=15.0, max_upload_bytes=20 * 1024 * 1024,
        max_fetch_bytes=30 * 1024 * 1024, time_budget=30.0, max_queue_s=10.0, allowed_sites=(), cors_origin="*",
        cookies_file=None, proxy=None, allow_loopback_links=False)


def test_every_variable_is_read(environment):
    environment(GENRE_MODEL="/srv/m.onnx", GENRE_DEFAULT_START_S="5", GENRE_DEFAULT_DURATION_S="12.5",
                GENRE_MAX_DURATION_S="20", GENRE_MAX_SOURCE_MINUTES="2", GENRE_MAX_UPLOAD_MB="0.5",
                GENRE_MAX_FETCH_MB="3", GENRE_TIME_BUDGET_S="9", GENRE_MAX_QUEUE_S="2.5",
                GENRE_ALLOWED_SITES=" YouTube.com, ,youtu.be ",
                GENRE_CORS_ORIGIN="https://app.example", YTDLP_COOKIES="/secrets/cookies.txt",
                YTDLP_PROXY="http://proxy.example:3128", GENRE_DEV_ALLOW_LOOPBACK_LINKS="1")
    assert config.load() == config.Settings(
        model_path=Path("/srv/m.onnx"), default_start=5.0, default_duration=12.5, max_duration=20.0,
        max_source_minutes=2.0, max_upload_bytes=524288, max_fetch_bytes=3145728, time_budget=9.0, max_queue_s=2.5,
        allowed_sites=("youtube.com", "youtu.be"), cors_origin="https://app.example",
        cookies_file="/secrets/cookies.txt", proxy="http://proxy.example:3128", allow_loopback_links=True)


@pytest.mark.parametrize("value", ["", "0", "yes", "true"])
def test_loopback_is_allowed_by_1_only(environment, value):
    environment(GENRE_DEV_ALLOW_LOOPBACK_LINKS=value)
    assert config.load().allow_loopback_links is False


def test_settings_cannot_change_once_read():
    """One Settings is shared by every request's thread: changes go through dataclasses.replace."""
    import dataclasses
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.load().time_budget = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.VARIABLES["GENRE_MODEL"].default = "x.onnx"
