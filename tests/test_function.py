"""main.classify through functions-framework's test client: links, uploads, windows, errors."""
import http.server
import io
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
import wave
from pathlib import Path

import av
import numpy as np
import pytest

from inference import contract, errors, remote
from inference.errors import ClassifyError

import local_http
from conftest import ROOT, encode, wav_of_format


def check_answer(body: dict, segments: int):
    assert body["genre"] in contract.LABELS and list(body["scores"]) == list(contract.LABELS)
    assert math.isclose(sum(body["scores"].values()), 1.0, abs_tol=10 * 0.5e-4)  # 10 scores to 4 decimals
    assert all(round(v, 4) == v for v in body["scores"].values())
    assert body["confidence"] == max(body["scores"].values()) == body["scores"][body["genre"]]
    assert body["segments"] == segments and isinstance(body["uncertain"], bool)
    timeline = body["timeline"]
    assert [t["start"] for t in timeline] == pytest.approx([body["window"]["start"] + 3 * i for i in range(segments)])
    assert all(t["genre"] in contract.LABELS and 0 < t["confidence"] <= 1 for t in timeline)
    assert set(body["model"]) == {"name", "version", "sha256"} and len(body["model"]["sha256"]) == 64
    assert body["timings_ms"]["total"] >= body["timings_ms"]["inference"] > 0


def test_direct_link_defaults_to_a_centred_30_s_window(client, served, media):
    answer = client.get("/", query_string={"url": f"{served}/song.flac"})
    assert answer.status_code == 200, answer.json
    body = answer.json
    check_answer(body, segments=10)
    assert body["window"] == {"start": pytest.approx(0.007, abs=0.01), "duration": 30.0}
    assert body["source"]["kind"] == "link" and body["source"]["duration"] == pytest.approx(30.0, abs=0.1)
    assert body["source"]["bytes_fetched"] < 1.5 * (media / "song.flac").stat().st_size  # no re-download
    assert answer.headers["Access-Control-Allow-Origin"] == "*" and "Origin" not in answer.headers.get("Vary", "")


def test_link_in_an_html_page_with_an_audio_tag(client, served):
    answer = client.post("/", json={"url": f"{served}/page.html", "start": 3, "duration": 9})
    assert answer.status_code == 200, answer.json
    check_answer(answer.json, segments=3)
    assert answer.json["window"] == {"start": 3.0, "duration": 9.0}


def test_only_the_window_is_fetched_from_a_server_with_ranges(client, served, media):
    answer = client.post("/", json={"url": f"{served}/song.flac", "start": 24, "duration": 3})
    assert answer.status_code == 200, answer.json
    assert answer.json["source"]["bytes_fetched"] < 0.5 * (media / "song.flac").stat().st_size


def test_same_audio_gives_the_same_scores_by_link_and_by_upload(client, served, media):
    by_link = client.post("/", json={"url": f"{served}/song.flac", "start": 6, "duration": 12}).json
    data = (media / "song.flac").read_bytes()
    raw = client.post("/?start=6&duration=12", data=data, content_type="audio/flac").json
    form = client.post("/", data={"file": (io.BytesIO(data), "song.flac"), "start": "6", "duration": "12"},
                       content_type="multipart/form-data").json
    assert raw["source"] == {"kind": "upload", "title": None, "duration": pytest.approx(30.0, abs=0.1), "bytes": len(data)}
    assert form["source"]["title"] == "song.flac"
    for other in (raw, form):
        check_answer(other, segments=4)
        assert other["scores"] == pytest.approx(by_link["scores"], abs=2e-4)


@pytest.mark.parametrize("name, tolerance", [("genre_cnn", 0.02), ("genre_musicnn", 0.1)])
def test_scores_match_the_model_on_the_decoded_clip(client, reconfigure, media, name, tolerance):
    """The upload path equals the model run directly on the clip decoded by an independent reader
    (librosa, resampling with soxr where the function uses FFmpeg's resampler: musicnn, at 16 kHz,
    is the more sensitive to that difference)."""
    import librosa
    import numpy as np
    import onnxruntime as ort
    model_path = ROOT / "models" / f"{name}.onnx"
    reconfigure(model_path=model_path)
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    audio, _ = librosa.load(media / "song.flac", sr=int(meta["sample_rate"]), offset=3, duration=6)
    size = int(meta["segment_samples"])  # whole segments, each scored, then their mean
    whole = audio[: len(audio) // size * size].reshape(-1, size)
    expected = session.run(["probabilities"], {"audio": whole})[0].mean(axis=0)
    body = client.post("/?start=3&duration=6", data=(media / "song.flac").read_bytes(), content_type="audio/flac").json
    assert body["model"]["name"] == name and body["genre"] == contract.LABELS[int(np.argmax(expected))]
    assert np.abs(np.array(list(body["scores"].values())) - expected).max() < tolerance


def test_preflight_and_configured_origin(client, reconfigure):
    reconfigure(cors_origin="https://app.example")
    answer = client.options("/")
    assert answer.status_code == 204
    assert answer.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "POST" in answer.headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in answer.headers["Access-Control-Allow-Headers"]
    assert answer.headers["Vary"] == "Origin"  # caches must not serve one origin's answer to another
    error = client.post("/", json={})
    assert error.headers["Access-Control-Allow-Origin"] == "https://app.example" and error.headers["Vary"] == "Origin"


BAD_REQUESTS = [
    ("no body", dict(method="POST"), 400, "missing_url"),
    ("GET without url, JSON wanted", dict(method="GET", headers={"Accept": "application/json"}), 400, "missing_url"),
    ("GET with a window but no url", dict(method="GET", query_string={"duration": "9"}), 400, "missing_url"),
    ("bad JSON", dict(method="POST", data="{url:", content_type="application/json"), 400, "bad_json"),
    ("JSON nested 1000 deep", dict(method="POST", data='{"url": ' + "[" * 1000 + "]" * 1000 + "}",
                                   content_type="application/json"), 400, "bad_json"),
    ("JSON nested 60000 deep", dict(method="POST", data="[" * 60_000, content_type="application/json"),
     400, "bad_json"),
    ("JSON not an object", dict(method="POST", json=["http://x"]), 400, "bad_json"),
    ("url not a string", dict(method="POST", json={"url": 5}), 400, "invalid_url"),
    ("url a list", dict(method="POST", json={"url": ["https://x.example/"]}), 400, "invalid_url"),
    ("url an object", dict(method="POST", json={"url": {"href": "https://x.example/"}}), 400, "invalid_url"),
    ("url null", dict(method="POST", json={"url": None}), 400, "missing_url"),
    ("start in Arabic-Indic digits", dict(method="POST", json={"url": "http://x.example/", "start": "٣"}), 400, "bad_parameter"),
    ("duration in fullwidth digits", dict(method="GET", query_string={"url": "http://x.example/", "duration": "５"}), 400, "bad_parameter"),
    ("start with an underscore", dict(method="GET", query_string={"url": "http://x.example/", "start": "1_0"}), 400, "bad_parameter"),
    ("not a URL", dict(method="POST", json={"url": "just words"}), 400, "invalid_url"),
    ("unclosed IPv6 literal", dict(method="POST", json={"url": "http://[::1/a.mp3"}), 400, "invalid_url"),
    ("ftp:", dict(method="POST", json={"url": "ftp://127.0.0.1/song.flac"}), 400, "invalid_url"),
    ("file:", dict(method="POST", json={"url": "file:///etc/passwd"}), 400, "invalid_url"),
    ("private address", dict(method="POST", json={"url": "http://10.1.2.3/a.mp3"}), 400, "url_not_allowed"),
    ("metadata address", dict(method="POST", json={"url": "http://169.254.169.254/latest/"}), 400, "url_not_allowed"),
    ("credentials in URL", dict(method="POST", json={"url": "http://u:p@127.0.0.1/"}), 400, "url_not_allowed"),
    ("bad start", dict(method="POST", json={"url": "http://127.0.0.1/", "start": "soon"}), 400, "bad_parameter"),
    ("start a 400-digit integer", dict(method="POST", data='{"url": "http://127.0.0.1/", "start": 1' + "0" * 400 + "}",
                                      content_type="application/json"), 400, "bad_parameter"),
    ("negative start", dict(method="GET", query_string={"url": "http://127.0.0.1/", "start": "-1"}), 400, "bad_parameter"),
    ("duration zero", dict(method="POST", json={"url": "{served}/song.flac", "duration": 0}), 400, "bad_parameter"),
    ("duration too long", dict(method="POST", json={"url": "{served}/song.flac", "duration": 61}), 400, "bad_parameter"),
    ("duration not finite", dict(method="POST", json={"url": "{served}/song.flac", "duration": "nan"}), 400, "bad_parameter"),
    ("404", dict(method="GET", query_string={"url": "{served}/missing.flac"}), 422, "source_unavailable"),
    ("upstream 500", dict(method="GET", query_string={"url": "{served}/status/500"}), 502, "source_unreachable"),
    ("HTML without audio", dict(method="POST", json={"url": "{served}/empty.html"}), 422, "unsupported_url"),
    ("link to bytes that are not audio", dict(method="POST", json={"url": "{served}/noise.mp3"}), 422, "not_audio"),
    ("start past the end", dict(method="POST", json={"url": "{served}/song.flac", "start": 45}), 422, "bad_window"),
    ("nothing listens there", dict(method="POST", json={"url": "http://127.0.0.1:9/a.flac"}), 502, "source_unreachable"),
    ("upload: not audio", dict(method="POST", data=b"\x00garbage" * 1000, content_type="audio/mpeg"), 422, "not_audio"),
    ("upload: empty", dict(method="POST", data=b"", content_type="application/octet-stream"), 400, "empty_upload"),
    ("upload: form without file", dict(method="POST", data={"x": "1"}, content_type="multipart/form-data"), 400, "missing_file"),
    ("upload: form with 1001 parts", dict(method="POST", data={f"x{i}": "1" for i in range(1001)},
                                          content_type="multipart/form-data"), 400, "bad_form"),
    ("upload: form with a 600 KB text field", dict(method="POST", data={"start": "1" * 600_000},
                                                   content_type="multipart/form-data"), 400, "bad_form"),
    ("unsupported content type", dict(method="POST", data="hello", content_type="text/plain"), 415, "unsupported_media_type"),
    ("form without url", dict(method="POST", data="start=3", content_type="application/x-www-form-urlencoded"),
     415, "unsupported_media_type"),
    ("bytes sent as a form", dict(method="POST", data=b"\x00garbage" * 100, content_type="application/x-www-form-urlencoded"),
     415, "unsupported_media_type"),
    ("empty form", dict(method="POST", data="", content_type="application/x-www-form-urlencoded"), 400, "missing_url"),
    ("PUT", dict(method="PUT", json={"url": "http://127.0.0.1/"}), 405, "method_not_allowed"),
    ("DELETE", dict(method="DELETE"), 405, "method_not_allowed"),
    ("empty text/plain", dict(method="POST", data="", content_type="text/plain"), 415, "unsupported_media_type"),
]


@pytest.mark.parametrize("request_args, status, code", [b[1:] for b in BAD_REQUESTS], ids=[b[0] for b in BAD_REQUESTS])
def test_bad_requests_get_a_clear_json_error(client, served, request_args, status, code):
    args = dict(request_args)
    if isinstance(args.get("json"), dict):
        args["json"] = {k: v.format(served=served) if isinstance(v, str) else v for k, v in args["json"].items()}
    if "query_string" in args:
        args["query_string"] = {k: v.format(served=served) for k, v in args["query_string"].items()}
    answer = client.open("/", **args)
    assert (answer.status_code, answer.json["error"]["code"]) == (status, code), answer.json
    assert answer.json["error"]["message"] and "Traceback" not in answer.get_data(as_text=True)
    assert answer.headers["Content-Type"] == "application/json"


def test_bad_form_names_its_limits(client):
    answer = client.post("/", data={"start": "1" * 600_000}, content_type="multipart/form-data")
    assert answer.json["error"]["message"] == ("a form may have at most 1000 parts, and text fields of at most "
                                               "500 KB (send the audio as a file part, as curl -F file=@clip.flac does)")


def test_a_form_whose_file_is_a_text_field_says_so(client, media):
    """curl -F "file=<clip.flac" sends the clip as a text field: it was told the form had no "file"
    (or, over 500 KB, that fields other than "file" may not be that large)."""
    answer = client.post("/", data={"file": "RIFF...not a file part"}, content_type="multipart/form-data")
    assert (answer.status_code, answer.json["error"]["code"]) == (400, "missing_file")
    assert answer.json["error"]["message"].startswith('the form\'s "file" is a text field')


def test_a_form_with_two_files_is_refused(client, media):
    """The second was dropped without a word."""
    clip = (media / "song.flac").read_bytes()
    answer = client.post("/", data={"file": [(io.BytesIO(clip), "a.flac"), (io.BytesIO(clip), "b.flac")]},
                         content_type="multipart/form-data")
    assert (answer.status_code, answer.json["error"]) == (400, {
        "code": "bad_form", "message": 'the form has more than one "file": send one'})


@pytest.mark.parametrize("query", ["features=maybe", "features=maybe&start=3"])
def test_a_bad_option_is_named_even_without_a_link(client, query):
    """GET /?features=maybe was 400 missing_url: the link was checked first."""
    answer = client.get(f"/?{query}", headers={"Accept": "application/json"})
    assert (answer.status_code, answer.json["error"]) == (400, {
        "code": "bad_parameter", "message": "features must be true or false"})


def test_a_body_without_a_content_type_is_named_in_the_415(client):
    answer = client.post("/", data=b"\x00" * 100, headers={"Content-Type": ""})
    assert answer.status_code == 415
    assert answer.json["error"]["message"].endswith(", not a body without a Content-Type"), answer.json


def test_a_preflight_has_no_content_type(client):
    """Its 204 had Flask's default, text/html, for no content."""
    answer = client.options("/")
    assert answer.status_code == 204 and "Content-Type" not in answer.headers and answer.data == b""


@pytest.mark.parametrize("over, status", [(1, 413), (0, 200)], ids=["a byte over the cap", "at the cap"])
def test_upload_cap(client, reconfigure, media, over, status):
    data = (media / "song.flac").read_bytes()
    reconfigure(max_upload_bytes=len(data) - over)
    for answer in (client.post("/", data=data, content_type="audio/flac"),
                   client.post("/", data={"file": (io.BytesIO(data), "song.flac")},
                               content_type="multipart/form-data")):
        assert answer.status_code == status, answer.json
        assert answer.json.get("error", {}).get("code") == ("upload_too_large" if over else None)


@pytest.mark.parametrize("note, status", [(40_000, 200), (2**16 + 2**15, 413)])
def test_multipart_overhead_is_allowed_64_kib(client, reconfigure, media, note, status):
    data = (media / "song.flac").read_bytes()
    reconfigure(max_upload_bytes=len(data))
    answer = client.post("/?duration=3", data={"file": (io.BytesIO(data), "song.flac"), "note": "x" * note},
                         content_type="multipart/form-data")
    assert answer.status_code == status, answer.json
    if status == 413:
        assert answer.json["error"]["code"] == "upload_too_large"


@pytest.mark.parametrize("status, answered, code", [(400, 400, "bad_request"), (431, 431, "headers_too_large"),
                                                    (414, 414, "request_line_too_long"), (500, 500, "internal"),
                                                    (501, 400, "bad_request")])
def test_what_gunicorn_answers_itself_is_json(app, status, answered, code):
    """gunicorn answers a request it cannot parse before the function runs; main.py writes that answer."""
    import socket

    import main
    ours, theirs = socket.socketpair()
    with ours, theirs:
        main._unparsable(ours, status, "Reason", "detail")
        ours.shutdown(socket.SHUT_WR)
        head, body = theirs.recv(65536).split(b"\r\n\r\n", 1)
    assert head.startswith(f"HTTP/1.1 {answered} ".encode()) and json.loads(body)["error"]["code"] == code


def test_a_multipart_body_of_exactly_the_cap_and_its_room_is_read(client, reconfigure, media):
    data = (media / "song.flac").read_bytes()
    reconfigure(max_upload_bytes=len(data))
    boundary = "b0undary"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="s.flac"\r\n\r\n'.encode()
    note = f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\n'.encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    padding = len(data) + 2**16 - len(head + data + note + tail)  # the body: exactly the cap and 64 KiB
    body = head + data + note + b"x" * padding + tail
    answer = client.post("/?duration=3", data=body, content_type=f"multipart/form-data; boundary={boundary}")
    assert answer.status_code == 200, answer.json


def test_a_link_sent_as_a_url_encoded_form(client, served):
    """curl -d url=... sends application/x-www-form-urlencoded; the body is read for audio first."""
    body = urllib.parse.urlencode({"url": f"{served}/song.flac", "duration": "3"})
    answer = client.post("/", data=body, content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 200, answer.json
    assert answer.json["source"]["kind"] == "link" and answer.json["window"]["duration"] == 3.0


def test_far_oversize_upload_is_refused_before_it_is_read(client, reconfigure, tiled):
    reconfigure(max_upload_bytes=2 * 2**20)
    answer = client.post("/", data=tiled(120), content_type="audio/wav")  # 5 MB
    assert answer.status_code == 413
    assert answer.json["error"] == {"code": "upload_too_large", "message": "uploads are limited to 2 MB"}


def test_caps_are_named_in_mb_as_set():
    assert errors.upload_too_large(int(0.25 * 2**20)).message == "uploads are limited to 0.25 MB"
    assert errors.source_too_large(30 * 2**20).message == "the audio needed more than 30 MB of download"


def test_download_cap_names_its_size(client, reconfigure, tiled, tmp_path):
    (tmp_path / "long.wav").write_bytes(tiled(120))  # 5 MB, 2.6 MB of it for 60 s
    reconfigure(max_fetch_bytes=2 * 2**20)
    with local_http.Server(tmp_path) as url:
        answer = client.post("/", json={"url": f"{url}/long.wav", "start": 0, "duration": 60})
    assert answer.status_code == 422
    assert answer.json["error"] == {"code": "source_too_large",
                                    "message": "the audio needed more than 2 MB of download"}


def test_too_long_source_is_refused(client, reconfigure, served, media):
    reconfigure(max_source_minutes=0.25)
    for answer in (client.post("/", json={"url": f"{served}/song.flac"}),
                   client.post("/", data=(media / "song.flac").read_bytes(), content_type="audio/flac")):
        assert (answer.status_code, answer.json["error"]["code"]) == (422, "source_too_long")
        assert "15 min" not in answer.json["error"]["message"]


def wav(audio_seconds: float, claimed_seconds: float, rate: int = 22050) -> bytes:
    """A 16-bit mono WAV of noise whose header claims claimed_seconds."""
    pcm = np.random.default_rng(0).integers(-3000, 3000, int(audio_seconds * rate), dtype="<i2").tobytes()
    claim = int(claimed_seconds * rate) * 2
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)  # PCM, mono, 16-bit
    return b"RIFF" + struct.pack("<I", 36 + claim) + b"WAVEfmt " + fmt + b"data" + struct.pack("<I", claim) + pcm


def test_less_than_one_segment_of_audio_is_too_short(client, served, media, tmp_path):
    encode(media / "song.flac", tmp_path / "short.flac", "flac", "flac", seconds=1.5)
    data = (tmp_path / "short.flac").read_bytes()
    for answer in (client.post("/", data=data, content_type="audio/flac"),
                   client.post("/", data={"file": (io.BytesIO(data), "short.flac")},
                               content_type="multipart/form-data"),
                   client.post("/", json={"url": f"{served}/song.flac", "start": 28.5}),
                   client.post("/?duration=2.9", data=(media / "song.flac").read_bytes(), content_type="audio/flac"),
                   # any duration above 0 is a valid request, even one too short to classify
                   client.post("/?duration=0.5", data=(media / "song.flac").read_bytes(), content_type="audio/flac")):
        assert (answer.status_code, answer.json["error"]["code"]) == (422, "too_short"), answer.json
        assert "at least 3 s" in answer.json["error"]["message"]
    assert "holds 1.56 s of audio" in client.post("/", data=data, content_type="audio/flac").json["error"]["message"]
    three_seconds = client.post("/?duration=3", data=(media / "song.flac").read_bytes(), content_type="audio/flac")
    check_answer(three_seconds.json, 1)


def test_a_wav_header_claiming_10_hours_over_1_s_of_audio_is_too_short(client):
    answer = client.post("/", data=wav(1, 10 * 3600), content_type="audio/wav")
    assert (answer.status_code, answer.json["error"]["code"]) == (422, "too_short"), answer.json


def claiming(flac: bytes, samples: int) -> bytes:
    """A FLAC file whose header (which FFmpeg believes) claims `samples` samples."""
    data = bytearray(flac)
    fields = int.from_bytes(data[18:26], "big")  # STREAMINFO: rate, channels, bits, then 36 bits of sample count
    data[18:26] = ((fields >> 36 << 36) | samples).to_bytes(8, "big")
    return bytes(data)


@pytest.mark.parametrize("more", [0, 1], ids=["exactly 500 bytes a second", "a sample more"])
def test_an_upload_claiming_up_to_500_bytes_a_second_is_taken_at_its_word(client, media, tmp_path, more):
    encode(media / "song.flac", tmp_path / "clip.flac", "flac", "flac", seconds=4)
    flac = (tmp_path / "clip.flac").read_bytes()
    flac += bytes(-len(flac) % 10)  # trailing padding, so that exactly 500 bytes a second is a whole sample count
    samples = len(flac) * 22050 // 500 + more
    answer = client.post("/?start=0", data=claiming(flac, samples), content_type="audio/flac")
    assert answer.status_code == 200, answer.json
    assert answer.json["source"]["duration"] == (None if more else len(flac) / 500)


def test_timings_are_to_a_tenth_of_a_millisecond(client, media):
    data = (media / "song.flac").read_bytes()
    timings = [ms for _ in range(3) for ms in client.post("/?duration=3", data=data, content_type="audio/flac")
               .json["timings_ms"].values()]
    assert all(round(ms, 1) == ms for ms in timings) and any(round(ms) != ms for ms in timings)


def test_a_start_at_the_very_end_is_past_the_end(client):
    answer = client.post("/?start=20", data=wav(20, 20, rate=8000), content_type="audio/wav")
    assert (answer.status_code, answer.json["error"]["code"]) == (422, "bad_window"), answer.json


def test_an_upload_claiming_more_than_its_bytes_can_hold_is_not_taken_at_its_word(client, media, tmp_path):
    """A FLAC header (which FFmpeg believes) claiming 40 hours over 4 s: classified from 0 s, length unknown."""
    encode(media / "song.flac", tmp_path / "clip.flac", "flac", "flac", seconds=4)
    answer = client.post("/", data=claiming((tmp_path / "clip.flac").read_bytes(), 22050 * 3600 * 40),
                         content_type="audio/flac")
    assert answer.status_code == 200, answer.json
    assert answer.json["window"]["start"] == 0 and answer.json["source"]["duration"] is None
    check_answer(answer.json, 1)


@pytest.mark.parametrize("start", ["1e13", "1e308", "900"])
def test_a_start_beyond_the_longest_source_is_a_bad_parameter(client, media, tmp_path, start):
    """Even where the length is unknown (a header's claim not taken at its word); 1e13 was a 500 (the
    seek's int64 overflowed)."""
    encode(media / "song.flac", tmp_path / "clip.flac", "flac", "flac", seconds=4)
    answer = client.post(f"/?start={start}", data=claiming((tmp_path / "clip.flac").read_bytes(), 22050 * 3600 * 40),
                         content_type="audio/flac")
    assert (answer.status_code, answer.json["error"]["code"]) == (400, "bad_parameter"), answer.json
    assert "less than 900 s" in answer.json["error"]["message"]


def test_loopback_is_refused_without_the_test_switch(client, reconfigure, served):
    reconfigure(allow_loopback_links=False)
    answer = client.post("/", json={"url": f"{served}/song.flac"})
    assert (answer.status_code, answer.json["error"]["code"]) == (400, "url_not_allowed")


def test_site_allow_list(client, reconfigure, served):
    reconfigure(allowed_sites=("youtube.com", "youtu.be"))
    answer = client.post("/", json={"url": f"{served}/song.flac"})
    assert (answer.status_code, answer.json["error"]["code"]) == (400, "site_not_allowed")
    assert "youtube.com" in answer.json["error"]["message"]


def test_missing_model_is_a_503_naming_the_path_and_the_cause(client, reconfigure, media, tmp_path):
    reconfigure(model_path=tmp_path / "none.onnx")
    answer = client.post("/", data=(media / "song.flac").read_bytes(), content_type="audio/flac")
    assert (answer.status_code, answer.json["error"]["code"]) == (503, "model_unavailable")
    assert answer.json["error"]["message"] == (f"the model {tmp_path / 'none.onnx'} could not be loaded: "
                                               "FileNotFoundError: No such file or directory")


def test_server_without_ranges_is_read_once(client, media):
    """Seeking back on a server that ignores Range re-reads kept bytes, not the network."""
    with local_http.Server(media, ranges=False) as url:
        answer = client.post("/", json={"url": f"{url}/song.flac", "start": 24, "duration": 3})
    assert answer.status_code == 200, answer.json
    assert answer.json["source"]["bytes_fetched"] <= (media / "song.flac").stat().st_size


@pytest.fixture(scope="module")
def long_media(gtzan, tmp_path_factory) -> Path:
    """Three minutes of GTZAN rock (mono, 22050 Hz) as FLAC, MP3 without an ID3v2 tag (FFmpeg then
    looks for an ID3v1 tag at the end), Ogg/Opus (its length at the end) and M4A (its index at the end)."""
    folder = tmp_path_factory.mktemp("long")
    clips = sorted((gtzan / "rock").glob("*.flac"))[:6]
    for name, codec, fmt, options in [("long.flac", "flac", "flac", {}),
                                      ("long.mp3", "libmp3lame", "mp3", {"id3v2_version": "0"}),
                                      ("long.ogg", "libopus", "ogg", {}), ("long.m4a", "aac", "mp4", {})]:
        with av.open(str(folder / name), "w", format=fmt, options=options) as out:
            stream = out.add_stream(codec, rate=48000 if codec == "libopus" else 22050, layout="mono")
            resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=stream.rate)
            for clip in clips:
                with av.open(str(clip)) as inp:
                    for frame in inp.decode(audio=0):
                        frame.pts = None
                        for chunk in resampler.resample(frame):
                            out.mux(stream.encode(chunk))
            out.mux(stream.encode(None))
    return folder


@pytest.mark.parametrize("name, needs", [("long.flac", 0.6), ("long.mp3", 0.6), ("long.ogg", 1), ("long.m4a", 1)])
def test_server_without_ranges_gives_the_bytes_up_to_the_windows_end(client, long_media, name, needs):
    """The default window (60-90 s of 180) from a server without ranges: FFmpeg's probes of the end (a
    FLAC's seek, an MP3's ID3v1 tag) cost no download (were the whole file); an Ogg's length and an
    M4A's index are at the end, and read there. The answer is the upload's."""
    data = (long_media / name).read_bytes()
    with local_http.Server(long_media, ranges=False) as url:
        answer = client.post("/", json={"url": f"{url}/{name}"})
    upload = client.post("/", data=data, content_type="application/octet-stream")
    assert answer.status_code == 200 and upload.status_code == 200, answer.json
    assert answer.json["window"] == upload.json["window"] == {"start": 60.0, "duration": 30.0}
    assert answer.json["source"]["duration"] == pytest.approx(upload.json["source"]["duration"])
    assert answer.json["scores"] == pytest.approx(upload.json["scores"], abs=1e-3)
    assert answer.json["source"]["bytes_fetched"] <= needs * len(data)


@pytest.mark.parametrize("target, status, code", [
    ("{served}/song.flac", 200, None),
    ("http://169.254.169.254/latest/meta-data/", 400, "url_not_allowed"),
    ("http://10.0.0.7/song.flac", 400, "url_not_allowed"),
    ("file:///etc/passwd", 400, "invalid_url"),
])
def test_redirects_of_the_media_url_are_checked(settings, served, target, status, code):
    """The media URL is fetched by our reader, which re-checks the policy at every redirect."""
    url = f"{served}/redirect?to=" + urllib.parse.quote(target.format(served=served), safe="")
    try:
        with remote.RemoteFile(url, settings, deadline=time.monotonic() + 10) as media:
            assert media.read(4) == b"fLaC" and status == 200
    except ClassifyError as refused:
        assert (refused.status, refused.code) == (status, code)


def test_a_start_in_a_stream_that_cannot_seek(client, media):
    """A live-style source (no length, no ranges): decoded from its start up to the window, which
    is the same as the file's."""
    data = (media / "song.flac").read_bytes()

    class Live(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "audio/flac")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass
    with local_http.serving(Live) as url:
        live = client.post("/", json={"url": f"{url}/live.flac", "start": 12, "duration": 6})
    assert live.status_code == 200, live.json
    assert live.json["window"] == {"start": 12.0, "duration": 6.0}
    upload = client.post("/?start=12&duration=6", data=data, content_type="audio/flac")
    assert live.json["scores"] == pytest.approx(upload.json["scores"], abs=2e-4)


def test_a_server_that_offers_ranges_then_ignores_them(client, media, served):
    """Seeking must not pass the bytes from the start off as those at the offset."""
    asked = {"url": None, "start": 20, "duration": 5}
    with local_http.Server(media, ranges="ignored") as lying:
        answer = client.post("/", json={**asked, "url": f"{lying}/song.flac"})
    honest = client.post("/", json={**asked, "url": f"{served}/song.flac"})
    assert answer.status_code == 200 and honest.status_code == 200, answer.json
    assert answer.json["scores"] == pytest.approx(honest.json["scores"], abs=2e-4)


def test_download_cap(client, reconfigure, media):
    reconfigure(max_fetch_bytes=200_000)
    with local_http.Server(media, ranges=False) as url:
        answer = client.post("/", json={"url": f"{url}/song.flac", "start": 20, "duration": 5})
    assert (answer.status_code, answer.json["error"]["code"]) == (422, "source_too_large")


def test_download_cap_holds_on_a_server_with_ranges(client, reconfigure, served):
    reconfigure(max_fetch_bytes=200_000)
    answer = client.post("/", json={"url": f"{served}/song.flac", "start": 0, "duration": 30})
    assert (answer.status_code, answer.json["error"]["code"]) == (422, "source_too_large")


@pytest.mark.parametrize("under, status", [(0, 200), (1, 422)], ids=["exactly the file", "a byte less"])
def test_download_cap_at_the_size_of_the_file(client, reconfigure, media, under, status):
    """Read once without ranges, the file costs exactly its size: a cap of that size lets it through."""
    size = (media / "song.flac").stat().st_size
    reconfigure(max_fetch_bytes=size - under)
    with local_http.Server(media, ranges=False) as url:
        answer = client.post("/", json={"url": f"{url}/song.flac"})
    assert answer.status_code == status, answer.json
    if status == 200:
        assert answer.json["source"]["bytes_fetched"] == size
    else:
        assert answer.json["error"]["code"] == "source_too_large"


def test_a_stalling_source_ends_in_a_timeout(client, reconfigure, served):
    reconfigure(time_budget=2.0)
    began = time.monotonic()
    answer = client.post("/", json={"url": f"{served}/stall.flac"})
    assert (answer.status_code, answer.json["error"]["code"]) == (504, "timeout")
    assert time.monotonic() - began < 8
    assert answer.json["error"]["message"] == "the audio source stalled"  # the fetch's own limit, not the backstop


def test_a_site_that_never_answers_ends_in_a_timeout_within_the_budget(client, reconfigure, served):
    reconfigure(time_budget=2.0)
    answer = client.post("/", json={"url": f"{served}/hang.html"})
    assert (answer.status_code, answer.json["error"]["code"]) == (504, "timeout")
    assert answer.json["error"]["message"] == "the site did not answer in time"  # yt-dlp's limit, not the backstop


def test_a_bug_is_a_generic_500_and_its_stack_trace_goes_to_the_log(client, monkeypatch, media, capsys):
    import main

    def broken(*args, **kwargs):
        raise RuntimeError("internal detail")
    monkeypatch.setattr(main.pipeline, "upload", broken)
    response = client.post("/", data=(media / "song.flac").read_bytes(), content_type="audio/flac")
    assert response.status_code == 500 and response.json == {
        "error": {"code": "internal", "message": "unexpected error; it has been logged"}}
    entry = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert entry["severity"] == "ERROR" and entry["error"] == "internal"
    assert "RuntimeError: internal detail" in entry["stack_trace"] and "Traceback" in entry["stack_trace"]


def test_an_answer_holding_nan_is_never_sent(client, monkeypatch, media, capsys):
    """The last guard: whatever produced it, NaN or Infinity (not JSON) becomes a logged 500."""
    import main
    monkeypatch.setattr(main.pipeline, "upload", lambda *args, **kwargs: {"genre": "rock", "confidence": math.nan})
    response = client.post("/", data=(media / "song.flac").read_bytes(), content_type="audio/flac")
    assert response.status_code == 500 and response.json["error"]["code"] == "internal"
    assert b"NaN" not in response.data
    assert "Out of range float values are not JSON compliant" in json.loads(capsys.readouterr().out)["stack_trace"]


@pytest.mark.parametrize("seconds, on_disk", [(20, False), (30, True)], ids=["0.9 MB", "1.3 MB"])
def test_a_raw_upload_over_1_mb_waits_on_disk_not_in_memory(client, settings, monkeypatch, seconds, on_disk):
    """main.UPLOAD_CHUNK: a raw body is spooled in memory up to 1 MB, then to an anonymous file in the
    temp folder (seen in /proc as an open, deleted file there while the upload is classified)."""
    import main
    classify, held = main.pipeline.upload, []

    def upload(data, *args, **kwargs):
        held.extend(os.readlink(fd) for fd in Path("/proc/self/fd").iterdir() if fd.is_symlink())
        return classify(data, *args, **kwargs)
    monkeypatch.setattr(main.pipeline, "upload", upload)
    body = wav(seconds, seconds)
    assert (len(body) > main.UPLOAD_CHUNK) == on_disk
    answer = client.post("/?duration=3", data=body, content_type="audio/wav")
    assert answer.status_code == 200, answer.json
    assert any(link.startswith(tempfile.gettempdir()) for link in held) == on_disk, held


def test_audio_sent_with_curls_default_type_is_an_upload(client, media):
    """curl --data-binary @song.flac sends application/x-www-form-urlencoded: the bytes say audio."""
    data = (media / "song.flac").read_bytes()
    answer = client.post("/?duration=3", data=data, content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 200 and answer.json["source"]["kind"] == "upload", answer.json
    assert answer.json["segments"] == 1
    noise = client.post("/", data=b"\x00" * 2000, content_type="application/x-www-form-urlencoded")
    assert noise.status_code == 415 and "Content-Type: audio/" in noise.json["error"]["message"]
    assert "-F file=@" in noise.json["error"]["message"]


@pytest.mark.parametrize("method, path", [("GET", "/foo"), ("POST", "/index.php"), ("OPTIONS", "/x/y")])
def test_unknown_paths_are_404(client, method, path):
    answer = client.open(path, method=method, json={"url": "http://127.0.0.1/"} if method == "POST" else None)
    assert answer.status_code == 404 and answer.json["error"]["code"] == "not_found", answer.data[:200]
    assert answer.headers["Access-Control-Allow-Origin"] == "*"


@pytest.fixture(scope="module")
def tiled(media):
    """tiled(seconds): the clip repeated to exactly `seconds`, as 16-bit mono WAV at 22050 Hz."""
    import av
    import numpy as np
    with av.open(str(media / "song.flac")) as source:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=22050)
        clip = np.concatenate([chunk.to_ndarray().reshape(-1) for frame in source.decode(audio=0)
                               for chunk in resampler.resample(frame)])

    def make(seconds: float) -> bytes:
        out = io.BytesIO()
        with wave.open(out, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(22050)
            wav.writeframes(np.resize(clip, int(seconds * 22050)).tobytes())
        return out.getvalue()
    return make


@pytest.mark.parametrize("seconds, start", [(120, 60.0), (90, 60.0), (89, 29.5), (45, 7.5), (4.56789, 0.0)])
def test_default_window_starts_at_60_s_or_is_centred_in_a_shorter_source(client, tiled, seconds, start):
    """30 s from 60 s in where the source has them; else 30 s in its middle; else all of it."""
    answer = client.post("/", data=tiled(seconds), content_type="audio/wav")
    assert answer.status_code == 200, answer.json
    assert answer.json["window"]["start"] == pytest.approx(start, abs=0.01)
    assert answer.json["window"]["duration"] == round(min(seconds, 30.0), 3)  # to the millisecond
    assert answer.json["source"]["duration"] == pytest.approx(seconds, abs=0.01)
    assert answer.json["segments"] == int(min(seconds, 30) // 3)  # whole 3-s segments


@pytest.mark.parametrize("duration, status", [(60, 200), (60.01, 400)])
def test_duration_cap_is_the_maximum_not_the_default(client, tiled, duration, status):
    answer = client.post(f"/?duration={duration}", data=tiled(120), content_type="audio/wav")
    assert answer.status_code == status, answer.json
    if status == 200:
        assert answer.json["window"]["start"] == pytest.approx(60.0, abs=0.01)
        assert answer.json["window"]["duration"] == pytest.approx(60.0, abs=0.05)
        assert answer.json["segments"] == 20
    else:
        assert answer.json["error"]["code"] == "bad_parameter" and "at most 60 s" in answer.json["error"]["message"]


@pytest.mark.parametrize("seconds, minutes, refusal", [
    (90, 1.5, None), (90, 1.49, "the source lasts 2 min; at most 1.49 min are accepted"),
    (89, 1.45, "the source lasts 1 min; at most 1.45 min are accepted"),
])
def test_source_length_cap_at_its_limit(client, reconfigure, tiled, seconds, minutes, refusal):
    reconfigure(max_source_minutes=minutes)
    answer = client.post("/?duration=3", data=tiled(seconds), content_type="audio/wav")
    if refusal is None:
        assert answer.status_code == 200, answer.json
    else:
        assert answer.status_code == 422 and answer.json["error"] == {"code": "source_too_long", "message": refusal}


@pytest.mark.parametrize("status, expected", [(404, (422, "source_unavailable")), (499, (422, "source_unavailable")),
                                              (500, (502, "source_unreachable")), (503, (502, "source_unreachable"))])
def test_upstream_errors_blame_the_link_for_4xx_and_the_site_for_5xx(settings, served, status, expected):
    with pytest.raises(ClassifyError) as failed:
        remote.RemoteFile(f"{served}/status/{status}", settings, deadline=time.monotonic() + 10)
    assert (failed.value.status, failed.value.code) == expected
    assert f"HTTP {status}" in failed.value.message


@pytest.mark.parametrize("method, status, severity, message", [
    ("GET", 400, "WARNING", "GET link -> 400 missing_url"),
    ("PUT", 405, "WARNING", "PUT other -> 405 method_not_allowed"),
])
def test_a_refused_request_logs_one_warning_line(client, capsys, method, status, severity, message):
    capsys.readouterr()
    began = time.perf_counter()
    answer = client.open("/?start=1", method=method)
    took_ms = (time.perf_counter() - began) * 1000
    assert answer.status_code == status
    assert answer.headers.get("Allow") == ("GET, POST, OPTIONS" if status == 405 else None)
    entry = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert (entry["severity"], entry["message"], entry["status"]) == (severity, message, status)
    assert entry["duration_ms"] == round(entry["duration_ms"], 1)  # to a tenth of a millisecond
    assert 0 <= entry["duration_ms"] <= took_ms


def test_the_features_come_only_when_asked_for_by_link_form_and_query(client, reconfigure, served, media):
    """The opt-in that lets export/ fan feature extraction out over the function (--endpoint)."""
    plain = client.post("/", json={"url": f"{served}/song.flac", "duration": 9}).json
    assert "features" not in plain
    by_link = client.post("/", json={"url": f"{served}/song.flac", "duration": 9, "features": True}).json
    data = (media / "song.flac").read_bytes()
    by_form = client.post("/", data={"file": (io.BytesIO(data), "s.flac"), "duration": "9", "features": "1"},
                          content_type="multipart/form-data").json
    by_query = client.post("/?duration=9&features=true", data=data, content_type="audio/flac").json
    for body in (by_link, by_form, by_query):
        assert body["scores"] == plain["scores"]  # asking changes nothing else
        features = np.array(body["features"]["segments"])
        assert features.shape == (3, 250) and np.isfinite(features).all() and features.std() > 0
        assert body["features"]["id"].startswith("musicnn-MSD-")
    assert np.abs(np.array(by_form["features"]["segments"]) - np.array(by_link["features"]["segments"])).max() < 1e-4
    for off in ("0", "false", ""):
        assert "features" not in client.post(f"/?duration=9&features={off}", data=data, content_type="audio/flac").json


@pytest.mark.parametrize("value", ["yes", "2", 1, [True]])
def test_features_must_be_true_or_false(client, served, value):
    answer = client.post("/", json={"url": f"{served}/song.flac", "features": value})
    assert answer.status_code == 400 and answer.json["error"]["code"] == "bad_parameter"
    assert "features must be true or false" in answer.json["error"]["message"]


def test_a_model_without_features_says_so(client, reconfigure, media):
    reconfigure(model_path=ROOT / "models" / "genre_cnn.onnx")
    answer = client.post("/?features=1", data=(media / "song.flac").read_bytes(), content_type="audio/flac")
    assert answer.status_code == 400 and answer.json["error"]["code"] == "bad_parameter"
    assert "genre_cnn has no features" in answer.json["error"]["message"]


def test_a_link_waiting_for_an_inference_slot_is_busy_not_a_timeout(client, reconfigure, served, monkeypatch):
    """Its source delivered within the 1-s budget; every inference slot is held for longer than that:
    503 busy with Retry-After once GENRE_MAX_QUEUE_S is up (was 504 "the source took longer than 1 s"),
    and no inference is run for it afterwards (was: the fetch worker ran it for nobody)."""
    from inference import model, pipeline
    reconfigure(time_budget=1.0, max_queue_s=2.5)
    client.post("/", json={"url": f"{served}/song.flac", "duration": 3})  # the model loaded
    runs = []
    classify = model.Model.classify
    monkeypatch.setattr(model.Model, "classify", lambda self, *a, **k: runs.append(1) or classify(self, *a, **k))
    held = 0
    while pipeline._inference_slots.acquire(blocking=False):
        held += 1
    try:
        began = time.monotonic()
        answer = client.post("/", json={"url": f"{served}/song.flac", "duration": 3})
        waited = time.monotonic() - began
    finally:
        for _ in range(held):
            pipeline._inference_slots.release()
    assert (answer.status_code, answer.json["error"]["code"]) == (503, "busy"), answer.json
    assert answer.headers["Retry-After"] == "5" and 2.5 <= waited < 6
    time.sleep(1)
    assert not runs


def test_a_post_takes_start_duration_and_features_from_its_query_too(client, served):
    """openapi.yaml lists them for POST: in the query of a JSON or a form link request (were ignored)."""
    link = f"{served}/song.flac"
    for answer in (client.post("/?start=3&duration=6&features=1", json={"url": link}),
                   client.post("/?start=3&duration=6&features=1", data={"url": link},
                               content_type="application/x-www-form-urlencoded")):
        assert answer.status_code == 200, answer.json
        assert answer.json["window"] == {"start": 3.0, "duration": 6.0} and len(answer.json["features"]["segments"]) == 2


@pytest.mark.parametrize("how", ["query", "query and JSON", "JSON", "form", "query and form", "multipart"])
def test_a_parameter_given_twice_is_refused(client, served, media, how):
    """One rule everywhere (was first-wins in a query, last-wins in JSON and across a query and a form)."""
    link, clip = f"{served}/song.flac", (media / "song.flac").read_bytes()
    answer = {"query": lambda: client.get(f"/?url={link}&duration=3&duration=6"),
              "query and JSON": lambda: client.post("/?duration=3", json={"url": link, "duration": 6}),
              "JSON": lambda: client.post("/", data=f'{{"url": "{link}", "duration": 3, "duration": 6}}',
                                          content_type="application/json"),
              "form": lambda: client.post("/", data=f"url={link}&start=0&start=3",
                                          content_type="application/x-www-form-urlencoded"),
              "query and form": lambda: client.post("/?start=3", data={"url": link, "start": "0"},
                                                    content_type="application/x-www-form-urlencoded"),
              "multipart": lambda: client.post("/?duration=3", data={"file": (io.BytesIO(clip), "a.flac"),
                                                                     "duration": "6"},
                                               content_type="multipart/form-data")}[how]()
    assert (answer.status_code, answer.json["error"]["code"]) == (400, "bad_parameter"), answer.json
    assert "given more than once" in answer.json["error"]["message"]


def test_a_browser_asking_for_features_alone_gets_the_page(client):
    answer = client.get("/?features=1", headers={"Accept": "text/html"})
    assert answer.status_code == 200 and answer.mimetype == "text/html"


def test_features_from_a_model_without_them_are_refused_before_the_fetch(client, reconfigure, served):
    """A source that stalls: refused at once (was fetched and decoded first: here, a 504 after the budget)."""
    reconfigure(model_path=ROOT / "models" / "genre_cnn.onnx", time_budget=3.0)
    began = time.monotonic()
    answer = client.post("/", json={"url": f"{served}/stall.flac", "features": True})
    assert (answer.status_code, answer.json["error"]["code"]) == (400, "bad_parameter"), answer.json
    assert time.monotonic() - began < 1


def test_a_clip_just_under_one_segment_is_not_said_to_hold_one(client):
    answer = client.post("/", data=wav(2.99, 2.99), content_type="audio/wav")
    assert (answer.status_code, answer.json["error"]["code"]) == (422, "too_short")
    assert "holds 2.99 s" in answer.json["error"]["message"], answer.json  # was "holds 3.0 s"


def test_a_negative_zero_start_is_answered_as_zero(client, media):
    answer = client.post("/?start=-0&duration=3", data=(media / "song.flac").read_bytes(), content_type="audio/flac")
    assert answer.status_code == 200 and answer.json["window"]["start"] == 0
    assert "-0.0" not in answer.get_data(as_text=True)


def test_an_absurd_sample_rate_is_refused_before_decoding(client):
    """A WAV declaring 2^31-1 Hz (was not_audio "(MemoryError)", after the worker grew by 200 MB)."""
    pcm = np.zeros(48000, "<i2").tobytes()
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, 2**31 - 1, 2**32 - 2, 2, 16)
    data = b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVEfmt " + fmt + b"data" + struct.pack("<I", len(pcm)) + pcm
    answer = client.post("/", data=data, content_type="audio/wav")
    assert (answer.status_code, answer.json["error"]["code"]) == (422, "not_audio")
    assert "2147483647 Hz" in answer.json["error"]["message"] and "Error" not in answer.json["error"]["message"]


def served_and_run(client, folder: Path, name: str, contents: bytes, **post):
    """The server's answer to a request (`post`: what client.post takes) and the command line's on a file
    folder/name of the same `contents`."""
    (folder / name).write_bytes(contents)
    served = client.post("/", **post)
    done = subprocess.run([sys.executable, "-m", "inference", str(folder / name)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    (folder / name).unlink()
    return served, done


@pytest.mark.parametrize("tag, bits", [(0x1234, 16), (3, 16), (1, 0)], ids=["unknown tag", "float of 16 bits", "0 bits"])
def test_a_codec_without_a_decoder_is_not_audio_on_the_server_and_the_command_line(client, tmp_path, tag, bits):
    """A stream FFmpeg has no decoder for (was a 500 internal, and a traceback from the command line)."""
    data = wav_of_format(tag, bits)
    served, done = served_and_run(client, tmp_path, "odd.wav", data, data=data, content_type="audio/wav")
    assert served.status_code == 422 and done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["error"] == served.json["error"] == {
        "code": "not_audio", "message": "the audio's codec cannot be decoded"}


def test_a_byte_named_flac_is_not_audio_on_the_server_and_the_command_line(client, tmp_path):
    """The file's name is no hint to the decoder on either side (was no_audio from the command line, whose
    decoder opened it as an empty FLAC stream by its name, and not_audio from the server, which has no name)."""
    served, done = served_and_run(client, tmp_path, "x.flac", b"x", data={"file": (io.BytesIO(b"x"), "x.flac")},
                                  content_type="multipart/form-data")
    assert served.status_code == 422 and done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["error"] == served.json["error"] == {
        "code": "not_audio", "message": "the data is not audio in a known format"}


def test_not_audio_says_the_same_on_the_server_and_the_command_line(client, tmp_path):
    """Without the name of an internal exception (was InvalidDataError on one, ArgumentError on the other)."""
    garbage = b"\x00garbage" * 1000
    served, done = served_and_run(client, tmp_path, "garbage.mp3", garbage, data=garbage, content_type="audio/mpeg")
    assert json.loads(done.stdout)["error"] == served.json["error"] == {
        "code": "not_audio", "message": "the data is not audio in a known format"}
