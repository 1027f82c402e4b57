"""inference/urlpolicy.py: which links the function may fetch."""
import dataclasses
import socket
import threading

import pytest

from inference import config, urlpolicy
from inference.errors import ClassifyError

SETTINGS = dataclasses.replace(config.load(), testing_allow_loopback=False, allowed_sites=())


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/", "http://localhost:8080/a.mp3", "http://[::1]/", "http://[::ffff:127.0.0.1]/",
    "http://0.0.0.0/", "http://10.0.0.8/", "http://172.16.3.4/", "http://192.168.1.1/", "http://100.64.0.1/",
    "http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/", "http://[fd00::1]/", "http://224.0.0.1/",
    "http://2130706433/", "http://0x7f.1/", "http://user:pw@example.com/",
])
def test_private_reserved_and_credentialed_urls_are_refused(url):
    with pytest.raises(ClassifyError) as refused:
        urlpolicy.check(url, SETTINGS)
    assert (refused.value.status, refused.value.code) == (400, "url_not_allowed")


@pytest.mark.parametrize("url", ["ftp://example.com/a.mp3", "file:///etc/passwd", "gopher://x/", "data:,x",
                                 "javascript:alert(1)", "http://", "not a url", "http://[::1/"])
def test_non_http_urls_are_invalid(url):
    with pytest.raises(ClassifyError) as refused:
        urlpolicy.check(url, SETTINGS)
    assert (refused.value.status, refused.value.code) == (400, "invalid_url")


def test_public_address_passes_and_is_pinned():
    assert urlpolicy.check("https://8.8.8.8/x", SETTINGS) == ("8.8.8.8", 443, "8.8.8.8")


def test_test_switch_allows_only_loopback():
    allowed = dataclasses.replace(SETTINGS, testing_allow_loopback=True)
    assert urlpolicy.check("http://127.0.0.1:9/", allowed)[2] == "127.0.0.1"
    with pytest.raises(ClassifyError):
        urlpolicy.check("http://10.0.0.1/", allowed)


def test_allow_list_matches_sites_and_their_subdomains():
    listed = dataclasses.replace(SETTINGS, allowed_sites=("youtube.com",))
    assert urlpolicy.check("https://8.8.8.8/", dataclasses.replace(SETTINGS))  # no list: any public host
    for url in ("https://notyoutube.com/", "https://youtube.com.evil.example/"):
        with pytest.raises(ClassifyError) as refused:
            urlpolicy.check(url, listed)
        assert refused.value.code == "site_not_allowed"
    for url in ("https://youtube.com/watch", "https://m.youtube.com/watch"):  # listed: goes on to DNS
        try:
            urlpolicy.check(url, listed)
        except ClassifyError as failed:  # without DNS (as in the sandbox) it ends there
            assert failed.code == "source_unreachable"


def test_unresolvable_host_is_a_502():
    with pytest.raises(ClassifyError) as failed:
        urlpolicy.check("http://no-such-host.invalid/", SETTINGS)
    assert (failed.value.status, failed.value.code) == (502, "source_unreachable")


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
