"""The shipped ONNX model: one onnxruntime session per process, shared by all threads."""
import errno
import functools
import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from inference import contract, errors, features, segments

TOP_TAGS = 5
FEATURE_DECIMALS = 6  # float32 holds about 7 significant digits; features are of the order of 1
MUSIC_BELOW = 0.5  # a window whose P(music) is under this is flagged uncertain (export/music.py)
IN_LABELS_BELOW = 0.5  # and one whose P(in the model's labels) is under this (export/in_labels.py)


@dataclass(frozen=True)
class Scores:
    """A window's segment outputs: genre probabilities [n, labels], and where the model has them,
    tag scores [n, tags], the head's input features [n, features], P(music) [n] and P(in its labels) [n]."""
    probabilities: np.ndarray
    tags: np.ndarray | None = None
    features: np.ndarray | None = None
    music: np.ndarray | None = None
    in_labels: np.ndarray | None = None


_ORT = ort.capi.onnxruntime_pybind11_state
# what onnxruntime raises for a file it cannot run as a model: each its own subclass of Exception
ORT_LOAD_ERRORS = (_ORT.Fail, _ORT.InvalidProtobuf, _ORT.InvalidGraph, _ORT.InvalidArgument, _ORT.NoSuchFile,
                   _ORT.NotImplemented, _ORT.RuntimeException)


class Model:
    """An ONNX genre model and its metadata (contract.ModelMeta).

    `path` is the model that takes raw audio; when its serving twin (contract.twin_path) lies
    beside it, that one runs, fed by numpy's FFT (three times faster)."""

    def __init__(self, path: Path):
        path = Path(path)
        data = _model_bytes(path)
        self.sha256 = hashlib.sha256(data).hexdigest()
        twin = contract.twin_path(path)
        twinned = twin.exists()
        options = ort.SessionOptions()
        # onnxruntime's threads spin after each run by default, taking the cores from the FFT threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(_model_bytes(twin) if twinned else data, options,
                                            providers=["CPUExecutionProvider"])
        self.meta = contract.ModelMeta.from_props(self.session.get_modelmeta().custom_metadata_map)
        if twinned and self.meta.source_sha256 != self.sha256:  # a twin left from another model
            named = "another model" if self.meta.source_sha256 else "no model"
            raise contract.ContractError(f"its serving twin {twin} was not derived from it (the twin names {named}); "
                                         f"write the twin again: python -m export.to_onnx {path}")
        self.labels, self.sample_rate = self.meta.labels, self.meta.sample_rate
        if [i.name for i in self.session.get_inputs()] != [self.meta.input]:
            raise contract.ContractError(f"the model's input is not {self.meta.input!r}")
        outputs = {o.name: o.shape for o in self.session.get_outputs()}
        self._outputs = ([contract.OUTPUT] + [contract.TAGS_OUTPUT] * bool(self.meta.tags)
                         + [contract.FEATURES_OUTPUT] * bool(self.meta.features_id)
                         + [o for o in (contract.MUSIC_OUTPUT, contract.IN_LABELS_OUTPUT) if o in outputs])
        missing = set(self._outputs) - set(outputs)
        if missing:
            raise contract.ContractError(f"the model has no output {sorted(missing)[0]!r}")
        scores = outputs[contract.OUTPUT][-1]
        if scores != len(self.labels):
            raise contract.ContractError(f"the model gives {scores} scores for {len(self.labels)} labels")
        if self.meta.tags and outputs[contract.TAGS_OUTPUT][-1] != len(self.meta.tags):
            raise contract.ContractError(f"the model gives {outputs[contract.TAGS_OUTPUT][-1]} tag scores for "
                                         f"{len(self.meta.tags)} tags")
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
        return Scores(joined[contract.OUTPUT], joined.get(contract.TAGS_OUTPUT), joined.get(contract.FEATURES_OUTPUT),
                      joined.get(contract.MUSIC_OUTPUT), joined.get(contract.IN_LABELS_OUTPUT))

    def classify(self, audio: np.ndarray, start: float = 0.0, *, features: bool = False) -> dict:
        """The answer's verdict on a window that starts `start` s into the source: the genre, its
        confidence, whether that is too uncertain to trust and why, every label's score, the segments'
        timeline, where the model has them its top tags, the probability that it is music and that it
        is music of one of its labels (the window's and each segment's), and if asked its segments'
        features. Probabilities to 4 decimals (more is noise; the scores may then sum to 1 +- a few 1e-4)."""
        if features and not self.meta.features_id:
            raise errors.bad_parameter(f"the model {self.meta.name} has no features to give")
        scores = self.run(audio)
        probabilities = scores.probabilities
        track = segments.pool(probabilities, self.meta.pooling)
        best = int(track.argmax())
        seconds = self.meta.segment_samples / self.meta.sample_rate
        answer = {"genre": self.labels[best], "confidence": _rounded(track[best]), "uncertain": False,
                  "uncertain_reasons": [], "scores": dict(zip(self.labels, map(_rounded, track), strict=True)),
                  "segments": len(probabilities),
                  "timeline": [{"start": round(start + i * seconds, 3), "genre": self.labels[int(p.argmax())],
                                "confidence": _rounded(p.max())} for i, p in enumerate(probabilities)]}
        reasons = []
        for field, below, reason, per_segment in (("music", MUSIC_BELOW, "not_music", scores.music),
                                                  ("in_labels", IN_LABELS_BELOW, "outside_labels", scores.in_labels)):
            if per_segment is not None:
                answer[field] = _rounded(segments.pool_yes(per_segment))
                reasons += [reason] * (answer[field] < below)
                for segment, p in zip(answer["timeline"], per_segment, strict=True):
                    segment[field] = _rounded(p)
        # a single segment (under 6 s of audio) is too little to trust, whatever its score
        reasons += ["low_confidence"] * bool(track[best] < self.meta.uncertain_below or len(probabilities) < 2)
        answer.update(uncertain=bool(reasons), uncertain_reasons=reasons)
        if scores.tags is not None:
            mean = scores.tags.mean(axis=0)
            answer["tags"] = [{"tag": self.meta.tags[i], "score": _rounded(mean[i])}
                              for i in mean.argsort()[::-1][:TOP_TAGS]]
        if features:
            answer["features"] = {"id": self.meta.features_id,
                                  "segments": scores.features.astype(np.float64).round(FEATURE_DECIMALS).tolist()}
        return answer


def _rounded(probability) -> float:
    return round(float(probability), 4)


_lock = threading.Lock()
MAX_MODEL_BYTES = 2**31  # protobuf's limit on an ONNX file without external data


def _model_bytes(path: Path) -> bytes:
    """A model file's bytes; OSError for what is not a regular file (a FIFO would block, a device
    never end) or is larger than MAX_MODEL_BYTES."""
    if path.exists() and not path.is_file():
        raise FileNotFoundError(errno.ENOENT, f"{path} is not a regular file")
    if path.stat().st_size > MAX_MODEL_BYTES:
        raise OSError(errno.EFBIG, f"{path} is larger than an ONNX file can be (2 GiB)")
    return path.read_bytes()


def _opened(path: Path) -> Model:
    """Model(path); model_unavailable naming the path and the cause where it cannot be loaded."""
    try:
        return Model(path)
    except contract.ContractError as exc:
        cause = str(exc)
    except OSError as exc:
        cause = f"{exc.__class__.__name__}: {exc.strerror or exc}"
    except (KeyError, ValueError, *ORT_LOAD_ERRORS) as exc:
        first_line = str(exc).split("\n", 1)[0][:200]  # onnxruntime's can run long
        cause = f"{exc.__class__.__name__}: {first_line}" if first_line else exc.__class__.__name__
    raise errors.model_unavailable(f"the model {path} could not be loaded: {cause}")


@functools.cache
def _load(path: Path) -> Model:
    return _opened(path)


def get(path: Path) -> Model:
    """The process-wide Model for `path`, loaded on first use."""
    with _lock:
        return _load(Path(path))


@functools.cache
def checked(path: Path) -> dict:
    """The model's info() and labels, loaded once to check it and then let go: the server's start-up
    check runs before gunicorn forks its worker, which loads its own on first use."""
    found = _opened(Path(path))
    return {**found.info(), "labels": list(found.labels)}
