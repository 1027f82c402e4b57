"""export/musicnn.py and the genre_musicnn family: the Keras port of musicnn's MSD network against the
original TF1 graph, the log-mel front-end against librosa, the export against Keras, and the
shipped genre_musicnn model."""
import json
import shutil
from pathlib import Path

import keras
import librosa
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conftest import ROOT
from export import frontend, musicnn, to_onnx
from export.families import genre_musicnn as family
from inference import contract, model, segments


@pytest.fixture(scope="module")
def patches(gtzan) -> np.ndarray:
    """One 3-s log-mel patch from the first clip of four genres."""
    clips = [sorted((gtzan / genre).glob("*.flac"))[0] for genre in ("rock", "jazz", "classical", "hiphop")]
    return np.stack([musicnn.log_mel(librosa.load(clip, sr=musicnn.SAMPLE_RATE, duration=6)[0])[:musicnn.N_FRAMES]
                     for clip in clips])


def test_the_port_gives_the_original_tag_scores(patches):
    ported = musicnn.load().predict(patches, verbose=0)[0]
    original = musicnn.original()(patches)
    assert ported.shape == original.shape == (4, len(musicnn.TAGS))
    assert np.abs(ported - original).max() <= 1e-4
    top = [musicnn.TAGS[row.argmax()] for row in original]
    assert top[0] == "rock" and top[1] == "jazz" and top[3] == "Hip-Hop", top  # sane tags, not noise


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


def test_export_gives_the_keras_scores_from_raw_audio(segments_16k, tmp_path):
    keras.utils.set_random_seed(0)
    net = family.backbone()
    head = keras.Sequential([keras.Input((net.output.shape[-1],)),
                             keras.layers.Dense(len(contract.LABELS), activation="softmax")])
    path = to_onnx.write(family.onnx(head), tmp_path / "genre_musicnn.onnx", {})
    reference = head(net(np.stack([musicnn.log_mel(s)[:musicnn.N_FRAMES] for s in segments_16k]))).numpy()
    full = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"audio": segments_16k})[0]
    assert np.abs(full - reference).max() <= 1e-4
    served = model.Model(path)  # runs the power twin, fed by numpy's FFT
    assert (served.meta.sample_rate, served.meta.segment_samples, served.meta.batch) == (16000, 48000, 1)
    probabilities, tags = served.run(segments_16k.reshape(-1))
    assert tags is None and np.abs(probabilities - full).max() <= 1e-5


def test_the_shipped_model_and_its_twin(tmp_path):
    shipped = ROOT / "models" / "genre_musicnn.onnx"
    meta = {p.key: p.value for p in onnx.load(shipped).metadata_props}
    assert (meta["name"], meta["sample_rate"], meta["segment_samples"]) == ("genre_musicnn", "16000", "48000")
    assert json.loads(meta["labels"]) == list(contract.LABELS)
    copy = Path(shutil.copy(shipped, tmp_path / shipped.name))
    twin = to_onnx.write_twin(copy)
    assert twin.read_bytes() == shipped.with_name("genre_musicnn.power.onnx").read_bytes()
    card = json.loads((ROOT / "models" / "crossval_musicnn.json").read_text())
    assert card["tracks"] == 119 and set(card["folds"]) == {"train->valid", "valid->train"}
