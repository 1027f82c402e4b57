"""Runs that outlast an identity token (inference/tokens.py): against a stand-in for the function on
127.0.0.1 that starts refusing the first token midway, as Google's front end does when it expires. A
refused token is renewed by --token-command; a 401 or 403 is never written as an answer; a failed
renewal stops the run (exit 1) and the resume answers the rest, each item once."""
import base64
import json
import os
import subprocess
import sys
import time

import pytest

from inference import client, tokens

import local_http
import stand_in
from conftest import ROOT, service_account_key

ITEMS = "".join(f"https://example.com/{i}\n" for i in range(60))


def token_command(tmp_path, *, fails_after: int | None = None) -> str:
    """A command printing tok-1, tok-2... (its count in a file beside it); exit 1 after `fails_after` runs."""
    script = tmp_path / "token.py"
    script.write_text(f"""import sys
from pathlib import Path
count = Path(__file__).with_name("count")
n = int(count.read_text()) + 1 if count.exists() else 1
count.write_text(str(n))
if {fails_after!r} is not None and n > {fails_after!r}:
    sys.exit("gcloud: reauthentication required")
print(f"tok-{{n}}")
""")
    return f"{sys.executable} {script}"


def runs(tmp_path) -> int:
    return int((tmp_path / "count").read_text())


def run_batch(*args, stdin: str = ITEMS, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inference", "batch", "-", "--jobs", "4", *args], cwd=ROOT,
                          input=stdin, capture_output=True, text=True, timeout=120, env={**os.environ, **env})


def rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_refused_token_is_renewed_by_the_command_and_the_run_goes_on(tmp_path):
    with stand_in.StandIn() as endpoint:
        endpoint.accepted = {"tok-1"}
        endpoint.refuse_from(20, {"tok-2"})
        out = tmp_path / "out.jsonl"
        done = run_batch("--endpoint", endpoint.url, "--out", str(out), "--token-command", token_command(tmp_path))
    assert done.returncode == 0, done.stderr
    assert runs(tmp_path) == 2  # at the start, and once when tok-1 was refused (not once per refused request)
    written = rows(out)
    assert len(written) == 60 and all("genre" in row for row in written)
    assert {token for _, _, token in endpoint.seen[-10:]} == {"tok-2"}


def test_the_command_can_come_from_the_environment(tmp_path):
    with stand_in.StandIn() as endpoint:
        endpoint.accepted = {"tok-1"}
        done = run_batch("--endpoint", endpoint.url, GENRE_TOKEN_COMMAND=token_command(tmp_path))
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 60, done.stderr


def test_a_failed_renewal_stops_the_run_and_the_resume_answers_the_rest_once(tmp_path):
    out = tmp_path / "out.jsonl"
    with stand_in.StandIn() as endpoint:
        endpoint.accepted = {"tok-1"}
        endpoint.refuse_from(20, {"tok-2", "tok-3"})
        done = run_batch("--endpoint", endpoint.url, "--out", str(out),
                         "--token-command", token_command(tmp_path, fails_after=1))
        assert done.returncode == 1 and "stopped: --token-command exited 1" in done.stderr, done.stderr
        assert "reauthentication required" in done.stderr and "Traceback" not in done.stderr
        first = rows(out)
        assert 0 < len(first) < 60 and all("genre" in row for row in first)  # no 403 written
        (tmp_path / "count").unlink()
        again = run_batch("--endpoint", endpoint.url, "--out", str(out), "--token-command", token_command(tmp_path))
    assert again.returncode == 0, again.stderr
    assert sorted(row["input"] for row in rows(out)) == sorted(ITEMS.split())


def test_without_a_token_a_private_function_stops_the_run_at_once(tmp_path):
    out = tmp_path / "out.jsonl"
    with stand_in.StandIn() as endpoint:
        endpoint.accepted = {"tok-1"}
        done = run_batch("--endpoint", endpoint.url, "--out", str(out))
    assert done.returncode == 1 and "refused the call (HTTP 403) and no token was given" in done.stderr
    assert out.read_text() == "" and len(endpoint.seen) <= 4 + 1  # the requests already in flight


def test_a_fixed_token_refused_stops_the_run_naming_the_remedy(tmp_path):
    with stand_in.StandIn() as endpoint:
        endpoint.accepted = {"good"}
        done = run_batch("--endpoint", endpoint.url, "--token", "stale")
    assert done.returncode == 1 and "give --token-command" in done.stderr and done.stdout == ""


def test_a_token_about_to_expire_is_renewed_before_it_is_refused(tmp_path):
    """A JWT with 2 s to live is renewed after 1 s (half its life), not at every request."""
    script = tmp_path / "jwt.py"
    script.write_text(f"""import base64, json, time
from pathlib import Path
count = Path({str(tmp_path / "count")!r})
count.write_text(str(int(count.read_text()) + 1 if count.exists() else 1))
claims = base64.urlsafe_b64encode(json.dumps({{"exp": time.time() + 2}}).encode()).decode().rstrip("=")
print(f"e30.{{claims}}.signature")
""")
    token = tokens.Command(f"{sys.executable} {script}")
    first = token.current()
    assert tokens.expiry(first) == pytest.approx(time.time() + 2, abs=1)
    assert token.current() == first and runs(tmp_path) == 1
    time.sleep(1.2)
    assert token.current() != first and runs(tmp_path) == 2


@pytest.mark.parametrize("status, body, refusal", [
    (403, b"<html>Forbidden</html>", True),
    (401, b"", True),
    (403, json.dumps({"error": {"code": "storage_forbidden", "message": "m"}}).encode(), False),  # the item's
    (403, json.dumps({"error": {"code": 403, "message": "m"}}).encode(), True),  # not a code of the function's
    (404, b"<html>Not found</html>", False),
])
def test_what_counts_as_the_front_end_refusing_the_token(status, body, refusal):
    assert client._front_end_refusal(client.Reply(status, None, None, body)) is refusal


def test_export_stops_clearly_when_its_token_cannot_be_renewed(tmp_path):
    """export's --endpoint goes through the same client: tok-1 refused, the command fails the second time."""
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\n" + "".join(f"https://example.com/{i}.mp3,{'ab'[i % 2]}\n" for i in range(10)))
    args = [sys.executable, "-m", "export", "crossval", "genre_musicnn", "--data", str(manifest), "--endpoint"]
    with stand_in.StandIn() as endpoint:
        endpoint.accepted = {"tok-2"}
        done = subprocess.run([*args, endpoint.url, "--cache", str(tmp_path / "c"), "--out", str(tmp_path / "o"),
                               "--token-command", token_command(tmp_path, fails_after=1)],
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "stopped: --token-command exited 1" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and runs(tmp_path) == 2 and {t for _, _, t in endpoint.seen} == {"tok-1"}


class IdTokens(local_http.TokenEndpoint):
    """An ID token for each signed assertion, id-1, id-2... as JWTs of an hour."""
    minted: list

    def grant(self) -> dict:
        self.minted.append(len(self.minted) + 1)
        claims = {"exp": int(time.time()) + 3600, "iat": int(time.time()), "sub": f"id-{len(self.minted)}"}
        return {"id_token": ".".join(base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")
                                     for part in ({"alg": "RS256", "typ": "JWT"}, claims)) + ".c2ln"}


def test_without_token_options_google_auth_mints_and_renews_id_tokens(tmp_path, monkeypatch):
    """A service account's key (GOOGLE_APPLICATION_CREDENTIALS) whose token_uri is a local token endpoint:
    google-auth signs an assertion, gets an ID token, and a new one when the function refuses the first."""
    handler = type("Minting", (IdTokens,), {"minted": []})
    with local_http.serving(handler) as token_url, stand_in.StandIn() as endpoint:
        key = service_account_key(tmp_path, token_url, "batch@p.iam.gserviceaccount.com")
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
        token = tokens.choose(token=None, command=None, endpoint="https://genre-classifier-abc-uc.a.run.app")
        assert isinstance(token, tokens.Minted)
        first = token.current()
        endpoint.accepted = {first}
        calls = client.Client(endpoint.url, token=token, max_upload_bytes=1)
        assert "genre" in calls("https://example.com/1") and "genre" in calls("https://example.com/2")
        endpoint.accepted = {"never"}
        with pytest.raises(tokens.Refused, match="refused a renewed token too"):
            calls("https://example.com/3")
    assert handler.minted == [1, 2] and token.current() != first
