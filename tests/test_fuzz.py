"""Property-based fuzzing (hypothesis) of the request parsing and of the decoder: whatever comes in,
the answer is JSON with a documented status, never a 500, and within the time budget.
FUZZ_EXAMPLES sets the examples per test (CI: 300, the same ones every run); set, the examples are
random each run (docs/hardening.md: a longer run)."""
import io
import json
import os
import time
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inference import decode, pipeline
from inference.errors import ClassifyError

from conftest import encode

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", 300))
FUZZ = settings(max_examples=EXAMPLES, deadline=timedelta(seconds=20), derandomize="FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
STATUSES = {200, 400, 405, 413, 415, 422, 502, 503, 504}
HEADER_BYTES = 128  # where containers state codec, rate and layout (a Wave64 file's format chunk: from byte 64)

text = st.text(st.characters(codec="utf-8"), max_size=40)
number_like = st.one_of(text, st.sampled_from(["0", "-1", "3", "60", "61", "1e309", "nan", "inf", " 5 ", "0x10"]),
                        st.floats(allow_nan=True, allow_infinity=True).map(str))
url_like = st.one_of(text, st.sampled_from(["http://localhost/a.mp3", "https://localhost:0/", "http://[::1/",
                                            "file:///etc/passwd", "http://user@localhost/", "javascript:x", ""]))
json_values = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | text,
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
                           max_leaves=12)
# JSON a hostile client writes: deep nesting, long strings, huge numbers, duplicate keys, invalid UTF-8,
# NaN and Infinity literals; the JSON above holds at most 12 leaves and could never find a 500 in nesting
hostile_json = st.one_of(
    st.builds(lambda n, open_, close: '{"url": ' + open_ * n + close * n + "}", st.integers(1, 20_000),
              st.sampled_from(["[", '{"a":']), st.sampled_from(["]", "}", ""])),
    st.integers(1, 200_000).map(lambda n: '{"url": "' + "a" * n + '"}'),
    st.integers(1, 10_000).map(lambda n: '{"url": "http://localhost/", "start": ' + "9" * n + "}"),
    st.sampled_from(['{"url": "http://localhost/", "start": NaN}', '{"duration": Infinity}', '{"start": -Infinity}',
                     '{"url": 1, "url": "http://localhost/", "url": null}', '{"url": "\\ud800"}', "1e999999"]),
).map(str.encode) | st.binary(max_size=64).map(lambda b: b'{"url": "' + b + b"\xff\xfe\xc0\x80" + b'"}')
fields = st.fixed_dictionaries({}, optional={"url": url_like, "start": number_like, "duration": number_like,
                                             "file": text})
content_types = st.sampled_from(["application/json", "application/x-www-form-urlencoded", "multipart/form-data",
                                 "multipart/form-data; boundary=x", "audio/mpeg", "video/mp4",
                                 "application/octet-stream", "text/plain", "", "application/json; charset=latin-1",
                                 "audio/*", "*/*"])


@pytest.fixture
def fuzz_client(client, reconfigure):
    """The function refusing every link before any DNS lookup: nothing generated leaves this machine."""
    reconfigure(allowed_sites=("localhost",), allow_loopback_links=False, max_upload_bytes=2**16)
    return client


def check(response):
    assert response.status_code in STATUSES, (response.status_code, response.data[:300])
    if response.mimetype == "text/html":  # the page, for a GET without parameters
        assert response.status_code == 200 and response.request.method == "GET"
        return
    body = json.loads(response.data)
    assert response.status_code == 200 or set(body["error"]) == {"code", "message"}


@FUZZ
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]), query=fields,
       content_type=content_types, accept=st.sampled_from(["application/json", "text/html", "*/*", None]),
       body=st.one_of(st.binary(max_size=512), json_values.map(lambda v: json.dumps(v).encode()),
                      fields.map(lambda f: json.dumps(f).encode()), hostile_json))
def test_any_request_gets_a_json_answer(fuzz_client, method, query, content_type, accept, body):
    headers = {name: value for name, value in (("Content-Type", content_type), ("Accept", accept)) if value}
    response = fuzz_client.open("/", method=method, query_string=query, data=body, headers=headers)
    if method == "HEAD":
        assert response.status_code in STATUSES
        return
    check(response)


@FUZZ
@given(body=hostile_json, query=fields)
def test_hostile_json_gets_a_json_answer(fuzz_client, body, query):
    check(fuzz_client.post("/", query_string=query, data=body, content_type="application/json"))


@FUZZ
@given(form=fields, name=st.one_of(st.none(), text), data=st.binary(max_size=2048))
def test_any_multipart_form_gets_a_json_answer(fuzz_client, form, name, data):
    payload = dict(form)
    if name is not None:
        payload["file"] = (io.BytesIO(data), name or "x")
    check(fuzz_client.post("/", data=payload, content_type="multipart/form-data",
                           headers={"Accept": "application/json"}))


@pytest.fixture(scope="module")
def seeds(media, tmp_path_factory) -> list[bytes]:
    """Real 3-s clips in several containers, to mutate."""
    folder = tmp_path_factory.mktemp("seeds")
    out = []
    for codec, fmt in (("flac", "flac"), ("mp3", "mp3"), ("aac", "mp4"), ("pcm_s16le", "wav"), ("pcm_s16le", "caf"),
                       ("pcm_s16le", "w64")):
        path = folder / f"seed.{fmt}"
        encode(media / "song.flac", path, codec, fmt, seconds=3)
        out.append(path.read_bytes())
    return out


@st.composite
def mutated(draw, seeds):
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "cut", "splice", "zero"]))
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del data[at:at + draw(st.integers(1, 4096))]
        elif kind == "splice":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        else:
            data[at:at + draw(st.integers(1, 256))] = bytes(min(256, len(data) - at))
        if not data:
            break
    return bytes(data)


@FUZZ
@given(draw=st.data(), start=st.one_of(st.none(), st.floats(0, 10)), duration=st.one_of(st.none(), st.floats(0.1, 10)))
def test_decoder_survives_mutated_audio(seeds, settings, draw, start, duration):
    data = draw.draw(st.one_of(st.binary(max_size=4096), mutated(seeds)), label="data")
    began = time.monotonic()
    try:
        answer = pipeline.upload(data, settings, start=start, duration=duration)
        assert answer["segments"] >= 1
    except ClassifyError as error:
        # never source_too_long: a header's claim the bytes could not hold is not trusted
        assert (error.status, error.code) in {(400, "empty_upload"), (422, "not_audio"), (422, "no_audio"),
                                              (422, "bad_window"), (422, "too_short"), (504, "timeout")}, error.code
    assert time.monotonic() - began < settings.time_budget + 2


def test_decoder_survives_each_header_byte_inverted(seeds, settings):
    """Each of the first HEADER_BYTES of each seed inverted in turn (the flips above seldom land there):
    decoded, or refused as not audio (a WAV's, CAF's or Wave64's codec without a decoder was a 500)."""
    for seed in seeds:
        for at in range(HEADER_BYTES):
            data = bytearray(seed)
            data[at] ^= 0xFF
            try:  # the seeds' own rate: no resampling
                pipeline.window(io.BytesIO(data), settings, time.monotonic() + settings.time_budget, 22050,
                                start=None, duration=0.5, upload_bytes=len(data))
            except ClassifyError as error:
                assert error.code in ("not_audio", "no_audio"), (seed[:4], at, error.code)


def test_the_seeds_are_real_audio(seeds):
    """For the fuzzing above: mutations start from audio that decodes."""
    for data in seeds:
        container = decode.open_audio(io.BytesIO(data))
        container.close()
