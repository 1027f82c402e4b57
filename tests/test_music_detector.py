"""export/music.py: the music detector fitted on small synthetic features, and appended to a
hand-built ONNX model that onnxruntime runs."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from export import music
from inference.contract import AUDIO_INPUT, FEATURES_OUTPUT, MUSIC_OUTPUT, OUTPUT

WIDTH = 12


def clouds(n_music=300, n_other=100, seed=0):
    """Two Gaussian clouds in WIDTH dimensions, columns on very different scales and offsets (the
    same for every seed)."""
    fixed, rng = np.random.default_rng(0), np.random.default_rng(seed)
    scale, offset = 10.0 ** fixed.uniform(-2, 3, WIDTH), fixed.normal(0, 50, WIDTH)
    shift = np.zeros(WIDTH)
    shift[:3] = 3.0  # music differs from the rest along three directions only
    music_x = (rng.standard_normal((n_music, WIDTH)) + shift) * scale + offset
    other_x = rng.standard_normal((n_other, WIDTH)) * scale + offset
    return music_x, other_x


def test_fit_separates_music_and_folds_the_standardisation_exactly():
    music_x, other_x = clouds()
    detector = music.fit(music_x, other_x)
    test_music, test_other = clouds(seed=1)
    assert np.mean(detector.probabilities(test_music) > 0.5) > 0.97
    assert np.mean(detector.probabilities(test_other) < 0.5) > 0.97
    x, y = np.concatenate([music_x, other_x]), np.r_[np.ones(300), np.zeros(100)]
    scaler = StandardScaler().fit(x)
    reference = LogisticRegression(C=music.C, class_weight="balanced", max_iter=5000).fit(scaler.transform(x), y)
    both = np.concatenate([test_music, test_other])
    assert np.allclose(detector.logits(both), reference.decision_function(scaler.transform(both)), atol=1e-8)


def test_classes_are_balanced():
    """Three times more music than not: a balanced fit still puts the boundary halfway."""
    music_x, other_x = clouds(n_music=900, n_other=300)
    detector = music.fit(music_x, other_x)
    halfway = (music_x.mean(0) + other_x.mean(0)) / 2
    assert detector.probabilities(halfway[None])[0] == pytest.approx(0.5, abs=0.1)


def tiny_model(width=WIDTH, extra_outputs=()) -> onnx.ModelProto:
    """audio [batch, 8] -> features [batch, width] (a fixed linear map) -> 3 probabilities."""
    rng = np.random.default_rng(0)
    init = [numpy_helper.from_array(rng.normal(size=(8, width)).astype(np.float32), "to_features"),
            numpy_helper.from_array(rng.normal(size=(width, 3)).astype(np.float32), "head")]
    nodes = [helper.make_node("MatMul", [AUDIO_INPUT, "to_features"], [FEATURES_OUTPUT]),
             helper.make_node("MatMul", [FEATURES_OUTPUT, "head"], ["logits"]),
             helper.make_node("Softmax", ["logits"], [OUTPUT], axis=-1)]
    outputs = [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", 3])]
    for name in (FEATURES_OUTPUT, *extra_outputs):
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", width]))
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info(AUDIO_INPUT, TensorProto.FLOAT,
                                                                             ["batch", 8])], outputs, init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


@pytest.mark.parametrize("batch", [1, 5])
def test_appended_output_is_the_detector_on_the_models_features(batch):
    detector = music.fit(*clouds())
    model = music.append(tiny_model(), detector)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    audio = np.random.default_rng(batch).normal(size=(batch, 8)).astype(np.float32)
    before = ort.InferenceSession(tiny_model().SerializeToString(), providers=["CPUExecutionProvider"])
    probabilities, features, music_p = session.run([OUTPUT, FEATURES_OUTPUT, MUSIC_OUTPUT], {AUDIO_INPUT: audio})
    assert music_p.shape == (batch,) and music_p.dtype == np.float32
    assert np.allclose(music_p, detector.probabilities(features), rtol=1e-4, atol=1e-6)
    assert np.array_equal(probabilities, before.run([OUTPUT], {AUDIO_INPUT: audio})[0])  # the genres unchanged


def test_append_refuses_a_model_without_features_and_replaces_a_detector():
    detector = music.fit(*clouds())
    no_features = tiny_model()
    del no_features.graph.output[1]
    with pytest.raises(ValueError, match="features"):
        music.append(no_features, detector)
    with pytest.raises(ValueError, match="13 wide, the detector's 12"):
        music.append(tiny_model(width=WIDTH + 1), detector)
    other = music.fit(*clouds(seed=7))
    twice = music.append(music.append(tiny_model(), detector), other)  # retrained: the new one, once
    assert [o.name for o in twice.graph.output].count(MUSIC_OUTPUT) == 1
    assert sum(i.name == "music_kernel" for i in twice.graph.initializer) == 1
    session = ort.InferenceSession(twice.SerializeToString(), providers=["CPUExecutionProvider"])
    audio = np.random.default_rng(3).normal(size=(4, 8)).astype(np.float32)
    features, music_p = session.run([FEATURES_OUTPUT, MUSIC_OUTPUT], {AUDIO_INPUT: audio})
    assert np.allclose(music_p, other.probabilities(features), rtol=1e-4, atol=1e-6)


def _wav(samples: np.ndarray, rate: int, subtype: str) -> bytes:
    import io

    import soundfile
    out = io.BytesIO()
    soundfile.write(out, samples, rate, format="WAV", subtype=subtype)
    return out.getvalue()


def _loud_files() -> dict[str, bytes]:
    """Loud noise and squares as files a user sends, drawn and shaped otherwise than export/nonmusic.py's
    (other rates, seeds, levels and frequencies), decoded by the function."""
    rng = np.random.default_rng(7)
    t16, t22 = np.arange(30 * 16000) / 16000, np.arange(30 * 22050) / 22050
    return {"int16 uniform white noise at full scale, 16 kHz": _wav(rng.uniform(-1, 1, len(t16)), 16000, "PCM_16"),
            "int16 Gaussian noise clipped x2, 16 kHz": _wav(np.clip(rng.standard_normal(len(t16)) / 2, -1, 1),
                                                            16000, "PCM_16"),
            "int16 Gaussian noise clipped x4, 22.05 kHz": _wav(np.clip(rng.standard_normal(len(t22)), -1, 1),
                                                               22050, "PCM_16"),
            "float Gaussian noise to 8x full scale": _wav(np.clip(rng.standard_normal(len(t16)) * 2, -8, 8),
                                                          16000, "FLOAT"),
            "float uniform noise to 16x full scale": _wav(rng.uniform(-16, 16, len(t16)), 16000, "FLOAT"),
            "100 Hz square at 16x full scale": _wav(16 * np.sign(np.sin(2 * np.pi * 100 * t16 + 0.1)), 16000,
                                                    "FLOAT"),
            "300 Hz square at 12x full scale, 22.05 kHz": _wav(12 * np.sign(np.sin(2 * np.pi * 300 * t22 + 0.1)),
                                                               22050, "FLOAT")}


@pytest.mark.parametrize("name", list(_loud_files()))
def test_the_shipped_model_calls_loud_noise_not_music(model_path, name):
    """Was music 0.66-1.0 for four of these, not uncertain (the non-music set stopped at -1 dBFS)."""
    from inference import config, pipeline
    settings = config.Settings(model_path=model_path)
    answer = pipeline.upload(_loud_files()[name], settings)
    assert answer["music"] < 0.5 and answer["uncertain"], (answer["music"], answer["genre"], answer["confidence"])
