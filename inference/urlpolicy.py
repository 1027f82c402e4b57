"""Which URLs the function may fetch (SSRF guard): http(s) only, public addresses only, and
optionally only listed sites. Checked for the user's link, the media URL and every redirect; and,
while yt-dlp resolves a link, for every connection it opens (guard())."""
import contextlib
import ipaddress
import re
import socket
import sys
import threading
import time
from urllib.parse import urlsplit

from inference import errors
from inference.config import Settings

# IPv6 ranges that carry an IPv4 address in their last 32 bits: IPv4-compatible (::a.b.c.d) and
# NAT64's well-known prefix. ipaddress calls them global whatever they carry.
_LAST_32_BITS = (ipaddress.ip_network("::/96"), ipaddress.ip_network("64:ff9b::/96"))
# Any other IPv6 address is public only inside 2000::/3, the one block IANA allocates for global
# unicast (so ::ffff:0:a.b.c.d, RFC 2765's, 64:ff9b:1::/48, fec0::/10, 5f00::/16... are not), and
# there only outside the blocks of IANA's IPv6 Special-Purpose Address Registry (2025-10) that are
# not globally reachable: 2001::/23 (but for its reachable entries), 2001:db8::/32 and 3fff::/20.
# Teredo (2001::/32) and 6to4 (2002::/16) carry IPv4 addresses: _embedded().
_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
_NOT_GLOBALLY_REACHABLE = tuple(map(ipaddress.ip_network, ("2001::/23", "2001:db8::/32", "3fff::/20")))
_GLOBALLY_REACHABLE = tuple(map(ipaddress.ip_network, (
    "2001:1::1/128", "2001:1::2/128", "2001:1::3/128", "2001:3::/32", "2001:4:112::/48", "2001:20::/28",
    "2001:30::/28")))  # PCP, TURN and DNS-SD SRP anycast, AMT, AS112-v6, ORCHIDv2, drone remote ID


# A host name's labels once IDNA-encoded: 1 to 63 letters, digits, hyphens (and underscores, seen in
# real names), at most 253 characters in all (RFC 1035, 1123).
_LABEL = re.compile(r"[a-z0-9_-]{1,63}")


def _valid_host(host: str) -> bool:
    """Whether host can be an IP address (without an IPv6 zone) or a DNS name at all."""
    if "%" in host:  # an IPv6 zone (fe80::1%lo): this machine's own interfaces
        return False
    with contextlib.suppress(ValueError):
        return bool(ipaddress.ip_address(host))
    try:
        name = host.encode("idna").decode("ascii")
    except UnicodeError:  # an empty label or one over 63 characters
        return False
    return len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split("."))


def _embedded(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address carries: IPv4-mapped, IPv4-compatible, NAT64, 6to4,
    Teredo (server and client); none for a plain IPv6 address."""
    if ip.ipv4_mapped:
        return (ip.ipv4_mapped,)
    if any(ip in net for net in _LAST_32_BITS):
        return (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF),)
    if ip.sixtofour:
        return (ip.sixtofour,)
    return ip.teredo or ()


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv4Address):
        return ip.is_global and not ip.is_multicast
    inside = _embedded(ip)
    if inside:
        return all(_public(v4) for v4 in inside)
    return ip in _GLOBAL_UNICAST and (not any(ip in net for net in _NOT_GLOBALLY_REACHABLE)
                                      or any(ip in net for net in _GLOBALLY_REACHABLE))


def _allowed(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, settings: Settings) -> bool:
    return _public(ip) or (settings.allow_loopback_links and ip.is_loopback)


def check(url: str, settings: Settings) -> tuple[str, int, str]:
    """(host, port, address to connect to) for an allowed URL; ClassifyError otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise errors.invalid_url() from None
    if parts.scheme not in ("http", "https"):
        raise errors.invalid_url("only http://, https:// and gs:// links are accepted")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise errors.invalid_url("the link has no host name")
    if not _valid_host(host):
        raise errors.invalid_url("the link's host is not a valid host name or IP address")
    if parts.port == 0:
        raise errors.invalid_url("the link's port is 0")
    if parts.username or parts.password:
        raise errors.url_not_allowed("links with user names or passwords are not accepted")
    if settings.allowed_sites and not any(host == s or host.endswith("." + s) for s in settings.allowed_sites):
        raise errors.site_not_allowed(host, settings.allowed_sites)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise errors.source_unreachable(f"the host {host} could not be resolved") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    for ip in addresses:
        if not _allowed(ip, settings):
            raise errors.url_not_allowed(f"{host} resolves to a private or reserved address")
    return host, port, str(addresses[0])


class _Guard:
    """A guard() block's state: what it allows, the last address it refused, and a duplicate of each
    socket it let connect (a socket that TLS has since wrapped is still reached through it), so that
    cut() hangs up on all of them and refuses any more. The duplicates keep their connections open
    until the block ends (a file descriptor each: a resolution opens a handful)."""

    def __init__(self, settings: Settings | None, also_allowed: tuple[str, ...]):
        self.settings, self.extra, self.refused = settings, set(also_allowed), None
        self.active, self.cut_off = True, False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def admit(self, sock: socket.socket | None):
        with self._lock:
            if self.cut_off:
                raise TimeoutError("the time budget for this link is spent")
            if sock is not None:  # None: an event raised by hand (sys.audit), no socket
                self._sockets.append(sock.dup())

    def cut(self):
        """Ends the block's connections: a read blocked on one (a page that drips) returns now."""
        with self._lock:
            self.cut_off = True
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self):
        with self._lock:
            self.active = False
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()


_guarded = threading.local()  # .state: this thread's last guard() block (.active while it runs)


def _audit(event: str, args: tuple):
    """Python's audit hook: refuses a guarded thread's connections to addresses not allowed."""
    if event != "socket.connect":  # the hook sees every audit event of the process
        return
    state = getattr(_guarded, "state", None)
    if state is None or not state.active or state.settings is None:
        return
    address = args[1]
    try:
        ip = ipaddress.ip_address(address[0].split("%")[0])
    except (TypeError, ValueError, IndexError):  # not an IP socket (AF_UNIX...): not ours to open
        ip = None
    if ip is None or not (_allowed(ip, state.settings) or str(ip) in state.extra):
        state.refused = str(address[0]) if ip else "a non-IP socket"
        raise ConnectionRefusedError(f"connection to {state.refused} refused by the URL policy")
    state.admit(args[0])


_hook_lock = threading.Lock()
_hook_installed = False


@contextlib.contextmanager
def guard(settings: Settings | None, also_allowed: tuple[str, ...] = (), deadline: float | None = None):
    """Within the block, every socket this thread connects (yt-dlp's page fetches and redirects
    included) must go to an allowed address or to one of also_allowed (e.g. the proxy's); at the
    deadline (time.monotonic()), the block's connections are cut and no more are opened: a page that
    drips its bytes holds a thread no longer. Yields the block's state (.cut_off: the deadline cut it);
    afterwards, refused() names the last address refused, or None."""
    global _hook_installed
    with _hook_lock:
        if not _hook_installed:
            sys.addaudithook(_audit)
            _hook_installed = True
    state = _guarded.state = _Guard(settings, also_allowed)
    timer = threading.Timer(max(0.0, deadline - time.monotonic()), state.cut) if deadline is not None else None
    if timer:
        timer.daemon = True
        timer.start()
    try:
        yield state
    finally:
        if timer:
            timer.cancel()
        state.close()


def refused() -> str | None:
    """The address the last guard() block in this thread refused, if any."""
    state = getattr(_guarded, "state", None)
    return state.refused if state else None


def addresses(url: str | None) -> tuple[str, ...]:
    """The IP addresses a URL's host resolves to (none for None or an unresolvable host)."""
    try:
        parts = urlsplit(url or "")
        if not parts.hostname:
            return ()
        return tuple({info[4][0] for info in socket.getaddrinfo(parts.hostname, parts.port or 80)})
    except (OSError, ValueError):  # unresolvable; not a URL, or a bad host name (UnicodeError)
        return ()
