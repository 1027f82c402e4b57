"""The model contract: what export/ writes into a model's ONNX metadata and inference/ reads back.

Every model takes mono float32 audio `[batch, segment_samples]` at `sample_rate` on its input
AUDIO_INPUT and returns `[batch, len(labels)]` probabilities on OUTPUT. Its serving twin (beside
it as twin_path(path), see export/to_onnx.py) takes the power spectrum on POWER_INPUT instead.
The metadata_props (strings) hold a ModelMeta; each model family keeps its own front-end
constants (export/families/), so the serving code never assumes a sample rate or a feature.
"""
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

LABELS = ("blues", "classical", "country", "disco", "hiphop",
          "jazz", "metal", "pop", "reggae", "rock")
SEGMENT_SECONDS = 3  # every family classifies 3-s segments; a track's scores pool its segments'

AUDIO_INPUT, POWER_INPUT, OUTPUT = "audio", "power", "probabilities"
TAGS_OUTPUT = "tags"  # a second output, [batch, len(tags)], where the metadata names tags
# Optional outputs: what the model's head reads [batch, n] where the metadata has a features_id (for a
# pretrained backbone, its features, which export/ caches and trains new heads on), and, computed
# from them, each segment's probability of being music [batch] (export/music.py) and of belonging to
# one of the model's labels [batch] (export/in_labels.py)
FEATURES_OUTPUT, MUSIC_OUTPUT, IN_LABELS_OUTPUT = "features", "music", "in_labels"
TWIN_SUFFIX = ".power.onnx"
# How a window's segment probabilities make the track's (inference/segments.py): their mean, or
# the softmax of the mean of their logarithms, which for a linear head equals the head applied
# to the mean of the segments' features (a clip-level head).
POOLINGS = ("mean", "mean_logits")


class ContractError(ValueError):
    """A model's metadata lacks a key or holds a value of the wrong kind."""


@dataclass(frozen=True)
class ModelMeta:
    name: str
    version: str
    labels: tuple[str, ...]
    sample_rate: int
    segment_samples: int
    features: dict  # the front-end's parameters (kind, n_fft, hop_length, ...)
    batch: int = 0  # segments per onnxruntime run; 0: all of a window's at once
    pooling: str = "mean"  # one of POOLINGS
    tags: tuple[str, ...] = ()  # the names of TAGS_OUTPUT's scores (none: no such output)
    uncertain_below: float = 0.0  # a track's top probability under this is flagged uncertain
    features_id: str = ""  # names FEATURES_OUTPUT's kind: models with the same id give the same features
    input: str = AUDIO_INPUT  # POWER_INPUT for a serving twin
    spectrum_bins: int = 0  # a twin's power-spectrum bins
    source_sha256: str = ""  # a twin's: the sha256 of the model file it was derived from

    def to_props(self) -> dict[str, str]:
        """metadata_props: every value a string (labels and features as JSON), defaults left out."""
        return {f.name: _format(getattr(self, f.name)) for f in dataclasses.fields(self)
                if getattr(self, f.name) != f.default}

    @classmethod
    def from_props(cls, props: dict[str, str]) -> "ModelMeta":
        """The ModelMeta of a model's metadata_props; ContractError naming the missing or bad key."""
        values = {}
        for f in dataclasses.fields(cls):
            if f.name not in props:
                if f.default is dataclasses.MISSING:
                    raise ContractError(f"the model's metadata has no {f.name!r}")
                continue
            try:
                values[f.name] = _parse(f.type, props[f.name])
            except (TypeError, ValueError):
                raise ContractError(f"the model's metadata {f.name!r} is not a valid {f.type}") from None
        meta = cls(**values)
        meta._check()
        return meta

    def _check(self):
        """ContractError naming the first value out of its range."""
        if self.pooling not in POOLINGS:
            raise ContractError(f"the model's metadata 'pooling' is not one of {POOLINGS}")
        if not self.labels or len(set(self.labels)) < len(self.labels) or not all(self.labels):
            raise ContractError("the model's metadata 'labels' must name one label or more, each once")
        for key, least in (("sample_rate", 1), ("segment_samples", 1), ("batch", 0), ("spectrum_bins", 0)):
            if getattr(self, key) < least:
                raise ContractError(f"the model's metadata {key!r} must be {least} or more")
        if not 0 <= self.uncertain_below <= 1:  # and not NaN
            raise ContractError("the model's metadata 'uncertain_below' must be from 0 to 1")

    def twin(self, spectrum_bins: int, source_sha256: str) -> "ModelMeta":
        """The metadata of the serving twin of the model file whose sha256 is source_sha256."""
        return dataclasses.replace(self, input=POWER_INPUT, spectrum_bins=spectrum_bins, source_sha256=source_sha256)


def _format(value) -> str:
    return json.dumps(value) if isinstance(value, (dict, tuple)) else str(value)


def _parse(kind, text: str):
    if kind in (int, float):
        return kind(text)
    if kind is dict:
        value = json.loads(text)
        if not isinstance(value, dict):
            raise ValueError(text)
        return value
    if kind == tuple[str, ...]:
        value = json.loads(text)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(text)
        return tuple(value)
    return text


def twin_path(path: Path) -> Path:
    """Where a model's serving twin lies: <name>.power.onnx beside <name>.onnx."""
    path = Path(path)
    return path.with_name(path.stem + TWIN_SUFFIX)
