"""Cloud Storage, behind the same small interface as local folders.

The function reads a `gs://BUCKET/OBJECT` link through remote.RemoteFile, the reader of every other
link: the JSON API's media download, ranged from the first byte, so that only the window is fetched,
within the byte cap and the time budget, with an access token of the function's own identity
(Application Default Credentials). Only buckets in GENRE_ALLOWED_BUCKETS are read.

batch and export ask `under(where)` what audio lies under a folder or a gs:// prefix (streamed page by
page), export which version of each object it is (`versions`, `version`: its features are cached by
it), and both read and write small text objects (lists, results) with google-cloud-storage, imported
on first use. STORAGE_EMULATOR_HOST points both at an emulator, as the Google client libraries do."""
import contextlib
import functools
import io
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from inference import decode, errors, remote
from inference.config import Settings

SCHEME = "gs://"
API = "https://storage.googleapis.com"
READ_SCOPE = "https://www.googleapis.com/auth/devstorage.read_only"
BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")  # Cloud Storage's bucket names
MAX_NAME_BYTES = 1024  # Cloud Storage's longest object name
_GENERATION = re.compile(r"(.*)#([1-9][0-9]{0,18})", re.DOTALL)  # OBJECT#GENERATION: one version of an object
LIST_PAGE = 1000  # objects a listing page holds (the API's most)
CALL_TIMEOUT_S = (10.0, 60.0)  # google-cloud-storage's (connect, read) per call, for batch and export
EMPTY_RANGE = 416  # what a ranged read of an empty object answers


@dataclass(frozen=True)
class Location:
    bucket: str
    name: str  # an object's name, or a prefix ("" for the whole bucket)
    generation: int | None = None  # the one version of the object to read (gs://B/O#N); None: the live one

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.name}" + (f"#{self.generation}" if self.generation else "")


def is_gs(item: str) -> bool:
    return item.startswith(SCHEME)


def parse(url: str, *, prefix: bool = False) -> Location:
    """The bucket and object (or, with prefix, the prefix) of a gs:// URL; ClassifyError invalid_url. An
    object's URL may end in #GENERATION (gsutil's spelling of one version of it): that version is read."""
    bucket, _, name = url[len(SCHEME):].partition("/")
    if not is_gs(url) or not BUCKET.fullmatch(bucket):
        raise errors.invalid_url("a gs:// link is gs://BUCKET/OBJECT[#GENERATION], with a valid bucket name")
    pinned = None if prefix else _GENERATION.fullmatch(name)
    name, generation = (pinned[1], int(pinned[2])) if pinned else (name, None)
    if (not name and not prefix) or len(name.encode()) > MAX_NAME_BYTES or "\n" in name or "\r" in name:
        raise errors.invalid_url("a gs:// link names an object: gs://BUCKET/OBJECT[#GENERATION]")
    return Location(bucket, name, generation)


def suffix(url: str) -> str:
    """The lower-cased suffix of the object or prefix a gs:// URL names, an object's #GENERATION aside."""
    pinned = _GENERATION.fullmatch(url)
    return Path(pinned[1] if pinned else url).suffix.lower()


def check(url: str, settings: Settings) -> Location:
    """The object of an allowed gs:// link; 400 invalid_url or bucket_not_allowed otherwise."""
    found = parse(url)
    if settings.allowed_buckets is not None and found.bucket not in settings.allowed_buckets:
        raise errors.bucket_not_allowed(found.bucket, settings.allowed_buckets)
    return found


def emulator() -> str | None:
    """STORAGE_EMULATOR_HOST as a URL, as the Google client libraries read it (a scheme optional)."""
    host = os.environ.get("STORAGE_EMULATOR_HOST", "").rstrip("/")
    return (host if "://" in host else f"http://{host}") if host else None


def media_url(found: Location) -> str:
    pinned = f"&generation={found.generation}" if found.generation else ""
    return f"{emulator() or API}/storage/v1/b/{found.bucket}/o/{quote(found.name, safe='')}?alt=media{pinned}"


def open_object(url: str, settings: Settings, deadline: float) -> remote.RemoteFile:
    """The object of an allowed gs:// link as a seekable file: its bytes fetched as the decoder asks, in
    ranges, within settings.max_fetch_bytes and the deadline."""
    found = check(url, settings)
    return remote.RemoteFile(media_url(found), settings, deadline, _authorization(),
                             check=_api_only, refused=functools.partial(_refused, found), ranged=True)


def _api_only(url: str, settings: Settings) -> tuple[str, int, str]:
    """remote.RemoteFile's check: the Storage API (or the emulator) only, never a redirect elsewhere."""
    root = emulator() or API
    if not url.startswith(root + "/"):
        raise errors.url_not_allowed("Cloud Storage redirected the read elsewhere")
    parts = urlsplit(url)
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), parts.hostname


def _refused(found: Location, status: int) -> errors.ClassifyError:
    """The error for a status other than 200 or 206 from the Storage API, reading `found`."""
    if status in (401, 403):
        return errors.storage_forbidden()
    if status == 404:
        return errors.source_unavailable("no such object in the bucket" + (
            f" at generation {found.generation} (rewritten or deleted since)" if found.generation else ""))
    if status == EMPTY_RANGE:
        return errors.not_audio("the object is empty")
    return errors.upstream_status(status)


_credentials_lock = threading.Lock()


def _authorization() -> dict:
    """The function's own access token as a header (refreshed when stale); none for an emulator."""
    if emulator():
        return {}
    import google.auth
    import google.auth.exceptions
    import google.auth.transport.urllib3
    import urllib3
    try:
        with _credentials_lock:
            credentials = _credentials()
            if not credentials.valid:
                credentials.refresh(google.auth.transport.urllib3.Request(urllib3.PoolManager()))
            return {"Authorization": f"Bearer {credentials.token}"}
    except google.auth.exceptions.GoogleAuthError as exc:
        raise errors.source_unreachable(f"no credentials to read Cloud Storage with: {type(exc).__name__}") from None


@functools.cache
def _credentials():
    import google.auth
    return google.auth.default(scopes=[READ_SCOPE])[0]


# batch and export: listing, small objects (google-cloud-storage, with the caller's credentials)

def client():
    """google-cloud-storage's client: the caller's Application Default Credentials, or the emulator's."""
    return _client(emulator())


@functools.cache
def _client(emulator_url: str | None):
    from google.cloud import storage
    return storage.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT") or None)


@contextlib.contextmanager
def _api_errors(url: str):
    """google-cloud-storage's errors as OSErrors that name the object or prefix."""
    from google.api_core import exceptions
    from google.auth.exceptions import GoogleAuthError
    try:
        yield
    except exceptions.NotFound:
        raise FileNotFoundError(f"no such bucket or object: {url}") from None
    except exceptions.Forbidden as exc:
        raise PermissionError(f"Cloud Storage refused access to {url}: {exc.message}") from None
    except (exceptions.GoogleAPIError, GoogleAuthError) as exc:
        raise OSError(f"Cloud Storage failed on {url}: {exc}") from None


def under(where: str, suffixes=decode.SUFFIXES) -> Iterator[str]:
    """The files (paths) or objects (gs:// URLs) under a folder or a gs:// prefix whose names end in one
    of `suffixes`: a folder's as its walk goes (each folder's files, then its subfolders, by name), a
    prefix's in the API's order, page by page as they come. A name that is no regular file (a FIFO, a
    broken link) is yielded too: its reader says what it is."""
    if not is_gs(where):
        for folder, subfolders, files in os.walk(where):  # links to folders are not followed, as rglob
            subfolders.sort()
            yield from (str(Path(folder, name)) for name in sorted(files) if Path(name).suffix.lower() in suffixes)
        return
    yield from (str(Location(blob.bucket.name, blob.name)) for blob in _audio_blobs(where, suffixes))


@contextlib.contextmanager
def open_text(url: str) -> Iterator[io.TextIOBase]:
    """An object as text, read in chunks as it is consumed (a list of a million lines is never whole)."""
    found = parse(url)
    with _api_errors(url), client().bucket(found.bucket).blob(found.name, generation=found.generation).open(
            "rt", encoding="utf-8", timeout=CALL_TIMEOUT_S) as f:
        yield f


def names(where: str) -> Iterator[str]:
    """Every object's name under a gs:// prefix, page by page."""
    yield from (blob.name for blob in _blobs(where))


def versions(where: str, suffixes=decode.SUFFIXES) -> Iterator[tuple[str, str]]:
    """(gs:// URL, version()) of each object under a prefix whose name ends in one of `suffixes`, from
    the listing itself (no request per object)."""
    yield from ((str(Location(blob.bucket.name, blob.name)), _version(blob)) for blob in _audio_blobs(where, suffixes))


def version(url: str) -> str:
    """What identifies the bytes of the object at `url` now, or of the version it names (one metadata
    request): see _version."""
    found = parse(url)
    with _api_errors(url):
        blob = client().bucket(found.bucket).get_blob(found.name, generation=found.generation, timeout=CALL_TIMEOUT_S)
    if blob is None:
        raise FileNotFoundError(f"no such bucket or object: {url}")
    return _version(blob)


def _version(blob) -> str:
    """Its URL and generation, gs://B/O#N, which every rewrite of the object changes (and nothing else
    does): a link the function reads that version by, or answers 404 once it is rewritten."""
    return str(Location(blob.bucket.name, blob.name, blob.generation))


def _audio_blobs(where: str, suffixes):
    yield from (blob for blob in _blobs(where) if Path(blob.name).suffix.lower() in suffixes)


def _blobs(where: str):
    found = parse(where, prefix=True)
    with _api_errors(where):
        yield from client().list_blobs(found.bucket, prefix=found.name, page_size=LIST_PAGE, timeout=CALL_TIMEOUT_S)


def create(url: str, data: bytes, *, content_type: str):
    """Writes a new object, never one that exists: FileExistsError where `url` is taken."""
    from google.api_core.exceptions import PreconditionFailed
    found = parse(url)
    with _api_errors(url):
        try:
            client().bucket(found.bucket).blob(found.name).upload_from_string(
                data, content_type=content_type, if_generation_match=0, timeout=CALL_TIMEOUT_S)
        except PreconditionFailed:
            raise FileExistsError(f"{url} exists: another run writes these results") from None
