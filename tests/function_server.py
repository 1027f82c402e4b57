"""The function as users run it: a real `functions-framework --target classify` process on
127.0.0.1, with its output in files."""
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

from inference import config

from conftest import ROOT


class Running(NamedTuple):
    url: str
    temp: Path
    stdout: Path
    stderr: Path
    pid: int

    @property
    def worker(self) -> int:
        """The pid that serves requests: gunicorn's worker, a child of the process started."""
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        return int(children[0]) if children else self.pid

    def status(self, field: str) -> int:
        """A field of the worker's /proc/PID/status in KiB (VmRSS, VmHWM), or a count (Threads)."""
        for line in Path(f"/proc/{self.worker}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)

    def open_files(self) -> int:
        return len(list(Path(f"/proc/{self.worker}/fd").iterdir()))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def start(folder: Path, **env_vars: str):
    """`with start(folder, GENRE_X="1") as server:` a server whose temp files and output are in folder."""
    temp, stdout, stderr = folder / "tmp", folder / "stdout", folder / "stderr"
    temp.mkdir()
    port = free_port()
    env = dict(os.environ, TMPDIR=str(temp), THREADS=str(config.SERVER_THREADS), **env_vars)
    command = [os.path.join(os.path.dirname(sys.executable), "functions-framework"), "--target", "classify",
               "--source", str(ROOT / "main.py"), "--host", "127.0.0.1", "--port", str(port)]
    with open(stdout, "w") as out, open(stderr, "w") as err:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=err, start_new_session=True)
    try:
        for _ in range(150):
            if process.poll() is not None:
                raise RuntimeError(f"functions-framework exited: {stderr.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        yield Running(f"http://127.0.0.1:{port}/", temp, stdout, stderr, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # e.g. a worker thread still held by a source: fail, but leave nothing
            os.killpg(process.pid, signal.SIGKILL)  # the server and its workers (its own session)
            process.wait()
            raise
