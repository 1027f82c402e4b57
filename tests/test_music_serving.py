"""`music` end to end: the shipped default model with a music detector fitted on its own features
(export/music.py: GTZAN clips of some artists against nonmusic.generate()), served in process,
by a real functions-framework server called with curl and from the page in headless Chromium,
and by the batch command."""
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import soundfile as sf
from playwright.sync_api import expect, sync_playwright

from export import extract, folds, library, music, nonmusic, to_onnx
from inference import model

import function_server

FIT_SECONDS = 12  # of each training clip: enough segments, a quarter of the cost
SECONDS = 30


def decoded(clips: list) -> list:
    """(clip, its window as the function decodes it at 16 kHz) for each clip."""
    return list(zip(*extract.audio(library.Library(clips), nonmusic.SAMPLE_RATE), strict=True))


@pytest.fixture(scope="module")
def clips(gtzan):
    """(fit clips, held-out clips: one per genre, by artists the fit never saw), decoded at 16 kHz."""
    found = library.read(gtzan)
    y = np.array([found.labels.index(c.label) for c in found.clips])
    _, fit_on, score_on = folds.grouped(y, found.groups, seeds=(0,))[0][0]
    held, genres = [], set()
    for i in score_on:
        if found.clips[i].label not in genres:
            held.append(found.clips[i])
            genres.add(found.clips[i].label)
    return decoded([found.clips[i] for i in fit_on]), decoded(held)


@pytest.fixture(scope="module")
def music_model(model_path, clips, tmp_path_factory):
    fit_clips, _ = clips
    songs = [audio[:FIT_SECONDS * nonmusic.SAMPLE_RATE] for _, audio in fit_clips]
    other = [item.audio for item in nonmusic.generate()]
    path = tmp_path_factory.mktemp("music-model") / "genre_musicnn.onnx"
    path.write_bytes(music.with_detector(onnx.load(model_path), songs, other).SerializeToString())
    to_onnx.write_twin(path)
    return path


def not_music(seed=1) -> dict[str, np.ndarray]:
    """What the issue measured, drawn afresh: 30 s of white noise, a 1 kHz sine and digital
    silence; and a real voice the detector never heard (nonmusic.real_voice)."""
    n, rng = SECONDS * nonmusic.SAMPLE_RATE, np.random.default_rng(seed)
    return {"white noise": (0.1 * rng.standard_normal(n)).astype(np.float32),
            "1 kHz sine": (0.5 * np.sin(2 * np.pi * 1000 * np.arange(n) / nonmusic.SAMPLE_RATE)).astype(np.float32),
            "silence": np.zeros(n, np.float32), "a real voice": nonmusic.real_voice()}


def test_not_music_is_flagged_and_held_out_music_keeps_its_genre(music_model, model_path, clips):
    detecting, shipped = model.Model(music_model), model.Model(model_path)
    for name, audio in not_music().items():
        answer = detecting.classify(audio)
        assert answer["music"] < 0.5 and answer["uncertain"] is True, (name, answer["music"])
        assert all(0 <= t["music"] <= 1 for t in answer["timeline"])
    for clip, audio in clips[1]:
        answer, before = detecting.classify(audio), shipped.classify(audio)
        assert answer["music"] >= 0.5, (clip.stem, answer["music"])
        assert (answer["genre"], answer["scores"]) == (before["genre"], before["scores"])  # the genres untouched


def test_a_spoken_intro_shows_in_the_timeline(music_model, clips):
    _, held = clips
    intro_then_song = np.concatenate([nonmusic.real_voice()[:9 * nonmusic.SAMPLE_RATE],
                                      held[0][1][:9 * nonmusic.SAMPLE_RATE]])
    segment_music = [t["music"] for t in model.Model(music_model).classify(intro_then_song)["timeline"]]
    intro, song = segment_music[:3], segment_music[3:]
    # the real voice's first 3 s is the least clear-cut (about 0.58 here): the intro as a whole is not music
    assert max(intro) < min(song) and min(song) >= 0.5, segment_music
    assert model.segments.pool_yes(intro) < 0.5, segment_music


@pytest.fixture(scope="module")
def wavs(tmp_path_factory, clips):
    folder = tmp_path_factory.mktemp("not-music")
    for name, audio in not_music().items():
        sf.write(folder / f"{name.replace(' ', '-')}.wav", audio, nonmusic.SAMPLE_RATE)
    clip = clips[1][0][0]
    return folder, Path(clip.item)


@pytest.fixture(scope="module")
def server(music_model, tmp_path_factory):
    with function_server.start(tmp_path_factory.mktemp("music-server"), GENRE_MODEL=str(music_model)) as running:
        yield running


def curl_upload(server, path) -> dict:
    out = subprocess.run(["curl", "-sS", "--max-time", "60", "-F", f"file=@{path}", server.url],
                         capture_output=True, text=True, timeout=90, check=True)
    return json.loads(out.stdout)


def test_the_server_says_it_is_not_music(server, wavs):
    folder, song = wavs
    for path in [*sorted(folder.glob("*.wav")), song]:
        answer = curl_upload(server, path)
        assert (answer["music"] >= 0.5) is (path == song), (path.name, answer)
        assert answer["uncertain"] is True or path == song
        keys = {"start", "genre", "confidence", "music", "in_labels"}
        assert [set(t) for t in answer["timeline"]] == [keys] * answer["segments"]


def test_the_page_says_it_does_not_sound_like_music(server, wavs):
    folder, song = wavs
    expected = curl_upload(server, song)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium")
        for path, heading in ((folder / "white-noise.wav", "This does not sound like music"),
                              (song, expected["genre"] if not expected["uncertain"] else None)):
            tab = browser.new_page()
            tab.goto(server.url)
            tab.set_input_files("#file", path)
            tab.get_by_role("button", name="Classify file").click()
            expect(tab.locator("#result")).to_be_visible(timeout=30_000)
            expect(tab.locator("#scores li")).to_have_count(10)  # the scores stay
            if heading:
                expect(tab.locator("#genre")).to_have_text(heading)
            expect(tab.locator("#unsure")).to_contain_text("music: ") if path != song else expect(
                tab.locator("#genre")).not_to_have_text("This does not sound like music")
            tab.close()
        browser.close()


def test_batch_csv_and_jsonl_carry_music(music_model, wavs, tmp_path):
    """In this process (no endpoint): the model's answer, row by row."""
    folder, song = wavs
    for form, out in (["--csv"], tmp_path / "out.csv"), ([], tmp_path / "out.jsonl"):
        done = subprocess.run([sys.executable, "-m", "inference", "batch", str(folder), str(song), *form, "--out",
                               str(out)], cwd=function_server.ROOT, env=os.environ | {"GENRE_MODEL": str(music_model)},
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        text = out.read_text()
        rows = list(csv.DictReader(io.StringIO(text))) if form else [json.loads(line) for line in text.splitlines()]
        music_of = {row["input"].rsplit("/", 1)[-1]: float(row["music"]) for row in rows}
        assert len(music_of) == 5 and music_of.pop(song.name) >= 0.5, rows
        assert all(p < 0.5 for p in music_of.values()), music_of
