"""export/ with the genre_cnn family: the in-graph MFCCs against librosa, ONNX against Keras, the
seed's size, a tiny train -> export -> evaluate run."""
import argparse
import json

import librosa
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from export import dataset, evaluate, to_onnx
from export.families import genre_cnn as cnn
from inference import contract, segments
from inference import model as serving

from conftest import ROOT

FEATURES = cnn.FEATURES

CLIPS = ("blues.00000", "blues.00040", "classical.00000", "metal.00000", "reggae.00000")  # blues.00040: 16 kHz


@pytest.fixture(scope="module")
def loaded(gtzan):
    clips = [c for c in dataset.find_clips(gtzan) if c.stem in CLIPS]
    assert {c.stem for c in clips} == set(CLIPS)
    return dataset.load(clips, cnn.SAMPLE_RATE)


def librosa_mfcc(segment: np.ndarray, band_limit_hz=None) -> np.ndarray:
    """librosa.feature.mfcc with the family's parameters; band-limited: power above the limit dropped."""
    rate, n_fft, hop = cnn.SAMPLE_RATE, FEATURES["n_fft"], FEATURES["hop_length"]
    if band_limit_hz is None:
        return librosa.feature.mfcc(y=segment, sr=rate, n_mfcc=FEATURES["n_mfcc"], n_fft=n_fft, hop_length=hop).T
    power = np.abs(librosa.stft(segment, n_fft=n_fft, hop_length=hop)) ** 2
    power[librosa.fft_frequencies(sr=rate, n_fft=n_fft) > band_limit_hz] = 0
    mel = librosa.feature.melspectrogram(S=power, sr=rate, n_mels=FEATURES["n_mels"])
    return librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=FEATURES["top_db"]), n_mfcc=FEATURES["n_mfcc"]).T


@pytest.mark.parametrize("band_limit_hz", [None, cnn.BAND_LIMIT_HZ], ids=["full-band", "band-limited"])
def test_frontend_matches_librosa_on_real_clips(loaded, band_limit_hz):
    front = cnn.mfcc(band_limit_hz)
    for clip, audio in loaded:
        batch = segments.split(audio, cnn.SEGMENT_SAMPLES)[:4]
        ours = front(batch)
        ref = np.stack([librosa_mfcc(s, band_limit_hz) for s in batch])
        assert ours.shape == ref.shape == (len(batch), FEATURES["frames"], FEATURES["n_mfcc"])
        assert np.abs(ref).max() > 100, clip.stem
        assert np.abs(ours - ref).max() <= 0.01, clip.stem


def test_frontend_handles_silence_like_librosa():
    silent = np.zeros((1, cnn.SEGMENT_SAMPLES), np.float32)
    assert np.abs(cnn.mfcc(None)(silent)[0] - librosa_mfcc(silent[0])).max() <= 0.01


def test_band_limit_makes_band_limited_audio_look_like_full_band(loaded):
    """A clip and its copy low-passed below the band limit (as 30 GTZAN clips are) differ ten times
    less in the band-limited features than in full-band MFCCs."""
    clip = segments.split(dict((c.stem, a) for c, a in loaded)["metal.00000"], cnn.SEGMENT_SAMPLES)[:4]
    spectrum = np.fft.rfft(clip, axis=1)
    spectrum[:, np.fft.rfftfreq(cnn.SEGMENT_SAMPLES, 1 / cnn.SAMPLE_RATE) > cnn.BAND_LIMIT_HZ - 100] = 0
    dull = np.fft.irfft(spectrum, n=cnn.SEGMENT_SAMPLES, axis=1).astype(np.float32)
    gap = {limit: np.abs(cnn.mfcc(limit)(clip) - cnn.mfcc(limit)(dull)).mean()
           for limit in (None, cnn.BAND_LIMIT_HZ)}
    assert gap[cnn.BAND_LIMIT_HZ] * 10 < gap[None]


def test_seed_architecture_has_the_seeds_parameter_count():
    assert cnn.seed_network().count_params() == 98_058


@pytest.mark.parametrize("arch", ["cnn", "seed"])
def test_train_export_evaluate_round_trip(loaded, arch, tmp_path):
    options = argparse.Namespace(arch=arch, epochs=2, per_clip=4, seed=cnn.SEED)
    model = cnn.fit(cnn.inputs(loaded, options), [c.genre for c, _ in loaded], options)
    path = to_onnx.write(cnn.onnx(model, options), tmp_path / "genre_cnn.onnx", {"arch": arch})
    exported = onnx.load(path)
    meta = {p.key: p.value for p in exported.metadata_props}
    assert json.loads(meta["labels"]) == list(contract.LABELS)
    assert int(meta["sample_rate"]) == cnn.SAMPLE_RATE and int(meta["segment_samples"]) == cnn.SEGMENT_SAMPLES
    assert json.loads(meta["features"]) == FEATURES
    assert [(op.domain, op.version) for op in exported.opset_import if op.domain in ("", "ai.onnx")] == [("", 18)]
    assert path.stat().st_size < 2**20
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["onnx_bytes"] == path.stat().st_size and card["arch"] == arch

    # ONNX on raw audio == Keras on librosa-exact MFCCs, for a batch of any size
    audio = np.concatenate([segments.split(a, cnn.SEGMENT_SAMPLES)[:3] for _, a in loaded])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[0] != 1 and session.get_outputs()[0].name == "probabilities"
    onnx_p = session.run(None, {"audio": audio})[0]
    keras_p = model.predict(cnn.mfcc()(audio), verbose=0)
    assert onnx_p.shape == (len(audio), len(contract.LABELS))
    assert np.abs(onnx_p - keras_p).max() <= 1e-5
    assert (onnx_p.argmax(1) == keras_p.argmax(1)).all()

    # the serving twin (power spectrum in, numpy FFT in front) gives the same probabilities
    assert contract.twin_path(path).exists()
    served = serving.Model(path)
    assert served.meta.input == "power"
    for _, clip in loaded:
        size = cnn.SEGMENT_SAMPLES  # whole segments, cut here by hand: the tail dropped
        segment_p = session.run(None, {"audio": clip[: len(clip) // size * size].reshape(-1, size)})[0]
        assert np.abs(served.run(clip).probabilities - segment_p).max() <= 1e-5

    predictions = evaluate.predict(path, loaded)
    assert [np.abs(p - q).max() for (_, p), q in zip(predictions, cnn.predict(model, [a for _, a in loaded]),
                                                        strict=True)] == pytest.approx([0] * len(loaded), abs=1e-5)
    metrics = evaluate.summarize(predictions)
    assert metrics["tracks"] == len(loaded) and metrics["segments"] == 10 * len(loaded)
    assert np.array(metrics["confusion"]).sum() == len(loaded)
    assert "track-level accuracy" in evaluate.report(metrics)


def test_shipped_power_twin_is_derived_from_the_shipped_model(tmp_path):
    shipped = ROOT / "models" / "genre_cnn.onnx"
    copy = tmp_path / shipped.name
    copy.write_bytes(shipped.read_bytes())
    twin = to_onnx.write_twin(copy)
    assert twin.read_bytes() == shipped.with_name("genre_cnn.power.onnx").read_bytes()
    card = json.loads(shipped.with_suffix(".json").read_text())
    assert serving.Model(shipped).sha256 == card["sha256"]


def test_calibration_is_baked_into_the_model_and_its_twin(tmp_path, loaded):
    network = cnn.cnn_network(np.random.default_rng(0).normal(size=(8, *cnn.INPUT_SHAPE)))  # untrained will do
    uncalibrated = cnn.onnx(network, None)
    path = to_onnx.write(to_onnx.calibrated(cnn.onnx(network, None), 2.0, 0.55), tmp_path / "calibrated.onnx", {})
    audio = np.concatenate([segments.split(a, cnn.SEGMENT_SAMPLES)[:2] for _, a in loaded])
    raw = ort.InferenceSession(uncalibrated.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"audio": audio})[0]
    ours = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"audio": audio})[0]
    expected = np.exp(np.log(raw) / 2) / np.exp(np.log(raw) / 2).sum(axis=1, keepdims=True)
    assert np.abs(ours - expected).max() < 1e-5 and (ours.argmax(1) == raw.argmax(1)).all()
    served = serving.Model(path)  # the twin carries both
    assert served.meta.uncertain_below == 0.55 and served.meta.input == "power"
    first = segments.split(loaded[0][1], cnn.SEGMENT_SAMPLES)
    direct = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"audio": first})[0]
    assert np.abs(served.run(loaded[0][1]).probabilities - direct).max() <= 1e-5
