"""openapi.yaml against a live functions-framework server: schemathesis generates requests from
the document (bounded examples) and checks every answer: no 5xx, documented status, content type,
headers and body schema."""
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

import function_server
from conftest import ROOT

schemathesis.serializer.alias(["audio/*", "video/*", "audio/flac"], "application/octet-stream")  # raw uploads
SCHEMA = schemathesis.openapi.from_path(ROOT / "openapi.yaml")
EXAMPLES = 60  # per operation in CI; raise it for a longer run (see README)


@pytest.fixture(scope="module")
def strict_server(model_path, tmp_path_factory):
    """As deployed, but only links to localhost are accepted (and refused, as loopback): no
    generated link can reach the internet."""
    with function_server.start(tmp_path_factory.mktemp("contract"), GENRE_MODEL=str(model_path),
                               GENRE_ALLOWED_SITES="localhost", GENRE_MAX_UPLOAD_MB="1") as running:
        yield running


@pytest.fixture(scope="module")
def loopback_server(model_path, tmp_path_factory):
    with function_server.start(tmp_path_factory.mktemp("contract-loopback"), GENRE_MODEL=str(model_path),
                               GENRE_TESTING_ALLOW_LOOPBACK="1") as running:
        yield running


@SCHEMA.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_generated_requests_get_documented_answers(case, strict_server):
    # A link that fits the schema may still be refused (a private address, a site not allowed):
    # the document cannot promise a 2xx for every well-formed link.
    case.call_and_validate(base_url=strict_server.url, excluded_checks=[positive_data_acceptance], timeout=30)


def test_real_answers_match_the_schema(loopback_server, served, media):
    post, get = SCHEMA["/"]["POST"], SCHEMA["/"]["GET"]
    clip = (media / "song.flac").read_bytes()
    cases = [
        get.Case(query={"url": f"{served}/song.flac", "duration": 6}),
        get.Case(query={"url": f"{served}/nothing.flac"}),
        post.Case(body={"url": f"{served}/page.html", "start": 3}, media_type="application/json"),
        post.Case(body=clip, media_type="audio/flac", query={"duration": 3}),
        post.Case(body={"file": clip}, media_type="multipart/form-data"),
        post.Case(body=b"\x00" * 1000, media_type="application/octet-stream"),
    ]
    statuses = [case.call_and_validate(base_url=loopback_server.url, timeout=30).status_code for case in cases]
    assert statuses == [200, 422, 200, 200, 200, 422]


def test_every_documented_error_code_is_one_the_code_raises():
    """The codes in openapi.yaml are exactly those that inference/ and main.py raise."""
    document = (ROOT / "openapi.yaml").read_text()
    documented = {code for group in re.findall(r"enum: \[([a-z_, \n]+)\]", document) for code in re.findall(r"[a-z_]+", group)}
    documented -= {"link", "upload", "blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop",
                   "reggae", "rock"}
    source = "".join(p.read_text() for p in [ROOT / "main.py", *(ROOT / "inference").glob("*.py")])
    raised = set(re.findall(r"""ClassifyError\(\s*\d{3},\s*"([a-z_]+)\"""", source))
    raised |= set(re.findall(r'"code": "([a-z_]+)"', (ROOT / "main.py").read_text()))
    assert documented == raised - {"method_not_allowed"}  # the 405 for methods the document does not list
