"""Candidate `in_labels` methods compared under export/outside.py's protocols; prints the figures of
docs/outside-labels.md's "What was tried" that are one change away from export/in_labels.py.

    python -m export.outside_compare --data ../shared/data/gtzan [--methods NAME ...]

Each candidate changes one part of the shipped method (the view of the features, the covariance,
the distance to a label, the score, a second view, how a window pools its segments, the
calibration) and is fitted
and scored exactly as the shipped one: leave one label out with artists grouped, then the
taxonomy classical, metal, hiphop against the other seven (where the library has those labels).
"""
import argparse
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import expit, logsumexp
from sklearn.covariance import empirical_covariance, oas, shrunk_covariance

from export import extract, in_labels, outside
from export.in_labels import relative

THREE = ("classical", "metal", "hiphop")
TAGS, DISTANCE = in_labels.tags, in_labels.distance  # the shipped ones, before any swap


@dataclass(frozen=True)
class Scored:
    """A fitted Distance whose score is `form` of each segment's log distances [segments, labels], and
    whose squared distances are `distances` of the whitened segments."""
    fitted: in_labels.Distance
    form: Callable
    distances: Callable | None = None

    def __call__(self, features: np.ndarray) -> np.ndarray:
        z = in_labels.tags(features) @ self.fitted.root
        if self.distances is None:
            return self.form(self.fitted.log_distances(z))
        return self.form(np.log(np.maximum(self.distances(self, z), in_labels.FLOOR)))


def residual(gamma: float):
    """Squared distances with the part outside the span of the labels' means weighed by gamma (1: shipped)."""
    def distances(scored: Scored, z: np.ndarray) -> np.ndarray:
        centres = scored.fitted.centres - scored.fitted.centres.mean(axis=0)
        _, s, vt = np.linalg.svd(centres, full_matrices=False)
        span = vt[s > 1e-9 * s.max()].T
        z = z - scored.fitted.centres.mean(axis=0)
        inside = ((z @ span)[:, None, :] - (centres @ span)[None]) ** 2
        return inside.sum(axis=2) + gamma * ((z ** 2).sum(axis=1) - ((z @ span) ** 2).sum(axis=1))[:, None]
    return distances


def artists(how: str, mix: float):
    """A label's distance from its artists' means (`min`, a Gaussian mixture's `soft` min, or their
    geometric mean), mixed with the distance to its mean: mix of the one, 1 - mix of the other."""
    def fit(features, y, groups):
        fitted, groups = DISTANCE(features, y, groups), np.asarray(groups)
        z = [in_labels.tags(f) @ fitted.root for f in features]
        means = [np.stack([np.concatenate([z[i] for i in np.flatnonzero((y == k) & (groups == a))]).mean(axis=0)
                           for a in np.unique(groups[y == k])]) for k in np.unique(y)]

        def distances(scored, x):
            columns = []
            for j, m in enumerate(means):
                d = ((x[:, None, :] - m[None]) ** 2).sum(axis=2)
                if how == "min":
                    by_artist = d.min(axis=1)
                elif how == "soft":
                    by_artist = 2 * (np.log(len(m)) - logsumexp(-d / 2, axis=1))
                else:
                    by_artist = np.exp(np.log(np.maximum(d, in_labels.FLOOR)).mean(axis=1))
                columns.append(mix * by_artist + (1 - mix) * ((x - fitted.centres[j]) ** 2).sum(axis=1))
            return np.stack(columns, axis=1)
        return Scored(fitted, relative, distances)
    return fit


def per_label(share: float):
    """One covariance per label: (1 - share) the shared one + share its own segments' instead of all
    labels' (the artists' part shared), a distance to each label in its own."""
    def fit(features, y, groups):
        x, labels, shipped = [in_labels.tags(f) for f in features], np.unique(y), DISTANCE(features, y, groups)
        means = np.stack([np.concatenate([x[i] for i in np.flatnonzero(y == k)]).mean(axis=0) for k in labels])
        deviation = [np.concatenate([x[i] - means[j] for i in np.flatnonzero(y == k)]) for j, k in enumerate(labels)]
        shared = np.linalg.inv(shipped.root @ shipped.root.T)
        segments = in_labels._covariance(np.concatenate(deviation))
        precisions = [np.linalg.inv(shared + share * (in_labels._covariance(d) - segments)) for d in deviation]
        to_tags = np.linalg.inv(shipped.root)

        def distances(scored, z):
            t = z @ to_tags
            return np.stack([np.einsum("ij,jk,ik->i", t - m, p, t - m) for m, p in zip(means, precisions, strict=True)],
                            axis=1)
        return Scored(shipped, relative, distances)
    return fit


def shape(features: np.ndarray) -> np.ndarray:
    """The view `shape` of 2.1.0: the square root of the penultimate layer beside the tags' logits."""
    tags = np.clip(TAGS(features), 1e-4, 1 - 1e-4)
    penultimate = np.asarray(features, np.float64)[:, :-in_labels.TAGS]
    return np.hstack([np.sqrt(np.maximum(penultimate, 0)), np.log(tags) - np.log1p(-tags)])


@dataclass(frozen=True)
class Summed:
    """The tags' score plus `weight` times the score of the view `shape`."""
    tags: in_labels.Distance
    shape: in_labels.Distance
    weight: float

    def __call__(self, features: np.ndarray) -> np.ndarray:
        with swapped({(in_labels, "tags"): shape}):
            other = self.shape(features)
        return self.tags(features) + self.weight * other


def two_views(weight: float):
    """Both views' scores summed with a fixed weight: one input to the calibration, not two."""
    def fit(features, y, groups):
        with swapped({(in_labels, "tags"): shape}):
            other = DISTANCE(features, y, groups)
        return Summed(DISTANCE(features, y, groups), other, weight)
    return fit


def view(transform):
    return {(in_labels, "tags"): lambda f: transform(TAGS(f))}


def covariance(estimate):
    return {(in_labels, "_covariance"): lambda d: np.zeros((d.shape[1],) * 2) if not np.any(d) else estimate(d)}


def score(form, distances=None):
    return {(in_labels, "distance"): lambda *a: Scored(DISTANCE(*a), form, distances)}


def fitted_by(fit):
    return {(in_labels, "distance"): fit}


def pooled(aggregate):
    """A window's score an aggregate of its segments' (at calibration and when served), not their mean."""
    return {(in_labels, "scores"): lambda fitted, features: np.array([aggregate(fitted(f)) for f in features]),
            (outside, "_pooled"): lambda detector, f: float(expit(aggregate(detector.logits(f))))}


def mean_tags(fitted: in_labels.Distance, features: np.ndarray) -> np.ndarray:
    """The window's tags averaged before the distance, one score for all its segments."""
    z = (in_labels.tags(features) @ fitted.root).mean(axis=0, keepdims=True)
    return np.repeat(relative(fitted.log_distances(z)), len(features))


def uncalibrated():
    """The score itself as the logit (weight -1, bias 0): its ranking without a calibration fitted per
    fold (the shares at 0.5 mean nothing then)."""
    return {(in_labels, "fit"): lambda f, y, g: in_labels.Detector(in_labels.distance(f, y, g), -1.0, 0.0)}


METHODS = {
    "shipped": {},
    "not calibrated (its ranking alone)": uncalibrated(),
    "score: the nearest alone": score(lambda logs: logs.min(axis=1)),
    "score: less the median, not the mean": score(lambda logs: logs.min(axis=1) - np.median(logs, axis=1)),
    "score: less the second-nearest": score(lambda logs: logs.min(axis=1) - np.sort(logs, axis=1)[:, 1]),
    "score: less the farthest": score(lambda logs: logs.min(axis=1) - logs.max(axis=1)),
    "score: less the mean of the others": score(
        lambda logs: logs.min(axis=1) - np.sort(logs, axis=1)[:, 1:].mean(axis=1)),
    "score: the two nearest less the mean": score(
        lambda logs: np.sort(logs, axis=1)[:, :2].mean(axis=1) - logs.mean(axis=1)),
    **{f"score: a soft minimum (temperature {t}) less the mean": score(
        lambda logs, t=t: -logsumexp(-t * logs, axis=1) / t - logs.mean(axis=1)) for t in (2, 5)},
    "score: less 0.9 the mean": score(lambda logs: logs.min(axis=1) - 0.9 * logs.mean(axis=1)),
    "score: less 0.8 the mean": score(lambda logs: logs.min(axis=1) - 0.8 * logs.mean(axis=1)),
    "view: sqrt(tags)": view(np.sqrt),
    "view: tags ** 0.75": view(lambda t: t ** 0.75),
    "view: tags ** 1.5": view(lambda t: t ** 1.5),
    "view: logit(tags), clipped at 0.01": view(lambda t: np.log(np.clip(t, 0.01, 0.99) / (1 - np.clip(t, 0.01, 0.99)))),
    "view: tags / their L2 norm": view(lambda t: t / np.linalg.norm(t, axis=1, keepdims=True)),
    "covariance: OAS, not Ledoit-Wolf": covariance(lambda d: oas(d, assume_centered=True)[0]),
    **{f"covariance: shrinkage fixed at {a}": covariance(
        lambda d, a=a: shrunk_covariance(empirical_covariance(d, assume_centered=True), a)) for a in (0.1, 0.3, 0.6)},
    **{f"distance: outside the means' span x{g}": score(relative, residual(g))
       for g in (0.0, 0.3, 0.6, 1.5, 3.0)},
    **{f"distance: per-label covariance, {s} own": fitted_by(per_label(s)) for s in (0.3, 0.6)},
    "distance: the nearest artist's mean": fitted_by(artists("min", 1.0)),
    "distance: half the nearest artist's mean": fitted_by(artists("min", 0.5)),
    "distance: the artists' means, soft min": fitted_by(artists("soft", 1.0)),
    "distance: the artists' means, geometric mean": fitted_by(artists("geometric", 1.0)),
    "distance: half the artists' geometric mean": fitted_by(artists("geometric", 0.5)),
    "views: tags + shape, 1:1": fitted_by(two_views(1.0)),
    "views: tags + shape, 1:1, not calibrated": fitted_by(two_views(1.0)) | uncalibrated(),
    "views: tags + shape, 2:1": fitted_by(two_views(0.5)),
    "views: tags + shape, 2:1, not calibrated": fitted_by(two_views(0.5)) | uncalibrated(),
    "pooling: the window's mean tags": {(in_labels.Distance, "__call__"): mean_tags},
    "pooling: the median segment": pooled(np.median),
}


@contextlib.contextmanager
def swapped(parts: dict):
    """The attributes {(owner, name): value} replaced while inside, restored after."""
    saved = {key: getattr(*key) for key in parts}
    try:
        for (owner, name), value in parts.items():
            setattr(owner, name, value)
        yield
    finally:
        for (owner, name), value in saved.items():
            setattr(owner, name, value)


def compare(name: str, features, y, groups, labels) -> str:
    """One line of figures: both protocols' (the three-genre taxonomy where the library has it)."""
    with swapped(METHODS[name]):
        r = outside.figures(outside.leave_one_label_out(features, y, groups, labels, quiet=True))
        three = outside.figures(outside.inside_outside(features, y, groups, labels, list(THREE))) \
            if set(THREE) <= set(labels) else None
    calibrated = (in_labels, "fit") not in METHODS[name]

    def shares(f: dict) -> str:
        """Under 0.5 and at or above it: of no meaning where the score is not calibrated."""
        return f"{f['outside_under_half']:.1%}, {f['inside_at_half_or_above']:.1%}" if calibrated else "-, -"
    line = (f"{name}: mean AUROC {r['auroc_mean']:.3f} (" + " ".join(f"{a:.2f}" for a in r["auroc"].values())
            + f"); outside under 0.5, inside at 0.5 or above: {shares(r)}")
    if three:
        line += f"; {'+'.join(THREE)}: AUROC {three['auroc_mean']:.3f}, {shares(three)}"
    return line


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m export.outside_compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="a folder of label folders, or a CSV manifest")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS), metavar="NAME",
                        help=f"of: {'; '.join(METHODS)} (default: all)")
    parser.add_argument("--cache", type=Path, default=extract.CACHE, help="the features' cache (default: %(default)s)")
    args = parser.parse_args(argv)
    features, y, groups, labels = outside.load(args.data, args.cache)
    if len(labels) < outside.MIN_LABELS:
        raise SystemExit(f"leaving one label out needs {outside.MIN_LABELS} labels or more")
    print(f"{len(y)} clips, {len(labels)} labels; AUROC per left-out label in the order {', '.join(labels)}")
    for name in args.methods:
        print(compare(name, features, y, groups, labels), flush=True)


if __name__ == "__main__":
    main()
