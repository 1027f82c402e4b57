"""inference/urlpolicy.py: which links the function may fetch."""
import dataclasses
import ipaddress
import socket
import sys
import threading

import pytest

from inference import config, urlpolicy
from inference.errors import ClassifyError

SETTINGS = dataclasses.replace(config.load(), allow_loopback_links=False, allowed_sites=())


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/", "http://localhost:8080/a.mp3", "http://[::1]/", "http://[::ffff:127.0.0.1]/",
    "http://0.0.0.0/", "http://10.0.0.8/", "http://172.16.3.4/", "http://192.168.1.1/", "http://100.64.0.1/",
    "http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/", "http://[fd00::1]/", "http://224.0.0.1/",
    "http://2130706433/", "http://0x7f.1/", "http://user:pw@example.com/", "http://user@8.8.8.8/",
    "http://:pw@8.8.8.8/",
])
def test_private_reserved_and_credentialed_urls_are_refused(url):
    with pytest.raises(ClassifyError) as refused:
        urlpolicy.check(url, SETTINGS)
    assert (refused.value.status, refused.value.code) == (400, "url_not_allowed")


# IPv6 addresses that carry an IPv4 address, written out by hand (RFC 4291, 6052, 8215, 3056, 4380);
# each carries loopback, private, link-local and metadata (169.254.169.254) addresses.
CARRYING_PRIVATE = {
    "IPv4-mapped": ["::ffff:127.0.0.1", "::ffff:10.0.0.8", "::ffff:192.168.1.1", "::ffff:169.254.1.1",
                    "::ffff:a9fe:a9fe"],
    "IPv4-compatible": ["::127.0.0.1", "::10.0.0.8", "::192.168.1.1", "::169.254.1.1", "::a9fe:a9fe"],
    "NAT64 64:ff9b::/96": ["64:ff9b::127.0.0.1", "64:ff9b::a00:8", "64:ff9b::c0a8:101", "64:ff9b::169.254.1.1",
                           "64:ff9b::a9fe:a9fe"],
    "NAT64 64:ff9b:1::/48": ["64:ff9b:1:7f00:0:100::", "64:ff9b:1:a00:0:800::", "64:ff9b:1:c0a8:1:100::",
                             "64:ff9b:1:a9fe:1:100::", "64:ff9b:1:a9fe:a9:fe00::"],
    "6to4 2002::/16": ["2002:7f00:1::1", "2002:a00:8::1", "2002:c0a8:101::1", "2002:a9fe:101::1",
                       "2002:a9fe:a9fe::1"],
    # Teredo 2001:0:<server>:<flags>:<port>:<client XOR ffffffff>; the other end is 8.8.4.4
    "Teredo client": ["2001:0:808:404:8000:ffff:80ff:fffe", "2001:0:808:404:8000:ffff:f5ff:fff7",
                      "2001:0:808:404:8000:ffff:3f57:fefe", "2001:0:808:404:8000:ffff:5601:fefe",
                      "2001:0:808:404:8000:ffff:5601:5601"],
    "Teredo server": ["2001:0:7f00:1:8000:ffff:f7f7:fbfb", "2001:0:a00:8:8000:ffff:f7f7:fbfb",
                      "2001:0:c0a8:101:8000:ffff:f7f7:fbfb", "2001:0:a9fe:101:8000:ffff:f7f7:fbfb",
                      "2001:0:a9fe:a9fe:8000:ffff:f7f7:fbfb"],
}
# The same forms carrying public addresses (8.8.8.8, with 8.8.4.4 at Teredo's other end): allowed.
CARRYING_PUBLIC = {"IPv4-mapped": "::ffff:8.8.8.8", "IPv4-compatible": "::808:808",
                   "NAT64 64:ff9b::/96": "64:ff9b::8.8.8.8", "6to4 2002::/16": "2002:808:808::1",
                   "Teredo": "2001:0:808:404:8000:ffff:f7f7:f7f7"}


@pytest.mark.parametrize(("form", "address"), [(form, a) for form, some in CARRYING_PRIVATE.items() for a in some])
def test_ipv6_forms_carrying_private_ipv4_addresses_are_refused(form, address):
    with pytest.raises(ClassifyError) as refused:
        urlpolicy.check(f"http://[{address}]/", SETTINGS)
    assert (refused.value.status, refused.value.code) == (400, "url_not_allowed")


@pytest.mark.parametrize(("form", "address"), CARRYING_PUBLIC.items())
def test_ipv6_forms_carrying_public_ipv4_addresses_pass(form, address):
    host, port, pinned = urlpolicy.check(f"http://[{address}]:8080/", SETTINGS)
    assert (host, port, ipaddress.ip_address(pinned)) == (address, 8080, ipaddress.ip_address(address))


# IANA's IPv6 Special-Purpose Address Registry (iana.org/assignments/iana-ipv6-special-registry, as of
# 2025-10), entry by entry: block, name, RFC, "Globally Reachable" (None: N/A, it carries IPv4 addresses).
IANA_IPV6_SPECIAL = [
    ("::1/128", "Loopback Address", "RFC 4291", False),
    ("::/128", "Unspecified Address", "RFC 4291", False),
    ("::ffff:0:0/96", "IPv4-mapped Address", "RFC 4291", False),
    ("64:ff9b::/96", "IPv4-IPv6 Translat.", "RFC 6052", True),
    ("64:ff9b:1::/48", "IPv4-IPv6 Translat.", "RFC 8215", False),
    ("100::/64", "Discard-Only Address Block", "RFC 6666", False),
    ("100:0:0:1::/64", "Dummy IPv6 Prefix", "RFC 9780", False),
    ("2001::/23", "IETF Protocol Assignments", "RFC 2928", False),
    ("2001::/32", "TEREDO", "RFC 4380, RFC 8190", None),
    ("2001:1::1/128", "Port Control Protocol Anycast", "RFC 7723", True),
    ("2001:1::2/128", "Traversal Using Relays around NAT Anycast", "RFC 8155", True),
    ("2001:1::3/128", "DNS-SD Service Registration Protocol Anycast", "RFC 9665", True),
    ("2001:2::/48", "Benchmarking", "RFC 5180", False),
    ("2001:3::/32", "AMT", "RFC 7450", True),
    ("2001:4:112::/48", "AS112-v6", "RFC 7535", True),
    ("2001:10::/28", "Deprecated (previously ORCHID)", "RFC 4843", None),  # terminated: part of 2001::/23
    ("2001:20::/28", "ORCHIDv2", "RFC 7343", True),
    ("2001:30::/28", "Drone Remote ID Protocol Entity Tags (DETs) Prefix", "RFC 9374", True),
    ("2001:db8::/32", "Documentation", "RFC 3849", False),
    ("2002::/16", "6to4", "RFC 3056", None),
    ("2620:4f:8000::/48", "Direct Delegation AS112 Service", "RFC 7534", True),
    ("3fff::/20", "Documentation", "RFC 9637", False),
    ("5f00::/16", "Segment Routing (SRv6) SIDs", "RFC 9602", False),
    ("fc00::/7", "Unique-Local", "RFC 4193, RFC 8190", False),
    ("fe80::/10", "Link-Local Unicast", "RFC 4291", False),
]
CARRY_IPV4 = {"::ffff:0:0/96", "64:ff9b::/96", "2001::/32", "2002::/16"}  # at the edges: 0.0.0.0, 255.255.255.255


def _edges(block: str) -> list[str]:
    """A block's first and last addresses, worked out here rather than asked of the code under test."""
    net = ipaddress.ip_network(block)
    return [str(net[0]), str(net[-1])]


def _registry_cases() -> list:
    """(block, address, allowed): reachable blocks are allowed at both edges unless what they carry
    there (0.0.0.0, 255.255.255.255) is not; the terminated ORCHID block follows 2001::/23."""
    return [pytest.param(block, address, reachable is True and block not in CARRY_IPV4, id=f"{name} {address}")
            for block, name, _, reachable in IANA_IPV6_SPECIAL for address in _edges(block)]


@pytest.mark.parametrize(("block", "address", "allowed"), _registry_cases())
def test_the_iana_ipv6_special_purpose_registry_entry_by_entry(block, address, allowed):
    if allowed:
        assert urlpolicy.check(f"http://[{address}]/", SETTINGS)[2] == address
    else:
        with pytest.raises(ClassifyError) as refused:
            urlpolicy.check(f"http://[{address}]/", SETTINGS)
        assert refused.value.code == "url_not_allowed"


@pytest.mark.parametrize("address", [
    "::ffff:0:7f00:1", "::ffff:0:a9fe:a9fe", "::ffff:0:808:808",  # RFC 2765's IPv4-translated (was: public)
    "fec0::1", "4000::1", "ff02::1", "ff0e::1",  # deprecated site-local; outside 2000::/3; multicast
])
def test_ipv6_outside_global_unicast_is_refused(address):
    with pytest.raises(ClassifyError) as refused:
        urlpolicy.check(f"http://[{address}]/", SETTINGS)
    assert refused.value.code == "url_not_allowed"


@pytest.mark.parametrize("address", ["2606:4700:4700::1111", "2a00:1450:4001:80b::200e", "2001:4860:4860::8888"])
def test_public_ipv6_passes(address):
    assert urlpolicy.check(f"http://[{address}]/", SETTINGS)[2] == address


def test_nat64_local_use_prefix_is_refused_even_with_a_public_address_inside():
    with pytest.raises(ClassifyError) as refused:  # a site's own translator: never a public destination
        urlpolicy.check("http://[64:ff9b:1:808:8:800::]/", SETTINGS)
    assert refused.value.code == "url_not_allowed"


@pytest.mark.parametrize("answers", [["93.184.216.34", "10.0.0.8"], ["10.0.0.8", "93.184.216.34"],
                                     ["93.184.216.34", "::ffff:169.254.169.254"], ["93.184.216.34", "fe80::1%2"]])
def test_a_host_is_refused_when_any_of_its_addresses_is_private(monkeypatch, answers):
    monkeypatch.setattr(socket, "getaddrinfo", lambda *_, **__: [_answer(a) for a in answers])
    with pytest.raises(ClassifyError) as refused:
        urlpolicy.check("http://two-faced.example/", SETTINGS)
    assert (refused.value.status, refused.value.code) == (400, "url_not_allowed")
    assert "two-faced.example" in refused.value.message


def test_a_host_with_only_public_addresses_is_pinned_to_its_first(monkeypatch):
    answers = ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *_, **__: [_answer(a) for a in answers])
    assert urlpolicy.check("https://Example.COM./a", SETTINGS) == ("example.com", 443, "93.184.216.34")


def _answer(address: str) -> tuple:
    """One getaddrinfo() answer for an address, in the shape the socket module returns."""
    if ":" in address:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, 80, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, 80))


@pytest.mark.parametrize("url", ["ftp://example.com/a.mp3", "file:///etc/passwd", "gopher://x/", "data:,x",
                                 "javascript:alert(1)", "http://", "not a url", "http://[::1/"])
def test_non_http_urls_are_invalid(url):
    with pytest.raises(ClassifyError) as refused:
        urlpolicy.check(url, SETTINGS)
    assert (refused.value.status, refused.value.code) == (400, "invalid_url")


def test_public_address_passes_and_is_pinned():
    assert urlpolicy.check("https://8.8.8.8/x", SETTINGS) == ("8.8.8.8", 443, "8.8.8.8")
    assert urlpolicy.check("http://8.8.8.8/x", SETTINGS) == ("8.8.8.8", 80, "8.8.8.8")


def test_test_switch_allows_only_loopback():
    allowed = dataclasses.replace(SETTINGS, allow_loopback_links=True)
    assert urlpolicy.check("http://127.0.0.1:9/", allowed)[2] == "127.0.0.1"
    with pytest.raises(ClassifyError):
        urlpolicy.check("http://10.0.0.1/", allowed)


def test_allow_list_matches_sites_and_their_subdomains(monkeypatch):
    listed = dataclasses.replace(SETTINGS, allowed_sites=("youtube.com",))
    for url in ("https://notyoutube.com/", "https://youtube.com.evil.example/"):
        with pytest.raises(ClassifyError) as refused:
            urlpolicy.check(url, listed)
        assert (refused.value.status, refused.value.code) == (400, "site_not_allowed")
        assert "allowed: youtube.com" in refused.value.message
    monkeypatch.setattr(socket, "getaddrinfo", lambda *_, **__: [_answer("142.250.1.1")])
    for url, host in (("https://youtube.com/watch", "youtube.com"), ("https://m.youtube.com/watch", "m.youtube.com")):
        assert urlpolicy.check(url, listed) == (host, 443, "142.250.1.1")


@pytest.mark.parametrize("url", [
    "http://[fe80::1%25lo]/", "http://[::1%25lo]/", "http://[2606:4700:4700::1111%25eth0]/",  # a zone
    f"http://{'a' * 64}.example/", "http://a..b/", "http://.example/", f"http://{'a.' * 127}example/",  # labels, length
    "http://a\x00b.example/", "http://a b.example/", "http://a<b.example/",  # characters a host name has not
    "http://example.com:0/", "http://8.8.8.8:0/",  # port 0
])
def test_a_link_whose_host_or_port_cannot_be_is_invalid(url):
    """The client's fault, 400 (were 502 source_unreachable: "could not be resolved", or a connection tried)."""
    with pytest.raises(ClassifyError) as refused:
        urlpolicy.check(url, SETTINGS)
    assert (refused.value.status, refused.value.code) == (400, "invalid_url")


@pytest.mark.parametrize("host", ["xn--bcher-kva.example", "bücher.example", "a-b_c.example", "localhost"])
def test_valid_host_names_are_looked_up(monkeypatch, host):
    monkeypatch.setattr(socket, "getaddrinfo", lambda *_, **__: [_answer("93.184.216.34")])
    assert urlpolicy.check(f"http://{host}/", SETTINGS)[2] == "93.184.216.34"


@pytest.mark.parametrize("host", ["no-such-host.invalid"])
def test_unresolvable_host_is_a_502(host):
    with pytest.raises(ClassifyError) as failed:
        urlpolicy.check(f"http://{host}/", SETTINGS)
    assert (failed.value.status, failed.value.code) == (502, "source_unreachable")
    assert host in failed.value.message


def test_guard_refuses_this_threads_connections_to_private_addresses():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    with urlpolicy.guard(SETTINGS):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2)
        assert urlpolicy.refused() == "127.0.0.1"
        other = []  # another thread is not guarded
        thread = threading.Thread(target=lambda: other.append(socket.create_connection(("127.0.0.1", port))))
        thread.start()
        thread.join()
        other[0].close()
    with urlpolicy.guard(SETTINGS, also_allowed=("127.0.0.1",)):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()  # e.g. the configured proxy
        assert urlpolicy.refused() is None
    socket.create_connection(("127.0.0.1", port), timeout=2).close()  # outside a guard: untouched
    listener.close()


@pytest.mark.parametrize("address", ["/run/some.sock", "", 12345], ids=["AF_UNIX path", "empty", "not a string"])
def test_guard_refuses_sockets_that_are_not_ip(address):
    with urlpolicy.guard(SETTINGS), pytest.raises(ConnectionRefusedError):
        sys.audit("socket.connect", None, address)  # the event socket.connect() raises, with that address
    assert urlpolicy.refused() == "a non-IP socket"


def test_guard_judges_a_scoped_ipv6_address_by_its_address():
    with urlpolicy.guard(SETTINGS), pytest.raises(ConnectionRefusedError):
        sys.audit("socket.connect", None, ("fe80::1%2", 80, 0, 2))
    assert urlpolicy.refused() == "fe80::1%2"


def test_guard_installs_its_audit_hook_once(monkeypatch):
    installed = []
    monkeypatch.setattr(urlpolicy, "_hook_installed", False)
    monkeypatch.setattr(sys, "addaudithook", installed.append)  # audit hooks cannot be removed: count them
    for _ in range(3):
        with urlpolicy.guard(SETTINGS):
            pass
    assert installed == [urlpolicy._audit]


@pytest.mark.parametrize("url, expected", [
    ("http://127.0.0.1:3128", ("127.0.0.1",)), ("http://[::1]/", ("::1",)),
    (None, ()), ("", ()), ("http://[::1/", ()),  # no URL; not a URL
    ("http://no-such-host.invalid:3128", ()), (f"http://{'a' * 64}.example/", ()),  # unresolvable; a label too long
])
def test_addresses_of_a_url(url, expected):
    assert urlpolicy.addresses(url) == expected
