"""export/musicnn.py and the genre_musicnn family: the Keras port of musicnn's MSD network against the
original TF1 graph, the log-mel front-end against librosa, the export against Keras, and the
shipped genre_musicnn model."""
import argparse
import json
import shutil
from pathlib import Path

import keras
import librosa
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from export import frontend, musicnn, to_onnx
from export.families import genre_musicnn as family
from inference import contract, model, segments

from conftest import ROOT


@pytest.fixture(scope="module")
def patches(gtzan) -> np.ndarray:
    """One 3-s log-mel patch from the first clip of four genres."""
    clips = [sorted((gtzan / genre).glob("*.flac"))[0] for genre in ("rock", "jazz", "classical", "hiphop")]
    return np.stack([musicnn.log_mel(librosa.load(clip, sr=musicnn.SAMPLE_RATE, duration=6)[0])[:musicnn.N_FRAMES]
                     for clip in clips])


@pytest.mark.parametrize("weights, expected", [("MSD", ["rock", "jazz", None, "Hip-Hop"]),
                                               ("MTT", [None, None, "classical", None])])
def test_the_port_gives_the_original_tag_scores(patches, weights, expected):
    ported = musicnn.load(weights).predict(patches, verbose=0)[0]
    original = musicnn.original(weights)(patches)
    assert ported.shape == original.shape == (4, len(musicnn.TAGS[weights]))
    assert np.abs(ported - original).max() <= 1e-4
    top = [musicnn.TAGS[weights][row.argmax()] for row in original]
    assert all(e in (None, t) for e, t in zip(expected, top, strict=True)), top  # sane tags, not noise


@pytest.fixture(scope="module")
def segments_16k(gtzan) -> np.ndarray:
    """Four 3-s segments at 16 kHz from two clips."""
    audio = [librosa.load(sorted((gtzan / g).glob("*.flac"))[0], sr=musicnn.SAMPLE_RATE, duration=6)[0]
             for g in ("metal", "reggae")]
    return segments.split(np.concatenate(audio), family.SEGMENT_SAMPLES)


def test_the_onnx_front_end_is_librosas_log_mel(segments_16k):
    front = frontend.build(family.SAMPLE_RATE, family.SEGMENT_SAMPLES, family.FEATURES)
    session = ort.InferenceSession(front.SerializeToString(), providers=["CPUExecutionProvider"])
    ours = session.run(None, {contract.AUDIO_INPUT: segments_16k})[0]
    reference = np.stack([musicnn.log_mel(s)[:musicnn.N_FRAMES] for s in segments_16k])
    assert ours.shape == reference.shape == (4, musicnn.N_FRAMES, musicnn.N_MELS)
    assert np.abs(ours - reference).max() <= 1e-4


def test_export_gives_the_keras_scores_and_tags_from_raw_audio(segments_16k, tmp_path):
    keras.utils.set_random_seed(0)
    net = family.backbone()
    head = keras.Sequential([keras.Input((net.output.shape[-1],)),
                             keras.layers.Dense(len(contract.LABELS), activation="softmax")])
    path = to_onnx.write(family.onnx(head, argparse.Namespace(backbone="MSD")), tmp_path / "genre_musicnn.onnx", {})
    features = net(np.stack([musicnn.log_mel(s)[:musicnn.N_FRAMES] for s in segments_16k])).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    full, tags = session.run(["probabilities", "tags"], {"audio": segments_16k})
    assert np.abs(full - head(features).numpy()).max() <= 1e-4
    assert np.abs(tags - features[:, -50:]).max() <= 1e-4  # the network's own tag scores
    served = model.Model(path)  # runs the power twin, fed by numpy's FFT
    assert (served.meta.sample_rate, served.meta.segment_samples, served.meta.batch) == (16000, 48000, 1)
    assert served.meta.tags == musicnn.TAGS["MSD"] and served.meta.pooling == "mean_logits"
    scores = served.run(segments_16k.reshape(-1))
    assert np.abs(scores.probabilities - full).max() <= 1e-5 and np.abs(scores.tags - tags).max() <= 1e-5


def test_the_clip_head_is_the_regression_on_mean_features():
    """Shipped per segment with logits averaged, the head equals the logistic regression applied
    to the clip's mean features."""
    rng = np.random.default_rng(0)
    features = [rng.normal(size=(int(rng.integers(3, 11)), 250)) + (i % 10) * 0.3 for i in range(60)]
    genres = [contract.LABELS[i % 10] for i in range(60)]
    head = family.fit(features, genres, argparse.Namespace(head="clip", c=0.01))
    means = np.stack([f.mean(axis=0) for f in features])
    scaler = StandardScaler().fit(means)
    regression = LogisticRegression(C=0.01, class_weight="balanced", max_iter=5000).fit(
        scaler.transform(means), [contract.LABELS.index(g) for g in genres])
    expected = regression.predict_proba(scaler.transform(means))
    pooled = np.stack([segments.pool(p, "mean_logits") for p in family.predict(head, features)])
    assert np.abs(pooled - expected).max() < 1e-4
    no_pop = [i for i, g in enumerate(genres) if g != "pop"]  # a genre absent from the clips: never answered
    head = family.fit([features[i] for i in no_pop], [genres[i] for i in no_pop],
                      argparse.Namespace(head="clip", c=0.01))
    assert max(p[:, contract.LABELS.index("pop")].max() for p in family.predict(head, features)) < 1e-9


def test_the_shipped_model_its_twin_and_its_calibration(tmp_path):
    shipped = ROOT / "models" / "genre_musicnn.onnx"
    meta = contract.ModelMeta.from_props({p.key: p.value for p in onnx.load(shipped).metadata_props})
    assert (meta.name, meta.sample_rate, meta.segment_samples, meta.batch) == ("genre_musicnn", 16000, 48000, 1)
    assert (meta.labels, meta.pooling, meta.tags) == (contract.LABELS, "mean_logits", musicnn.TAGS["MSD"])
    copy = Path(shutil.copy(shipped, tmp_path / shipped.name))
    twin = to_onnx.write_twin(copy)
    assert twin.read_bytes() == shipped.with_name("genre_musicnn.power.onnx").read_bytes()
    scores = json.loads((ROOT / "models" / "crossval_genre_musicnn.json").read_text())
    assert scores["clips"] == 119 and scores["grouped"]["repeats"] == 3 and len(scores["grouped"]["folds"]) == 15
    assert set(scores["two_fold"]["folds"]) == {"train->valid", "valid->train"}
    card = json.loads(shipped.with_suffix(".json").read_text())
    assert card["calibration"] == scores["calibration"]  # what crossval measured is what the model carries
    assert meta.uncertain_below == scores["calibration"]["uncertain_below"]
    temperature = next(i for i in onnx.load(shipped).graph.initializer if i.name == "temperature")
    assert onnx.numpy_helper.to_array(temperature) == np.float32(scores["calibration"]["temperature"])
