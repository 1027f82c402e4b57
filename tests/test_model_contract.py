"""The model contract (inference/contract.py) on both sides, the shipped models' graphs, and the
shared export pieces: folds that keep artists apart, the cross-validation driver, the families' CLI."""
import argparse
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest

from conftest import ROOT
from export import crossval, dataset, folds
from inference import contract, model
from inference.errors import ClassifyError

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
    twin = meta.twin(200)
    assert (twin.input, twin.spectrum_bins) == ("power", 200)
    assert contract.ModelMeta.from_props(twin.to_props()) == twin
    assert contract.twin_path(Path("models/x.onnx")) == Path("models/x.power.onnx")


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
    def fit(inputs, genres, options):
        return dict(zip([float(x[0]) for x in inputs], genres, strict=True))

    @staticmethod
    def predict(seen, inputs):
        return [np.eye(len(contract.LABELS))[[contract.LABELS.index(seen.get(float(x[0]), "blues"))] * 2]
                for x in inputs]


def test_the_driver_scores_each_clip_once_per_repeat_on_unseen_folds(gtzan, clips):
    inputs = [np.array([i]) for i in range(len(clips))]  # unique per clip: memory cannot help
    groups = folds.artists(gtzan / "artists.csv", [c.stem for c in clips])
    result = crossval.cross_validate(Memorise, clips, inputs, folds.grouped(clips, groups), argparse.Namespace())
    blues = sum(c.genre == "blues" for c in clips)
    assert result["repeats"] == 3 and result["tracks"] == len(clips) and len(result["folds"]) == 15
    assert result["track_accuracy"] == pytest.approx(blues / len(clips))  # only the fallback is ever right
    assert np.array(result["confusion"]).sum() == 3 * len(clips)
    assert result["track_accuracy_min"] == result["track_accuracy_max"]


def test_the_cli_lists_the_families():
    shown = subprocess.run([sys.executable, "-m", "export", "--help"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout
    for name in ("genre_cnn", "genre_musicnn"):
        assert f"  {name} " in shown
    assert "crossval" in shown and "train" in shown and "evaluate" in shown
