"""The tests' network fence: in the test process and in every Python process the tests start (via
this folder's sitecustomize.py on PYTHONPATH), a socket may connect or send only to 127.0.0.0/8 or
::1. Any other destination is refused before a packet leaves, and written to the file named by
LOOPBACK_ONLY_LOG, which conftest.py turns into a failure of the test that was running. So a broken
SSRF guard is a red test, not traffic. Not covered: native code's own sockets (FFmpeg, curl, Chromium)."""
import contextlib
import ipaddress
import os
import socket
import sys

LOG = "LOOPBACK_ONLY_LOG"
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def _is_loopback(host) -> bool:
    """Whether a connect()'s host, an address or a name, leads to loopback only."""
    try:
        addresses = [ipaddress.ip_address(host.split("%")[0])]
    except ValueError:  # a name: judged by every address it resolves to
        try:
            addresses = [ipaddress.ip_address(i[4][0].split("%")[0]) for i in socket.getaddrinfo(host, None)]
        except OSError:
            return True  # it cannot resolve, so nothing can be connected to
    return all(any(ip in net for net in LOOPBACK) for ip in addresses)


def _audit(event: str, args: tuple):
    if event not in ("socket.connect", "socket.sendto") or not isinstance(args[0], socket.socket):
        return  # an event raised by hand (sys.audit in a test) connects nothing
    address = args[1]
    if not isinstance(address, tuple) or _is_loopback(address[0]):
        return  # AF_UNIX (a path), or loopback
    line = f"pid {os.getpid()}: {event} to {address[0]} port {address[1]} refused\n"
    if os.environ.get(LOG):
        with open(os.environ[LOG], "a") as log:
            log.write(line)
    raise ConnectionRefusedError(f"the tests may reach loopback only: {line.strip()}")


def install():
    """Adds the fence, after the function's own SSRF guard (urlpolicy's audit hook: hooks run in the
    order added), so what that guard refuses never reaches the fence and counts as no failure."""
    with contextlib.suppress(ImportError):
        from inference import urlpolicy
        with urlpolicy.guard(None):
            pass
    sys.addaudithook(_audit)
