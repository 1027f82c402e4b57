"""Front-ends as ONNX graphs: raw audio [batch, segment_samples] -> features [batch, frames, n].

build() reads a family's `features` parameters (the same dict the model's metadata carries, see
inference/contract.py), so the front-end and what the model says of it cannot drift:
- kind "mfcc": librosa.feature.mfcc (centred frames with zero padding, periodic Hann window, power
  spectrum, Slaney mel bands, power_to_db with ref 1 and a per-item top_db, orthonormal DCT-II);
  with `band_limit_hz`, the power spectrum above it is dropped before the mel bands (as if the
  audio were brick-wall low-passed per frame);
- kind "log_mel": musicnn's log10(10000 * mel power + 1), as librosa.feature.melspectrogram.
The same graph computes the training features (through onnxruntime) and is the first half of the
shipped model, so training and serving cannot drift. Both kinds share the STFT-to-power nodes,
where the serving twin starts (export/to_onnx.py).
"""
import hashlib
import json

import librosa
import numpy as np
import onnx
import scipy.fft
from onnx import TensorProto, helper, numpy_helper

from inference.contract import AUDIO_INPUT, POWER_INPUT

OPSET = 18


def _power(n_fft: int, hop_length: int) -> tuple[list, dict]:
    """Nodes and constants from AUDIO_INPUT to POWER_INPUT: centred zero-padded frames, periodic
    Hann window, |STFT|^2 [batch, frames, bins]."""
    nodes = [
        helper.make_node("Pad", [AUDIO_INPUT, "pads"], ["padded"], mode="constant"),
        helper.make_node("Unsqueeze", ["padded", "unsqueeze_axes"], ["signal"]),
        helper.make_node("STFT", ["signal", "frame_step", "window", "frame_length"], ["stft"],
                         onesided=1),  # [batch, frames, bins, 2]
        helper.make_node("Mul", ["stft", "stft"], ["squares"]),
        helper.make_node("ReduceSum", ["squares", "last_axis"], [POWER_INPUT], keepdims=0),
    ]
    consts = {
        "pads": np.array([0, n_fft // 2, 0, n_fft // 2], dtype=np.int64),
        "frame_step": np.array(hop_length, dtype=np.int64),
        "window": librosa.filters.get_window("hann", n_fft, fftbins=True).astype(np.float32),
        "frame_length": np.array(n_fft, dtype=np.int64),
        "unsqueeze_axes": np.array([2], dtype=np.int64),
        "last_axis": np.array([-1], dtype=np.int64),
    }
    return nodes, consts


def _mfcc(sample_rate: int, p: dict) -> tuple[list, dict]:
    """Nodes and constants from POWER_INPUT to "mfcc" for kind "mfcc"."""
    mel = librosa.filters.mel(sr=sample_rate, n_fft=p["n_fft"], n_mels=p["n_mels"])
    if p.get("band_limit_hz") is not None:
        mel[:, librosa.fft_frequencies(sr=sample_rate, n_fft=p["n_fft"]) > p["band_limit_hz"]] = 0
    dct = scipy.fft.dct(np.eye(p["n_mels"]), type=2, norm="ortho", axis=0)[: p["n_mfcc"]]
    nodes = [
        helper.make_node("MatMul", [POWER_INPUT, "mel_t"], ["mel"]),
        helper.make_node("Max", ["mel", "amin"], ["mel_floored"]),
        helper.make_node("Log", ["mel_floored"], ["ln_mel"]),
        helper.make_node("Mul", ["ln_mel", "ten_over_ln10"], ["db"]),
        helper.make_node("ReduceMax", ["db", "frame_mel_axes"], ["db_max"], keepdims=1),
        helper.make_node("Sub", ["db_max", "top_db"], ["db_floor"]),
        helper.make_node("Max", ["db", "db_floor"], ["db_clipped"]),
        helper.make_node("MatMul", ["db_clipped", "dct_t"], ["mfcc"]),
    ]
    consts = {
        "mel_t": mel.T.astype(np.float32),  # [bins, mels]
        "amin": np.array(p["amin"], dtype=np.float32),
        "ten_over_ln10": np.array(10.0 / np.log(10.0), dtype=np.float32),
        "top_db": np.array(p["top_db"], dtype=np.float32),
        "dct_t": dct.T.astype(np.float32),  # [mels, mfcc]
        "frame_mel_axes": np.array([1, 2], dtype=np.int64),
    }
    return nodes, consts


def _log_mel(sample_rate: int, p: dict) -> tuple[list, dict]:
    """Nodes and constants from POWER_INPUT to "log_mel" for kind "log_mel" (the frames past
    p["frames"] are dropped)."""
    nodes = [
        helper.make_node("MatMul", [POWER_INPUT, "mel_t"], ["mel"]),
        helper.make_node("Mul", ["mel", "scale"], ["mel_scaled"]),
        helper.make_node("Add", ["mel_scaled", "one"], ["mel_plus_one"]),
        helper.make_node("Log", ["mel_plus_one"], ["ln_mel"]),
        helper.make_node("Mul", ["ln_mel", "one_over_ln10"], ["log_mel_all"]),
        helper.make_node("Slice", ["log_mel_all", "starts", "ends", "frame_axis"], ["log_mel"]),
    ]
    consts = {
        "mel_t": librosa.filters.mel(sr=sample_rate, n_fft=p["n_fft"], n_mels=p["n_mels"]).T.astype(np.float32),
        "scale": np.array(10000, dtype=np.float32), "one": np.array(1, dtype=np.float32),
        "one_over_ln10": np.array(1 / np.log(10.0), dtype=np.float32),
        "starts": np.array([0], dtype=np.int64), "ends": np.array([p["frames"]], dtype=np.int64),
        "frame_axis": np.array([1], dtype=np.int64),
    }
    return nodes, consts


# kind -> nodes from the power spectrum on, and the parameter that sizes the output; the output is
# named after the kind
KINDS = {"mfcc": (_mfcc, "n_mfcc"), "log_mel": (_log_mel, "n_mels")}


def build(sample_rate: int, segment_samples: int, features: dict) -> onnx.ModelProto:
    """The front-end graph of `features` (its "kind" and parameters), opset OPSET, dynamic batch."""
    tail, width = KINDS[features["kind"]]
    nodes, consts = _power(features["n_fft"], features["hop_length"])
    more_nodes, more_consts = tail(sample_rate, features)
    graph = helper.make_graph(
        nodes + more_nodes, f"{features['kind']}_frontend",
        [helper.make_tensor_value_info(AUDIO_INPUT, TensorProto.FLOAT, ["batch", segment_samples])],
        [helper.make_tensor_value_info(features["kind"], TensorProto.FLOAT,
                                       ["batch", features["frames"], features[width]])],
        initializer=[numpy_helper.from_array(v, k) for k, v in (consts | more_consts).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model, full_check=True)
    return model


def digest(features: dict) -> str:
    """A short name of a front-end's parameters: models that share it compute the same input."""
    return hashlib.sha256(json.dumps(features, sort_keys=True).encode()).hexdigest()[:8]


class Frontend:
    """Runs a front-end graph with onnxruntime: audio [n, segment_samples] -> features [n, frames, width]."""

    def __init__(self, sample_rate: int, segment_samples: int, features: dict):
        import onnxruntime as ort
        self._session = ort.InferenceSession(build(sample_rate, segment_samples, features).SerializeToString(),
                                             providers=["CPUExecutionProvider"])
        self._output = features["kind"]
        self._empty = np.zeros((0, features["frames"], features[KINDS[features["kind"]][1]]), np.float32)

    def __call__(self, audio: np.ndarray, batch: int = 64) -> np.ndarray:
        audio = np.asarray(audio, dtype=np.float32)
        parts = [self._session.run([self._output], {AUDIO_INPUT: audio[i:i + batch]})[0]
                 for i in range(0, len(audio), batch)]
        return np.concatenate(parts) if parts else self._empty
