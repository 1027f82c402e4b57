"""The music detector: per 3-s segment, the probability that it is music, read from the same
segment features as the genre head (musicnn's penultimate layer and its tag scores, [250]), so it
composes with any head fitted on them.

The method (chosen by export/music_compare.py, docs/music-detection.md): an L2 logistic
regression, classes balanced, on the standardised features of every segment, music (the
library's clips) against the synthesized non-music (export/nonmusic.py); the standardisation is
folded into one weight vector. append() adds it to an exported model's graph as the output
MUSIC_OUTPUT [segments], fed by its FEATURES_OUTPUT: a graph edit like to_onnx.calibrated().
A track's `music` pools its segments' as the genre head does (the mean of their logits).
`python -m export train` fits one on the library's music for every model that has features; where
the model's features are the shipped default's (the same features_id), its detector is that one
or the shipped model's (shipped(): a segment's logit the larger of the two, either()), so music
outside a narrow library's labels stays music: whether audio is music does not depend on the labels.
"""
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from scipy.special import expit
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from export import nonmusic
from inference import config, segments
from inference.contract import AUDIO_INPUT, FEATURES_OUTPUT, MUSIC_OUTPUT, ModelMeta

C = 0.1  # inverse L2 strength (export/music_compare.py: 0.01-1 score alike)


@dataclass(frozen=True)
class Detector:
    """One logistic regression (kernel [features], bias a float), or several (kernel [features, k],
    bias [k]) whose largest logit is a segment's: music when any of them calls it music."""
    kernel: np.ndarray  # on the raw (unstandardised) segment features
    bias: float | np.ndarray
    source: str = ""  # what it was fitted on, for a model's card

    def logits(self, features: np.ndarray) -> np.ndarray:
        each = np.asarray(features, np.float64) @ self.kernel + self.bias
        return each.max(axis=-1) if np.ndim(self.kernel) == 2 else each

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """P(music) of each segment [segments] from its features [segments, features]."""
        return expit(self.logits(features))


def fit(music: np.ndarray, nonmusic: np.ndarray, c: float = C) -> Detector:
    """The detector fitted on music and non-music segment features [segments, features]."""
    x, y = np.concatenate([music, nonmusic]).astype(np.float64), np.r_[np.ones(len(music)), np.zeros(len(nonmusic))]
    scaler = StandardScaler().fit(x)
    regression = LogisticRegression(C=c, class_weight="balanced", max_iter=5000).fit(scaler.transform(x), y)
    kernel = regression.coef_[0] / scaler.scale_
    return Detector(kernel, float(regression.intercept_[0] - scaler.mean_ @ kernel))


def either(*detectors: Detector) -> Detector:
    """One detector whose segment logit is the largest of these detectors' logits."""
    kernels = [d.kernel.reshape(len(d.kernel), -1) for d in detectors]
    return Detector(np.concatenate(kernels, axis=1).astype(np.float64),
                    np.concatenate([np.ravel(d.bias) for d in detectors]).astype(np.float64),
                    " or ".join(d.source for d in detectors if d.source) + ": a segment's logit the largest")


def detector_of(model: onnx.ModelProto) -> Detector | None:
    """The detector append() put into a model, or None."""
    found = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer
             if i.name in ("music_kernel", "music_bias")}
    if len(found) < 2:
        return None
    bias = found["music_bias"].astype(np.float64)
    return Detector(found["music_kernel"].astype(np.float64), float(bias) if bias.ndim == 0 else bias)


def shipped(features_id: str, path: Path = config.DEFAULT_MODEL) -> Detector | None:
    """The shipped default model's detector (fitted on the 10 GTZAN genres' music) where its features are
    these (the same features_id); None where they are not, or there is no such model or detector."""
    if not features_id or not Path(path).is_file():
        return None
    model = onnx.load(str(path))
    meta = ModelMeta.from_props({p.key: p.value for p in model.metadata_props})
    found = detector_of(model) if meta.features_id == features_id else None
    where = Path(path).relative_to(config.MODELS_DIR.parent) if Path(path).is_relative_to(config.MODELS_DIR.parent) \
        else Path(path).name
    return found and replace(found, source=f"the shipped model's detector ({meta.name} {meta.version}, {where}: "
                                           "the 10 GTZAN genres' music)")


def for_library(music_x: np.ndarray, other_x: np.ndarray, features_id: str, out: Path | None = None) -> Detector:
    """The detector `train` appends to a model of a library: fitted on its music against the non-music
    segment features [segments, features]; where the features are the shipped model's, that or the
    shipped detector (either()), unless the model written (out) is the shipped model itself (retrained:
    its own detector alone, nothing inherited)."""
    own = replace(fit(music_x, other_x), source="this library's music")
    retrained = out is not None and Path(out).resolve() == config.DEFAULT_MODEL.resolve()
    broad = None if retrained else shipped(features_id)
    return either(own, broad) if broad else own


def append(model: onnx.ModelProto, detector: Detector) -> onnx.ModelProto:
    """The model with a second use of its FEATURES_OUTPUT [segments, features]: the output
    MUSIC_OUTPUT [segments], each segment's P(music) (a detector it had before is replaced); several
    detectors (either()): the sigmoid of their largest logit."""
    outputs = {o.name: o for o in model.graph.output}
    if FEATURES_OUTPUT not in outputs:
        raise ValueError(f"the model needs an output {FEATURES_OUTPUT!r}; it has {list(outputs)}")
    width = outputs[FEATURES_OUTPUT].type.tensor_type.shape.dim[-1].dim_value
    if width != len(detector.kernel):
        raise ValueError(f"the model's {FEATURES_OUTPUT!r} are {width} wide, the detector's {len(detector.kernel)}")
    without(model)
    several = np.ndim(detector.kernel) == 2
    model.graph.initializer.extend([numpy_helper.from_array(detector.kernel.astype(np.float32), "music_kernel"),
                                    numpy_helper.from_array(np.array(detector.bias, np.float32), "music_bias")])
    logits = "music_each" if several else "music_logits"
    model.graph.node.extend([helper.make_node("MatMul", [FEATURES_OUTPUT, "music_kernel"], ["music_weighted"]),
                             helper.make_node("Add", ["music_weighted", "music_bias"], [logits])])
    if several:  # [segments, k] -> the largest logit of each segment [segments]
        model.graph.initializer.append(numpy_helper.from_array(np.array([-1], np.int64), "music_axes"))
        model.graph.node.append(helper.make_node("ReduceMax", ["music_each", "music_axes"], ["music_logits"],
                                                 keepdims=0))
    model.graph.node.append(helper.make_node("Sigmoid", ["music_logits"], [MUSIC_OUTPUT]))
    model.graph.output.append(helper.make_tensor_value_info(MUSIC_OUTPUT, TensorProto.FLOAT, ["batch"]))
    onnx.checker.check_model(model, full_check=True)
    return model


def without(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model without the detector that append() added, if any (changed in place)."""
    ours = {"music_weighted", "music_each", "music_logits", MUSIC_OUTPUT}
    kept = [n for n in model.graph.node if not set(n.output) & ours]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    for field, names in ((model.graph.initializer, {"music_kernel", "music_bias", "music_axes"}),
                         (model.graph.output, {MUSIC_OUTPUT})):
        for item in [i for i in field if i.name in names]:
            field.remove(item)
    return model


def features_of(model: onnx.ModelProto, audios, batch: int = 16) -> list[np.ndarray]:
    """Each audio's segment features [segments, n], computed by the (raw-audio) model itself."""
    import onnxruntime as ort
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    size = ModelMeta.from_props({p.key: p.value for p in model.metadata_props}).segment_samples
    out = []
    for audio in audios:
        cut = segments.split(audio, size)
        out.append(np.concatenate([session.run([FEATURES_OUTPUT], {AUDIO_INPUT: cut[i:i + batch]})[0]
                                   for i in range(0, len(cut), batch)]))
    return out


def with_detector(model: onnx.ModelProto, music: list[np.ndarray], other: list[np.ndarray]) -> onnx.ModelProto:
    """The model (raw audio in) with a detector fitted on its own features of these audios."""
    detector = fit(np.concatenate(features_of(model, music)), np.concatenate(features_of(model, other)))
    return append(model, detector)


def nonmusic_features(model: onnx.ModelProto) -> list[np.ndarray]:
    """The model's features of the synthesized non-music (nonmusic.generate()), segment by segment."""
    return features_of(model, [item.audio for item in nonmusic.generate()])


def out_of_fold(features: list[np.ndarray], protocol, other: list[np.ndarray]) -> dict:
    """How often a library's clips are called music (P >= 0.5, their segments pooled) by a detector
    fitted without their fold (the protocol's folds: each artist on one side), on all the non-music."""
    shares = []
    for repeat in protocol:
        called = np.zeros(len(features), bool)
        for _, fit_on, score in repeat:
            detector = fit(np.concatenate([features[i] for i in fit_on]), np.concatenate(other))
            for i in score:
                called[i] = segments.pool_yes(detector.probabilities(features[i])) >= 0.5
        shares.append(float(called.mean()))
    return {"music_called_music": float(np.mean(shares)), "min": min(shares), "max": max(shares),
            "non_music_segments": int(sum(map(len, other)))}
