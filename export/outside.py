"""How well `in_labels` (export/in_labels.py) tells music of a model's labels from music of none of
them, on a library's cached features; crossval prints the same figures.

    python -m export.outside --data ../shared/data/gtzan [--inside classical,metal,hiphop] [--diagram F.png]
                             [--curve 0.4,0.55,0.7,0.85] [--artists country,disco,metal]

Protocol (leave one label out, artists grouped): for each label L, a detector fitted on the other
labels' clips (its calibration fitted on them alone) scores L's clips: the outside; the other
labels' clips are scored out of fold (StratifiedGroupKFold by artist, as crossval's folds) by
detectors fitted without their fold and without L: the inside. Printed: AUROC per left-out label
and their mean, the share of the outside under 0.5 and of the inside at 0.5 or above, and a
reliability diagram (inside and outside weighed equally, the prior in_labels is calibrated for).
--inside names the labels of a smaller taxonomy: the rest of the library is its outside, scored by
each fold's detector; the inside out of fold. --curve runs the protocol on random shares of each
label's clips: how the figures grow with the library. --artists runs it with only some of a label's
artists (random draws): how much of its music stays inside as its artists grow.
"""
import argparse
import warnings
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from export import calibrate, in_labels
from inference import segments

MIN_LABELS = 3  # leaving one out must leave two labels to calibrate on
CURVE_DRAWS = 5  # random draws of each share of the library (--curve)
CURVE_MIN_CLIPS = 4  # of each label in a draw (or all it has): two grouped folds need a few
ARTIST_COUNTS = (2, 3, 6, 9)  # --artists: how many of a label's artists a draw keeps (then all of them)
BINS = 10
PROTOCOL = (f"leave one label out: each label's clips scored by a detector fitted on the other labels; those scored "
            f"out of fold, StratifiedGroupKFold({in_labels.FOLDS}) by artist (seed {in_labels.SEED})")


def _out_of_fold(features, y, groups, extra) -> tuple[np.ndarray, list[np.ndarray]]:
    """P(in) of each clip by a detector fitted without its fold; and, per fold, of the `extra` clips. A
    fold whose rest holds a single label (one artist made a whole label) has no detector: its clips
    are not scored (NaN)."""
    pick = lambda idx: [features[i] for i in idx]  # noqa: E731
    inside, others = np.full(len(y), np.nan), []
    for fit_on, score in in_labels.grouped_folds(y, groups):
        if len(np.unique(y[fit_on])) < 2:
            continue
        detector = in_labels.fit(pick(fit_on), y[fit_on], [groups[i] for i in fit_on])
        inside[score] = [_pooled(detector, features[i]) for i in score]
        others.append(np.array([_pooled(detector, f) for f in extra]))
    return inside, others


def _mean(scores: list[np.ndarray], n: int) -> np.ndarray:
    return np.mean(scores, axis=0) if scores else np.full(n, np.nan)


def _pooled(detector, features: np.ndarray) -> float:
    """A window's in_labels, its segments' pooled as served."""
    return segments.pool_yes(detector.probabilities(features))


def leave_one_label_out(features: list[np.ndarray], y: np.ndarray, groups: list[str], labels,
                        quiet: bool = False) -> dict:
    """Per left-out label: (P(in) of the inside out of fold, P(in) of the left-out clips); each label's
    AUROC printed as it comes unless quiet."""
    results = {}
    for k, label in enumerate(labels):
        rest, left = np.flatnonzero(y != k), np.flatnonzero(y == k)
        inside, outside = _out_of_fold([features[i] for i in rest], y[rest], [groups[i] for i in rest],
                                       [features[i] for i in left])
        results[label] = (inside, _mean(outside, len(left)))
        if not quiet:
            print(f"  left out {label}: AUROC {_auroc(*results[label]):.3f}", flush=True)
    return results


def drawn(y: np.ndarray, share: float, seed: int) -> np.ndarray:
    """Sorted indices of a random `share` of each label's clips (at least CURVE_MIN_CLIPS, or all)."""
    rng, each = np.random.default_rng(seed), [np.flatnonzero(y == k) for k in np.unique(y)]
    return np.sort(np.concatenate([rng.choice(idx, min(len(idx), max(CURVE_MIN_CLIPS, round(share * len(idx)))),
                                              replace=False) for idx in each]))


def curve(features: list[np.ndarray], y: np.ndarray, groups: list[str], labels, shares) -> list[dict]:
    """Leave-one-label-out figures on each share of every label's clips, over CURVE_DRAWS draws: the
    mean AUROC's mean and spread, and the mean shares at 0.5."""
    rows = []
    for share in shares:
        found = []
        for seed in range(CURVE_DRAWS):
            keep = drawn(y, share, seed)
            found.append(_figures_of(keep, features, y, groups, labels))
        means = [f["auroc_mean"] for f in found]
        rows.append({"share": share, "clips": len(keep), "auroc_mean": round(float(np.mean(means)), 3),
                     "auroc_sd": round(float(np.std(means)), 3),
                     **{k: round(float(np.mean([f[k] for f in found])), 3)
                        for k in ("outside_under_half", "inside_at_half_or_above")}})
    return rows


def _figures_of(keep: np.ndarray, features: list[np.ndarray], y: np.ndarray, groups: list[str], labels) -> dict:
    """The protocol's figures (per label too) on the clips `keep` of a library: a part of it (--curve,
    --artists), quiet."""
    with warnings.catch_warnings():  # a fold with one clip of a label: small parts are meant to hold some
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        return figures(leave_one_label_out([features[i] for i in keep], y[keep], [groups[i] for i in keep], labels,
                                           quiet=True), y[keep])


def inside_outside(features: list[np.ndarray], y: np.ndarray, groups: list[str], labels, inside_labels) -> dict:
    """A taxonomy of `inside_labels` only: its clips out of fold, every other clip as the outside."""
    chosen = np.isin(y, [labels.index(name) for name in inside_labels])
    rest, left = np.flatnonzero(chosen), np.flatnonzero(~chosen)
    inside, outside = _out_of_fold([features[i] for i in rest], y[rest], [groups[i] for i in rest],
                                   [features[i] for i in left])
    return {"+".join(inside_labels): (inside, _mean(outside, len(left)))}


def _auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """NaN where a side has no scored clip."""
    inside, outside = inside[~np.isnan(inside)], outside[~np.isnan(outside)]
    if not (len(inside) and len(outside)):
        return float("nan")
    return float(roc_auc_score(np.r_[np.ones(len(inside)), np.zeros(len(outside))], np.r_[inside, outside]))


def _scored(results: dict) -> tuple[np.ndarray, np.ndarray]:
    """Every scored P(in) of the inside, and of the outside."""
    inside, outside = (np.concatenate([r[side] for r in results.values()]) for side in (0, 1))
    return inside[~np.isnan(inside)], outside[~np.isnan(outside)]


def figures(results: dict, y: np.ndarray | None = None) -> dict:
    """AUROC per left-out label and their mean; the shares under and at-or-above 0.5; the balanced
    reliability table (per bin of P(in): the share of the weight that is inside). With the label
    indices y of leave_one_label_out's clips, the inside's share at or above 0.5 per label too."""
    inside, outside = _scored(results)
    p, truth = np.r_[inside, outside], np.r_[np.ones(len(inside)), np.zeros(len(outside))]
    weight = np.r_[np.full(len(inside), 0.5 / len(inside)), np.full(len(outside), 0.5 / len(outside))]
    which = np.minimum((p * BINS).astype(int), BINS - 1)
    table = [{"bin": f"{b / BINS:.1f}-{(b + 1) / BINS:.1f}", "mean_p": round(float(np.average(p[which == b],
             weights=weight[which == b])), 3), "inside": round(float(np.average(truth[which == b],
             weights=weight[which == b])), 3), "weight": round(float(weight[which == b].sum()), 3)}
             for b in range(BINS) if np.any(which == b)]
    auroc = {label: None if np.isnan(a) else round(a, 3) for label, a in
             ((label, _auroc(i, o)) for label, (i, o) in results.items())}  # None: a side had no scored clip
    unscored = sum(int(np.isnan(i).sum() + np.isnan(o).sum()) for i, o in results.values())
    mean = np.mean([a for a in auroc.values() if a is not None])
    return {"auroc": auroc, "auroc_mean": round(float(mean), 3), "unscored": unscored,
            "outside_under_half": round(float(np.mean(outside < 0.5)), 3),
            "inside_at_half_or_above": round(float(np.mean(inside >= 0.5)), 3),
            "ece_balanced": round(float(sum(t["weight"] * abs(t["inside"] - t["mean_p"]) for t in table)), 3),
            "outside_clips": int(len(outside)), "inside_answers": int(len(inside)), "reliability": table,
            **({} if y is None else {"inside_at_half_or_above_by_label": _by_label(results, y)})}


def _by_label(results: dict, y: np.ndarray) -> dict:
    """Per label (results' keys, in the order of y's indices), the share of its clips' inside answers
    (scored out of fold in every round that kept it) at 0.5 or above; None where none was scored."""
    labels = list(results)
    answers = {label: [] for label in labels}
    for k, (inside, _) in enumerate(results.values()):
        for i, p in zip(np.flatnonzero(y != k), inside, strict=True):
            if not np.isnan(p):
                answers[labels[y[i]]].append(p)
    return {label: round(float(np.mean(np.array(a) >= 0.5)), 3) if a else None for label, a in answers.items()}


def report(result: dict) -> str:
    by_label = result.get("inside_at_half_or_above_by_label")
    lines = ["  AUROC per left-out label: " + ", ".join(f"{k} {'-' if v is None else f'{v:.3f}'}"
                                                     for k, v in result["auroc"].items()),
             f"  mean AUROC {result['auroc_mean']:.3f}; outside under 0.5: {result['outside_under_half']:.1%} of "
             f"{result['outside_clips']}; inside at 0.5 or above: {result['inside_at_half_or_above']:.1%} of "
             f"{result['inside_answers']}; balanced ECE {result['ece_balanced']:.3f}"
             + (f"; {result['unscored']} not scored (a fold left one label)" if result["unscored"] else ""),
             *(["  inside at 0.5 or above per label (its clips, by detectors that never heard their artist): "
                + ", ".join(f"{k} {'-' if v is None else f'{v:.0%}'}" for k, v in by_label.items())]
               if by_label else []),
             "  reliability (P(in) bin: mean P(in), share inside, weight): " + "; ".join(
                 f"{t['bin']}: {t['mean_p']:.2f}, {t['inside']:.2f}, {t['weight']:.2f}" for t in result["reliability"])]
    return "\n".join(lines)


def diagram(result: dict, path: Path, title: str) -> None:
    """The reliability diagram of figures()' table: per bin of P(in), the share of the weight that is
    inside (the outside weighed as much as the inside), and the diagonal."""
    table = result["reliability"]
    calibrate.plot_reliability({f"in_labels (balanced ECE {result['ece_balanced']:.3f})": (
        [t["mean_p"] for t in table], [t["inside"] for t in table])}, path, title,
        "in_labels (P(in the model's labels))", "share of the music inside the labels (balanced)")


def by_artists(features: list[np.ndarray], y: np.ndarray, groups: list[str], labels, label: str) -> list[dict]:
    """The protocol with only some of `label`'s artists in the library (each count of ARTIST_COUNTS under
    all of them, CURVE_DRAWS random draws; then all of them), per count: the share of its clips kept inside
    (at 0.5 or above, from detectors that never heard their artist), its range over the draws, and its
    AUROC when it is the label left out."""
    j, groups_of = labels.index(label), np.asarray(groups)
    artists = np.unique(groups_of[y == j])
    rows = []
    for count in [c for c in ARTIST_COUNTS if c < len(artists)] + [len(artists)]:
        found = []
        for seed in range(CURVE_DRAWS if count < len(artists) else 1):
            keep = np.flatnonzero((y != j) | np.isin(groups_of, np.random.default_rng(seed).choice(
                artists, count, replace=False)))
            result = _figures_of(keep, features, y, groups, labels)
            found.append((result["inside_at_half_or_above_by_label"][label], result["auroc"][label],
                          int(np.sum(y[keep] == j))))
        inside, auroc, clips = np.array(found).T
        rows.append({"label": label, "artists": count, "clips": round(float(clips.mean()), 1),
                     "inside_at_half_or_above": round(float(inside.mean()), 3), "inside_low": float(inside.min()),
                     "inside_high": float(inside.max()), "auroc": round(float(auroc.mean()), 3)})
    return rows


def load(data: Path, cache: Path) -> tuple[list[np.ndarray], np.ndarray, list[str], tuple[str, ...]]:
    """A library's cached features (computed where missing), label indices, artists and labels."""
    from export import extract, library
    from inference import config
    found = library.read(data, progress=extract.progress)
    clips, features = extract.features(found, extract.Extractor(config.DEFAULT_MODEL, cache=cache, jobs=1))
    labels = tuple(sorted({c.label for c in clips}))
    return features, np.array([labels.index(c.label) for c in clips]), library.Library(clips, []).groups, labels


def _labels_named(text: str, labels, option: str, least: int = 1) -> list[str]:
    """The comma-separated labels of an option; SystemExit if fewer than `least` or not the library's."""
    wanted = [name.strip() for name in text.split(",")]
    unknown = sorted(set(wanted) - set(labels))
    if unknown or len(wanted) < least:
        raise SystemExit(f"{option} needs {least} or more of the library's labels {list(labels)}; not {unknown}")
    return wanted


def main(argv=None) -> None:
    from export import extract
    parser = argparse.ArgumentParser(prog="python -m export.outside", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="a folder of label folders, or a CSV manifest")
    parser.add_argument("--inside", help="comma-separated labels of a smaller taxonomy (the rest: its outside)")
    parser.add_argument("--diagram", type=Path, help="draw the reliability diagram here (.png)")
    parser.add_argument("--curve", help="comma-separated shares (0-1) of each label's clips to run the protocol "
                                        f"on too, {CURVE_DRAWS} random draws each")
    parser.add_argument("--cache", type=Path, default=extract.CACHE, help="the features' cache (default: %(default)s)")
    parser.add_argument("--artists", help="comma-separated labels to run the protocol on with only some of their "
                                          f"artists too: {', '.join(map(str, ARTIST_COUNTS))}, then all; "
                                          f"{CURVE_DRAWS} random draws each")
    args = parser.parse_args(argv)
    if (args.curve or args.artists) and args.inside:
        parser.error("--curve and --artists leave one label out: they do not go with --inside")
    features, y, groups, labels = load(args.data, args.cache)
    if args.inside:
        wanted = _labels_named(args.inside, labels, "--inside", least=2)
        results, what = inside_outside(features, y, groups, labels, wanted), f"inside {wanted}, the rest outside"
    elif len(labels) < MIN_LABELS:
        raise SystemExit(f"leaving one label out needs {MIN_LABELS} labels or more; the library has {len(labels)}")
    else:
        if args.curve:
            print(f"== in_labels on shares of each label's clips, leave one label out, {CURVE_DRAWS} draws each")
            for row in curve(features, y, groups, labels, [float(s) for s in args.curve.split(",")]):
                print(f"  share {row['share']:.2f} ({row['clips']} clips): mean AUROC {row['auroc_mean']:.3f} (sd "
                      f"{row['auroc_sd']:.3f}); outside under 0.5: {row['outside_under_half']:.1%}; inside at 0.5 "
                      f"or above: {row['inside_at_half_or_above']:.1%}", flush=True)
        for label in _labels_named(args.artists, labels, "--artists") if args.artists else ():
            print(f"== in_labels with some of {label}'s artists, leave one label out, {CURVE_DRAWS} draws each")
            for row in by_artists(features, y, groups, labels, label):
                print(f"  {row['artists']} artists ({row['clips']:g} clips): inside at 0.5 or above "
                      f"{row['inside_at_half_or_above']:.0%} ({row['inside_low']:.0%}-{row['inside_high']:.0%}); "
                      f"AUROC left out {row['auroc']:.3f}", flush=True)
        results, what = leave_one_label_out(features, y, groups, labels), "leave one label out"
    result = figures(results, None if args.inside else y)
    print(f"== in_labels, {what}, artists grouped ({len(y)} clips)\n{report(result)}")
    if args.diagram:
        diagram(result, args.diagram, f"in_labels, {what}")


if __name__ == "__main__":
    main()
