"""The "in its labels" detector: per 3-s segment, the probability that the music belongs to one of
the model's labels, read from the network's 50 tag scores (the last of the segment features the
genre head reads).

The method (chosen by export/outside.py's protocol, docs/outside-labels.md): a segment's squared
Mahalanobis distance, in the tag scores, to each label's mean, with one covariance shared by the
labels: the segments' deviations from their label's mean plus the artists' (Ledoit-Wolf shrinkage
on each). Its score is the log of the distance to the nearest mean less the mean log distance to all
of them: how much nearer it is to one label than to the labels at large (music of a label is near
it and far from the rest; music of none is about as far from each). A segment's logit is
b + a score; a and b are a logistic regression (classes balanced, so 0.5 is where a clip is as
likely inside as outside) fitted on the library itself: its clips scored out of fold (artists
grouped) as the inside, and each label's clips scored by the distances of the other labels as the
outside (leave one label out). A window's in_labels pools its segments' logits by their mean, as
`music` does. append() adds it to an exported model's graph as the output IN_LABELS_OUTPUT
[segments], fed by FEATURES_OUTPUT.
"""
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from scipy.linalg import solve_triangular
from scipy.special import expit
from sklearn.covariance import ledoit_wolf
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold
from threadpoolctl import threadpool_limits

from inference.contract import FEATURES_OUTPUT, IN_LABELS_OUTPUT

TAGS = 50  # the last columns of the features are the network's tag scores (genre_musicnn.FEATURES)
FLOOR = 1e-6  # distances floored before their log
C = 1.0  # inverse L2 strength of the calibration (on the standardised score): keeps its slope sane
FOLDS = 5  # the inside's out-of-fold scores: grouped folds, at most this many
SEED = 0


def tags(features: np.ndarray) -> np.ndarray:
    return np.asarray(features, np.float64)[:, -TAGS:]


@dataclass(frozen=True)
class Distance:
    """How much nearer a segment is to its nearest label than to the labels at large: the log of its
    squared Mahalanobis distance (in the tag scores) to the nearest label's mean less the mean of the
    logs of its distances to every label's mean (0 when all are as near; the more negative, the more
    it is one label's)."""
    root: np.ndarray  # [TAGS, TAGS]: the shared precision is root @ root.T, so a distance is one in `tags @ root`
    centres: np.ndarray  # [labels, TAGS]: the labels' means @ root

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """[segments]: each segment's log distance to its nearest mean relative to the mean log distance."""
        return relative(self.log_distances(tags(features) @ self.root))

    def log_distances(self, z: np.ndarray) -> np.ndarray:
        """[segments, labels]: the log squared distances of whitened tags z [segments, TAGS] to the means."""
        return np.log(np.maximum(((z[:, None, :] - self.centres[None]) ** 2).sum(axis=2), FLOOR))


def relative(logs: np.ndarray) -> np.ndarray:
    """[segments]: the nearest label's log distance less the mean over labels, from logs [segments, labels]."""
    return logs.min(axis=1) - logs.mean(axis=1)


def _covariance(deviations: np.ndarray) -> np.ndarray:
    """Ledoit-Wolf's shrunk covariance of deviations [n, d] from their means (zeros if they are all 0)."""
    if not np.any(deviations):
        return np.zeros((deviations.shape[1],) * 2)
    return ledoit_wolf(deviations, assume_centered=True)[0]


def distance(features: list[np.ndarray], y: np.ndarray, groups: list[str]) -> Distance:
    """The Distance fitted on clips' segment features [segments, n], their labels y and artists. The
    covariance is the segments' around their label's mean plus the artists' (each artist's mean around
    its label's): a new artist of a label differs from the label's mean the way its artists differ
    from each other, which the segments of a few artists alone understate."""
    x = [tags(f) for f in features]
    labels, groups = np.unique(y), np.asarray(groups)
    means = np.stack([np.concatenate([x[i] for i in np.flatnonzero(y == k)]).mean(axis=0) for k in labels])
    deviations = np.concatenate([x[i] - means[np.searchsorted(labels, y[i])] for i in range(len(x))])
    artists = np.stack([np.concatenate([x[i] for i in np.flatnonzero((y == k) & (groups == artist))]).mean(axis=0)
                        - means[j] for j, k in enumerate(labels) for artist in np.unique(groups[y == k])])
    lower = np.linalg.cholesky(_covariance(deviations) + _covariance(artists))  # covariance = lower @ lower.T
    root = solve_triangular(lower, np.eye(len(lower)), lower=True).T
    return Distance(root, means @ root)


def scores(fitted: Distance, features: list[np.ndarray]) -> np.ndarray:
    """[clips]: each clip's mean over segments of its relative log distance."""
    return np.array([fitted(f).mean() for f in features])


@dataclass(frozen=True)
class Detector:
    distance: Distance
    weight: float  # a
    bias: float  # b

    def logits(self, features: np.ndarray) -> np.ndarray:
        """Each segment's logit [segments] from its features [segments, n]."""
        return self.distance(features) * self.weight + self.bias

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        return expit(self.logits(features))


def grouped_folds(y: np.ndarray, groups: list[str]):
    """(fit, score) index pairs: StratifiedGroupKFold by artist, as many folds as FOLDS, the artists and
    the smallest label allow (at least 2; with a single artist, by clip)."""
    n_groups = len(set(groups))
    folds = max(2, min(FOLDS, n_groups, np.bincount(y)[np.unique(y)].min()))
    split_groups = groups if n_groups >= 2 else [str(i) for i in range(len(y))]
    return StratifiedGroupKFold(folds, shuffle=True, random_state=SEED).split(y, y, split_groups)


def calibration_scores(features: list[np.ndarray], y: np.ndarray, groups: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The library's own evidence, [clips] each: its clips scored out of fold (artists grouped) and each
    label's clips scored by the other labels' distances."""
    pick = lambda idx: [features[i] for i in idx]  # noqa: E731
    inside = np.zeros(len(y))
    for fit_on, score in grouped_folds(y, groups):
        inside[score] = scores(distance(pick(fit_on), y[fit_on], [groups[i] for i in fit_on]), pick(score))
    outside = np.zeros_like(inside)
    for label in np.unique(y):
        others, these = np.flatnonzero(y != label), np.flatnonzero(y == label)
        outside[these] = scores(distance(pick(others), y[others], [groups[i] for i in others]), pick(these))
    return inside, outside


def fit(features: list[np.ndarray], y: np.ndarray, groups: list[str]) -> Detector:
    """The detector of a library of at least 2 labels: clips' segment features, label indices, artists."""
    if len(np.unique(y)) < 2:
        raise ValueError("the in-labels detector needs at least 2 labels")
    with threadpool_limits(1):  # matrices of a few hundred: BLAS threads only contend (20 times slower here)
        inside, outside = calibration_scores(features, y, groups)
        fitted = distance(features, y, groups)
    return Detector(fitted, *calibration(np.r_[inside, outside], np.r_[np.ones(len(inside)), np.zeros(len(outside))]))


def calibration(x: np.ndarray, inside: np.ndarray) -> tuple[float, float]:
    """(a, b) of P(in) = sigmoid(a x + b), x [clips] of scores, inside 1 or 0; (0, 0), the balanced
    prior 0.5, where a comes out >= 0 (farther, more inside: noise), so that P(in) never grows with a
    distance."""
    mean, scale = x.mean(), x.std() + 1e-9
    regression = LogisticRegression(C=C, class_weight="balanced").fit(((x - mean) / scale)[:, None], inside)
    weight = regression.coef_[0, 0] / scale
    return (float(weight), float(regression.intercept_[0] - mean * weight)) if weight < 0 else (0.0, 0.0)


def append(model: onnx.ModelProto, detector: Detector) -> onnx.ModelProto:
    """The model with the output IN_LABELS_OUTPUT [segments], each segment's P(in its labels),
    computed from its FEATURES_OUTPUT (a detector it had before is replaced)."""
    if FEATURES_OUTPUT not in {o.name for o in model.graph.output}:
        raise ValueError(f"the model needs an output {FEATURES_OUTPUT!r}")
    without(model)
    p = "in_labels"
    node = lambda op, inputs, output, **kw: helper.make_node(  # noqa: E731
        op, [i if i == FEATURES_OUTPUT else f"{p}_{i}" for i in inputs], [f"{p}_{output}"], **kw)
    model.graph.initializer.extend(numpy_helper.from_array(np.asarray(value), f"{p}_{name}") for name, value in (
        ("split", [-TAGS]), ("end", [2**62]), ("one_axis", [1]), ("two_axis", [2]),
        ("root", detector.distance.root.astype(np.float32)),
        ("centres", detector.distance.centres.astype(np.float32)[None]), ("floor", np.float32(FLOOR)),
        ("weight", np.float32(detector.weight)), ("bias", np.float32(detector.bias))))
    model.graph.node.extend([
        node("Slice", [FEATURES_OUTPUT, "split", "end", "one_axis"], "tags"),
        node("MatMul", ["tags", "root"], "z"), node("Unsqueeze", ["z", "one_axis"], "z3"),
        node("Sub", ["z3", "centres"], "diff"), node("ReduceSumSquare", ["diff", "two_axis"], "d", keepdims=0),
        node("Max", ["d", "floor"], "floored"), node("Log", ["floored"], "logs"),
        node("ReduceMin", ["logs", "one_axis"], "nearest", keepdims=0),
        node("ReduceMean", ["logs", "one_axis"], "all", keepdims=0), node("Sub", ["nearest", "all"], "relative"),
        node("Mul", ["relative", "weight"], "term"), node("Add", ["term", "bias"], "logits"),
        helper.make_node("Sigmoid", [f"{p}_logits"], [IN_LABELS_OUTPUT])])
    model.graph.output.append(helper.make_tensor_value_info(IN_LABELS_OUTPUT, TensorProto.FLOAT, ["batch"]))
    onnx.checker.check_model(model, full_check=True)
    return model


def without(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model without the detector that append() added, if any (changed in place)."""
    ours = lambda name: name.startswith("in_labels_") or name == IN_LABELS_OUTPUT  # noqa: E731
    kept = [n for n in model.graph.node if not any(map(ours, n.output))]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    for field in (model.graph.initializer, model.graph.output):
        for item in [i for i in field if ours(i.name)]:
            field.remove(item)
    return model
