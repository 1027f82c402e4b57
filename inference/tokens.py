"""The identity token a private function asks of its callers, for runs that outlast one (an hour): given
as it is (--token), printed by a command run again when the token is refused or about to expire
(--token-command, e.g. `gcloud auth print-identity-token`), or minted by google-auth's credentials
(a service account's, as in a Cloud Run job). Refresh raises Refused when no new token can be had."""
import base64
import json
import shlex
import subprocess
import threading
import time

REFRESH_BEFORE_S = 300.0  # a token with an expiry (a JWT's exp) is renewed this long before it, or
# half its lifetime before it where that is shorter (a short-lived token is not renewed at every request)
COMMAND_TIMEOUT_S = 60.0
MAX_TOKEN_BYTES = 16384  # an ID token is ~1 KB


class Refused(Exception):
    """The function's front end refused the token, and no new one could be had: the run stops."""


def expiry(token: str) -> float | None:
    """A JWT's exp (seconds since the epoch), read without verifying it (only to renew it in time)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        return float(claims["exp"])
    except (ValueError, KeyError, TypeError):
        return None


class Token:
    """A token and how to renew it; `current()` is the one to send, `refresh(stale)` renews it after the
    front end refused `stale` (once, however many requests were refused with it)."""

    def __init__(self, token: str | None = None):
        self.token, self.lock, self.renew_at = token, threading.Lock(), None
        self.failed = None  # why the last renewal failed: said again, not tried again, to the requests in flight

    def current(self) -> str | None:
        if self.token is None or (self.renew_at is not None and time.time() >= self.renew_at):
            self.refresh(self.token)
        return self.token

    def refresh(self, stale: str | None):
        with self.lock:
            if self.failed:
                raise Refused(self.failed)
            if self.token == stale:
                try:
                    new = self._new()
                except Refused as exc:
                    self.failed = str(exc)
                    raise
                self.token, obtained = new, time.time()
                expires = expiry(self.token)
                self.renew_at = None if expires is None else \
                    expires - min(REFRESH_BEFORE_S, max(expires - obtained, 0) / 2)

    def _new(self) -> str:
        raise Refused("the function refused the token given (--token or GENRE_TOKEN), which cannot be renewed: "
                      "give --token-command (e.g. 'gcloud auth print-identity-token') for runs over an hour")


class Fixed(Token):
    """--token: sent as it is, whatever its expiry says."""


class Command(Token):
    """--token-command: its standard output, one line, is the token."""

    def __init__(self, command: str):
        super().__init__()
        self.command = command

    def _new(self) -> str:
        try:
            done = subprocess.run(shlex.split(self.command), capture_output=True, timeout=COMMAND_TIMEOUT_S,
                                  stdin=subprocess.DEVNULL)
        except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
            raise Refused(f"--token-command failed: {exc}") from None
        token = done.stdout.strip()
        if done.returncode or not token or len(token) > MAX_TOKEN_BYTES or not token.isascii() or b"\n" in token:
            said = done.stderr.decode("utf-8", "replace").strip()[-300:]
            raise Refused(f"--token-command exited {done.returncode} without a token (one line): {said}")
        return token.decode()


class Minted(Token):
    """google-auth's ID-token credentials for the function's URL (a service account's, or the metadata server's)."""

    def __init__(self, credentials):
        super().__init__()
        self.credentials = credentials

    def _new(self) -> str:
        import google.auth.exceptions
        import google.auth.transport.requests
        try:
            self.credentials.refresh(google.auth.transport.requests.Request())
        except google.auth.exceptions.GoogleAuthError as exc:
            raise Refused(f"google-auth could not mint an identity token: {exc}") from None
        return self.credentials.token


def choose(*, token: str | None, command: str | None, endpoint: str) -> Token | None:
    """--token, else --token-command, else (for an https endpoint) google-auth's ID-token credentials where
    there are some, else none (a public function)."""
    if token:
        return Fixed(token)
    if command:
        return Command(command)
    if not endpoint.startswith("https://"):
        return None
    import google.auth.exceptions
    import google.auth.transport.requests
    import google.oauth2.id_token
    try:
        return Minted(google.oauth2.id_token.fetch_id_token_credentials(
            endpoint, google.auth.transport.requests.Request()))
    except google.auth.exceptions.GoogleAuthError:  # no credentials that mint ID tokens (a user's own)
        return None
