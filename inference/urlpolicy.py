"""Which URLs the function may fetch (SSRF guard): http(s) only, public addresses only, and
optionally only listed sites. Checked for the user's link, the media URL and every redirect."""
import ipaddress
import socket
from urllib.parse import urlsplit

from inference.config import Settings
from inference.errors import ClassifyError


def _refuse(message: str):
    raise ClassifyError(400, "url_not_allowed", message)


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check(url: str, settings: Settings) -> tuple[str, int, str]:
    """(host, port, address to connect to) for an allowed URL; ClassifyError otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ClassifyError(400, "invalid_url", "the link is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise ClassifyError(400, "invalid_url", "only http:// and https:// links are accepted")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise ClassifyError(400, "invalid_url", "the link has no host name")
    if parts.username or parts.password:
        _refuse("links with user names or passwords are not accepted")
    if settings.allowed_sites and not any(host == s or host.endswith("." + s) for s in settings.allowed_sites):
        raise ClassifyError(400, "site_not_allowed",
                            f"links to {host} are not accepted here; allowed: {', '.join(settings.allowed_sites)}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise ClassifyError(502, "source_unreachable", f"the host {host} could not be resolved") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    for ip in addresses:
        if not (_public(ip) or (settings.testing_allow_loopback and ip.is_loopback)):
            _refuse(f"{host} resolves to a private or reserved address")
    return host, port, str(addresses[0])
