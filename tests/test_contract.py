"""openapi.yaml against a live functions-framework server: schemathesis generates requests from
the document (bounded examples) and checks every answer: no 5xx, documented status, content type,
headers and body schema."""
import re

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from inference import errors, storage

import function_server
from conftest import ROOT

schemathesis.serializer.alias(["audio/*", "video/*", "audio/flac"], "application/octet-stream")  # raw uploads
SCHEMA = schemathesis.openapi.from_path(ROOT / "openapi.yaml")
EXAMPLES = 60  # per operation in CI; raise it for a longer run (see docs/testing.md)


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
                               GENRE_DEV_ALLOW_LOOPBACK_LINKS="1") as running:
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


def test_the_link_schema_admits_every_kind_of_link_the_function_reads():
    """A client that validates its requests against the document may send gs:// links too."""
    pattern = DOCUMENT["components"]["schemas"]["Link"]["pattern"]
    links = ["https://www.youtube.com/watch?v=x", "http://example.com/a.mp3", f"{storage.SCHEME}bucket/a.flac",
             f"{storage.SCHEME}bucket/a.flac#1712345678901234"]
    assert [link for link in links if not re.search(pattern, link)] == []
    assert not re.search(pattern, "ftp://example.com/a.mp3")


def test_a_link_to_a_bucket_not_allowed_gets_its_documented_answer(strict_server):
    case = SCHEMA["/"]["POST"].Case(body={"url": f"{storage.SCHEME}bucket/a.flac#7"}, media_type="application/json")
    answer = case.call_and_validate(base_url=strict_server.url, timeout=30)
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "bucket_not_allowed")


DOCUMENT = yaml.safe_load((ROOT / "openapi.yaml").read_text())


def enum(schema: dict) -> list[str]:
    """The codes an ErrorNNN schema allows."""
    return schema["allOf"][1]["properties"]["error"]["properties"]["code"]["enum"]


def documented_errors() -> dict[str, int]:
    """openapi.yaml's error codes and their statuses, from the ErrorNNN schemas' enums."""
    schemas = DOCUMENT["components"]["schemas"]
    return {code: int(name[5:]) for name, schema in schemas.items() if re.fullmatch(r"Error\d{3}", name)
            for code in enum(schema)}


def docs_errors() -> dict[str, int]:
    """docs/api.md's error table (## Errors): code -> status."""
    section = (ROOT / "docs" / "api.md").read_text().split("## Errors", 1)[1].split("\n#", 1)[0]
    return {code: int(status) for status, codes in re.findall(r"^\| (\d{3}) \| ([^|]+) \|", section, re.M)
            for code in re.findall(r"`([a-z_]+)`", codes)}


def docs_command_line_errors() -> set[str]:
    """The codes of docs/api.md's table of the command line's own errors (status "-")."""
    return set(re.findall(r"^\| - \| `([a-z_]+)` \|", (ROOT / "docs" / "api.md").read_text(), re.M))


def test_the_error_catalogue_openapi_and_the_api_docs_agree():
    """Code by code and status by status; unreadable_file and unreachable are the command line's own."""
    catalogue = {code: entry.status for code, entry in errors.CATALOGUE.items() if entry.status is not None}
    assert set(catalogue) == set(errors.CATALOGUE) - {"unreadable_file", "unreachable"}
    assert docs_errors() == catalogue
    assert documented_errors() == catalogue
    assert docs_command_line_errors() == {code for code, entry in errors.CATALOGUE.items() if entry.status is None}


def test_each_error_response_of_openapi_explains_its_codes_once():
    """A response's description names (in backquotes) exactly the codes its schema allows, and no
    code is explained by two responses."""
    named = []
    for name, response in DOCUMENT["components"]["responses"].items():
        schema = response["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        codes = [c for c in re.findall(r"`([a-z_]+)`", response["description"]) if c in errors.CATALOGUE]
        assert sorted(codes) == sorted(enum(DOCUMENT["components"]["schemas"][schema])), name
        named += codes
    assert sorted(named) == sorted(documented_errors())


def test_every_code_of_the_catalogue_is_raised_through_its_constructor():
    """No code is dead, and none is raised around the catalogue (a ClassifyError built elsewhere)."""
    sources = {p: p.read_text() for p in [ROOT / "main.py", *(ROOT / "inference").glob("*.py")]
               if p.name != "errors.py"}
    code = "".join(sources.values())
    assert all(callable(getattr(errors, name, None)) for name in errors.CATALOGUE)
    assert not [p.name for p, text in sources.items() if "ClassifyError(" in text]
    assert {name for name in errors.CATALOGUE if f"errors.{name}(" not in code} == set()
