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


def test_every_variable_is_read(environment, tmp_path):
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n.youtube.com\tTRUE\t/\tTRUE\t0\tSID\tsecret\n")
    environment(GENRE_MODEL="/srv/m.onnx", GENRE_DEFAULT_START_S="5", GENRE_DEFAULT_DURATION_S="12.5",
                GENRE_MAX_DURATION_S="20", GENRE_MAX_SOURCE_MINUTES="2", GENRE_MAX_UPLOAD_MB="0.5",
                GENRE_MAX_FETCH_MB="3", GENRE_TIME_BUDGET_S="9", GENRE_MAX_QUEUE_S="2.5",
                GENRE_ALLOWED_SITES=" YouTube.com, ,youtu.be ",
                GENRE_CORS_ORIGIN="https://app.example", YTDLP_COOKIES=str(cookies),
                YTDLP_PROXY="http://proxy.example:3128", GENRE_DEV_ALLOW_LOOPBACK_LINKS="1")
    assert config.load() == config.Settings(
        model_path=Path("/srv/m.onnx"), default_start=5.0, default_duration=12.5, max_duration=20.0,
        max_source_minutes=2.0, max_upload_bytes=524288, max_fetch_bytes=3145728, time_budget=9.0, max_queue_s=2.5,
        allowed_sites=("youtube.com", "youtu.be"), cors_origin="https://app.example",
        cookies_file=str(cookies), proxy="http://proxy.example:3128", allow_loopback_links=True)


@pytest.mark.parametrize("value", ["", "0"])
def test_loopback_is_allowed_by_1_only(environment, value):
    environment(GENRE_DEV_ALLOW_LOOPBACK_LINKS=value)
    assert config.load().allow_loopback_links is False


NUMBER = "must be a number above 0 and at most 1,000,000"


@pytest.mark.parametrize("name, value, says", [
    ("GENRE_MAX_UPLOAD_MB", "abc", NUMBER), ("GENRE_MAX_UPLOAD_MB", "", NUMBER), ("GENRE_MAX_UPLOAD_MB", "inf", NUMBER),
    ("GENRE_MAX_UPLOAD_MB", "-5", NUMBER), ("GENRE_MAX_FETCH_MB", "0", NUMBER), ("GENRE_TIME_BUDGET_S", "0", NUMBER),
    ("GENRE_TIME_BUDGET_S", "1e300", NUMBER), ("GENRE_MAX_SOURCE_MINUTES", "-1", NUMBER),
    ("GENRE_MAX_DURATION_S", "nan", NUMBER), ("GENRE_DEFAULT_DURATION_S", "0", NUMBER),
    ("GENRE_DEFAULT_DURATION_S", "100", "must be at most GENRE_MAX_DURATION_S (60)"),
    ("GENRE_DEFAULT_START_S", "-1", "must be a number from 0 to 1,000,000"),
    ("GENRE_MAX_QUEUE_S", "inf", "must be a number from 0 to 1,000,000"),
    ("GENRE_ALLOWED_SITES", ", ,", "must be comma-separated names such as youtube.com"),
    ("GENRE_ALLOWED_SITES", "https://youtube.com", "must be comma-separated names"),
    ("GENRE_ALLOWED_BUCKETS", "gs://music", "such as my-music (no gs://)"),
    ("GENRE_CORS_ORIGIN", "https://a.example, https://b.example", "must be * or one origin"),
    ("GENRE_CORS_ORIGIN", "", "must be * or one origin"),
    ("GENRE_CORS_ORIGIN", "https://a.example\r\nX: 1", "one origin"),
    ("GENRE_DEV_ALLOW_LOOPBACK_LINKS", "true", "must be 1 (on), 0 or unset (off)"),
    ("GENRE_MODEL", "", "is empty: name an .onnx file, or unset it for the default"),
    ("YTDLP_COOKIES", "/nonexistent/cookies.txt", "must be a readable cookies.txt in Netscape format")])
def test_a_value_the_function_cannot_run_with_is_refused_naming_it(environment, name, value, says):
    """Each used to start: then a traceback at import that named no variable, a 500 per request
    (timers overflowed by inf), or every request refused with the caller blamed ("at most nan s")."""
    environment(**{name: value})
    with pytest.raises(config.SettingError) as refused:
        config.load()
    assert str(refused.value).startswith(f"{name}={value!r}: ") and says in str(refused.value)


@pytest.mark.parametrize("text", ['[{"name": "SID", "value": "secret"}]', "", "SID=secret\n"])
def test_a_cookies_file_yt_dlp_cannot_read_is_refused(environment, tmp_path, text):
    """A browser extension's JSON export, an empty file, a Cookie header: yt-dlp fails on each, for every link."""
    (tmp_path / "cookies.txt").write_text(text)
    environment(YTDLP_COOKIES=str(tmp_path / "cookies.txt"))
    with pytest.raises(config.SettingError, match="must be a readable cookies.txt in Netscape format"):
        config.load()


@pytest.mark.parametrize("value", ["notaurl", "socks5://proxy:1080", "http://proxy:99999", "http://user:secret@"])
def test_a_proxy_that_is_no_proxy_url_is_refused_without_its_value(environment, value):
    """Its value may hold a password: the message names the variable only."""
    environment(YTDLP_PROXY=value)
    with pytest.raises(config.SettingError) as refused:
        config.load()
    assert str(refused.value).startswith("YTDLP_PROXY: must be a URL") and "secret" not in str(refused.value)


def test_settings_cannot_change_once_read():
    """One Settings is shared by every request's thread: changes go through dataclasses.replace."""
    import dataclasses
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.load().time_budget = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.VARIABLES["GENRE_MODEL"].default = "x.onnx"
