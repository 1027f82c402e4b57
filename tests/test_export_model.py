"""export/: the in-graph MFCCs against librosa, ONNX against Keras, the seed's size, a tiny run."""
import json

import librosa
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from export import architectures, dataset, evaluate, frontend, to_onnx, train
from inference import segments, spec

CLIPS = ("blues.00000", "blues.00040", "classical.00000", "metal.00000", "reggae.00000")  # blues.00040: 16 kHz


@pytest.fixture(scope="module")
def loaded(gtzan):
    clips = [c for c in dataset.find_clips(gtzan) if c.stem in CLIPS]
    assert {c.stem for c in clips} == set(CLIPS)
    return dataset.load(clips)


def test_frontend_matches_librosa_on_real_clips(loaded):
    front = frontend.Frontend()
    for clip, audio in loaded:
        batch = segments.split(audio, spec.SEGMENT_SAMPLES)[:4]
        ours = front(batch)
        ref = np.stack([librosa.feature.mfcc(y=s, sr=spec.SAMPLE_RATE, n_mfcc=spec.N_MFCC, n_fft=spec.N_FFT,
                                             hop_length=spec.HOP_LENGTH).T for s in batch])
        assert ours.shape == ref.shape == (len(batch), spec.N_FRAMES, spec.N_MFCC)
        assert np.abs(ref).max() > 100, clip.stem
        assert np.abs(ours - ref).max() <= 0.01, clip.stem


def test_frontend_handles_silence_like_librosa():
    silent = np.zeros((1, spec.SEGMENT_SAMPLES), np.float32)
    ref = librosa.feature.mfcc(y=silent[0], sr=spec.SAMPLE_RATE, n_mfcc=spec.N_MFCC).T
    assert np.abs(frontend.Frontend()(silent)[0] - ref).max() <= 0.01


def test_seed_architecture_has_the_seeds_parameter_count():
    assert architectures.seed().count_params() == 98_058


@pytest.mark.parametrize("arch", architectures.ARCHITECTURES)
def test_train_export_evaluate_round_trip(loaded, arch, tmp_path):
    model = train.fit(loaded, arch, epochs=2, per_clip=4)
    path = to_onnx.save(model, tmp_path, {"arch": arch})
    exported = onnx.load(path)
    meta = {p.key: p.value for p in exported.metadata_props}
    assert json.loads(meta["labels"]) == list(spec.LABELS)
    assert int(meta["sample_rate"]) == spec.SAMPLE_RATE and int(meta["segment_samples"]) == spec.SEGMENT_SAMPLES
    assert min(op.version for op in exported.opset_import if op.domain in ("", "ai.onnx")) >= 17
    assert path.stat().st_size < 2**20
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["onnx_bytes"] == path.stat().st_size and card["arch"] == arch

    # ONNX on raw audio == Keras on librosa-exact MFCCs, for a batch of any size
    audio = np.concatenate([segments.split(a, spec.SEGMENT_SAMPLES)[:3] for _, a in loaded])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[0] != 1 and session.get_outputs()[0].name == "probabilities"
    onnx_p = session.run(None, {"audio": audio})[0]
    keras_p = model.predict(frontend.Frontend()(audio), verbose=0)
    assert onnx_p.shape == (len(audio), len(spec.LABELS))
    assert np.abs(onnx_p - keras_p).max() <= 1e-5
    assert (onnx_p.argmax(1) == keras_p.argmax(1)).all()

    labels, predictions = evaluate.predict(path, loaded)
    metrics = evaluate.summarize(labels, predictions)
    assert metrics["tracks"] == len(loaded) and metrics["segments"] == 10 * len(loaded)
    assert np.array(metrics["confusion"]).sum() == len(loaded)
    assert "track-level accuracy" in evaluate.report(metrics)
