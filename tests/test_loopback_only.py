"""The tests' network fence (tests/loopback_only/): nothing the tests run may reach beyond loopback,
whatever the code under test does; an attempt fails the test."""
import os
import socket
import subprocess
import sys

import pytest

OUTSIDE = [("192.0.2.1", socket.AF_INET), ("2001:db8::1", socket.AF_INET6),  # documentation addresses
           ("169.254.169.254", socket.AF_INET), ("::ffff:127.0.0.1", socket.AF_INET6)]


@pytest.mark.parametrize(("host", "family"), OUTSIDE)
def test_a_connection_beyond_loopback_is_refused_and_logged(fence, host, family):
    with socket.socket(family, socket.SOCK_STREAM) as sock, pytest.raises(ConnectionRefusedError, match="loopback"):
        sock.settimeout(5)
        sock.connect((host, 80))
    assert fence.taken() == [f"pid {os.getpid()}: socket.connect to {host} port 80 refused"]


def test_a_datagram_beyond_loopback_is_refused(fence):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, pytest.raises(ConnectionRefusedError):
        sock.sendto(b"x", ("192.0.2.1", 53))
    assert len(fence.taken()) == 1


def test_loopback_is_reachable(fence):
    with socket.create_server(("127.0.0.1", 0)) as listener:
        socket.create_connection(listener.getsockname(), timeout=5).close()
    with socket.create_server(("::1", 0), family=socket.AF_INET6) as listener:
        socket.create_connection(listener.getsockname()[:2], timeout=5).close()
    assert fence.taken() == []


def test_a_process_the_tests_start_is_fenced_too(fence):
    """A functions-framework server, a batch run: any Python process started with the tests' environment."""
    done = subprocess.run([sys.executable, "-c", "import socket; socket.create_connection(('192.0.2.1', 80), 5)"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "ConnectionRefusedError: the tests may reach loopback only" in done.stderr
    assert [line.split(": ", 1)[1] for line in fence.taken()] == ["socket.connect to 192.0.2.1 port 80 refused"]
