"""The model contract (inference/contract.py) on both sides, the shipped models' graphs, and the
shared export pieces: folds that keep artists apart, the cross-validation driver, the families' CLI."""
import argparse
import dataclasses
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest

from export import crossval, dataset, folds
from inference import contract, model, segments
from inference.errors import ClassifyError

from conftest import ROOT

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
    twin = meta.twin(200)
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
def clips(gtzan):
    return dataset.find_clips(gtzan)


def test_grouped_folds_keep_every_artist_on_one_side(gtzan, clips):
    groups = folds.artists(gtzan / "artists.csv", [c.stem for c in clips])
    assert len(clips) == 119 and len(set(groups)) == 55 + 5  # 55 identified artists, 5 unidentified clips
    repeats = folds.grouped(clips, groups)
    assert len(repeats) == len(folds.GROUPED_SEEDS) and {len(r) for r in repeats} == {folds.GROUPED_FOLDS}
    for repeat in repeats:
        assert sorted(i for _, _, score in repeat for i in score) == list(range(len(clips)))
        for _, fit, score in repeat:
            assert not {groups[i] for i in fit} & {groups[i] for i in score}
            assert set(fit) | set(score) == set(range(len(clips)))
    assert repeats[0] != repeats[1]  # the shuffles differ


def test_artists_reads_the_csv_and_keeps_unidentified_stems_apart(tmp_path):
    (tmp_path / "artists.csv").write_text('stem,artist,title\nrock.00001,Queen,"A, B"\nrock.00002,,x\n'
                                          'rock.00003,Queen,y\n')
    names = folds.artists(tmp_path / "artists.csv", ["rock.00001", "rock.00002", "rock.00003", "rock.00009"])
    assert names[0] == names[2] == "Queen" and len(set(names)) == 3


def test_two_fold_is_the_split_lists_both_ways(gtzan, clips):
    (repeat,) = folds.two_fold(clips, gtzan / "splits")
    (name1, fit1, score1), (name2, fit2, score2) = repeat
    assert (name1, name2) == ("train->valid", "valid->train")
    assert (fit1, score1) == (score2, fit2) and (len(fit1), len(score1)) == (60, 59)


def test_class_weights_balance_the_present_classes():
    weights = folds.class_weights(np.array([0, 0, 0, 1]))
    assert weights == {0: pytest.approx(4 / 6), 1: pytest.approx(2.0)}


class Memorise:
    """A stand-in family: predicts the genre it saw most for an input's first value, else blues."""
    NAME = "memorise"

    @staticmethod
    def meta():
        return contract.ModelMeta("memorise", "1", contract.LABELS, 1000, 3000, {})

    @staticmethod
    def fit(inputs, genres, options):
        return dict(zip([float(x[0]) for x in inputs], genres, strict=True))

    @staticmethod
    def predict(seen, inputs):
        return [np.eye(len(contract.LABELS))[[contract.LABELS.index(seen.get(float(x[0]), "blues"))] * 2]
                for x in inputs]


def test_the_driver_scores_each_clip_once_per_repeat_on_unseen_folds(gtzan, clips):
    inputs = [np.array([i]) for i in range(len(clips))]  # unique per clip: memory cannot help
    groups = folds.artists(gtzan / "artists.csv", [c.stem for c in clips])
    result, answers = crossval.cross_validate(Memorise, clips, inputs, folds.grouped(clips, groups),
                                              argparse.Namespace())
    blues = sum(c.genre == "blues" for c in clips)
    assert result["repeats"] == 3 and result["tracks"] == len(clips) and len(result["folds"]) == 15
    assert result["track_accuracy"] == pytest.approx(blues / len(clips))  # only the fallback is ever right
    assert np.array(result["confusion"]).sum() == 3 * len(clips)
    assert result["track_accuracy_min"] == result["track_accuracy_max"]
    assert [sum(len(fold) for fold in repeat) for repeat in answers] == [len(clips)] * 3


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


def test_the_cli_lists_the_families():
    shown = subprocess.run([sys.executable, "-m", "export", "--help"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout
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


def tiny_model(path: Path, meta: contract.ModelMeta, segment_logits: np.ndarray, segment_music=None) -> Path:
    """A model that gives segment i the logits segment_logits[i] (it reads the segment's first
    sample as i), where meta names tags, tag j the score (j + 1) / 10 for every segment, and with
    segment_music, the output "music" segment_music[i]."""
    from onnx import TensorProto, helper, numpy_helper
    n = meta.segment_samples
    nodes = [helper.make_node("Slice", ["audio", "zero", "one", "one"], ["index_f"]),
             helper.make_node("Cast", ["index_f"], ["index"], to=TensorProto.INT64),
             helper.make_node("Squeeze", ["index", "one"], ["index_1d"]),
             helper.make_node("Gather", ["table", "index_1d"], ["logits"], axis=0),
             helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)]
    outputs = [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", len(meta.labels)])]
    consts = [numpy_helper.from_array(np.array([0], np.int64), "zero"),
              numpy_helper.from_array(np.array([1], np.int64), "one"),
              numpy_helper.from_array(segment_logits.astype(np.float32), "table")]
    if meta.tags:
        consts.append(numpy_helper.from_array(((np.arange(len(meta.tags)) + 1) / 10).astype(np.float32)[None],
                                              "tag_scores"))
        nodes += [helper.make_node("Mul", ["index_f", "zero_f"], ["nothing"]),
                  helper.make_node("Add", ["nothing", "tag_scores"], ["tags"])]
        consts.append(numpy_helper.from_array(np.array(0, np.float32), "zero_f"))
        outputs.append(helper.make_tensor_value_info("tags", TensorProto.FLOAT, ["batch", len(meta.tags)]))
    if segment_music is not None:
        consts.append(numpy_helper.from_array(np.asarray(segment_music, np.float32), "music_table"))
        nodes.append(helper.make_node("Gather", ["music_table", "index_1d"], ["music"], axis=0))
        outputs.append(helper.make_tensor_value_info("music", TensorProto.FLOAT, ["batch"]))
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["batch", n])],
                              outputs, initializer=consts)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    helper.set_model_props(proto, meta.to_props())
    path.write_bytes(proto.SerializeToString())
    return path


def ramp(segment_count: int, n: int) -> np.ndarray:
    """Audio whose segment i starts with the sample value i."""
    audio = np.zeros(segment_count * n, np.float32)
    audio[::n] = np.arange(segment_count)
    return audio


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
    top = float(model.Model(tiny_model(tmp_path / "probe.onnx", meta, logits)).run(ramp(2, 3000)).probabilities
                .mean(axis=0).max())
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
        "model_unavailable", "the model could not be loaded: the model has no output 'probabilities'")


def test_a_model_whose_scores_and_labels_differ_in_number_is_model_unavailable(tmp_path):
    meta = contract.ModelMeta("tiny", "1", contract.LABELS, 1000, 3000, {"kind": "test"})
    proto = onnx.load(tiny_model(tmp_path / "tiny.onnx", meta, np.zeros((1, 10))))
    onnx.helper.set_model_props(proto, dataclasses.replace(meta, labels=contract.LABELS[:9]).to_props())
    onnx.save(proto, tmp_path / "tiny.onnx")
    with pytest.raises(ClassifyError) as refused:
        model.get(tmp_path / "tiny.onnx")
    assert refused.value.message == "the model could not be loaded: the model gives 10 scores for 9 labels"


def test_a_model_is_loaded_once_per_process():
    assert model.get(ROOT / "models" / "genre_cnn.onnx") is model.get(str(ROOT / "models" / "genre_cnn.onnx"))
