"""The model contract (inference/contract.py) on both sides, the shipped models' graphs, and the
shared export pieces: folds that keep artists apart, the cross-validation driver, the families' CLI."""
import argparse
import dataclasses
import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest

from export import calibrate, crossval, folds, library
from inference import contract, model, segments
from inference.errors import ClassifyError

from conftest import ROOT
from tiny_models import ramp, tiny_model

SHIPPED = sorted((ROOT / "models").glob("*.onnx"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_models_are_valid_and_import_each_domain_once(path):
    shipped = onnx.load(path)
    onnx.checker.check_model(shipped, full_check=True)
    domains = Counter("" if o.domain == "ai.onnx" else o.domain for o in shipped.opset_import)
    assert domains[""] == 1 and max(domains.values()) == 1, shipped.opset_import
    props = {p.key: p.value for p in shipped.metadata_props}
    meta = contract.ModelMeta.from_props(props)
    assert meta.to_props() == props and meta.labels == contract.LABELS
    assert (meta.input == contract.POWER_INPUT) == path.name.endswith(contract.TWIN_SUFFIX)


def test_metadata_round_trip_and_defaults():
    meta = contract.ModelMeta("m", "2.0.0", contract.LABELS, 16000, 48000, {"kind": "log_mel", "n_fft": 512})
    props = meta.to_props()
    assert set(props) == {"name", "version", "labels", "sample_rate", "segment_samples", "features"}
    assert contract.ModelMeta.from_props(props) == meta
    # unstated: every segment in one run, mean pooling, no tags, nothing flagged, raw audio in
    assert (meta.batch, meta.pooling, meta.tags, meta.uncertain_below, meta.input, meta.spectrum_bins) == \
        (0, "mean", (), 0.0, "audio", 0)
    with pytest.raises(dataclasses.FrozenInstanceError):  # one ModelMeta is shared by every request's thread
        meta.name = "other"
    twin = meta.twin(200, "ab" * 32)
    assert (twin.input, twin.spectrum_bins) == ("power", 200)
    assert contract.ModelMeta.from_props(twin.to_props()) == twin
    assert contract.twin_path(Path("models/x.onnx")) == Path("models/x.power.onnx")


@pytest.mark.parametrize("path", sorted((ROOT / "models").glob("*.onnx")), ids=lambda p: p.name)
def test_shipped_models_classify_3_s_segments(path):
    """The answer's timeline steps by 3 s (openapi.yaml), whatever the model's sample rate."""
    meta = contract.ModelMeta.from_props({p.key: p.value for p in onnx.load(path).metadata_props})
    assert contract.SEGMENT_SECONDS == 3 and meta.segment_samples == 3 * meta.sample_rate


@pytest.mark.parametrize("key, value", [("sample_rate", None), ("labels", None), ("sample_rate", "fast"),
                                        ("features", "[1, 2]"), ("labels", '{"a": 1}')])
def test_metadata_missing_or_bad_key_is_named(key, value):
    props = contract.ModelMeta("m", "1", contract.LABELS, 16000, 48000, {"kind": "mfcc"}).to_props()
    if value is None:
        del props[key]
    else:
        props[key] = value
    with pytest.raises(contract.ContractError, match=repr(key)):
        contract.ModelMeta.from_props(props)


def test_a_model_without_a_key_is_model_unavailable_naming_it(tmp_path):
    broken = onnx.load(ROOT / "models" / "genre_cnn.onnx")
    props = {p.key: p.value for p in broken.metadata_props}
    del props["segment_samples"]
    del broken.metadata_props[:]
    onnx.helper.set_model_props(broken, props)
    path = tmp_path / "broken.onnx"  # no twin beside it: this file is what loads
    path.write_bytes(broken.SerializeToString())
    with pytest.raises(ClassifyError) as refused:
        model.get(path)
    assert refused.value.status == 503 and refused.value.code == "model_unavailable"
    assert "'segment_samples'" in refused.value.message


@pytest.fixture(scope="module")
def gtzan_library(gtzan):
    return library.read(gtzan)


@pytest.fixture(scope="module")
def clips(gtzan_library):
    return gtzan_library.clips


def label_indices(found) -> np.ndarray:
    return np.array([found.labels.index(c.label) for c in found.clips])


def test_grouped_folds_keep_every_artist_on_one_side(gtzan_library, clips):
    groups = gtzan_library.groups
    assert len(clips) == 119 and len(set(groups)) == 55 + 5  # 55 identified artists, 5 unidentified clips
    repeats = folds.grouped(label_indices(gtzan_library), groups)
    assert len(repeats) == len(folds.GROUPED_SEEDS) and {len(r) for r in repeats} == {folds.GROUPED_FOLDS}
    for repeat in repeats:
        assert sorted(i for _, _, score in repeat for i in score) == list(range(len(clips)))
        for _, fit, score in repeat:
            assert not {groups[i] for i in fit} & {groups[i] for i in score}
            assert set(fit) | set(score) == set(range(len(clips)))
    assert repeats[0] != repeats[1]  # the shuffles differ


def test_two_fold_is_the_split_lists_both_ways(gtzan, clips):
    (repeat,) = folds.two_fold([c.stem for c in clips], gtzan / "splits")
    (name1, fit1, score1), (name2, fit2, score2) = repeat
    assert (name1, name2) == ("train->valid", "valid->train")
    assert (fit1, score1) == (score2, fit2) and (len(fit1), len(score1)) == (60, 59)


def test_class_weights_balance_the_present_classes():
    weights = folds.class_weights(np.array([0, 0, 0, 1]))
    assert weights == {0: pytest.approx(4 / 6), 1: pytest.approx(2.0)}


class Memorise:
    """A stand-in family: predicts the label it saw for an input's first value, else the first label."""
    NAME = "memorise"

    @staticmethod
    def meta(labels):
        return contract.ModelMeta("memorise", "1", labels, 1000, 3000, {})

    @staticmethod
    def fit(inputs, y, labels, options):
        return len(labels), dict(zip([float(x[0]) for x in inputs], y, strict=True))

    @staticmethod
    def predict(trained, inputs):
        n, seen = trained
        return [np.eye(n)[[seen.get(float(x[0]), 0)] * 2] for x in inputs]


def test_the_driver_scores_each_clip_once_per_repeat_on_unseen_folds(gtzan_library, clips):
    inputs = [np.array([i]) for i in range(len(clips))]  # unique per clip: memory cannot help
    y = label_indices(gtzan_library)
    result, answers = crossval.cross_validate(Memorise, y, gtzan_library.labels, inputs,
                                              folds.grouped(y, gtzan_library.groups), argparse.Namespace())
    blues = sum(c.label == "blues" for c in clips)
    assert result["repeats"] == 3 and result["tracks"] == len(clips) and len(result["folds"]) == 15
    assert result["track_accuracy"] == pytest.approx(blues / len(clips))  # only the fallback is ever right
    assert np.array(result["confusion"]).sum() == 3 * len(clips)
    assert result["track_accuracy_min"] == result["track_accuracy_max"]
    assert [sum(len(fold) for fold in repeat) for repeat in answers] == [len(clips)] * 3


def test_a_fold_that_scores_a_label_it_was_not_fitted_on_leaves_those_answers_out_of_the_calibration():
    """Each label one artist's: every fold scores a label it never saw, so no answer is one to calibrate on
    (the temperature ran to 20 and train made every answer uncertain); a label of two artists is kept."""
    y = np.repeat([0, 1, 2, 3], 4)
    one_artist_each = [f"artist {label}" for label in y]
    result, answers = crossval.cross_validate(Memorise, y, ("a", "b", "c", "d"), [np.array([i]) for i in range(16)],
                                              folds.grouped(y, one_artist_each, 4), argparse.Namespace())
    assert result["tracks"] == 16 and answers and not any(fold for repeat in answers for fold in repeat)
    two_for_d = one_artist_each[:12] + ["artist 3", "artist 3", "artist 4", "artist 4"]
    _, answers = crossval.cross_validate(Memorise, y, ("a", "b", "c", "d"), [np.array([i]) for i in range(16)],
                                         folds.grouped(y, two_for_d, 4), argparse.Namespace())
    assert {label for repeat in answers for fold in repeat for label, _ in fold} == {3}


def test_a_calibration_that_ran_to_the_highest_temperature_or_none_is_not_baked_in(capsys):
    """What crossval says of each, and train's test of it (export/__main__.py)."""
    from export.__main__ import _report_calibration, _usable
    _report_calibration(None)
    assert "no calibration: no fold scored a clip of a label it was fitted on" in capsys.readouterr().err
    flat = {"temperature": calibrate.TEMPERATURES[1], "temperature_at_lowest": False, "temperature_at_highest": True,
            "before": {"accuracy": 0.25}}
    _report_calibration(flat)
    assert "no better than chance (25% right)" in capsys.readouterr().err
    assert not _usable(None) and not _usable(flat) and _usable(dict(flat, temperature=1.3))


def test_calibration_of_out_of_fold_answers(tmp_path):
    """Answers right 70% of the time at 0.99 confidence: a temperature above 1 brings the
    confidence down towards 0.7, cross-fitted figures included, and a diagram is drawn."""
    rng = np.random.default_rng(1)
    def answer():
        y = int(rng.integers(10))
        guess = y if rng.random() < 0.7 else (y + 1) % 10
        p = np.full((3, 10), 0.01 / 9)
        p[:, guess] = 0.99
        return y, p
    answers = [[[answer() for _ in range(40)] for _ in range(5)] for _ in range(2)]
    figures = crossval.calibration(answers, "mean_logits", tmp_path / "c.png", "test")
    assert figures["temperature"] > 1 and figures["answers"] == 400
    assert figures["before"]["ece"] > 0.2 > 0.05 > figures["after"]["ece"]
    assert figures["after_cross_fitted"]["ece"] < 0.1
    assert (figures["flagged"], figures["accuracy_not_flagged"]) == (1.0, None)  # equally sure of every answer
    assert (tmp_path / "c.png").exists()


def test_the_cli_lists_the_families_and_tensorflow_keeps_quiet():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-m", "export", "--help"], cwd=ROOT, capture_output=True, text=True,
                          check=True, env=env)
    shown = done.stdout
    assert done.stderr == ""
    for name in ("genre_cnn", "genre_musicnn"):
        assert f"  {name} " in shown
    assert "crossval" in shown and "train" in shown and "evaluate" in shown


def test_mean_logits_pooling_is_the_softmax_of_the_mean_logit():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(7, 10))
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    mean_logit = logits.mean(axis=0)
    expected = np.exp(mean_logit) / np.exp(mean_logit).sum()
    assert np.abs(segments.pool(probabilities, "mean_logits") - expected).max() < 1e-12
    assert np.abs(segments.pool(probabilities) - probabilities.mean(axis=0)).max() < 1e-12


def test_the_answer_has_uncertain_tags_and_a_timeline(tmp_path):
    tags = tuple(f"tag{j}" for j in range(8))
    meta = contract.ModelMeta("tiny", "1", contract.LABELS, 1000, 3000, {"kind": "test"}, pooling="mean_logits",
                              tags=tags, uncertain_below=0.6)
    logits = np.full((3, 10), -5.0)
    logits[0, 6] = logits[1, 6] = 3.0  # metal, metal, then rock
    logits[2, 9] = 3.0
    answer = model.Model(tiny_model(tmp_path / "tiny.onnx", meta, logits)).classify(ramp(3, 3000), start=60.0)
    assert answer["genre"] == "metal" and answer["segments"] == 3
    mean = logits.mean(axis=0)
    assert answer["confidence"] == round(float(np.exp(mean[6]) / np.exp(mean).sum()), 4)
    assert answer["uncertain"] is (answer["confidence"] < 0.6)
    assert [(t["start"], t["genre"]) for t in answer["timeline"]] == [(60.0, "metal"), (63.0, "metal"), (66.0, "rock")]
    assert answer["timeline"][0]["confidence"] == round(float(np.exp(3) / (np.exp(3) + 9 * np.exp(-5))), 4)
    assert answer["tags"] == [{"tag": f"tag{j}", "score": round((j + 1) / 10, 4)} for j in (7, 6, 5, 4, 3)]


def test_a_confident_answer_is_not_flagged_unless_it_rests_on_one_segment(tmp_path):
    meta = contract.ModelMeta("tiny", "1", contract.LABELS, 1000, 3000, {"kind": "test"}, uncertain_below=0.6)
    logits = np.full((2, 10), -5.0)
    logits[:, 1] = 5.0  # classical, very sure
    tiny = model.Model(tiny_model(tmp_path / "tiny.onnx", meta, logits))
    two = tiny.classify(ramp(2, 3000))
    assert (two["genre"], two["uncertain"], "tags" in two) == ("classical", False, False)
    assert [t["start"] for t in two["timeline"]] == [0.0, 3.0]  # a window from the source's start by default
    one = tiny.classify(ramp(1, 3000))
    assert one["confidence"] > 0.99 and one["uncertain"] is True


def test_music_pools_the_segments_logits_and_flags_the_answer_under_one_half(tmp_path):
    meta = contract.ModelMeta("tiny", "1", contract.LABELS, 1000, 3000, {"kind": "test"}, uncertain_below=0.6)
    logits = np.full((3, 10), -5.0)
    logits[:, 1] = 5.0  # classical, very sure, in every segment
    spoken_intro = model.Model(tiny_model(tmp_path / "a.onnx", meta, logits, [0.02, 0.3, 0.9])).classify(ramp(3, 3000))
    logit = np.log([0.02 / 0.98, 0.3 / 0.7, 0.9 / 0.1]).mean()
    assert spoken_intro["music"] == round(1 / (1 + np.exp(-logit)), 4) < 0.5
    assert [t["music"] for t in spoken_intro["timeline"]] == [0.02, 0.3, 0.9]
    assert (spoken_intro["genre"], spoken_intro["uncertain"]) == ("classical", True)  # the scores stay
    song = model.Model(tiny_model(tmp_path / "b.onnx", meta, logits, [0.6, 0.4, 0.6])).classify(ramp(3, 3000))
    assert song["music"] > 0.5 and song["uncertain"] is False
    without = model.Model(tiny_model(tmp_path / "c.onnx", meta, logits)).classify(ramp(3, 3000))
    assert "music" not in without and all("music" not in t for t in without["timeline"])
    assert segments.pool_yes([0.9, 0.1]) == pytest.approx(0.5)
    assert segments.pool_yes([0.0, 1.0]) == pytest.approx(0.5, abs=1e-4) and segments.pool_yes([0.0]) < 1e-6


def test_a_confidence_exactly_at_the_threshold_is_not_flagged(tmp_path):
    meta = contract.ModelMeta("tiny", "1", contract.LABELS, 1000, 3000, {"kind": "test"})
    logits = np.zeros((2, 10))
    logits[:, 3] = 1.0  # disco at about 0.23
    probe = model.Model(tiny_model(tmp_path / "probe.onnx", meta, logits))
    top = float(probe.run(ramp(2, 3000)).probabilities.mean(axis=0).max())
    at = dataclasses.replace(meta, uncertain_below=top)
    answer = model.Model(tiny_model(tmp_path / "tiny.onnx", at, logits)).classify(ramp(2, 3000))
    assert answer["genre"] == "disco" and answer["uncertain"] is False
    above = dataclasses.replace(meta, uncertain_below=float(np.nextafter(top, 1)))
    assert model.Model(tiny_model(tmp_path / "above.onnx", above, logits)).classify(ramp(2, 3000))["uncertain"] is True


def test_a_model_without_its_outputs_is_model_unavailable_naming_the_first(tmp_path):
    """Named "scores" instead of "probabilities", and no "tags" although its metadata names tags."""
    meta = contract.ModelMeta("tiny", "1", contract.LABELS, 1000, 3000, {"kind": "test"})
    proto = onnx.load(tiny_model(tmp_path / "tiny.onnx", meta, np.zeros((1, 10))))
    proto.graph.node[-1].output[0] = proto.graph.output[0].name = "scores"
    onnx.helper.set_model_props(proto, dataclasses.replace(meta, tags=("rock",)).to_props())
    onnx.save(proto, tmp_path / "tiny.onnx")
    with pytest.raises(ClassifyError) as refused:
        model.get(tmp_path / "tiny.onnx")
    assert (refused.value.code, refused.value.message) == (
        "model_unavailable", f"the model {tmp_path / 'tiny.onnx'} could not be loaded: the model has no output "
                             "'probabilities'")


def test_a_file_that_is_no_model_is_model_unavailable_naming_path_and_cause(tmp_path):
    """onnxruntime raises InvalidProtobuf (no subclass of its Fail) for bytes that are no ONNX model."""
    path = tmp_path / "not-a-model.onnx"
    path.write_bytes(b"GIF89a, not a model")
    with pytest.raises(ClassifyError) as refused:
        model.checked(path)
    assert (refused.value.status, refused.value.code) == (503, "model_unavailable")
    assert refused.value.message.startswith(f"the model {path} could not be loaded: InvalidProtobuf: ")


def test_a_model_whose_scores_and_labels_differ_in_number_is_model_unavailable(tmp_path):
    meta = contract.ModelMeta("tiny", "1", contract.LABELS, 1000, 3000, {"kind": "test"})
    proto = onnx.load(tiny_model(tmp_path / "tiny.onnx", meta, np.zeros((1, 10))))
    onnx.helper.set_model_props(proto, dataclasses.replace(meta, labels=contract.LABELS[:9]).to_props())
    onnx.save(proto, tmp_path / "tiny.onnx")
    with pytest.raises(ClassifyError) as refused:
        model.get(tmp_path / "tiny.onnx")
    assert refused.value.message == (f"the model {tmp_path / 'tiny.onnx'} could not be loaded: the model gives 10 "
                                     "scores for 9 labels")


def test_a_model_is_loaded_once_per_process():
    assert model.get(ROOT / "models" / "genre_cnn.onnx") is model.get(str(ROOT / "models" / "genre_cnn.onnx"))


@pytest.mark.parametrize("key, value, says", [
    ("sample_rate", "0", "'sample_rate' must be 1 or more"), ("segment_samples", "-1", "'segment_samples' must be 1"),
    ("batch", "-1", "'batch' must be 0 or more"), ("uncertain_below", "nan", "'uncertain_below' must be from 0 to 1"),
    ("uncertain_below", "1.5", "'uncertain_below' must be from 0 to 1"),
    ("labels", '["rock", "rock"]', "'labels' must name one label or more, each once"),
    ("labels", "[]", "'labels' must name one label or more"), ("labels", '["rock", ""]', "'labels' must name")])
def test_metadata_out_of_its_range_is_named(key, value, says):
    """Values a model's metadata may parse to but no model can have: each refused at load, not per request
    (a segment of 0 samples divided by zero; labels all "rock" scored one label)."""
    props = contract.ModelMeta("m", "1", contract.LABELS, 16000, 48000, {"kind": "mfcc"}).to_props()
    with pytest.raises(contract.ContractError, match=re.escape(says)):
        contract.ModelMeta.from_props({**props, key: value})


def test_a_twin_left_from_another_model_is_model_unavailable_naming_it(tmp_path):
    """A model retrained beside the twin of the old one: the twin runs, so it must be this model's."""
    mine, twin = tmp_path / "mine.onnx", tmp_path / "mine.power.onnx"
    shutil.copy(ROOT / "models" / "genre_cnn.onnx", mine)
    shutil.copy(ROOT / "models" / "genre_musicnn.power.onnx", twin)
    with pytest.raises(ClassifyError) as refused:
        model.checked(mine)
    assert (refused.value.code, refused.value.message) == (
        "model_unavailable", f"the model {mine} could not be loaded: its serving twin {twin} was not derived from it "
                             f"(the twin names another model); write the twin again: python -m export.to_onnx {mine}")
    proto = onnx.load(ROOT / "models" / "genre_cnn.power.onnx")  # a twin written before twins named their model
    onnx.helper.set_model_props(proto, {p.key: p.value for p in proto.metadata_props if p.key != "source_sha256"})
    onnx.save(proto, twin)
    with pytest.raises(ClassifyError, match=re.escape("(the twin names no model)")):
        model.checked(mine)
    shutil.copy(ROOT / "models" / "genre_cnn.power.onnx", twin)
    assert model.checked(mine)["sha256"] == hashlib.sha256(mine.read_bytes()).hexdigest()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_model_path_that_is_no_regular_file_is_model_unavailable_at_once(tmp_path):
    """A FIFO blocked the start for ever; a folder beside as the twin was blamed on the model."""
    os.mkfifo(tmp_path / "fifo.onnx")
    with pytest.raises(ClassifyError, match=re.escape(f"FileNotFoundError: {tmp_path / 'fifo.onnx'} is not a regular")):
        model.checked(tmp_path / "fifo.onnx")
    shutil.copy(ROOT / "models" / "genre_cnn.onnx", tmp_path / "cnn.onnx")
    (tmp_path / "cnn.power.onnx").mkdir()
    with pytest.raises(ClassifyError, match=re.escape(f"{tmp_path / 'cnn.power.onnx'} is not a regular file")):
        model.checked(tmp_path / "cnn.onnx")


def test_a_model_whose_tags_and_tag_scores_differ_in_number_is_model_unavailable(tmp_path):
    proto = onnx.load(ROOT / "models" / "genre_musicnn.power.onnx")
    props = {p.key: p.value for p in proto.metadata_props}
    onnx.helper.set_model_props(proto, {**props, "tags": '["rock", "pop", "jazz"]'})
    onnx.save(proto, tmp_path / "m.power.onnx")
    shutil.copy(ROOT / "models" / "genre_musicnn.onnx", tmp_path / "m.onnx")
    with pytest.raises(ClassifyError, match=re.escape("the model gives 50 tag scores for 3 tags")):
        model.checked(tmp_path / "m.onnx")
