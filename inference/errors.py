"""The error catalogue: every code the function answers with, its HTTP status and default message,
and a constructor per code. docs/api.md's error table and openapi.yaml follow it (a test
checks)."""
import functools
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Code:
    status: int | None  # None: the command line's own, never answered over HTTP
    message: str  # the default message


CATALOGUE = {
    "missing_url": Code(400, 'give a link as {"url": "https://..."} or ?url=, or upload audio'),
    "bad_json": Code(400, 'the body must be a JSON object like {"url": "https://..."}'),
    "invalid_url": Code(400, "the link is not a valid URL"),
    "url_not_allowed": Code(400, "the link leads to a private or reserved address"),
    "site_not_allowed": Code(400, "links to this site are not accepted here"),
    "bucket_not_allowed": Code(400, "gs:// links to this bucket are not accepted here"),
    "bad_parameter": Code(400, "start and duration must be numbers of seconds"),
    "empty_upload": Code(400, "the upload is empty"),
    "missing_file": Code(400, 'the form has no field "file"'),
    "bad_form": Code(400, "the form has too many parts or too large a field"),
    "bad_request": Code(400, "the HTTP request could not be parsed"),
    "not_found": Code(404, "the function answers at / only"),
    "storage_forbidden": Code(403, "Cloud Storage refused the function's read of this object"),
    "method_not_allowed": Code(405, "use GET ?url=..., or POST"),
    "upload_too_large": Code(413, "the upload is too large"),
    "body_too_large": Code(413, "the body is too large for a link request"),
    "unsupported_media_type": Code(415, "send application/json, audio/*, application/octet-stream or "
                                        "multipart/form-data"),
    "unsupported_url": Code(422, "no audio or video was found at this link"),
    "source_unavailable": Code(422, "the link could not be read"),
    "not_audio": Code(422, "the data is not audio in a known format"),
    "no_audio": Code(422, "no audio in the requested window"),
    "too_short": Code(422, "the window holds less than one segment (3 s) of audio"),
    "bad_window": Code(422, "start is beyond the end of the source"),
    "source_too_long": Code(422, "the source is too long"),
    "live_stream": Code(422, "live streams cannot be classified; give a recorded track"),
    "source_too_large": Code(422, "the audio needed too much download"),
    "request_line_too_long": Code(414, "the request line (method, path and query) is too long"),
    "headers_too_large": Code(431, "the request's headers are too large"),
    "internal": Code(500, "unexpected error; it has been logged"),
    "source_unreachable": Code(502, "the site could not be reached"),
    "extractor_outdated": Code(502, "yt-dlp could not read this site's page: the site has probably changed, and the "
                                    "function needs a newer yt-dlp"),
    "source_blocked": Code(503, "the site refused this server as a bot; set YTDLP_COOKIES (a cookies.txt of a "
                                "signed-in browser) or YTDLP_PROXY (a residential proxy) and redeploy"),
    "model_unavailable": Code(503, "the model could not be loaded"),
    "busy": Code(503, "the function is busy; retry in a few seconds (see Retry-After)"),
    "timeout": Code(504, "the source did not deliver in time"),
    "unreadable_file": Code(None, "the file could not be read"),
    "unreachable": Code(None, "no answer from the function (batch --endpoint), after the retries"),
}


class ClassifyError(Exception):
    """The one error type the serving code raises: a code of the catalogue, its status, a plain message."""

    def __init__(self, code: str, message: str | None = None):
        entry = CATALOGUE[code]
        self.code, self.status, self.message = code, entry.status, message or entry.message
        super().__init__(self.message)

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


# one constructor per code: code(message=None) -> ClassifyError; those below format their message
missing_url = functools.partial(ClassifyError, "missing_url")
bad_json = functools.partial(ClassifyError, "bad_json")
invalid_url = functools.partial(ClassifyError, "invalid_url")
url_not_allowed = functools.partial(ClassifyError, "url_not_allowed")
bad_parameter = functools.partial(ClassifyError, "bad_parameter")
empty_upload = functools.partial(ClassifyError, "empty_upload")
missing_file = functools.partial(ClassifyError, "missing_file")
not_found = functools.partial(ClassifyError, "not_found")
method_not_allowed = functools.partial(ClassifyError, "method_not_allowed")
unsupported_url = functools.partial(ClassifyError, "unsupported_url")
source_unavailable = functools.partial(ClassifyError, "source_unavailable")
storage_forbidden = functools.partial(ClassifyError, "storage_forbidden")
not_audio = functools.partial(ClassifyError, "not_audio")
no_audio = functools.partial(ClassifyError, "no_audio")
live_stream = functools.partial(ClassifyError, "live_stream")
internal = functools.partial(ClassifyError, "internal")
bad_request = functools.partial(ClassifyError, "bad_request")
headers_too_large = functools.partial(ClassifyError, "headers_too_large")
source_unreachable = functools.partial(ClassifyError, "source_unreachable")
source_blocked = functools.partial(ClassifyError, "source_blocked")
model_unavailable = functools.partial(ClassifyError, "model_unavailable")
timeout = functools.partial(ClassifyError, "timeout")
unreadable_file = functools.partial(ClassifyError, "unreadable_file")
unreachable = functools.partial(ClassifyError, "unreachable")


def site_not_allowed(host: str, allowed: tuple[str, ...]) -> ClassifyError:
    return ClassifyError("site_not_allowed", f"links to {host} are not accepted here; allowed: {', '.join(allowed)}")


def bucket_not_allowed(bucket: str, allowed: tuple[str, ...]) -> ClassifyError:
    return ClassifyError("bucket_not_allowed", f"gs:// links to the bucket {bucket} are not accepted here; allowed: "
                                               f"{', '.join(allowed) or 'none (GENRE_ALLOWED_BUCKETS is empty)'}")


def upload_too_large(cap_bytes: int) -> ClassifyError:
    return ClassifyError("upload_too_large", f"uploads are limited to {_megabytes(cap_bytes)}")


def unsupported_media_type(mimetype: str) -> ClassifyError:
    return ClassifyError("unsupported_media_type", f"{CATALOGUE['unsupported_media_type'].message}, not "
                                                   f"{mimetype or 'a body without a Content-Type'}")


def neither_form_nor_audio() -> ClassifyError:
    """A body sent as a url-encoded form (curl's default type) that has no url field and is not audio."""
    return ClassifyError("unsupported_media_type", "the body is neither a form with a url field nor audio: send audio "
                         "with Content-Type: audio/... (curl -H 'Content-Type: audio/mpeg' --data-binary @song.mp3) "
                         "or as a form (curl -F file=@song.mp3)")


def bad_window(source_seconds: float) -> ClassifyError:
    return ClassifyError("bad_window", f"start is beyond the end of the source ({source_seconds:.0f} s)")


def source_too_long(seconds: float, max_minutes: float) -> ClassifyError:
    return ClassifyError("source_too_long",
                         f"the source lasts {seconds / 60:.0f} min; at most {max_minutes:g} min are accepted")


def body_too_large(cap_bytes: int) -> ClassifyError:
    return ClassifyError("body_too_large", f"a link request's body (JSON or a form) is limited to "
                                           f"{cap_bytes // 1024} KB")


def request_line_too_long(cap_bytes: int) -> ClassifyError:
    return ClassifyError("request_line_too_long", f"the request line (method, path and query) is limited to "
                                                  f"{cap_bytes} bytes")


def source_too_large(cap_bytes: int) -> ClassifyError:
    return ClassifyError("source_too_large", f"the audio needed more than {_megabytes(cap_bytes)} of download")


def page_too_large(cap_bytes: int) -> ClassifyError:
    return ClassifyError("source_too_large", f"the link's page is larger than {_megabytes(cap_bytes)}; "
                                             "link the audio itself")


SEND_AS_FILE = "send the audio as a file part, as curl -F file=@clip.flac does"


def _megabytes(count: int) -> str:
    """A byte cap in MB as set (GENRE_MAX_*_MB): 2 MB, 0.1 MB."""
    return f"{round(count / 2**20, 2):g} MB"


def extractor_outdated(version: str) -> ClassifyError:
    """yt-dlp's extractor failed as it does when a site has changed: the remedy is a newer yt-dlp."""
    return ClassifyError("extractor_outdated", f"yt-dlp {version} could not read this site's page: the site has "
                         "probably changed since that version; the function's owner should redeploy it with the "
                         "newest yt-dlp (YTDLP_VERSION=latest ./deploy.sh)")


def upstream_status(http_status: int) -> ClassifyError:
    """The error for an upstream HTTP error status: the link's fault (4xx) or the site's (5xx, or a
    redirect that leads nowhere: without a Location, or still one after the limit of them, a loop)."""
    if http_status < 400:
        return source_unreachable(f"the site answered HTTP {http_status}, a redirect that leads nowhere (a loop?)")
    if http_status == 407:  # the function's own proxy, not the link
        return source_unreachable("the function's proxy (YTDLP_PROXY) refused its credentials (HTTP 407)")
    if http_status < 500:
        return source_unavailable(f"the link answered HTTP {http_status}")
    return source_unreachable(f"the site answered HTTP {http_status}")


def busy(retry_after_s: int) -> ClassifyError:
    return ClassifyError("busy", f"the function is busy; retry in {retry_after_s} s")


def too_short(seconds: float, needed: float) -> ClassifyError:
    held = math.floor(seconds * 100) / 100  # 2.999 s holds 2.99, not "3.0"
    return ClassifyError("too_short", f"the window holds {held:g} s of audio; at least {needed:g} s are needed")


def file_as_text() -> ClassifyError:
    return ClassifyError("missing_file", f'the form\'s "file" is a text field: {SEND_AS_FILE}')


def more_than_one_file() -> ClassifyError:
    return ClassifyError("bad_form", 'the form has more than one "file": send one')


def bad_form(max_parts: int, max_field_bytes: int) -> ClassifyError:
    return ClassifyError("bad_form", f"a form may have at most {max_parts} parts, and text fields of at most "
                                     f"{max_field_bytes // 1000} KB ({SEND_AS_FILE})")
