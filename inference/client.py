"""The one HTTP client of the deployed function, for `python -m inference batch --endpoint`, export's
`--endpoint` and tools/smoke.py: an item in, a row out ({"input": item, ...the answer} or an error row).

It trusts the endpoint no more than the function trusts its sources: each attempt has one deadline
for connecting, sending, the headers and the body (a watchdog hangs up on a server that drips);
the answer is capped at MAX_ANSWER_BYTES; a 200 is checked against the answer's contract before
anyone writes or caches it (a bad one is the item's error, never an answer) and the row's input is
always the item; redirects are followed only within the endpoint's origin; 429, 503, connection
errors and timeouts are retried with back-off, Retry-After honoured, but an item waits at most
max_wait_s in all between its attempts; a token the function's front end refuses is renewed once
(inference/tokens.py), and the run told (tokens.Refused) when it cannot be: never an item's answer."""
import contextlib
import http.client
import json
import math
import random
import socket
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection

from inference import errors, tokens

MAX_ANSWER_BYTES = 4 * 2**20  # an answer with features (60 s, 20 segments x 250) is ~0.1 MB
CONNECT_TIMEOUT_S = 10.0
MAX_REDIRECTS = 5
RETRIED_STATUSES = (429, 503)
REDIRECTS = (301, 302, 303, 307, 308)  # followed within the origin, the body sent again
BACKOFF_FACTOR_S, BACKOFF_JITTER_S, BACKOFF_MAX_S = 0.5, 0.5, 30.0  # no wait, then 1, 2, 4... s (+ jitter)
RETRY_AFTER_MAX_S = 120.0  # one Retry-After is honoured up to this
DEFAULT_MAX_WAIT_S = 300.0  # all the waits between one item's attempts, whatever Retry-After says
# the row's own keys: an answer holding one would rename, fail or re-status the item
ROW_KEYS = ("input", "status", "error")
ANSWER_KEYS = ("genre", "confidence", "uncertain", "scores", "segments", "timeline", "window", "source", "model",
               "timings_ms")  # openapi.yaml's required fields of an answer; others are accepted as they come
CHUNK = 2**16


@dataclass(frozen=True)
class Reply:
    """What one attempt got: the status, its Retry-After and a redirect's Location, the body (capped)."""
    status: int
    retry_after: str | None
    location: str | None
    data: bytes


class Client:
    """The function at `endpoint`; call it with an item (a file's path or a link) and the fields to send."""

    def __init__(self, endpoint: str, *, token: "str | tokens.Token | None" = None, timeout_s: float = 120.0,
                 retries: int = 6, max_wait_s: float = DEFAULT_MAX_WAIT_S, max_upload_bytes: int,
                 fields: dict | None = None, on_retry=None):
        self.endpoint, self.timeout_s, self.retries, self.max_wait_s = endpoint, timeout_s, retries, max_wait_s
        self.max_upload_bytes, self.fields = max_upload_bytes, dict(fields or {})
        self.on_retry = on_retry  # told each retry and why, e.g. to say so on stderr
        self.origin = _origin(endpoint)
        self.token = tokens.Fixed(token) if isinstance(token, str) else token

    def __call__(self, item: str) -> dict:
        try:
            body, headers = self._body(item)
        except errors.ClassifyError as exc:
            return error_row(item, exc.code, exc.message, exc.status)
        except OSError as exc:
            error = unreadable(exc, item)
            return error_row(item, error.code, error.message)
        return self._row(item, self._authorized(body, headers))

    def _authorized(self, body: bytes, headers: dict) -> "Reply | errors.ClassifyError":
        """The last reply; the token renewed once where the function's front end refused it (a 401 or 403
        that is not the function's answer). tokens.Refused where it refuses the new one too, or there is none
        to renew: never an item's answer."""
        for attempt in range(2):
            used = self.token.current() if self.token else None
            reply = self._send(body, {**headers, **({"Authorization": f"Bearer {used}"} if used else {})})
            if not _front_end_refusal(reply):
                return reply
            if self.token is None:
                raise tokens.Refused(f"{self.endpoint} refused the call (HTTP {reply.status}) and no token was given: "
                                     f"a private function needs --token-command, --token or google-auth's "
                                     f"credentials ({_text(reply)})")
            if not attempt:
                self.token.refresh(used)
        raise tokens.Refused(f"{self.endpoint} refused a renewed token too (HTTP {reply.status}: {_text(reply)})")

    def _body(self, item: str) -> tuple[bytes, dict]:
        """A link as JSON, a file as a multipart upload with its name."""
        if "://" in item:
            return json.dumps({"url": item, **self.fields}).encode(), {"Content-Type": "application/json"}
        path = Path(item)
        check_file(path, self.max_upload_bytes)
        name = path.name.encode("utf-8", "replace").decode()  # a name that is not UTF-8 as it reads (`?`)
        form = {"file": (name, path.read_bytes(), "application/octet-stream"),
                **{k: str(v) for k, v in self.fields.items()}}
        body, content_type = urllib3.encode_multipart_formdata(form)
        return body, {"Content-Type": content_type}

    def _send(self, body: bytes, headers: dict) -> Reply | errors.ClassifyError:
        """The last reply, after the retries; or the error that ended the last attempt."""
        waited, attempt = 0.0, 0
        while True:
            try:
                reply = self._follow(body, headers)
            except _Transient as exc:
                if exc.final:
                    return exc.error
                reply = exc.error
            if isinstance(reply, Reply) and reply.status not in RETRIED_STATUSES or attempt == self.retries:
                return reply
            attempt += 1
            pause = self._pause(attempt, reply)
            if waited + pause > self.max_wait_s:
                return _gave_up(reply, self.max_wait_s)
            if self.on_retry:
                self.on_retry(f"retry {attempt} of {self.retries} in {pause:.1f} s: {_said(reply)}")
            time.sleep(pause)
            waited += pause

    def _pause(self, retry: int, reply) -> float:
        """Seconds before retry number `retry` (1, 2...): Retry-After where given, else back-off."""
        if isinstance(reply, Reply) and reply.retry_after:
            try:
                return min(RETRY_AFTER_MAX_S, urllib3.Retry().parse_retry_after(reply.retry_after))
            except (urllib3.exceptions.InvalidHeader, ValueError, OverflowError):  # a year 99999, 5000 digits
                pass
        if retry <= 1:
            return 0.0
        return min(BACKOFF_MAX_S, BACKOFF_FACTOR_S * 2 ** (retry - 1) + random.random() * BACKOFF_JITTER_S)

    def _follow(self, body: bytes, headers: dict) -> Reply:
        """One attempt, following redirects within the endpoint's origin only."""
        url, deadline = self.endpoint, time.monotonic() + self.timeout_s
        for _ in range(MAX_REDIRECTS + 1):
            reply = _exchange(url, body, headers, deadline, self.timeout_s)
            if reply.location is None:
                return reply
            try:
                url = urljoin(url, reply.location)
                origin = _origin(url)
            except ValueError:  # a port out of range or not a number, a broken IPv6 address
                raise _Transient(errors.unreachable(f"{self.endpoint} redirected ({reply.status}) to a malformed URL: "
                                                    "not followed"), final=True) from None
            if origin != self.origin:
                raise _Transient(errors.unreachable(f"{self.endpoint} redirected ({reply.status}) to another origin, "
                                                    f"{origin}: not followed"), final=True)
        raise _Transient(errors.unreachable(f"{self.endpoint} redirects too many times"), final=True)

    def _row(self, item: str, reply: "Reply | errors.ClassifyError") -> dict:
        if isinstance(reply, errors.ClassifyError):
            return error_row(item, reply.code, reply.message, reply.status)
        body = _parsed(reply)
        if reply.status == 200 and isinstance(body, dict):
            problem = answer_problem(body)
            if problem:
                return error_row(item, "unreachable", f"HTTP 200 from {self.endpoint}, not the function's answer: "
                                                      f"{problem}")
            return {"input": item, **body}
        if 400 <= reply.status < 600 and _function_error(body):
            return error_row(item, body["error"]["code"], str(body["error"].get("message")), reply.status)
        return error_row(item, "unreachable", f"HTTP {reply.status} from {self.endpoint}, not the function's "
                                              f"answer: {_text(reply)}")


class _Transient(Exception):
    """An attempt that got no usable reply; retried unless final."""

    def __init__(self, error: errors.ClassifyError, final: bool = False):
        super().__init__(error.message)
        self.error, self.final = error, final


def _parsed(reply: Reply):
    """The reply's JSON, or None (NaN and Infinity are not JSON; nor is nesting deeper than the decoder goes)."""
    with contextlib.suppress(ValueError, RecursionError):
        return json.loads(reply.data, parse_constant=_not_json)
    return None


def _function_error(body) -> bool:
    """Whether a reply's JSON is one of the function's error answers ({"error": {"code": a code of its catalogue}})."""
    error = body.get("error") if isinstance(body, dict) else None
    return isinstance(error, dict) and isinstance(error.get("code"), str) and error["code"] in errors.CATALOGUE


def _front_end_refusal(reply) -> bool:
    """A 401 or 403 that is not the function's own answer (storage_forbidden is): the token was refused."""
    return isinstance(reply, Reply) and reply.status in (401, 403) and not _function_error(_parsed(reply))


def _text(reply: Reply) -> str:
    """What a page that is not the function's answer (a proxy's, a login page) begins with."""
    return reply.data[:200].decode("utf-8", "replace").strip()


def error_row(item: str, code: str, message: str, status: int | None = None) -> dict:
    row = {"input": item, "error": {"code": code, "message": message}}
    return row if status is None else {"input": item, "status": status, **row}


def check_file(path: Path, max_bytes: int):
    """ClassifyError unless `path` is a regular file of at most max_bytes (a FIFO's or a device's reading
    would never end, a NUL byte in a name no file may hold); OSError where it cannot be stat'ed."""
    try:
        found = path.stat()
    except ValueError:  # a NUL byte in the name
        shown = str(path).replace("\0", "\\0")
        raise errors.unreadable_file(f"a file name cannot hold a NUL byte: {shown}") from None
    if not stat.S_ISREG(found.st_mode):
        raise errors.unreadable_file(f"not a regular file (a device, a FIFO or a folder): {path}")
    if found.st_size > max_bytes:
        raise errors.upload_too_large(max_bytes)


def unreadable(exc: OSError, item: str) -> errors.ClassifyError:
    return errors.unreadable_file(f"{exc.strerror or exc}: {item}")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def _not_json(constant: str):
    raise ValueError(f"{constant} is not JSON")


def _said(reply) -> str:
    return f"HTTP {reply.status}" if isinstance(reply, Reply) else reply.message


def _gave_up(reply, max_wait_s: float) -> errors.ClassifyError:
    return errors.unreachable(f"{_said(reply)}, and the next wait would pass --max-wait {max_wait_s:g} s for this item")


def _exchange(url: str, body: bytes, headers: dict, deadline: float, timeout_s: float) -> Reply:
    """One POST of `body` to `url`, all of it (connecting, sending, the headers, the body) before
    `deadline`; _Transient for no whole reply in time, or none at all."""
    parts = urlsplit(url)
    kind = HTTPSConnection if parts.scheme == "https" else HTTPConnection
    conn = kind(parts.hostname, parts.port, timeout=min(CONNECT_TIMEOUT_S, max(deadline - time.monotonic(), 1e-3)))
    held = []  # the connection's socket, once connected (http.client lets go of it for a closing answer)
    watchdog = threading.Timer(deadline - time.monotonic(), _hang_up, [held])
    watchdog.daemon = True
    watchdog.start()
    try:
        conn.connect()
        held.append(conn.sock)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("POST", path, body=body, headers=headers, preload_content=False, decode_content=False)
        conn.timeout = max(deadline - time.monotonic(), 1e-3)  # each read's; the watchdog bounds them all
        response = conn.getresponse()
        location = response.headers.get("Location") if response.status in REDIRECTS else None
        reply = Reply(response.status, response.headers.get("Retry-After"), location,
                      b"" if location else _capped(response, url))
    except (OSError, urllib3.exceptions.HTTPError, http.client.HTTPException) as exc:
        if time.monotonic() < deadline:
            raise _Transient(errors.unreachable(f"no answer from {url}: {exc.__cause__ or exc}")) from None
    finally:
        watchdog.cancel()
        conn.close()
    if time.monotonic() >= deadline:  # the watchdog hung up: what came is cut short
        raise _Transient(errors.unreachable(f"no whole answer from {url} within {timeout_s:g} s (--timeout)"))
    return reply


def _capped(response, url: str) -> bytes:
    """The body; _Transient once it passes MAX_ANSWER_BYTES (told by its length, or counted)."""
    length, data = response.headers.get("Content-Length", ""), bytearray()
    if not (length.isdigit() and int(length) > MAX_ANSWER_BYTES):
        while len(data) <= MAX_ANSWER_BYTES and (chunk := response.read(CHUNK)):
            data += chunk
        if len(data) <= MAX_ANSWER_BYTES:
            return bytes(data)
    raise _Transient(errors.unreachable(f"the answer from {url} is over {MAX_ANSWER_BYTES // 2**20} MiB, the client's "
                                        "cap (MAX_ANSWER_BYTES): not the function's answer"), final=True)


def _hang_up(held: list):
    """The watchdog: a blocked send or receive on the held socket returns at once."""
    for sock in held:
        with contextlib.suppress(OSError):  # already closed
            socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the TCP socket's, under TLS too


def answer_problem(answer: dict) -> str | None:
    """What makes a 200's JSON object not the function's answer (openapi.yaml), or None."""
    clash = [k for k in ROW_KEYS if k in answer]
    missing = [k for k in ANSWER_KEYS if k not in answer]
    if clash or missing:
        return f"it holds {clash}" if clash else f"it lacks {missing}"
    scores, segments, timeline = answer["scores"], answer["segments"], answer["timeline"]
    if not (isinstance(scores, dict) and scores and all(_probability(s) for s in scores.values())):
        return "its scores are not probabilities by label"
    if not (isinstance(answer["genre"], str) and answer["genre"] in scores and _probability(answer["confidence"])):
        return "its genre or confidence is not one of its scores"
    if not isinstance(answer["uncertain"], bool) or not isinstance(answer.get("model"), dict):
        return "its uncertain or model is not as documented"
    if not (type(segments) is int and segments >= 1 and isinstance(timeline, list) and len(timeline) == segments):
        return "its segments and timeline do not agree"
    if not all(_segment(entry, scores) for entry in timeline):
        return "its timeline is not of segments {start, genre, confidence}"
    window, timings = answer["window"], answer["timings_ms"]
    if not (isinstance(window, dict) and all(_number(window.get(k)) and window[k] >= 0 for k in ("start", "duration"))):
        return "its window is not {start, duration}"
    if not (isinstance(answer["source"], dict) and isinstance(timings, dict) and all(map(_number, timings.values()))):
        return "its source or timings_ms is not as documented"
    if any(answer.get(k) is not None and not _probability(answer[k]) for k in ("music", "in_labels")):
        return "its music or in_labels is not a probability"
    reasons = answer.get("uncertain_reasons", [])
    if not (isinstance(reasons, list) and all(isinstance(r, str) for r in reasons)):
        return "its uncertain_reasons are not a list of codes"
    return _features_problem(answer.get("features"), segments) if "features" in answer else None


def _features_problem(found, segments: int) -> str | None:
    if not (isinstance(found, dict) and isinstance(found.get("id"), str) and isinstance(found.get("segments"), list)):
        return "its features are not {id, segments}"
    rows = found["segments"]
    if len(rows) != segments or not all(isinstance(r, list) and len(r) == len(rows[0]) and r for r in rows):
        return f"its features are not {segments} rows of one width"
    if not all(_number(v) for r in rows for v in r):
        return "its features hold something other than finite numbers"
    return None


def _segment(entry, scores: dict) -> bool:
    """Whether a timeline entry is a segment's answer: its start, one of the labels, probabilities."""
    return (isinstance(entry, dict) and _number(entry.get("start")) and isinstance(entry.get("genre"), str)
            and entry["genre"] in scores and _probability(entry.get("confidence"))
            and all(entry.get(k) is None or _probability(entry[k]) for k in ("music", "in_labels")))


def _number(value) -> bool:
    """A finite number (an integer too large for a float is not one)."""
    try:
        return type(value) in (int, float) and math.isfinite(value)
    except OverflowError:
        return False


def _probability(value) -> bool:
    return _number(value) and 0 <= value <= 1
