"""The shipped ONNX model: one onnxruntime session per process, shared by all threads."""
import functools
import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from inference import contract, errors, features, segments

TOP_TAGS = 5
MUSIC_BELOW = 0.5  # a window whose P(music) is under this is flagged uncertain (export/music.py)


@dataclass(frozen=True)
class Scores:
    """A window's segment outputs: genre probabilities [n, labels], and where the model has them,
    tag scores [n, tags] and P(music) [n]."""
    probabilities: np.ndarray
    tags: np.ndarray | None = None
    music: np.ndarray | None = None


class Model:
    """An ONNX genre model and its metadata (contract.ModelMeta).

    `path` is the model that takes raw audio; when its serving twin (contract.twin_path) lies
    beside it, that one runs, fed by numpy's FFT (three times faster)."""

    def __init__(self, path: Path):
        path = Path(path)
        data = path.read_bytes()
        self.sha256 = hashlib.sha256(data).hexdigest()
        twin = contract.twin_path(path)
        options = ort.SessionOptions()
        # onnxruntime's threads spin after each run by default, taking the cores from the FFT threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(twin.read_bytes() if twin.exists() else data, options,
                                            providers=["CPUExecutionProvider"])
        self.meta = contract.ModelMeta.from_props(self.session.get_modelmeta().custom_metadata_map)
        self.labels, self.sample_rate = self.meta.labels, self.meta.sample_rate
        if [i.name for i in self.session.get_inputs()] != [self.meta.input]:
            raise contract.ContractError(f"the model's input is not {self.meta.input!r}")
        outputs = {o.name: o.shape for o in self.session.get_outputs()}
        self._outputs = [contract.OUTPUT] + ([contract.TAGS_OUTPUT] if self.meta.tags else [])
        self._outputs += [contract.MUSIC_OUTPUT] if contract.MUSIC_OUTPUT in outputs else []
        missing = set(self._outputs) - set(outputs)
        if missing:
            raise contract.ContractError(f"the model has no output {sorted(missing)[0]!r}")
        scores = outputs[contract.OUTPUT][-1]
        if scores != len(self.labels):
            raise contract.ContractError(f"the model gives {scores} scores for {len(self.labels)} labels")
        if self.meta.input == contract.POWER_INPUT:
            self._prepare = functools.partial(features.power_spectrum, n_fft=self.meta.features["n_fft"],
                                              hop_length=self.meta.features["hop_length"],
                                              bins=self.meta.spectrum_bins)
        else:
            self._prepare = lambda batch: batch

    def info(self) -> dict:
        """Name, version and the sha256 of the raw-audio model file (as in models/<name>.json)."""
        return {"name": self.meta.name, "version": self.meta.version, "sha256": self.sha256}

    def run(self, audio: np.ndarray) -> Scores:
        """A window's segment scores."""
        batch = segments.split(audio, self.meta.segment_samples)
        # segments per run: a large network's activations for a whole window cost hundreds of MiB
        step = self.meta.batch or len(batch)
        outputs = [self.session.run(self._outputs, {self.meta.input: self._prepare(batch[i:i + step])})
                   for i in range(0, len(batch), step)]
        joined = {name: np.concatenate([out[i] for out in outputs]) for i, name in enumerate(self._outputs)}
        return Scores(joined[contract.OUTPUT], joined.get(contract.TAGS_OUTPUT), joined.get(contract.MUSIC_OUTPUT))

    def classify(self, audio: np.ndarray, start: float = 0.0) -> dict:
        """The answer's verdict on a window that starts `start` s into the source: the genre, its
        confidence, whether that is too low to trust, every label's score, the segments' timeline
        and, where the model has them, its top tags and the probability that it is music (the
        window's and each segment's; under MUSIC_BELOW, the answer is uncertain). Probabilities to 4
        decimals (more is noise; the scores may then sum to 1 +- a few 1e-4)."""
        scores = self.run(audio)
        probabilities = scores.probabilities
        track = segments.pool(probabilities, self.meta.pooling)
        best = int(track.argmax())
        seconds = self.meta.segment_samples / self.meta.sample_rate
        # a single segment (under 6 s of audio) is too little to trust, whatever its score
        uncertain = bool(track[best] < self.meta.uncertain_below or len(probabilities) < 2)
        answer = {"genre": self.labels[best], "confidence": _rounded(track[best]), "uncertain": uncertain,
                  "scores": dict(zip(self.labels, map(_rounded, track), strict=True)),
                  "segments": len(probabilities),
                  "timeline": [{"start": round(start + i * seconds, 3), "genre": self.labels[int(p.argmax())],
                                "confidence": _rounded(p.max())} for i, p in enumerate(probabilities)]}
        if scores.music is not None:
            music = segments.pool_yes(scores.music)
            answer.update(music=_rounded(music), uncertain=uncertain or music < MUSIC_BELOW)
            for segment, p in zip(answer["timeline"], scores.music, strict=True):
                segment["music"] = _rounded(p)
        if scores.tags is not None:
            mean = scores.tags.mean(axis=0)
            answer["tags"] = [{"tag": self.meta.tags[i], "score": _rounded(mean[i])}
                              for i in mean.argsort()[::-1][:TOP_TAGS]]
        return answer


def _rounded(probability) -> float:
    return round(float(probability), 4)


_lock = threading.Lock()


@functools.cache
def _load(path: Path) -> Model:
    return Model(path)


def get(path: Path) -> Model:
    """The process-wide Model for `path`, loaded on first use."""
    with _lock:
        try:
            return _load(Path(path))
        except contract.ContractError as exc:
            raise errors.model_unavailable(f"the model could not be loaded: {exc}") from None
        except (OSError, KeyError, ValueError, ort.capi.onnxruntime_pybind11_state.Fail) as exc:
            raise errors.model_unavailable(f"the model could not be loaded ({exc.__class__.__name__})") from None
