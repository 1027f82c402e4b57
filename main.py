"""The Cloud Function: HTTP in, HTTP out. All the work happens in inference/.

    POST /  {"url": "...", "start": 60, "duration": 30}     classify a link
    GET  /?url=...&start=...&duration=...                   the same
    GET  /                                                  the page (web/index.html)
    POST /  audio bytes (audio/*, application/octet-stream) classify an upload
    POST /  multipart/form-data with a field "file"          the same
"""
import contextlib
import functools
import io
import json
import math
import os
import re
import socket
import sys
import tempfile
import time
import traceback
from http import HTTPStatus
from pathlib import Path
from typing import BinaryIO
from urllib.parse import parse_qsl, urlsplit

import flask
import functions_framework
import gunicorn.util
from functions_framework._http.gunicorn import GunicornApplication
from gunicorn.http.errors import NoMoreData, ParseException
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge

from inference import config, decode, errors, model, pipeline, resolve
from inference.errors import ClassifyError

try:
    SETTINGS = config.load()
except config.SettingError as exc:  # the function does not start: one log line says why
    sys.stdout.write(json.dumps({"severity": "ERROR", "message": f"{exc}; the function does not start"}) + "\n")
    raise SystemExit(2) from None
UPLOAD_TYPES = ("audio/", "video/", "application/octet-stream")
UPLOAD_CHUNK = 2**20  # an upload is read in chunks of this size into a temporary file
DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)  # start and duration as text
PARAMETERS = ("url", "start", "duration", "features")  # in a query, a form or a JSON object
MAX_LINK_BODY_BYTES = 2**16  # a link request's JSON or form body (a link needs a few KB)
# What is left of a refused body is read and thrown away after the answer, at most this much for at
# most this long (nginx's lingering close): a client that sends it all before reading (Python's
# urllib, requests) then sees the answer, not a reset connection. Cloud Run takes at most 32 MB.
DRAIN_BYTES, DRAIN_SECONDS = 64 * 2**20, 10
MAX_REQUEST_LINE_BYTES = 8190  # gunicorn's default and most; functions-framework sets none (below)
# A request whose client left before its answer was ready: abandoned, nothing answered, logged with
# nginx's status for it ("client closed request") and this code (docs/api.md, Logs)
CLIENT_GONE_STATUS, CLIENT_GONE = 499, "client_gone"
PAGE = (Path(__file__).resolve().parent / "web" / "index.html").read_bytes()
PAGE_HEADERS = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "public, max-age=600",
                "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
                                           "style-src 'unsafe-inline'; connect-src 'self'; form-action 'self'; "
                                           "base-uri 'none'; frame-ancestors 'none'",
                "X-Content-Type-Options": "nosniff"}


def _number(value, name: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and not DECIMAL.fullmatch(value.strip()):  # float() takes "٣", "５", "1_0"
        raise errors.bad_parameter(f"{name} must be a number of seconds")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer of 400 digits
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise errors.bad_parameter(f"{name} must be a number of seconds")
    return number + 0.0  # -0 is 0


def _flag(value, name: str) -> bool:
    """An opt-in: JSON true or false, or "1", "true", "0", "false" in a query or form (openapi.yaml: a boolean)."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("0", "1", "false", "true"):
        return value.lower() in ("1", "true")
    raise errors.bad_parameter(f"{name} must be true or false")


def _fields(*sources) -> dict:
    """The API's parameters (PARAMETERS) of a request: from its query, its form or JSON object (their
    (name, value) pairs in order), each given at most once in all."""
    fields = {}
    for source in sources:
        for name, value in (source.items(multi=True) if isinstance(source, MultiDict) else source):
            if name in PARAMETERS:
                if name in fields:
                    raise errors.bad_parameter(f"{name} is given more than once")
                fields[name] = value
    return fields


def _options(fields) -> dict:
    """The request's options: the window, and whether the answer carries the features."""
    return {"start": _number(fields.get("start"), "start"), "duration": _number(fields.get("duration"), "duration"),
            "features": _flag(fields.get("features"), "features")}


def _url(value, seen: dict) -> str:
    if value is not None and not isinstance(value, str):
        raise errors.invalid_url(f"the link must be a string, not {type(value).__name__}")
    if value is None or not value.strip():
        raise errors.missing_url()
    url = value.strip()
    with contextlib.suppress(ValueError):
        seen["site"] = urlsplit(url).hostname  # the host only: links and their queries stay out of the logs
    return url


def _upload(request) -> tuple[BinaryIO, str | None]:
    """The uploaded bytes as a temporary file (never more than a chunk in memory; gone when closed)."""
    cap = SETTINGS.max_upload_bytes
    body_cap = cap + 2**16  # room for multipart overhead; werkzeug enforces it on read (chunked bodies)
    if request.content_length is not None and request.content_length > body_cap:
        raise errors.upload_too_large(cap)
    request.max_content_length = body_cap
    if request.mimetype == "multipart/form-data":
        upload = _form_file(request)
        data, name = upload.stream, upload.filename  # werkzeug spools files over 500 KB to a temporary file
    else:
        data, name = tempfile.SpooledTemporaryFile(max_size=UPLOAD_CHUNK), None  # noqa: SIM115 (the caller closes it)
        try:  # at most cap + 1 bytes: reading to werkzeug's limit would make functions-framework's own read raise
            while (left := cap + 1 - data.tell()) > 0 and (chunk := request.stream.read(min(UPLOAD_CHUNK, left))):
                data.write(chunk)
        except BaseException:
            data.close()
            raise
    size = data.seek(0, io.SEEK_END)
    data.seek(0)
    if size > cap:
        data.close()
        raise errors.upload_too_large(cap)
    return data, name


def _form_file(request):
    """The form's "file" part. Werkzeug refuses too many parts, or too large a text field, as "too large"."""
    try:
        upload = request.files.get("file")
    except RequestEntityTooLarge:
        if request.content_length is None and request.stream.is_exhausted:  # chunked, and over the cap
            raise
        raise errors.bad_form(request.max_form_parts, request.max_form_memory_size) from None
    if upload is None:
        raise errors.file_as_text() if "file" in request.form else errors.missing_file()
    if len(request.files.getlist("file")) > 1:
        raise errors.more_than_one_file()
    return upload


def _wants_page(request) -> bool:
    """A GET with none of url, start and duration (a valid features flag alone does not count), unless the
    client asks for JSON over HTML (no Accept: the page)."""
    accept = request.accept_mimetypes
    try:
        fields = _fields(request.args)
        _flag(fields.get("features"), "features")
    except ClassifyError:
        return False  # answered as a link request: refused (a bad flag, a parameter given twice)
    return (not {"url", "start", "duration"} & set(fields)
            and (not accept or accept.best_match(["text/html", "application/json"]) == "text/html"))


def _link_fields(request) -> dict:
    """The fields of a link request: a GET's query, or a POST's query and JSON object of at most
    MAX_LINK_BODY_BYTES."""
    if request.method == "GET":
        return _fields(request.args)
    request.max_content_length = MAX_LINK_BODY_BYTES + 1  # werkzeug reads no further (a chunked body)
    if (request.content_length or 0) > MAX_LINK_BODY_BYTES or len(request.get_data()) > MAX_LINK_BODY_BYTES:
        raise errors.body_too_large(MAX_LINK_BODY_BYTES)
    top = []  # the (name, value) pairs of the last object decoded: the outermost

    def pairs_hook(pairs):
        top[:] = pairs
        return dict(pairs)
    try:
        body = json.loads(request.get_data(), object_pairs_hook=pairs_hook)  # get_data(): cached above
    except (ValueError, RecursionError):  # not JSON (or not UTF-8); nested deeper than the decoder goes
        body = None
    if not isinstance(body, dict):
        raise errors.bad_json()
    return _fields(request.args, top)


def _form_fields(data: BinaryIO) -> MultiDict:
    """A url-encoded body that is not audio (read as an upload, in case it is): a link request's form."""
    if data.seek(0, io.SEEK_END) > MAX_LINK_BODY_BYTES:
        raise errors.body_too_large(MAX_LINK_BODY_BYTES)
    data.seek(0)
    fields = MultiDict(parse_qsl(data.read().decode("utf-8", "replace"), keep_blank_values=True))
    if data.tell() and "url" not in fields:
        raise errors.neither_form_nor_audio()
    return fields


class _Whole:
    """The request's body as gunicorn reads it, refused as soon as it proves shorter than its
    Content-Length (the client stopped sending): never taken for a whole request."""

    def __init__(self, body, length: int):
        self._body, self._left = body, length

    def read(self, size: int | None = -1) -> bytes:
        data = self._body.read(size if size is not None and size >= 0 else None)
        self._left -= len(data)
        if self._left > 0 and (not data or size is None or size < 0):
            raise errors.bad_request(f"the body ended {self._left} bytes before its Content-Length")
        return data


def _presence(request):
    """A function that says whether the request's client is still connected (gunicorn's socket has
    neither ended nor been reset); always True without a socket (functions-framework's test client)."""
    sock = request.environ.get("gunicorn.socket")
    if sock is None:
        return pipeline.always

    def present() -> bool:
        try:
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""  # b"": the client's end came
        except (BlockingIOError, InterruptedError, ValueError):  # nothing to read: still there (ValueError: TLS)
            return True
        except OSError:  # reset
            return False
    return present


def _handle(request, seen: dict) -> dict:
    """The answer to a classify request; ClassifyError for a bad one. Notes its kind and site in seen."""
    if request.method not in ("GET", "POST"):
        raise errors.method_not_allowed()
    mimetype, present = request.mimetype, _presence(request)
    if request.content_length:
        request.environ["wsgi.input"] = _Whole(request.environ["wsgi.input"], request.content_length)
    if request.method == "POST" and mimetype == "application/x-www-form-urlencoded":  # curl's type for --data-binary
        data, _ = _upload(request)
        with data:
            if decode.looks_like_audio(data.read(16)):
                seen["kind"] = "upload"
                return pipeline.upload(data, SETTINGS, **_options(_fields(request.args)), present=present)
            seen["kind"] = "link"
            return _link(_fields(request.args, _form_fields(data)), seen, present)
    if request.method == "GET" or mimetype == "application/json":
        seen["kind"] = "link"
        return _link(_link_fields(request), seen, present)
    if mimetype == "multipart/form-data" or mimetype.startswith(UPLOAD_TYPES):
        seen["kind"] = "upload"
        data, name = _upload(request)
        with data:
            fields = _fields(request.args, *[request.form] * (mimetype == "multipart/form-data"))
            return pipeline.upload(data, SETTINGS, filename=name, **_options(fields), present=present)
    if not mimetype and not request.content_length:
        raise errors.missing_url('give a link as {"url": "https://..."} or upload audio')
    raise errors.unsupported_media_type(mimetype)


def _link(fields, seen: dict, present) -> dict:
    options = _options(fields)  # a bad option is named even where the link is missing
    return pipeline.link(_url(fields.get("url"), seen), SETTINGS, **options, present=present)


def _cors(headers: dict) -> dict:
    headers["Access-Control-Allow-Origin"] = SETTINGS.cors_origin
    if SETTINGS.cors_origin != "*":
        _vary(headers, "Origin")
    return headers


def _vary(headers: dict, name: str) -> dict:
    headers["Vary"] = ", ".join(filter(None, (headers.get("Vary"), name)))
    return headers


def _path(request) -> str:
    """The path as the client sent it: werkzeug's request.path reads "//" and "/%2F" as "/"."""
    return urlsplit(request.environ.get("RAW_URI") or request.full_path).path


def _respond(request, seen: dict) -> tuple[int, bytes | str, dict]:
    if _path(request) != "/":
        body = errors.not_found().body()
        seen["error"] = body["error"]["code"]
        return 404, json.dumps(body), _cors({"Content-Type": "application/json"})
    if request.method == "OPTIONS":
        seen["kind"] = "preflight"
        return 204, "", _cors({"Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                               "Access-Control-Allow-Headers": "Content-Type", "Access-Control-Max-Age": "3600"})
    if request.method == "GET" and _wants_page(request):
        seen["kind"] = "page"
        return 200, PAGE, _vary(dict(PAGE_HEADERS), "Accept")
    try:
        status, body = 200, _handle(request, seen)
        seen["genre"] = body["genre"]
    except ClassifyError as exc:
        status, body = exc.status, exc.body()
    except pipeline.ClientGone:
        seen["error"] = CLIENT_GONE
        return CLIENT_GONE_STATUS, "", {}
    except RequestEntityTooLarge:
        status, body = 413, errors.upload_too_large(SETTINGS.max_upload_bytes).body()
    except (ParseException, NoMoreData, ClientDisconnected):  # gunicorn's and werkzeug's, reading a body
        status, body = 400, errors.bad_request("the body could not be read: a malformed chunk, or the client "
                                               "stopped sending").body()
    except Exception:  # a bug: logged with its stack trace, answered without internals
        status, body = _bug(seen)
    try:
        text = json.dumps(body, allow_nan=False)
    except ValueError:  # NaN or Infinity, which JSON has not: never answered
        status, body = _bug(seen)
        text = json.dumps(body)
    headers = _cors({"Content-Type": "application/json"})
    if request.method == "GET":  # GET / is the page or JSON by its Accept: a cache must keep them apart
        _vary(headers, "Accept")
    if status == 405:
        headers["Allow"] = "GET, POST, OPTIONS"
    if status == 503 and body["error"]["code"] == "busy":
        headers["Retry-After"] = str(pipeline.RETRY_AFTER_S)
    if status != 200:
        seen["error"] = body["error"]["code"]
    return status, text, headers


def _bug(seen: dict) -> tuple[int, dict]:
    """The answer to a bug (the exception being handled): its stack trace to the log, no internals to the caller."""
    seen["stack_trace"] = traceback.format_exc()
    return 500, errors.internal().body()


def _unparsable(sock, status: int, reason: str, message: str):
    """gunicorn's answer to a request it cannot parse (a header over its limit, a malformed request
    line...), which it writes before the function runs, in the function's JSON shape, not HTML."""
    if status == 431:
        error = errors.headers_too_large()
    elif status == 414:
        error = errors.request_line_too_long(MAX_REQUEST_LINE_BYTES)
    elif status == 500:  # gunicorn's own failure, logged by gunicorn
        error = errors.internal()
    else:  # 400 and the rarer client refusals (403, 417, 501 for a transfer coding it does not take)
        error = errors.bad_request()
    body = json.dumps(error.body()).encode()
    cors = "".join(f"{name}: {value}\r\n" for name, value in _cors({}).items())  # a browser may read it, as any error
    head = (f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}\r\nConnection: close\r\n{cors}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    gunicorn.util.write_nonblock(sock, head.encode("latin1") + body)


# functions-framework offers no hook for these answers: gunicorn's one writer of them is replaced
gunicorn.util.write_error = _unparsable


def _limited(load_config):
    def load(application):
        load_config(application)
        application.cfg.set("limit_request_line", MAX_REQUEST_LINE_BYTES)
    return load


# functions-framework sets gunicorn's limit_request_line to 0 (none: parsing time grows with the square
# of the line's length) and takes no other value: its application is given ours after its own settings
GunicornApplication.load_config = _limited(GunicornApplication.load_config)


def _log(request, status: int, seen: dict, started: float):
    """One JSON line on stdout in Cloud Logging's structured shape. Never the link or the bytes."""
    seconds = time.perf_counter() - started
    outcome = seen["genre"] or seen["error"] or ""
    where = f" {seen['site']}" if seen["site"] else ""
    entry = {"severity": "ERROR" if status >= 500 else "WARNING" if status >= 400 else "INFO",
             "message": f"{request.method} {seen['kind']}{where} -> {status} {outcome}".rstrip(),
             "status": status, "duration_ms": round(seconds * 1000, 1), **seen,
             "httpRequest": {"requestMethod": request.method, "status": status, "latency": f"{seconds:.3f}s"}}
    sys.stdout.write(json.dumps(entry) + "\n")
    sys.stdout.flush()


def _address() -> str | None:
    """host:port, when functions-framework's command runs this module (its options, HOST, PORT)."""
    if Path(sys.argv[0]).name != "functions-framework":
        return None
    from functions_framework._cli import _cli
    options = _cli.make_context("functions-framework", sys.argv[1:], resilient_parsing=True).params
    return f"{options['host']}:{options['port']}"


def _log_start():
    """One JSON line at start: the model (or why it cannot be loaded), gunicorn's threads, the address
    and yt-dlp's version. A broken model is found here, not on the first request."""
    where = {"threads": int(os.environ.get("THREADS", (os.cpu_count() or 1) * 4)),  # functions-framework's default
             "address": _address(), "yt_dlp": resolve.version()}
    serving = f"{where['threads']} threads, {where['address'] or 'address unknown'}, yt-dlp {where['yt_dlp']}"
    try:
        found = model.checked(SETTINGS.model_path)
    except ClassifyError as exc:
        entry = {"severity": "ERROR", "message": f"{exc.message}; every request will answer 503 model_unavailable "
                                                 f"({serving})", "model": None, **where}
    else:
        entry = {"severity": "INFO", "message": f"started: model {found['name']} {found['version']} (sha256 "
                                                f"{found['sha256'][:12]}, labels {', '.join(found['labels'])}), "
                                                f"{serving}", "model": found, **where}
    sys.stdout.write(json.dumps(entry) + "\n")
    sys.stdout.flush()


_log_start()


def _drain(body, sock):
    """Reads and discards the rest of a body, at most DRAIN_BYTES for DRAIN_SECONDS, a chunk at a time."""
    deadline, left = time.monotonic() + DRAIN_SECONDS, DRAIN_BYTES
    with contextlib.suppress(Exception):  # the client left, stalled, or sent a malformed chunk: done
        while left > 0 and (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            chunk = body.read(min(2**16, left))
            if not chunk:
                break
            left -= len(chunk)


@functions_framework.http
def classify(request):
    """The HTTP entry point (Cloud Functions gen2, functions-framework)."""
    started, seen = time.perf_counter(), {"kind": "other", "site": None, "genre": None, "error": None}
    status, body, headers = _respond(request, seen)
    unread = request.environ["wsgi.input"]
    request.stream = io.BytesIO()  # functions-framework would read what is left into memory: drained below
    _log(request, status, seen, started)
    response = flask.Response(body, status, headers)
    if not body:  # a preflight's 204, a gone client's 499: no content, so no type either (Flask's default is HTML)
        response.headers.remove("Content-Type")
    if status >= 400 and "gunicorn.socket" in request.environ:
        response.call_on_close(functools.partial(_drain, unread, request.environ["gunicorn.socket"]))
    return response
