"""The music detector of a model trained on a narrow library: how often it calls music of the genres
outside its labels music, and how often it lets held-out non-music through (docs/music-detection.md,
"A narrow library").

    python -m export.music_narrow --data ../shared/data/gtzan --labels rock jazz [--model X.onnx ...]

The library is the --data clips of the --labels; the others are the music outside it. Features are
the shipped model's (the clips' cached by export/extract.py, the non-music's beside them). Each
detector is built as `train` builds it, from the library's music against the synthesized non-music:

- own: fitted on the library's music alone (what `train` appended before the shipped one was kept);
- own or shipped: the larger logit of that and the shipped model's detector (what `train` appends
  now); the shipped detector was fitted on every --data clip and every non-music item, so on them
  it is in-sample: the figure the served model gives;
- own or broad: the same with the shipped detector fitted again as it was, on the --data clips,
  without the scored clip's artists (grouped folds, export/folds.py, seed 0) and without the held-out
  non-music: out of sample.

Music outside the labels: the share of its clips called music (the mean of the segments' logits
positive, as served). Non-music: the share of its items flagged, one generator held out at a time
(with every mixture that holds it, as export/music_compare.py holds them out): the library's detector
and the broad one both fitted without it. --model: also a trained model's own detector (read from
its graph) on the same clips and items (its non-music in-sample).
"""
import argparse
from pathlib import Path

import numpy as np
import onnx

from export import extract, folds, library, music, nonmusic
from export.music_compare import held_out
from inference import config, segments


def _called(detector: music.Detector, features: list[np.ndarray]) -> np.ndarray:
    """Per track: called music (its segments' pooled P(music) >= 0.5)."""
    return np.array([segments.pool_yes(detector.probabilities(f)) >= 0.5 for f in features])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m export.music_narrow", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="a folder of label folders (GTZAN)")
    parser.add_argument("--labels", nargs="+", required=True, help="the narrow library's labels among --data's")
    parser.add_argument("--model", type=Path, nargs="*", default=[], help="trained models, their detectors scored too")
    parser.add_argument("--cache", type=Path, default=extract.CACHE)
    args = parser.parse_args(argv)
    found = library.read(args.data)
    extractor = extract.Extractor(config.DEFAULT_MODEL, cache=args.cache, jobs=1)
    clips, x = extract.features(found, extractor)
    found = library.Library(clips)
    mine = np.array([c.label in args.labels for c in clips])
    if not mine.any() or mine.all():
        raise SystemExit(f"--labels {args.labels}: none or all of {found.labels}")
    other, items = extract.nonmusic_features(extractor), nonmusic.generate()
    shipped = music.shipped(extractor.features_id())
    if shipped is None:
        raise SystemExit(f"{config.DEFAULT_MODEL} holds no music detector to compare with")
    library_x = np.concatenate([f for f, m in zip(x, mine, strict=True) if m])
    own = music.fit(library_x, np.concatenate(other))
    outside = [f for f, m in zip(x, mine, strict=True) if not m]
    detectors = {"own": own, "own or shipped": music.either(own, shipped)}
    for path in args.model:
        detectors[f"the model {path.name}"] = music.detector_of(onnx.load(str(path)))
    figures = {name: {"outside_called_music": float(_called(d, outside).mean())} for name, d in detectors.items()}
    broad = np.zeros(len(clips), bool)  # own or broad, the broad detector fitted without the clip's artists
    for _, fit_on, score in folds.grouped(np.array([found.labels.index(c.label) for c in clips]), found.groups,
                                          seeds=[0])[0]:
        fold = music.either(own, music.fit(np.concatenate([x[i] for i in fit_on]), np.concatenate(other)))
        broad[score] = _called(fold, [x[i] for i in score])
    figures["own or broad"] = {"outside_called_music": float(broad[~mine].mean())}
    flagged = {name: [] for name in figures}
    for g in sorted({g for item in items for g in held_out(item, "generator")}):
        held = np.array([g in held_out(item, "generator") for item in items])
        rest = np.concatenate([o for o, h in zip(other, held, strict=True) if not h])
        scored = [o for o, h in zip(other, held, strict=True) if h]
        own_g = music.fit(library_x, rest)
        by = {"own": own_g, "own or shipped": music.either(own_g, shipped),
              "own or broad": music.either(own_g, music.fit(np.concatenate(x), rest)),
              **{k: d for k, d in detectors.items() if k.startswith("the model")}}
        for name, d in by.items():
            flagged[name] += list(~_called(d, scored))
    print(f"library: {mine.sum()} clips of {sorted(set(args.labels))}; outside it: {len(outside)} clips of "
          f"{len(found.labels) - len(set(args.labels))} labels; non-music: {len(items)} items, one generator held out "
          f"at a time ({len(flagged['own'])} item answers); shipped detector: yes")
    for name, f in figures.items():
        f["nonmusic_flagged"] = float(np.mean(flagged[name]))
        print(f"  {name:24} music outside the labels called music {f['outside_called_music']:6.1%}   "
              f"non-music flagged {f['nonmusic_flagged']:6.1%}")
    called = _called(own, outside)
    labels = [c.label for c, m in zip(clips, mine, strict=True) if not m]
    print("  own, per label outside: " + ", ".join(
        f"{label} {np.mean([k for k, lb in zip(called, labels, strict=True) if lb == label]):.0%}"
        for label in sorted(set(labels))))
    return figures


if __name__ == "__main__":
    main()
