"""The set-up bench/uploads.py and bench/bodies.py share: a local functions-framework server with
deploy.sh's settings (soak.start_server), its temp folder and request log in a fresh folder, and the
gunicorn worker's state before and after."""
import collections
import contextlib
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from serving import process_tree, wait_until_up
from soak import start_server, worker_state


@dataclass(frozen=True)
class Server:
    port: int
    url: str
    temp: Path
    log: Path
    pid: int  # functions-framework's; it serves from a gunicorn worker, its child

    def worker(self) -> int:
        return process_tree(self.pid)[-1]

    def state(self) -> dict:
        """The worker's RSS (and peak), open files, threads and temp files (soak.worker_state)."""
        return worker_state(self.worker(), self.temp)

    def logged(self) -> collections.Counter:
        """(status, error) of each request the server logged."""
        lines = [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]
        return collections.Counter((line["status"], line["error"]) for line in lines if "httpRequest" in line)


@contextlib.contextmanager
def running(base_port: int, **env_vars: str):
    """`with running(20000, NAME="value") as server:` the server, up, on a port near base_port."""
    folder = Path(tempfile.mkdtemp(prefix="bench-"))
    temp, log = folder / "tmp", folder / "log"
    temp.mkdir()
    port = base_port + os.getpid() % 1000
    with open(log, "w") as out:
        process = start_server(temp, port, stdout=out, **env_vars)
    try:
        server = Server(port, f"http://127.0.0.1:{port}/", temp, log, process.pid)
        wait_until_up(server.url)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # a worker thread still busy: its gunicorn worker exits with it
            process.kill()
            process.wait()
