"""The MFCC front-end as an ONNX graph: raw audio [batch, SEGMENT_SAMPLES] -> [batch, N_FRAMES, N_MFCC].

It reproduces librosa.feature.mfcc with the parameters of inference/spec.py (centred frames with
zero padding, periodic Hann window, power spectrum, Slaney mel bands, power_to_db with ref 1 and a
per-item top_db, orthonormal DCT-II). With `band_limit_hz`, the power spectrum above it is dropped
before the mel bands (as if the audio were brick-wall low-passed per frame). The same graph computes the training features (through
onnxruntime) and is the first half of the shipped model, so training and serving cannot drift.
"""
import numpy as np
import librosa
import onnx
import scipy.fft
from onnx import TensorProto, helper, numpy_helper

from inference import spec

OPSET = 18
INPUT = "audio"
OUTPUT = "mfcc"
POWER = "power"  # the power spectrum [batch, frames, bins]: where the serving twin starts
LOG_MEL = "log_mel"  # build_log_mel()'s output


def _power(n_fft: int, hop_length: int) -> tuple[list, dict]:
    """Nodes and constants from INPUT to POWER: centred zero-padded frames, periodic Hann window,
    |STFT|^2 [batch, frames, bins]. Shared by both front-ends (and cut off by the power twin)."""
    nodes = [
        helper.make_node("Pad", [INPUT, "pads"], ["padded"], mode="constant"),
        helper.make_node("Unsqueeze", ["padded", "unsqueeze_axes"], ["signal"]),
        helper.make_node("STFT", ["signal", "frame_step", "window", "frame_length"], ["stft"],
                         onesided=1),  # [batch, frames, bins, 2]
        helper.make_node("Mul", ["stft", "stft"], ["squares"]),
        helper.make_node("ReduceSum", ["squares", "last_axis"], [POWER], keepdims=0),
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


def _model(nodes, consts, name: str, segment_samples: int, output: str, output_shape: list) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", segment_samples])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", *output_shape])],
        initializer=[numpy_helper.from_array(v, k) for k, v in consts.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model, full_check=True)
    return model


def build(band_limit_hz: float | None = spec.BAND_LIMIT_HZ) -> onnx.ModelProto:
    """The front-end graph, opset OPSET, dynamic batch."""
    nodes, consts = _power(spec.N_FFT, spec.HOP_LENGTH)
    mel = librosa.filters.mel(sr=spec.SAMPLE_RATE, n_fft=spec.N_FFT, n_mels=spec.N_MELS)
    if band_limit_hz is not None:
        mel[:, librosa.fft_frequencies(sr=spec.SAMPLE_RATE, n_fft=spec.N_FFT) > band_limit_hz] = 0
    dct = scipy.fft.dct(np.eye(spec.N_MELS), type=2, norm="ortho", axis=0)[: spec.N_MFCC]
    nodes += [
        helper.make_node("MatMul", [POWER, "mel_t"], ["mel"]),
        helper.make_node("Max", ["mel", "amin"], ["mel_floored"]),
        helper.make_node("Log", ["mel_floored"], ["ln_mel"]),
        helper.make_node("Mul", ["ln_mel", "ten_over_ln10"], ["db"]),
        helper.make_node("ReduceMax", ["db", "frame_mel_axes"], ["db_max"], keepdims=1),
        helper.make_node("Sub", ["db_max", "top_db"], ["db_floor"]),
        helper.make_node("Max", ["db", "db_floor"], ["db_clipped"]),
        helper.make_node("MatMul", ["db_clipped", "dct_t"], [OUTPUT]),
    ]
    consts |= {
        "mel_t": mel.T.astype(np.float32),  # [bins, mels]
        "amin": np.array(spec.AMIN, dtype=np.float32),
        "ten_over_ln10": np.array(10.0 / np.log(10.0), dtype=np.float32),
        "top_db": np.array(spec.TOP_DB, dtype=np.float32),
        "dct_t": dct.T.astype(np.float32),  # [mels, mfcc]
        "frame_mel_axes": np.array([1, 2], dtype=np.int64),
    }
    return _model(nodes, consts, "mfcc_frontend", spec.SEGMENT_SAMPLES, OUTPUT, [spec.N_FRAMES, spec.N_MFCC])


def build_log_mel(sample_rate: int, segment_samples: int, n_fft: int, hop_length: int, n_mels: int,
                  frames: int) -> onnx.ModelProto:
    """musicnn's front-end: raw audio [batch, segment_samples] -> log10(10000 * mel power + 1)
    [batch, frames, n_mels], as librosa.feature.melspectrogram (centred, zero-padded, periodic
    Hann, Slaney mel) computes it; the frames past `frames` are dropped."""
    nodes, consts = _power(n_fft, hop_length)
    nodes += [
        helper.make_node("MatMul", [POWER, "mel_t"], ["mel"]),
        helper.make_node("Mul", ["mel", "scale"], ["mel_scaled"]),
        helper.make_node("Add", ["mel_scaled", "one"], ["mel_plus_one"]),
        helper.make_node("Log", ["mel_plus_one"], ["ln_mel"]),
        helper.make_node("Mul", ["ln_mel", "one_over_ln10"], ["log_mel_all"]),
        helper.make_node("Slice", ["log_mel_all", "starts", "ends", "frame_axis"], [LOG_MEL]),
    ]
    consts |= {
        "mel_t": librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels).T.astype(np.float32),
        "scale": np.array(10000, dtype=np.float32), "one": np.array(1, dtype=np.float32),
        "one_over_ln10": np.array(1 / np.log(10.0), dtype=np.float32),
        "starts": np.array([0], dtype=np.int64), "ends": np.array([frames], dtype=np.int64),
        "frame_axis": np.array([1], dtype=np.int64),
    }
    return _model(nodes, consts, "log_mel_frontend", segment_samples, LOG_MEL, [frames, n_mels])


class Frontend:
    """Runs the front-end graph with onnxruntime: audio [n, SEGMENT_SAMPLES] -> MFCC [n, frames, mfcc]."""

    def __init__(self, band_limit_hz: float | None = spec.BAND_LIMIT_HZ):
        import onnxruntime as ort
        self._session = ort.InferenceSession(build(band_limit_hz).SerializeToString(),
                                             providers=["CPUExecutionProvider"])

    def __call__(self, audio: np.ndarray, batch: int = 64) -> np.ndarray:
        audio = np.asarray(audio, dtype=np.float32)
        parts = [self._session.run([OUTPUT], {INPUT: audio[i:i + batch]})[0]
                 for i in range(0, len(audio), batch)]
        return np.concatenate(parts) if parts else np.zeros((0, spec.N_FRAMES, spec.N_MFCC), np.float32)
