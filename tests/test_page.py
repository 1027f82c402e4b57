"""The page at GET /, in a real headless Chromium (Debian's, driven by Playwright) against a real
functions-framework server; each test saves a screenshot in tests/screenshots/."""
import json
import math
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from playwright.sync_api import expect, sync_playwright

from inference import contract

import function_server
from conftest import ROOT
from tiny_models import tiny_model

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"


@pytest.fixture(scope="module")
def server(model_path, tmp_path_factory):
    with function_server.start(tmp_path_factory.mktemp("page-server"), GENRE_MODEL=str(model_path),
                               GENRE_DEV_ALLOW_LOOPBACK_LINKS="1", GENRE_TIME_BUDGET_S="8") as running:
        yield running


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: `apt-get install chromium` (.ci/run does it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server, request):
    """The page, loaded; afterwards a screenshot, and a check that it fetched nothing from elsewhere."""
    context = browser.new_context(viewport={"width": 900, "height": 1100})
    tab = context.new_page()
    fetched = []
    tab.on("request", lambda r: fetched.append(r.url))
    tab.goto(server.url)
    yield tab
    SCREENSHOTS.mkdir(exist_ok=True)
    tab.screenshot(path=SCREENSHOTS / f"{request.node.name}.png", full_page=True)
    context.close()
    assert fetched and all(url.startswith(server.url) for url in fetched), fetched


def api_answer(server, *curl_args) -> dict:
    out = subprocess.run(["curl", "-sS", "--max-time", "60", server.url, *curl_args],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def check_result(page, expected: dict):
    expect(page.locator("#result")).to_be_visible(timeout=30_000)
    ranked = sorted(expected["scores"], key=expected["scores"].get, reverse=True)
    heading = f"Not sure: {ranked[0]} or {ranked[1]}?" if expected["uncertain"] else expected["genre"]
    expect(page.locator("#genre")).to_have_text(heading)
    expect(page.locator("#unsure")).to_be_visible() if expected["uncertain"] else expect(
        page.locator("#unsure")).to_be_hidden()
    expect(page.locator("#genre")).to_be_focused()
    rows = page.locator("#scores li")
    expect(rows).to_have_count(len(expected["scores"]))
    expect(rows.first).to_contain_text(ranked[0])
    shown = math.floor(expected["scores"][ranked[0]] * 1000 + 0.5) / 10  # JavaScript's Math.round: halves up
    expect(rows.first).to_contain_text(f"{shown:g}%")
    cells = page.locator("#timeline-cells span")
    expect(cells).to_have_count(len(expected["timeline"]))
    for i, segment in enumerate(expected["timeline"]):
        title = re.compile(rf"^{round(segment['start'])}–.* s: {segment['genre']} ")
        expect(cells.nth(i)).to_have_attribute("title", title)
    expect(page.locator("#error")).to_be_hidden()


def test_classify_a_link_with_the_keyboard_only(page, server, served):
    page.keyboard.press("Tab")
    expect(page.locator("#url")).to_be_focused()
    page.keyboard.type(f"{served}/song.flac")
    page.keyboard.press("Tab")
    page.keyboard.type("10")  # start at (s)
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_contain_text("Fetching")
    check_result(page, api_answer(server, "-G", "--data-urlencode", f"url={served}/song.flac", "-d", "start=10"))
    expect(page.locator("#summary")).to_contain_text("starting at 10 s")


def test_classify_an_uploaded_file(page, server, media):
    page.set_input_files("#file", media / "song.flac")
    page.get_by_role("button", name="Classify file").click()
    check_result(page, api_answer(server, "-F", f"file=@{media / 'song.flac'}"))
    expect(page.locator("#summary")).to_contain_text("song.flac")


def test_an_uncertain_answer_names_the_top_two(page, server, served):
    page.fill("#url", f"{served}/song.flac")
    page.fill("#duration", "4")  # one 3-s segment: never trusted
    page.get_by_role("button", name="Classify link").click()
    expected = api_answer(server, "-G", "--data-urlencode", f"url={served}/song.flac", "-d", "duration=4")
    assert expected["uncertain"] is True and expected["segments"] == 1
    check_result(page, expected)


def test_the_timeline_shows_where_the_music_changes(page, server, gtzan, tmp_path):
    halves = [sf.read(gtzan / clip, frames=12 * 22050, dtype="float32")[0]
              for clip in ("classical/classical.00000.flac", "metal/metal.00000.flac")]
    mix = tmp_path / "classical-then-metal.wav"
    sf.write(mix, np.concatenate(halves), 22050)
    page.set_input_files("#file", mix)
    page.get_by_role("button", name="Classify file").click()
    expected = api_answer(server, "-F", f"file=@{mix}")
    timeline = [segment["genre"] for segment in expected["timeline"]]
    assert len(timeline) == 8 and timeline[0] != timeline[-1], timeline  # the model hears the change
    check_result(page, expected)
    expect(page.locator("#legend")).to_contain_text(timeline[0])
    expect(page.locator("#legend")).to_contain_text(timeline[-1])


def test_a_bad_link_shows_the_error_in_plain_words(page, served):
    page.fill("#url", f"{served}/no-such-song.flac")
    page.get_by_role("button", name="Classify link").click()
    expect(page.locator("#error")).to_be_visible(timeout=30_000)
    expect(page.locator("#error")).to_contain_text("could not be opened")
    expect(page.locator("#result")).to_be_hidden()
    expect(page.get_by_role("button", name="Classify link")).to_be_enabled()


def test_progress_while_a_slow_source_works_then_the_timeout(page, served):
    page.fill("#url", f"{served}/stall.flac")
    page.press("#url", "Enter")
    expect(page.locator("#progress")).to_be_visible()
    expect(page.get_by_role("button", name="Classify link")).to_be_disabled()
    expect(page.locator("#status")).to_contain_text("Fetching and listening… 1 s", timeout=5_000)
    expect(page.locator("#error")).to_contain_text("took too long", timeout=20_000)
    expect(page.locator("#progress")).to_be_hidden()


OTHER_LABELS = ("drum & bass", "música popular", "ambient")


@pytest.fixture(scope="module")
def other_labels_server(tmp_path_factory):
    """A server of a hand-built model of three other labels: segment i answers row i of its table."""
    folder = tmp_path_factory.mktemp("other-labels")
    meta = contract.ModelMeta("three", "1", OTHER_LABELS, 16000, 48000, {"kind": "test"}, uncertain_below=0.3)
    table = np.array([[0, 3, 0], [3, 0, 0], [0, 0, 3], [0, 3, 0]], np.float32)
    with function_server.start(folder, GENRE_MODEL=str(tiny_model(folder / "three.onnx", meta, table))) as running:
        yield running


def test_the_page_draws_the_labels_of_any_model_each_in_a_colour_of_its_own(browser, other_labels_server, tmp_path):
    clip = tmp_path / "four-segments.wav"  # segment i starts with the sample value i: the model's row i
    audio = np.zeros(4 * 48000, np.float32)
    audio[::48000] = np.arange(4)
    sf.write(clip, audio, 16000, subtype="FLOAT")
    expected = api_answer(other_labels_server, "-F", f"file=@{clip}")
    assert list(expected["scores"]) == list(OTHER_LABELS) and expected["genre"] == "música popular", expected
    context = browser.new_context(viewport={"width": 900, "height": 1100})
    tab = context.new_page()
    tab.goto(other_labels_server.url)
    tab.set_input_files("#file", clip)
    tab.get_by_role("button", name="Classify file").click()
    check_result(tab, expected)
    SCREENSHOTS.mkdir(exist_ok=True)
    tab.screenshot(path=SCREENSHOTS / "other_labels.png", full_page=True)
    for label in OTHER_LABELS:
        expect(tab.locator("#scores")).to_contain_text(label)
        expect(tab.locator("#legend")).to_contain_text(label)
    cells = tab.locator("#timeline-cells span").evaluate_all("cells => cells.map(c => c.style.background)")
    swatches = tab.locator("#legend i").evaluate_all("swatches => swatches.map(s => s.style.background)")
    context.close()
    assert len(set(swatches)) == 3 and cells == [swatches[0], swatches[1], swatches[2], swatches[0]], (cells, swatches)


def test_the_page_holds_no_list_of_genres():
    """The labels and their colours come from the answer, not from the page."""
    html = (ROOT / "web" / "index.html").read_text()
    assert [label for label in contract.LABELS if re.search(rf"\b{label}\b", html, re.I)] == []
    assert not re.search(r"\b(10|ten) genres\b", html, re.I)
