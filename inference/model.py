"""The shipped ONNX model: one onnxruntime session per process, shared by all threads."""
import functools
import hashlib
import json
import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort

from inference import features, segments
from inference.errors import ClassifyError


class Model:
    """An ONNX genre model and its metadata (labels, sample rate, segment length, version).

    `path` is the model that takes raw audio; when its power twin (<name>.power.onnx, written by
    export/to_onnx.py) lies beside it, that one runs, fed by numpy's FFT (three times faster)."""

    def __init__(self, path: Path):
        path = Path(path)
        data = path.read_bytes()
        self.sha256 = hashlib.sha256(data).hexdigest()
        twin = path.with_name(path.stem + ".power.onnx")
        options = ort.SessionOptions()
        # onnxruntime's threads spin after each run by default, taking the cores from the FFT threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(twin.read_bytes() if twin.exists() else data, options,
                                            providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        self.name, self.version = meta["name"], meta["version"]
        self.labels = json.loads(meta["labels"])
        self.sample_rate = int(meta["sample_rate"])
        self.segment_samples = int(meta["segment_samples"])
        self.input = self.session.get_inputs()[0].name
        # segments per run: a large network's activations for a whole window cost hundreds of MiB
        self.batch = int(meta.get("batch", 0)) or None
        if meta.get("input") == "power":
            params = json.loads(meta["features"])
            self._prepare = functools.partial(features.power_spectrum, n_fft=params["n_fft"],
                                              hop_length=params["hop_length"], bins=int(meta["spectrum_bins"]))
        else:
            self._prepare = lambda batch: batch

    def info(self) -> dict:
        """Name, version and the sha256 of the raw-audio model file (as in models/<name>.json)."""
        return {"name": self.name, "version": self.version, "sha256": self.sha256}

    def scores(self, audio: np.ndarray) -> tuple[np.ndarray, int]:
        """The track's score per label (mean over its segments) and the number of segments."""
        batch = segments.split(audio, self.segment_samples)
        step = self.batch or len(batch)
        probabilities = np.concatenate([self.session.run(None, {self.input: self._prepare(batch[i:i + step])})[0]
                                        for i in range(0, len(batch), step)])
        return segments.pool(probabilities), len(batch)


_lock = threading.Lock()


@functools.cache
def _load(path: Path) -> Model:
    return Model(path)


def get(path: Path) -> Model:
    """The process-wide Model for `path`, loaded on first use."""
    with _lock:
        try:
            return _load(Path(path))
        except (OSError, KeyError, ValueError, ort.capi.onnxruntime_pybind11_state.Fail) as exc:
            raise ClassifyError(503, "model_unavailable", f"the model could not be loaded ({exc.__class__.__name__})") from None
