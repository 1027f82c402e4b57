"""The Cloud Function: HTTP in, HTTP out. All the work happens in inference/.

    POST /  {"url": "...", "start": 60, "duration": 30}     classify a link
    GET  /?url=...&start=...&duration=...                   the same
    POST /  audio bytes (audio/*, application/octet-stream) classify an upload
    POST /  multipart/form-data with a field "file"          the same
"""
import json
import logging
import math

import functions_framework
from werkzeug.exceptions import RequestEntityTooLarge

from inference import classify as classifier
from inference import config, errors
from inference.errors import ClassifyError

SETTINGS = config.load()
UPLOAD_TYPES = ("audio/", "video/", "application/octet-stream")


def _number(value, name: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise ClassifyError(400, "bad_parameter", f"{name} must be a number of seconds")
    return number


def _window(fields) -> dict:
    return {"start": _number(fields.get("start"), "start"), "duration": _number(fields.get("duration"), "duration")}


def _url(value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ClassifyError(400, "missing_url", 'give a link as {"url": "https://..."} or ?url=, or upload audio')
    return value.strip()


def _upload(request) -> tuple[bytes, str | None]:
    cap = SETTINGS.max_upload_bytes
    if request.content_length is not None and request.content_length > cap + 2**16:
        raise errors.upload_too_large(cap)
    request.max_content_length = cap + 2**16  # multipart overhead; werkzeug enforces it on read
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise ClassifyError(400, "missing_file", 'the form has no field "file"')
        data, name = upload.read(cap + 1), upload.filename
    else:
        data, name = request.stream.read(cap + 1), None
    if len(data) > cap:
        raise errors.upload_too_large(cap)
    return data, name


def _handle(request) -> dict:
    if request.method == "GET":
        return classifier.link(_url(request.args.get("url")), SETTINGS, **_window(request.args))
    if request.method != "POST":
        raise ClassifyError(405, "method_not_allowed", "use GET ?url=..., or POST")
    mimetype = request.mimetype
    if mimetype == "application/json":
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise ClassifyError(400, "bad_json", 'the body must be a JSON object like {"url": "https://..."}')
        return classifier.link(_url(body.get("url")), SETTINGS, **_window(body))
    if mimetype == "application/x-www-form-urlencoded":
        return classifier.link(_url(request.form.get("url")), SETTINGS, **_window(request.form))
    if mimetype == "multipart/form-data" or mimetype.startswith(UPLOAD_TYPES):
        fields = request.args if mimetype != "multipart/form-data" else {**request.args, **request.form}
        window = _window(fields)
        data, name = _upload(request)
        return classifier.upload(data, SETTINGS, filename=name, **window)
    if not mimetype and not request.content_length:
        raise ClassifyError(400, "missing_url", 'give a link as {"url": "https://..."} or upload audio')
    raise ClassifyError(415, "unsupported_media_type",
                        f"send application/json, audio/*, application/octet-stream or multipart/form-data, not {mimetype}")


def _cors(headers: dict) -> dict:
    headers["Access-Control-Allow-Origin"] = SETTINGS.cors_origin
    if SETTINGS.cors_origin != "*":
        headers["Vary"] = "Origin"
    return headers


@functions_framework.http
def classify(request):
    """The HTTP entry point (Cloud Functions gen2, functions-framework)."""
    if request.method == "OPTIONS":
        return "", 204, _cors({"Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                               "Access-Control-Allow-Headers": "Content-Type", "Access-Control-Max-Age": "3600"})
    try:
        status, body = 200, _handle(request)
    except ClassifyError as exc:
        status, body = exc.status, exc.body()
    except RequestEntityTooLarge:
        status, body = 413, errors.upload_too_large(SETTINGS.max_upload_bytes).body()
    except Exception:  # a bug: log it, answer without internals
        logging.exception("unexpected error")
        status, body = 500, {"error": {"code": "internal", "message": "unexpected error; it has been logged"}}
    headers = _cors({"Content-Type": "application/json"})
    if status == 405:
        headers["Allow"] = "GET, POST, OPTIONS"
    return json.dumps(body), status, headers
