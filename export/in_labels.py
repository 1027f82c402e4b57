"""The "in its labels" detector: per 3-s segment, the probability that the music belongs to one of
the model's labels, read from the same segment features as the genre head (musicnn's penultimate
layer [200] and its tag scores [50]).

The method (chosen by export/outside.py's protocol, docs/outside-labels.md): in a view of the
features (DEFAULT_VIEWS: the 50 tag scores), a segment's squared Mahalanobis distance to each label's
mean, with one covariance shared by the labels: the segments' deviations from their label's mean
plus the artists' (Ledoit-Wolf shrinkage on each). Its score is the log of the distance to the
nearest mean less the mean log distance to all of them: how much nearer it is to one label than to
the labels at large (music of a label is near it and far from the rest; music of none is about as
far from each). A segment's logit is b + sum_v a_v score_v; a and b are a logistic regression
(classes balanced, so 0.5 is where a clip is as likely inside as outside) fitted on the library
itself: its clips scored out of fold (artists grouped) as the inside, and each label's clips scored
by the distances of the other labels as the outside (leave one label out). A window's in_labels
pools its segments' logits by their mean, as `music` does. append() adds it to an exported model's
graph as the output IN_LABELS_OUTPUT [segments], fed by FEATURES_OUTPUT.
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
TAG_CLIP = 1e-4  # tag scores clipped to [TAG_CLIP, 1 - TAG_CLIP] before their logit
FLOOR = 1e-6  # distances floored before their log
C = 1.0  # inverse L2 strength of the calibration (on standardised scores): keeps its slope sane
FOLDS = 5  # the inside's out-of-fold scores: grouped folds, at most this many
SEED = 0


def tags(features: np.ndarray) -> np.ndarray:
    return features[:, -TAGS:]


def shape(features: np.ndarray) -> np.ndarray:
    """The square root of the (ReLU) penultimate layer and the logits of the tag scores."""
    p = np.clip(features[:, -TAGS:], TAG_CLIP, 1 - TAG_CLIP)
    return np.hstack([np.sqrt(np.maximum(features[:, :-TAGS], 0)), np.log(p) - np.log1p(-p)])


VIEWS = {"tags": tags, "shape": shape}
DEFAULT_VIEWS = ("tags",)  # chosen by export/outside.py's protocol (docs/outside-labels.md)


@dataclass(frozen=True)
class Distance:
    """How much nearer a segment is to its nearest label than to the labels at large, in one view: the
    log of its squared Mahalanobis distance to the nearest label's mean less the mean of the logs of
    its distances to every label's mean (0 when all are as near; the more negative, the more it is
    one label's)."""
    view: str
    root: np.ndarray  # [d, d]: the shared precision is root @ root.T, so a distance is one in `view @ root`
    centres: np.ndarray  # [labels, d]: the labels' means @ root

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """[segments]: each segment's log distance to its nearest mean relative to the mean log distance."""
        z = VIEWS[self.view](np.asarray(features, np.float64)) @ self.root
        logs = np.log(np.maximum(((z[:, None, :] - self.centres[None]) ** 2).sum(axis=2), FLOOR))
        return logs.min(axis=1) - logs.mean(axis=1)


def _covariance(deviations: np.ndarray) -> np.ndarray:
    """Ledoit-Wolf's shrunk covariance of deviations [n, d] from their means (zeros if they are all 0)."""
    if not np.any(deviations):
        return np.zeros((deviations.shape[1],) * 2)
    return ledoit_wolf(deviations, assume_centered=True)[0]


def distance(view: str, features: list[np.ndarray], y: np.ndarray, groups: list[str]) -> Distance:
    """The Distance of a view fitted on clips' segment features [segments, n], their labels y and artists.
    The covariance is the segments' around their label's mean plus the artists' (each artist's mean
    around its label's): a new artist of a label differs from the label's mean the way its artists
    differ from each other, which the segments of a few artists alone understate."""
    x = [VIEWS[view](np.asarray(f, np.float64)) for f in features]
    labels, groups = np.unique(y), np.asarray(groups)
    means = np.stack([np.concatenate([x[i] for i in np.flatnonzero(y == k)]).mean(axis=0) for k in labels])
    deviations = np.concatenate([x[i] - means[np.searchsorted(labels, y[i])] for i in range(len(x))])
    artists = np.stack([np.concatenate([x[i] for i in np.flatnonzero((y == k) & (groups == artist))]).mean(axis=0)
                        - means[j] for j, k in enumerate(labels) for artist in np.unique(groups[y == k])])
    lower = np.linalg.cholesky(_covariance(deviations) + _covariance(artists))  # covariance = lower @ lower.T
    root = solve_triangular(lower, np.eye(len(lower)), lower=True).T
    return Distance(view, root, means @ root)


def scores(distances: list[Distance], features: list[np.ndarray]) -> np.ndarray:
    """[clips, views]: each clip's mean over segments of each view's relative log distance."""
    return np.array([[d(f).mean() for d in distances] for f in features])


@dataclass(frozen=True)
class Detector:
    distances: tuple[Distance, ...]
    weights: np.ndarray  # [views]: a
    bias: float

    def logits(self, features: np.ndarray) -> np.ndarray:
        """Each segment's logit [segments] from its features [segments, n]."""
        return np.stack([d(features) for d in self.distances], axis=1) @ self.weights + self.bias

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        return expit(self.logits(features))


def _fit_distances(features, y, groups, views) -> tuple[Distance, ...]:
    return tuple(distance(view, features, y, groups) for view in views)


def grouped_folds(y: np.ndarray, groups: list[str]):
    """(fit, score) index pairs: StratifiedGroupKFold by artist, as many folds as FOLDS, the artists and
    the smallest label allow (at least 2; with a single artist, by clip)."""
    n_groups = len(set(groups))
    folds = max(2, min(FOLDS, n_groups, np.bincount(y)[np.unique(y)].min()))
    split_groups = groups if n_groups >= 2 else [str(i) for i in range(len(y))]
    return StratifiedGroupKFold(folds, shuffle=True, random_state=SEED).split(y, y, split_groups)


def calibration_scores(features: list[np.ndarray], y: np.ndarray, groups: list[str],
                       views=DEFAULT_VIEWS) -> tuple[np.ndarray, np.ndarray]:
    """The library's own evidence, [clips, views] each: its clips scored out of fold (artists grouped)
    and each label's clips scored by the other labels' distances."""
    pick = lambda idx: [features[i] for i in idx]  # noqa: E731
    inside = np.zeros((len(y), len(views)))
    for fit_on, score in grouped_folds(y, groups):
        inside[score] = scores(_fit_distances(pick(fit_on), y[fit_on], [groups[i] for i in fit_on], views),
                               pick(score))
    outside = np.zeros_like(inside)
    for label in np.unique(y):
        others, these = np.flatnonzero(y != label), np.flatnonzero(y == label)
        outside[these] = scores(_fit_distances(pick(others), y[others], [groups[i] for i in others], views),
                                pick(these))
    return inside, outside


def fit(features: list[np.ndarray], y: np.ndarray, groups: list[str], views=DEFAULT_VIEWS) -> Detector:
    """The detector of a library of at least 2 labels: clips' segment features, label indices, artists
    (views: which of VIEWS)."""
    if len(np.unique(y)) < 2:
        raise ValueError("the in-labels detector needs at least 2 labels")
    with threadpool_limits(1):  # matrices of a few hundred: BLAS threads only contend (20 times slower here)
        inside, outside = calibration_scores(features, y, groups, views)
        distances = _fit_distances(features, y, groups, views)
    weights, bias = calibration(np.concatenate([inside, outside]), np.r_[np.ones(len(inside)), np.zeros(len(outside))])
    return Detector(distances, weights, bias)


def calibration(x: np.ndarray, inside: np.ndarray) -> tuple[np.ndarray, float]:
    """(a, b) of P(in) = sigmoid(x @ a + b), x [clips, views] of scores, inside 1 or 0; a view
    whose weight comes out >= 0 (farther, more inside: noise) is left out and the rest refitted, so
    that P(in) never grows with a distance."""
    kept = np.ones(x.shape[1], bool)
    while True:
        weights = np.zeros(x.shape[1])
        if not kept.any():  # no view tells the sides apart: P(in) is the balanced prior, 0.5
            return weights, 0.0
        mean, scale = x[:, kept].mean(axis=0), x[:, kept].std(axis=0) + 1e-9
        regression = LogisticRegression(C=C, class_weight="balanced").fit((x[:, kept] - mean) / scale, inside)
        if (regression.coef_[0] < 0).all():
            weights[kept] = regression.coef_[0] / scale
            return weights, float(regression.intercept_[0] - mean @ weights[kept])
        kept[np.flatnonzero(kept)[regression.coef_[0] >= 0]] = False


def _view_nodes(view: str, p: str) -> tuple[list, list, str]:
    """(nodes, initializers, output name): the view of FEATURES_OUTPUT [n, features] in the graph,
    names prefixed by p."""
    constants = [numpy_helper.from_array(np.asarray(v), f"{p}_{name}") for name, v in
                 (("zero", [0]), ("split", [-TAGS]), ("end", [2**62]), ("axis", [1]), ("low", np.float32(TAG_CLIP)),
                  ("high", np.float32(1 - TAG_CLIP)), ("one", np.float32(1)))]
    node = lambda op, inputs, output, **kw: helper.make_node(op, [f"{p}_{i}" for i in inputs], [f"{p}_{output}"], **kw)  # noqa: E731
    tags = [helper.make_node("Slice", [FEATURES_OUTPUT, f"{p}_split", f"{p}_end", f"{p}_axis"], [f"{p}_tags"])]
    if view == "tags":
        return tags, [c for c in constants if c.name in (f"{p}_split", f"{p}_end", f"{p}_axis")], f"{p}_tags"
    nodes = [helper.make_node("Slice", [FEATURES_OUTPUT, f"{p}_zero", f"{p}_split", f"{p}_axis"], [f"{p}_pen"]),
             node("Relu", ["pen"], "relu"), node("Sqrt", ["relu"], "sqrt"), *tags,
             node("Clip", ["tags", "low", "high"], "p"), node("Sub", ["one", "p"], "q"),
             node("Div", ["p", "q"], "odds"), node("Log", ["odds"], "logit"),
             node("Concat", ["sqrt", "logit"], "x", axis=1)]
    return nodes, constants, f"{p}_x"


def append(model: onnx.ModelProto, detector: Detector) -> onnx.ModelProto:
    """The model with the output IN_LABELS_OUTPUT [segments], each segment's P(in its labels),
    computed from its FEATURES_OUTPUT (a detector it had before is replaced)."""
    if FEATURES_OUTPUT not in {o.name for o in model.graph.output}:
        raise ValueError(f"the model needs an output {FEATURES_OUTPUT!r}")
    without(model)
    node, logs = helper.make_node, []
    for i, (d, weight) in enumerate(zip(detector.distances, detector.weights, strict=True)):
        p = f"in_labels_{i}"
        nodes, constants, x = _view_nodes(d.view, p)
        constants += [numpy_helper.from_array(d.root.astype(np.float32), f"{p}_root"),
                      numpy_helper.from_array(d.centres.astype(np.float32)[None], f"{p}_centres"),
                      numpy_helper.from_array(np.array([1], np.int64), f"{p}_one_axis"),
                      numpy_helper.from_array(np.array([2], np.int64), f"{p}_two_axis"),
                      numpy_helper.from_array(np.float32(FLOOR), f"{p}_floor"),
                      numpy_helper.from_array(np.float32(weight), f"{p}_weight")]
        nodes += [node("MatMul", [x, f"{p}_root"], [f"{p}_z"]),
                  node("Unsqueeze", [f"{p}_z", f"{p}_one_axis"], [f"{p}_z3"]),
                  node("Sub", [f"{p}_z3", f"{p}_centres"], [f"{p}_diff"]),
                  node("ReduceSumSquare", [f"{p}_diff", f"{p}_two_axis"], [f"{p}_d"], keepdims=0),
                  node("Max", [f"{p}_d", f"{p}_floor"], [f"{p}_floored"]),
                  node("Log", [f"{p}_floored"], [f"{p}_logs"]),
                  node("ReduceMin", [f"{p}_logs", f"{p}_one_axis"], [f"{p}_nearest"], keepdims=0),
                  node("ReduceMean", [f"{p}_logs", f"{p}_one_axis"], [f"{p}_all"], keepdims=0),
                  node("Sub", [f"{p}_nearest", f"{p}_all"], [f"{p}_relative"]),
                  node("Mul", [f"{p}_relative", f"{p}_weight"], [f"{p}_term"])]
        model.graph.node.extend(nodes)
        model.graph.initializer.extend(constants)
        logs.append(f"{p}_term")
    model.graph.initializer.append(numpy_helper.from_array(np.float32(detector.bias), "in_labels_bias"))
    model.graph.node.extend([node("Sum", logs + ["in_labels_bias"], ["in_labels_logits"]),
                             node("Sigmoid", ["in_labels_logits"], [IN_LABELS_OUTPUT])])
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
