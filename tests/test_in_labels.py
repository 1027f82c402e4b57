"""`in_labels` (export/in_labels.py): a detector fitted on three distinct GTZAN genres (classical, metal,
hiphop) by artists of one side of a fold, appended to the shipped model's graph; the graph against the
numpy detector; music of the other seven genres answered uncertain (outside_labels) while held-out
music of the three keeps its genre; the page in headless Chromium names the closest genre; the
protocol's figures on known data."""
import csv
import io
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from playwright.sync_api import expect, sync_playwright

from export import extract, folds, in_labels, library, music, nonmusic, outside, to_onnx
from export.__main__ import _warn_one_artist, _warn_thin_labels
from inference import contract, model

import function_server

INSIDE = ("classical", "hiphop", "metal")
SECONDS = 12  # of each clip: four segments, a third of the cost


def _features(net, clips) -> list[np.ndarray]:
    _, audios = extract.audio(library.Library(clips), nonmusic.SAMPLE_RATE)
    return music.features_of(net, [a[:SECONDS * nonmusic.SAMPLE_RATE] for a in audios])


@pytest.fixture(scope="module")
def data(gtzan, model_path):
    """(fit clips' features, labels, artists; held-out inside clips; outside clips), the held-out inside
    by artists the fit never saw."""
    found = library.read(gtzan)
    inside = [c for c in found.clips if c.label in INSIDE]
    y = np.array([INSIDE.index(c.label) for c in inside])
    _, fit_on, score_on = folds.grouped(y, library.Library(inside).groups, seeds=(0,))[0][0]
    outside_clips = [c for c in found.clips if c.label not in INSIDE][::4]
    net = onnx.load(model_path)
    groups = [inside[i].artist or inside[i].stem for i in fit_on]
    held = [inside[i] for i in score_on]
    return _features(net, [inside[i] for i in fit_on]), y[fit_on], groups, held, outside_clips


@pytest.fixture(scope="module")
def detector(data):
    features, y, groups, *_ = data
    return in_labels.fit(features, y, groups)


@pytest.fixture(scope="module")
def served_model(model_path, detector, tmp_path_factory):
    path = tmp_path_factory.mktemp("in-labels") / "genre_musicnn.onnx"
    path.write_bytes(in_labels.append(onnx.load(model_path), detector).SerializeToString())
    to_onnx.write_twin(path)
    return path


def _window(clip) -> np.ndarray:
    return extract.audio(library.Library([clip]), nonmusic.SAMPLE_RATE)[1][0]


def test_the_graph_computes_what_the_numpy_detector_does(served_model, detector, data):
    clip = data[4][0]
    scores = model.Model(served_model).run(_window(clip))
    assert np.abs(scores.in_labels - detector.probabilities(scores.features)).max() < 1e-3
    outputs = [o.name for o in onnx.load(served_model).graph.output]
    assert outputs.count(contract.IN_LABELS_OUTPUT) == 1  # append() replaced the shipped model's own
    assert contract.IN_LABELS_OUTPUT not in [o.name for o in in_labels.without(onnx.load(served_model)).graph.output]


def test_music_outside_the_labels_is_uncertain_and_music_inside_keeps_its_genre(served_model, model_path, data):
    judged, shipped = model.Model(served_model), model.Model(model_path)
    outside_answers = [judged.classify(_window(c)) for c in data[4]]
    under = [a["in_labels"] < 0.5 for a in outside_answers]
    assert np.mean(under) >= 0.7, [(c.stem, a["in_labels"]) for c, a in zip(data[4], outside_answers, strict=True)]
    for answer, is_under in zip(outside_answers, under, strict=True):
        assert ("outside_labels" in answer["uncertain_reasons"]) is is_under
        assert answer["uncertain"] is bool(answer["uncertain_reasons"])
        assert all(0 <= t["in_labels"] <= 1 for t in answer["timeline"])
    held = [(judged.classify(_window(c)), shipped.classify(_window(c))) for c in data[3]]
    assert np.mean([a["in_labels"] >= 0.5 for a, _ in held]) >= 0.85, [a["in_labels"] for a, _ in held]
    for answer, before in held:
        assert (answer["genre"], answer["scores"]) == (before["genre"], before["scores"])  # the genres untouched


def test_the_page_names_the_closest_genre_of_music_outside_the_labels(served_model, data, tmp_path):
    judged = model.Model(served_model)
    clip = next(c for c in data[4] if judged.classify(_window(c))["in_labels"] < 0.4)
    with function_server.start(tmp_path, GENRE_MODEL=str(served_model)) as server:
        out = subprocess.run(["curl", "-sS", "--max-time", "60", "-F", f"file=@{clip.item}", server.url],
                             capture_output=True, text=True, timeout=90, check=True)
        answer = json.loads(out.stdout)
        assert answer["in_labels"] < 0.5 and answer["uncertain_reasons"][-1:] != ["not_music"]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium")
            page = browser.new_page()
            page.goto(server.url)
            page.set_input_files("#file", clip.item)
            page.get_by_role("button", name="Classify file").click()
            expect(page.locator("#genre")).to_have_text(
                f"This does not sound like any genre this model knows (closest: {answer['genre']})", timeout=60_000)
            expect(page.locator("#unsure")).to_contain_text("in its genres: ")
            expect(page.locator("#scores li")).to_have_count(10)  # the scores stay
            browser.close()


def test_batch_csv_and_jsonl_carry_in_labels_and_the_reasons(served_model, data, tmp_path):
    judged = model.Model(served_model)
    far = next(c for c in data[4] if judged.classify(_window(c))["in_labels"] < 0.4)
    items = [far.item, data[3][0].item]
    for form, out in (["--csv"], tmp_path / "out.csv"), ([], tmp_path / "out.jsonl"):
        done = subprocess.run([sys.executable, "-m", "inference", "batch", *items, *form, "--out", str(out)],
                              cwd=function_server.ROOT, env=os.environ | {"GENRE_MODEL": str(served_model)},
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        text = out.read_text()
        rows = list(csv.DictReader(io.StringIO(text))) if form else [json.loads(line) for line in text.splitlines()]
        by_input = {row["input"]: row for row in rows}
        outside_row = by_input[far.item]
        assert float(outside_row["in_labels"]) < 0.5
        reasons = outside_row["uncertain_reasons"]
        assert "outside_labels" in (reasons.split() if form else reasons), outside_row
        assert float(by_input[items[1]]["in_labels"]) >= 0.0


def test_the_protocol_figures_on_known_answers():
    results = {"a": (np.array([0.9, 0.8, 0.6, 0.4]), np.array([0.1, 0.3, 0.7])),
               "b": (np.array([0.7, 0.55]), np.array([0.2]))}
    found = outside.figures(results)
    # a: inside above outside in 10 of 12 pairs (0.6 and 0.4 under 0.7); b: every pair
    assert found["auroc"] == {"a": pytest.approx(10 / 12, abs=1e-3), "b": 1.0}
    assert found["auroc_mean"] == pytest.approx((10 / 12 + 1) / 2, abs=1e-3)
    assert found["outside_under_half"] == 0.75 and found["inside_at_half_or_above"] == pytest.approx(5 / 6, abs=1e-3)
    assert sum(t["weight"] for t in found["reliability"]) == pytest.approx(1.0, abs=0.01)  # each rounded


def test_the_inside_share_per_label_gathers_each_labels_answers_from_every_round():
    """Three labels of two clips: a round's inside is the other labels' clips, in order; NaN unscored."""
    y, nan = np.array([0, 0, 1, 1, 2, 2]), np.nan
    results = {"a": (np.array([0.9, 0.4, 0.6, nan]), np.array([0.1, 0.2])),
               "b": (np.array([0.7, 0.2, 0.8, 0.1]), np.array([0.3, 0.4])),
               "c": (np.array([0.6, 0.6, 0.3, 0.5]), np.array([0.2, 0.6]))}
    found = outside.figures(results, y)
    assert found["inside_at_half_or_above_by_label"] == {"a": 0.75, "b": 0.5, "c": pytest.approx(0.667, abs=1e-3)}
    assert "per label (its clips, by detectors that never heard their artist): a 75%, b 50%, c 67%" in \
        outside.report(found)
    assert "inside_at_half_or_above_by_label" not in outside.figures(results)


def test_a_far_label_left_out_is_outside_even_where_the_near_ones_look_alike():
    """Three clusters of segment features, two nearly alike and one far from both: the calibration
    learns from the near pair that distance says little, yet the far label, left out, must still come
    out under 0.5 (P(in) never grows with a distance)."""
    rng = np.random.default_rng(0)
    centres = np.full((3, 250), 1.0)
    centres[1, :10], centres[2] = 1.3, 3.0
    features = [np.abs(c + rng.normal(0, 0.3, (4, 250))) * 0.1 for c in centres for _ in range(12)]
    y, groups = np.repeat([0, 1, 2], 12), [f"artist {i // 2}" for i in range(36)]
    scored = outside.leave_one_label_out(features, y, groups, ("near a", "near b", "far"))
    assert outside.figures(scored)["auroc"]["far"] == 1.0 and (scored["far"][1] < 0.5).all()


def test_the_curve_draws_shares_of_each_label_and_its_whole_share_is_the_protocol():
    rng = np.random.default_rng(2)
    centres = np.abs(rng.normal(1.0, 0.5, (3, 250)))
    features = [np.abs(c + rng.normal(0, 0.3, (4, 250))) * 0.1 for c in centres for _ in range(10)]
    y, groups, labels = np.repeat([0, 1, 2], 10), [f"artist {i // 2}" for i in range(30)], ("a", "b", "c")
    assert np.bincount(y[outside.drawn(y, 0.1, 0)]).tolist() == [outside.CURVE_MIN_CLIPS] * 3
    assert np.bincount(y[outside.drawn(y, 0.55, 0)]).tolist() == [6, 6, 6]
    assert not np.array_equal(outside.drawn(y, 0.5, 0), outside.drawn(y, 0.5, 1))
    full = outside.figures(outside.leave_one_label_out(features, y, groups, labels))
    whole, half = outside.curve(features, y, groups, labels, [1.0, 0.5])
    assert (whole["clips"], whole["auroc_mean"], whole["auroc_sd"]) == (30, full["auroc_mean"], 0.0)
    assert whole["inside_at_half_or_above"] == full["inside_at_half_or_above"] and half["clips"] == 15


def test_the_artists_curve_keeps_some_of_a_labels_artists_and_all_of_them_is_the_protocol():
    rng = np.random.default_rng(3)
    centres = np.abs(rng.normal(1.0, 0.5, (3, 250)))
    features = [np.abs(c + rng.normal(0, 0.3, (4, 250))) * 0.1 for c in centres for _ in range(12)]
    y, labels = np.repeat([0, 1, 2], 12), ("a", "b", "c")
    groups = [f"{labels[i // 12]} artist {i % 12 // 2}" for i in range(36)]  # six artists of two clips each
    rows = outside.by_artists(features, y, groups, labels, "a")
    assert [(r["artists"], r["clips"]) for r in rows] == [(2, 4), (3, 6), (6, 12)]
    full = outside.figures(outside.leave_one_label_out(features, y, groups, labels, quiet=True), y)
    assert (rows[-1]["inside_at_half_or_above"], rows[-1]["auroc"]) == (
        full["inside_at_half_or_above_by_label"]["a"], full["auroc"]["a"])
    assert rows[-1]["inside_low"] == rows[-1]["inside_high"]  # all of its artists: one draw
    assert all(0 <= r["inside_low"] <= r["inside_at_half_or_above"] <= r["inside_high"] <= 1 for r in rows)


def test_the_protocol_command_refuses_what_it_cannot_run(capsys):
    with pytest.raises(SystemExit) as refused:
        outside.main(["--data", "nowhere", "--inside", "a,b", "--artists", "a"])
    assert refused.value.code == 2 and "do not go with --inside" in capsys.readouterr().err
    with pytest.raises(SystemExit, match=r"--artists needs 1 or more of the library's labels \['a', 'b'\]; not \['z'"):
        outside._labels_named("a,z", ("a", "b"), "--artists")
    with pytest.raises(SystemExit, match="--inside needs 2 or more"):
        outside._labels_named("a", ("a", "b"), "--inside", least=2)


def test_the_candidates_swap_one_part_and_put_it_back():
    """export/outside_compare.py: the shipped candidate prints outside.py's own figures, a candidate
    changes what it names while it runs, and the shipped parts are back after it, even after an error."""
    from export import outside_compare
    rng = np.random.default_rng(1)
    labels = ("classical", "hiphop", "metal", "rock")
    centres = np.abs(rng.normal(1.0, 0.5, (4, 250)))
    features = [np.abs(c + rng.normal(0, 0.3, (4, 250))) * 0.1 for c in centres for _ in range(10)]
    y, groups = np.repeat([0, 1, 2, 3], 10), [f"artist {i // 2}" for i in range(40)]
    shipped = outside.figures(outside.leave_one_label_out(features, y, groups, labels))
    line = outside_compare.compare("shipped", features, y, groups, labels)
    assert line.startswith(f"shipped: mean AUROC {shipped['auroc_mean']:.3f} (") and "classical+metal+hiphop" in line
    with outside_compare.swapped(outside_compare.METHODS["not calibrated (its ranking alone)"]):
        assert in_labels.fit(features, y, groups).weight == -1.0
    assert line.endswith("%") and outside_compare.compare(  # no shares at 0.5 where they mean nothing
        "not calibrated (its ranking alone)", features, y, groups, labels).endswith("-, -")
    with pytest.raises(ZeroDivisionError), outside_compare.swapped(outside_compare.METHODS["view: sqrt(tags)"]):
        assert np.allclose(in_labels.tags(features[0]), np.sqrt(features[0][:, -in_labels.TAGS:]))
        raise ZeroDivisionError
    assert (in_labels.tags, in_labels.distance) == (outside_compare.TAGS, outside_compare.DISTANCE)
    assert in_labels.fit(features, y, groups).weight < 0


def test_a_label_of_a_single_artist_is_named(capsys):
    clips = [library.Clip(f"/x/{i}.wav", label, artist, f"row {i}") for i, (label, artist) in
             enumerate([("rock", "A"), ("rock", "B"), ("jazz", "C"), ("jazz", "C"), ("pop", ""), ("pop", "")])]
    _warn_one_artist(library.Library(clips))
    err = capsys.readouterr().err
    assert "'jazz' is by 'C'" in err and "rock" not in err and "pop" not in err


def test_labels_whose_unheard_artists_come_back_outside_are_named(capsys):
    _warn_thin_labels({"pop": 0.3, "rock": 0.5, "jazz": None, "reggae": 0.49})
    err = capsys.readouterr().err
    assert "most music of 'pop' (30%), 'reggae' (49%) outside the labels" in err and "rock" not in err
    _warn_thin_labels({"pop": 0.5, "jazz": None})
    assert capsys.readouterr().err == ""
