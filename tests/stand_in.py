"""A stand-in for the deployed function on 127.0.0.1, as fast as a server can be: it answers every POST
with a well-formed answer (hostile_http.answer) and notes each request's time, link and token. Behind
Google's front end a private function refuses a token it does not take with an HTML 403: so does this
one, for a token not in `accepted` (None: any).

    python tests/stand_in.py PORT     serves until killed (bench/dispatch.py runs it in its own process)
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hostile_http  # noqa: E402 (tests/ is not a package)

ANSWER = json.dumps(hostile_http.answer()).encode()
REFUSAL = b"<html><body>Error: Forbidden. Your client does not have permission to get URL /</body></html>"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list  # (monotonic time, the link sent, the token), per request
    accepted: set | None = None
    from_then_on: tuple | None = None  # (n, tokens): from the n-th request on, only these tokens are accepted

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        try:
            link = json.loads(body).get("url")
        except (ValueError, AttributeError):
            link = None
        self.seen.append((time.monotonic(), link, token))
        if self.from_then_on and len(self.seen) >= self.from_then_on[0]:
            type(self).accepted = self.from_then_on[1]
        refused = self.accepted is not None and token not in self.accepted
        data, kind = (REFUSAL, "text/html") if refused else (ANSWER, "application/json")
        self.send_response(403 if refused else 200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class StandIn:
    """`with StandIn() as endpoint:` endpoint.url answers; endpoint.seen lists the requests; endpoint.accepted
    (a set of tokens, or None for any) can change while it runs."""

    def __init__(self, port: int = 0):
        self.seen = []
        self.handler = type("Fresh", (Handler,), {"seen": self.seen, "accepted": None, "from_then_on": None})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), self.handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    @property
    def accepted(self):
        return self.handler.accepted

    @accepted.setter
    def accepted(self, tokens):
        self.handler.accepted = tokens

    def refuse_from(self, count: int, tokens: set):
        """From the count-th request on, accept only `tokens` (the first ones expire)."""
        self.handler.from_then_on = (count, tokens)

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


if __name__ == "__main__":
    with StandIn(int(sys.argv[1])):
        threading.Event().wait()
