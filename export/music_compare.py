"""Candidate music detectors compared on musicnn's segment features; prints the figures that
chose export/music.py's method (docs/music-detection.md).

    python -m export.music_compare --data ../shared/data/gtzan [--seeds 0 1 2]

Protocol: the music (the GTZAN clips) is scored out of fold, artists grouped (export/folds.py);
the non-music (export/nonmusic.py) one held-out group at a time, with every mixture that contains
it: a speech engine (espeak-ng, flite, festival) or one generator of the other signals (white
noise, sweeps...; --hold-out family: a whole family, noise, tones...). Each fit sees neither the
music fold nor the group it scores. The borderline items (nonmusic.borderline) are built from
the scored fold's clips and a voice of the held-out engine; a real voice (nonmusic.real_voice)
is scored by a fit on everything. A track is music when its pooled score (the mean
of its segments' logits) is positive; a segment when its own is.
"""
import argparse
import hashlib
from pathlib import Path

import numpy as np
import onnx
from scipy.special import expit
from sklearn.covariance import LedoitWolf
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

from export import calibrate, extract, folds, library, musicnn, nonmusic
from export import music as music_detector
from export.families import genre_musicnn
from inference import features, segments
from inference.config import DEFAULT_MODEL

CACHE = musicnn.CACHE.parent / "music-detector"
OUT_OF_FOLD_QUANTILE = 0.99  # distance methods: the music segments' distance under which a segment is music
BORDERLINE_EVERY = 3  # the borderline set pairs every third music clip with a voice


def signal_stats(audio_segments: np.ndarray) -> np.ndarray:
    """[segments, 2]: the mean power in dB (an RMS level) and the mean spectral flatness of the
    segment's frames (the spectrum the model sees: n_fft 512, hop 256)."""
    power = features.power_spectrum(audio_segments, musicnn.N_FFT, musicnn.HOP_LENGTH, musicnn.N_FFT // 2 + 1)
    power = power.astype(np.float64) + 1e-10
    level = 10 * np.log10(power.mean(axis=(1, 2)))
    flatness = (np.exp(np.log(power).mean(axis=2)) / power.mean(axis=2)).mean(axis=1)
    return np.stack([level, flatness], axis=1)


def segment_features(audios: list[np.ndarray]) -> list[np.ndarray]:
    """Each audio's segments: the shipped model's features [250] (musicnn MSD's, as the detector is
    trained on them) and signal_stats [2], cached by what determines them: the audio and the features."""
    digest = hashlib.sha256(genre_musicnn.features_id().encode()
                            + b"".join(a.astype(np.float32).tobytes() for a in audios)).hexdigest()[:16]
    path = CACHE / f"features-{digest}.npz"
    if not path.exists():
        net = music_detector.features_of(onnx.load(DEFAULT_MODEL), audios)
        stats = [signal_stats(segments.split(a, genre_musicnn.SEGMENT_SAMPLES)) for a in audios]
        CACHE.mkdir(parents=True, exist_ok=True)
        np.savez(path, counts=[len(f) for f in net], x=np.concatenate([np.hstack(p) for p in zip(net, stats,
                                                                                                  strict=True)]))
    cached = np.load(path)
    return np.split(cached["x"], np.cumsum(cached["counts"])[:-1])


def _logistic(columns, c=music_detector.C):
    """An L2 logistic regression (classes balanced) on the standardised columns of every segment:
    export/music.py's fit on the 250 features."""
    def fit(music, groups, other):
        detector = music_detector.fit(np.concatenate(music)[:, columns], other[:, columns], c)
        return lambda z: detector.logits(z[:, columns])
    return fit


def _distance_to(kind, train):
    """The distance of segments [n, 250] to the train segments: Mahalanobis (Ledoit-Wolf
    covariance), or the mean standardised distance to the 5 nearest."""
    if kind == "mahalanobis":
        covariance = LedoitWolf().fit(train)
        return lambda test: np.sqrt(covariance.mahalanobis(test))
    scaler = StandardScaler().fit(train)
    neighbours = NearestNeighbors(n_neighbors=5).fit(scaler.transform(train))
    return lambda test: neighbours.kneighbors(scaler.transform(test))[0].mean(1)


def _distance(kind):
    """Fitted on the music alone: the score is log(threshold) - log(distance), the threshold the
    OUT_OF_FOLD_QUANTILE of the music segments' distances, each from a fit on the other half of
    the artists."""
    def fit(music, groups, other):
        artists = sorted(set(groups))
        half = [artists.index(g) % 2 == 0 for g in groups]
        a = np.concatenate([m for m, h in zip(music, half, strict=True) if h])[:, :250]
        b = np.concatenate([m for m, h in zip(music, half, strict=True) if not h])[:, :250]
        threshold = np.quantile(np.r_[_distance_to(kind, a)(b), _distance_to(kind, b)(a)], OUT_OF_FOLD_QUANTILE)
        distance = _distance_to(kind, np.concatenate(music)[:, :250])
        return lambda z: np.log(threshold) - np.log(distance(z[:, :250]))
    return fit


METHODS = {"logistic: features 250": _logistic(slice(0, 250)),
           "logistic: features 250, C 0.01": _logistic(slice(0, 250), 0.01),
           "logistic: features 250, C 1": _logistic(slice(0, 250), 1.0),
           "logistic: features + level, flatness": _logistic(slice(0, 252)),
           "logistic: tags 50": _logistic(slice(200, 250)),
           "logistic: level, flatness": _logistic(slice(250, 252)),
           "mahalanobis to the music": _distance("mahalanobis"),
           "5-nn distance to the music": _distance("knn")}


def _borderline(items, songs):
    """(clip index, voice's group, name, segment labels) and the audio of each borderline item:
    every BORDERLINE_EVERY-th clip with a voice, the voices taken in turn."""
    voices = [i for i in items if i.name.startswith("speech/")]
    chosen = list(range(0, len(songs), BORDERLINE_EVERY))
    made = []
    for k, clip in enumerate(chosen):
        voice = voices[k % len(voices)]
        for name, audio, labels in nonmusic.borderline([voice], [songs[clip]]):
            made.append(((clip, voice.sources[0], name.split(" ", 1)[1], labels), audio))
    return [m for m, _ in made], [a for _, a in made]


def held_out(item, by: str) -> set[str]:
    """What an item is held out with: its generators, or their families (nonmusic.GROUP_OF)."""
    return item.groups if by == "family" else set(item.sources)


def evaluate(fit, music, groups, protocol, items, other, border, border_x, by: str) -> dict:
    """Out-of-fold segment scores: music[(repeat, group)][clip], non-music per item (a list, one
    per fold), borderline per item (a list)."""
    music_scores, other_scores, border_scores = {}, {}, {}
    for r, repeat in enumerate(protocol):
        for g in sorted({g for item in items for g in held_out(item, by)}):
            held = [g in held_out(item, by) for item in items]
            train_other = np.concatenate([x for x, h in zip(other, held, strict=True) if not h])
            scored = music_scores.setdefault((r, g), {})
            for _, fit_on, score_on in repeat:
                scorer = fit([music[i] for i in fit_on], [groups[i] for i in fit_on], train_other)
                scored.update({i: scorer(music[i]) for i in score_on})
                for j in np.flatnonzero(held):
                    other_scores.setdefault(j, []).append(scorer(other[j]))
                for j, (clip, engine, _, _) in enumerate(border):
                    if r == 0 and clip in score_on and engine == g:
                        border_scores.setdefault(j, []).append(scorer(border_x[j]))
    return {"music": music_scores, "other": other_scores, "border": border_scores}


def _flagged(scores: list[np.ndarray]) -> tuple[float, float]:
    """The share of tracks (pooled score <= 0) and of segments flagged not music."""
    return float(np.mean([s.mean() <= 0 for s in scores])), float(np.mean(np.concatenate(scores) <= 0))


def report(name: str, result: dict, items, border) -> None:
    by_condition = {key: list(scored.values()) for key, scored in result["music"].items()}
    tracks = {key: 1 - _flagged(s)[0] for key, s in by_condition.items()}
    seg = np.mean([1 - _flagged(s)[1] for s in by_condition.values()])
    every = [s for j, scores in result["other"].items() for s in scores]
    print(f"== {name}\n  music called music: tracks {np.mean(list(tracks.values())):.1%} (lowest, one held-out "
          f"group: {min(tracks.values()):.1%}), segments {seg:.1%}")
    print("  non-music flagged: tracks {:.1%}, segments {:.1%}".format(*_flagged(every)))
    for g in nonmusic.GROUPS:
        scores = [s for j, ss in result["other"].items() if g in items[j].groups for s in ss]
        missed = sorted({items[j].name for j, ss in result["other"].items() if g in items[j].groups
                         for s in ss if s.mean() > 0})
        print(f"    {g:11} tracks {_flagged(scores)[0]:6.1%} segments {_flagged(scores)[1]:6.1%}"
              + (f"  missed: {', '.join(missed[:4])}{' ...' if len(missed) > 4 else ''}" if missed else ""))
    for kind in ("over music 20 dB under", "over music 10 dB under", "then music"):
        chosen = [(border[j][3], s) for j, ss in result["border"].items() if border[j][2] == kind for s in ss]
        right = np.concatenate([(s > 0) == (labels > 0) for labels, s in chosen])
        print(f"    borderline, voice {kind}: segments answered as decided {right.mean():.1%} ({len(chosen)} items)")


def reliability(result: dict, path: Path, title: str) -> None:
    """The reliability diagram of P(music) = sigmoid(score), out of fold, for segments and tracks
    (the music once per held-out condition, the non-music once per fold), and its figures."""
    music = [s for scored in result["music"].values() for s in scored.values()]
    other = [s for scores in result["other"].values() for s in scores]
    curves = {}
    for name, pick in (("segments", np.concatenate), ("tracks", lambda ss: np.array([s.mean() for s in ss]))):
        p, y = expit(np.r_[pick(music), pick(other)]), np.r_[np.ones(len(pick(music))), np.zeros(len(pick(other)))]
        curves[name] = (np.c_[1 - p, p], y.astype(int))
        print(f"  P(music) of {name}, out of fold: " + ", ".join(f"{k} {v:.3f}" for k, v in
                                                              calibrate.figures(*curves[name]).items()))
    calibrate.reliability_diagram(curves, path, title)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m export.music_compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the music: a labelled library (export/library/)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="repeats of the grouped folds")
    parser.add_argument("--hold-out", choices=("generator", "family"), default="generator",
                        help="hold out one generator (white noise, flite...) or a family of them (noise, tone...)")
    parser.add_argument("--diagram", type=Path, help="draw the first method's reliability diagram here (.png)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    args = parser.parse_args(argv)
    found = library.read(args.data)
    clips, audio = extract.audio(found, genre_musicnn.SAMPLE_RATE)
    found = library.Library(clips)
    loaded = list(zip(clips, audio, strict=True))
    groups = found.groups
    protocol = folds.grouped(np.array([found.labels.index(c.label) for c in clips]), groups, seeds=args.seeds)
    items = nonmusic.generate()
    border, border_audio = _borderline(items, [a for _, a in loaded])
    music = segment_features([a for _, a in loaded])
    other, border_x = segment_features([i.audio for i in items]), segment_features(border_audio)
    real_voice = segment_features([nonmusic.real_voice()])[0]
    print(f"music: {len(music)} clips, {sum(map(len, music))} segments, {len(set(groups))} artists; non-music: "
          f"{len(items)} items, {sum(map(len, other))} segments; borderline: {len(border)} items; seeds {args.seeds}; "
          f"held out: one {args.hold_out} at a time")
    for name in args.methods:
        scores = evaluate(METHODS[name], music, groups, protocol, items, other, border, border_x, args.hold_out)
        report(name, scores, items, border)
        voice = METHODS[name](music, groups, np.concatenate(other))(real_voice)
        print(f"  a real voice (never trained on), fitted on everything: P(music) per segment "
              f"{np.round(expit(voice), 3).tolist()}, track {expit(voice.mean()):.3f}")
        if args.diagram and name == args.methods[0]:
            reliability(scores, args.diagram, f"P(music), {name}: out of fold")


if __name__ == "__main__":
    main()
