"""Training, cross-validation, evaluation and ONNX export of a model family on any labelled library.

    python -m export crossval FAMILY --data LIBRARY [--out DIR]   (default DIR: runs/)
    python -m export train FAMILY --data LIBRARY [--out FILE.onnx]   (default FILE: runs/FAMILY.onnx)
    python -m export evaluate --model FILE.onnx --data LIBRARY

LIBRARY: a folder of label folders (<label>/<any depth>/<audio file>; GTZAN is one, its artists.csv
and splits/ beside them), the same as prefixes of a bucket (gs://BUCKET/PREFIX/<label>/...: read by
the function with --endpoint), a CSV manifest (path,label[,artist]: files, http(s) links or gs://
objects), or, with
--labels-from tags, a folder of files that carry their genre tag.
crossval scores a family with the clips' artists kept on one side of each fold (export/folds.py),
prints the figures and writes <out>/crossval_<family>.json, confusion_<family>.png and
calibration_<family>.png; train fits on every clip and writes FILE.onnx, its serving twin and its
.json card, with the cross-validation's figures and calibration when crossval wrote them beside it.
Both write into runs/ (untracked) unless --out says where: the shipped models and their figures in
models/ are refreshed only by naming models/ on purpose.
"""
import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from export import calibrate, crossval, evaluate, extract, families, folds, in_labels, library, music, outside, to_onnx
from inference import batch, storage

RUNS = Path("runs")  # crossval's and train's default --out: untracked (.gitignore), never the shipped models
MUSIC_WARNING = 0.98  # issue 20's target: music called music out of fold at least this often
IN_LABELS_WARNING = 0.5  # a label whose music, by artists unheard, is kept inside less often is named


def _data(parser, split: bool):
    parser.add_argument("--data", required=True, type=_library_at,
                        help="a folder of label folders, gs://BUCKET/PREFIX/ of label prefixes, or a CSV manifest")
    parser.add_argument("--labels-from", choices=("folders", "tags"), default="folders",
                        help="a folder's labels: its label folders' names, or its files' genre tags")
    parser.add_argument("--artists", type=Path, help="stem,artist CSV (default: DATA/artists.csv, else artist tags)")
    parser.add_argument("--splits-dir", type=Path, help="folder of <split>_filtered.txt (default: DATA/splits)")
    if split:
        parser.add_argument("--split", default="all", help="only this split list's clips (train, valid, all)")


def _extraction(parser):
    parser.add_argument("--endpoint", help="compute features with the deployed function at this URL")
    parser.add_argument("--token", default=os.environ.get("GENRE_TOKEN"),
                        help="identity token for a private function (default: $GENRE_TOKEN)")
    parser.add_argument("--token-command", metavar="CMD", default=os.environ.get("GENRE_TOKEN_COMMAND"),
                        help="prints an identity token, run again when it is refused or about to expire (default: "
                             "$GENRE_TOKEN_COMMAND; without either: google-auth's credentials, for an https endpoint)")
    parser.add_argument("--jobs", type=int, help="clips at once (default: the core count; 8 with --endpoint)")
    parser.add_argument("--retries", type=int, default=6, help="retries per request (--endpoint)")
    batch.client_options(parser)
    parser.add_argument("--cache", type=Path, default=extract.CACHE, help="the features' cache (default: %(default)s)")


def _parser() -> argparse.ArgumentParser:
    listing = "\n".join(f"  {name:16} {families.summary(f)}" for name, f in families.ALL.items())
    parser = argparse.ArgumentParser(prog="python -m export", description=__doc__, epilog=f"families:\n{listing}",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for command, text in (("crossval", "cross-validate a family"), ("train", "train a family and export it")):
        per_family = commands.add_parser(command, help=text, description=f"{text}; its options (--data, --out, "
                                         f"--endpoint...): python -m export {command} FAMILY --help"
                                         ).add_subparsers(dest="family", required=True, metavar="FAMILY")
        for name, family in families.ALL.items():
            sub = per_family.add_parser(name, help=families.summary(family))
            _data(sub, split=command == "train")
            _extraction(sub)
            sub.add_argument("--out", type=Path, default=RUNS if command == "crossval" else RUNS / f"{name}.onnx",
                             help="the folder for what it writes (default: %(default)s/; models/ to refresh the "
                                  "shipped figures that train reads)" if command == "crossval"
                             else "the model file, crossval's figures read beside it (default: %(default)s; "
                                  f"models/{name}.onnx to refresh the shipped model)")
            family.add_arguments(sub)
    scoring = commands.add_parser("evaluate", help="score an exported model on a labelled library")
    scoring.add_argument("--model", required=True, type=Path)
    _data(scoring, split=True)
    return parser


def _library(args) -> library.Library:
    found = library.read(args.data, args.labels_from, args.artists, progress=extract.progress)
    split = getattr(args, "split", "all")
    if split != "all":
        folder = _splits_dir(args)
        lists = sorted(p.name.removesuffix(folds.SPLIT_SUFFIX) for p in folder.glob(f"*{folds.SPLIT_SUFFIX}")) \
            if folder else []
        if split not in lists:
            raise library.LibraryError(f"--split {split}: no list {split}{folds.SPLIT_SUFFIX} in "
                                       f"{folder or 'DATA/splits (none here; --splits-dir names one)'}; "
                                       f"--split takes {', '.join([*lists, 'all'])}")
        stems = folds.read_split(folder, split)
        found.clips = [c for c in found.clips if c.stem in stems]
    return found


def _library_at(text: str) -> Path | str:
    """--data: a path, or a gs:// prefix as it is (a Path would fold its //)."""
    return text if storage.is_gs(text) else Path(text)


def _splits_dir(args) -> Path | None:
    """--splits-dir (LibraryError if it is no folder), else DATA/splits where there is one."""
    if args.splits_dir and not args.splits_dir.is_dir():
        raise library.LibraryError(f"--splits-dir {args.splits_dir} is not a folder")
    local = isinstance(args.data, Path) and args.data.is_dir()
    folder = args.splits_dir or (args.data / "splits" if local else None)
    return folder if folder and folder.is_dir() else None


def _inputs(args, family) -> tuple[library.Library, np.ndarray, list]:
    """The usable clips (sizes checked), their label indices and the family's inputs."""
    found = _library(args)
    library.check_sizes(found)  # before the features: a file that does not decode only takes clips away
    args.jobs = args.jobs or (8 if args.endpoint else os.cpu_count() or 1)
    clips, inputs = family.inputs(found, args)
    usable = library.Library(clips, found.skipped, found.warnings)
    _report_skipped(usable)
    library.check_sizes(usable)
    _warn_one_artist(usable)
    return usable, np.array([usable.labels.index(c.label) for c in clips]), inputs


def _report_skipped(found: library.Library):
    if found.skipped:
        print(f"skipped {len(found.skipped)}:\n  " + "\n  ".join(found.skipped), file=sys.stderr)
    for warning in found.warnings:
        print(f"warning: {warning}", file=sys.stderr)


def _warn_thin_labels(kept: dict):
    """Names the labels whose music in_labels keeps inside less often than IN_LABELS_WARNING when it
    has not heard the artist."""
    thin = [f"{label!r} ({share:.0%})" for label, share in kept.items()
            if share is not None and share < IN_LABELS_WARNING]
    if thin:
        print(f"warning: in_labels calls most music of {', '.join(thin)} outside the labels when it has not heard "
              "the artist (the share kept inside in brackets): add clips of more artists to these labels, about ten "
              "each where labels neighbour (docs/outside-labels.md#how-a-labels-share-grows-with-its-artists)",
              file=sys.stderr)


def _warn_one_artist(found: library.Library):
    """Name each label whose clips all come from one known artist: grouped folds cannot keep it apart."""
    artists = {}
    for clip in found.clips:
        artists.setdefault(clip.label, set()).add(clip.artist or None)
    for label, who in sorted(artists.items()):
        if len(who) == 1 and None not in who:
            print(f"warning: every clip of {label!r} is by {next(iter(who))!r}: its figures cannot be grouped by "
                  "artist (a fold without that artist has no clip of it), so they say little about other artists' "
                  f"{label}; add clips by other artists", file=sys.stderr)


def _protocol(found: library.Library) -> str:
    known = sum(bool(c.artist) for c in found.clips)
    if known == len(found.clips):
        return "by artist"
    print(f"warning: the artist of {len(found.clips) - known} of {len(found.clips)} clips is unknown (an artist "
          "column, artists.csv or artist tags give it): each is its own group, so an artist on both sides of a "
          "fold inflates the figure", file=sys.stderr)
    return "by artist, each clip of unknown artist its own group" if known else "by file: no artists known"


def _fold_count(found: library.Library, y: np.ndarray) -> int:
    """The folds the artists allow, with a warning when they are fewer than GROUPED_FOLDS; LibraryError
    where no fold could keep an artist out, or one would fit on one label."""
    try:
        count = folds.fold_count(found.groups)
        folds.grouped(y, found.groups, count)
    except ValueError as exc:
        raise library.LibraryError(str(exc)) from None
    if count < folds.GROUPED_FOLDS:
        print(f"warning: {count} artists (or clips of unknown artist) for {folds.GROUPED_FOLDS} folds: {count}-fold "
              "cross-validation instead, each fold scoring one artist's clips; the figures are noisier and "
              "lower than with more artists", file=sys.stderr)
    return count


def run_crossval(args, family) -> dict:
    splits = _splits_dir(args)
    found, y, inputs = _inputs(args, family)
    labels, groups, out = found.labels, found.groups, Path(args.out)
    count = _fold_count(found, y)
    protocol = f"StratifiedGroupKFold({count}) {_protocol(found)}, seeds {list(folds.GROUPED_SEEDS)}"
    repeats = folds.grouped(y, groups, count)  # the genre head's folds and the music detector's
    out.mkdir(parents=True, exist_ok=True)
    grouped, answers = crossval.cross_validate(family, y, labels, inputs, repeats, args)
    results = {"family": family.NAME, "options": family.describe(args), "clips": len(y),
               "artists": len(set(groups)), "labels": list(labels),
               "data": {"name": _named(args.data), "fingerprint": found.fingerprint(), "skipped": len(found.skipped)},
               "grouped": dict(grouped, protocol=f"{protocol}; pooled track-level per repeat")}
    if splits:
        two_fold, _ = crossval.cross_validate(family, y, labels, inputs, folds.two_fold(
            [c.stem for c in found.clips], splits), args)
        results["two_fold"] = dict(two_fold, protocol="fit train list -> score valid list and back; pooled")
    if hasattr(family, "extractor"):  # features: a music detector too, scored out of fold
        other = extract.nonmusic_features(family.extractor(args))
        print(f"music detector, out of fold: {sum(map(len, repeats))} fits on the music of the other folds and the "
              f"synthesized non-music (export/nonmusic.py)...", flush=True)
        results["music"] = dict(music.out_of_fold(inputs, repeats, other),
                                protocol=f"{protocol}: clips called music by a detector fitted without their fold")
    if hasattr(family, "extractor") and len(labels) >= outside.MIN_LABELS:  # features: in_labels, left-out labels
        print("in_labels: leave one label out", flush=True)
        scored = outside.leave_one_label_out(inputs, y, groups, labels)
        results["in_labels"] = dict(outside.figures(scored, y), protocol=outside.PROTOCOL)
        outside.diagram(results["in_labels"], out / f"in_labels_{family.NAME}.png",
                        f"{family.NAME}: in_labels, leave one label out")
    if any(fold for by_fold in answers for fold in by_fold):
        results["calibration"] = crossval.calibration(answers, family.meta(labels).pooling,
                                                      out / f"calibration_{family.NAME}.png",
                                                      f"{family.NAME}: grouped CV, out of fold")
    (out / f"crossval_{family.NAME}.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    crossval.plot_confusion(grouped, out / f"confusion_{family.NAME}.png",
                            f"{family.NAME}: grouped CV x{grouped['repeats']} ({grouped['track_accuracy']:.0%})")
    for protocol in ("grouped", "two_fold")[:1 + bool(splits)]:
        print(f"== {family.NAME}, {results[protocol]['protocol']}\n{evaluate.report(results[protocol])}")
    _report_calibration(results.get("calibration"))
    if "music" in results:
        called = results["music"]["music_called_music"]
        print(f"== music, out of fold: {called:.1%} of the clips called music")
        if called < MUSIC_WARNING:
            shipped = music.shipped(family.meta(labels).features_id)  # train answers with it too (music.for_library)
            print(f"warning: the music detector, fitted on this library's music, calls {1 - called:.0%} of its clips "
                  "not music when it has not seen their artists: the library is too small or too narrow for it "
                  + ("(the model also takes the shipped model's detector: a segment either calls music is music)"
                     if shipped else "(the answers' `music` and `uncertain` will be too)")
                  + ", docs/music-detection.md", file=sys.stderr)
    if "in_labels" in results:
        print(f"== in_labels, {results['in_labels']['protocol']}\n{outside.report(results['in_labels'])}")
        _warn_thin_labels(results["in_labels"]["inside_at_half_or_above_by_label"])
    else:
        print(f"note: in_labels is scored by leaving one label out: {outside.MIN_LABELS} labels or more "
              "(the model still gets its detector at train)", file=sys.stderr)
    print(f"== {family.NAME} on {len(y)} clips of {len(labels)} labels: {grouped['track_accuracy']:.1%} of tracks "
          f"right ({results['grouped']['protocol']}) -> {out}")
    return results


def _report_calibration(calibration: dict | None):
    """Prints the calibration's figures, and what keeps train from using it."""
    if calibration is None:
        print("warning: no calibration: no fold scored a clip of a label it was fitted on (every label's clips are "
              "one artist's); train leaves the model uncalibrated, never flagging an answer uncertain: add clips "
              "by other artists", file=sys.stderr)
        return
    print(f"== calibration, out of fold: {json.dumps(calibration)}")
    if calibration["temperature_at_lowest"]:
        print(f"warning: the library is too small or too easy to calibrate on: out of fold its answers were right so "
              f"often that the fit wanted to sharpen them past the lowest temperature "
              f"({calibrate.TEMPERATURES[0]}), where it is held; add clips, artists or labels", file=sys.stderr)
    if calibration["temperature_at_highest"]:
        print(f"warning: out of fold the answers were no better than chance ({calibration['before']['accuracy']:.0%} "
              f"right), so the fit flattened them to the highest temperature ({calibrate.TEMPERATURES[1]:g}), where "
              "every answer would be uncertain; train leaves the model uncalibrated: add clips by more artists",
              file=sys.stderr)


def _usable(calibration: dict | None) -> bool:
    """Whether a crossval's calibration is one to bake into the model (see _report_calibration)."""
    return calibration is not None and not calibrate.at_highest(calibration["temperature"])


def _crossval_card(results: dict, found: library.Library, family, args) -> dict:
    """The cross-validation's figures for the card, if they are this training's (same options, data)."""
    if results["options"] != family.describe(args) or results["data"]["fingerprint"] != found.fingerprint():
        raise SystemExit(f"crossval_{family.NAME}.json beside the model was made with other options or data "
                         f"({results['options']}, {results['data']}): rerun crossval with --out there, "
                         "or train into another folder")
    return {p: {k: results[p][k] for k in ("protocol", "track_accuracy", "track_accuracy_min",
                                           "track_accuracy_max", "segment_accuracy", "f1")}
            for p in ("grouped", "two_fold") if p in results}


def run_train(args, family) -> Path:
    if args.out.is_dir() or not args.out.suffix:  # found before the training, not after it
        raise library.LibraryError(f"--out {args.out}: name the model's file, e.g. {args.out / 'mine.onnx'}")
    if args.out.suffix != ".onnx":
        raise library.LibraryError(f"--out {args.out}: the model's file ends in .onnx")
    started = time.monotonic()
    found, y, inputs = _inputs(args, family)
    path = Path(args.out)
    fitting = time.monotonic()
    trained = family.fit(inputs, y, found.labels, args)
    card = {"training": dict(family.describe(args), data=_named(args.data), split=args.split, clips=len(y),
                             seconds=round(time.monotonic() - fitting, 1))}
    meta = family.meta(found.labels, path.stem)
    if path.stem != family.NAME:  # a model of your own: its own version, the day it was trained, not the family's
        meta = dataclasses.replace(meta, version=time.strftime("%Y.%m.%d", time.gmtime()))
    model = family.onnx(trained, meta, args)
    scores = path.parent / f"crossval_{family.NAME}.json"
    if scores.exists():  # written by crossval into the same folder: its figures, and its calibration baked in
        results = json.loads(scores.read_text())
        card["crossval"] = _crossval_card(results, found, family, args)
        if _usable(results.get("calibration")):
            card["calibration"] = results["calibration"]
            model = to_onnx.calibrated(model, results["calibration"]["temperature"],
                                       results["calibration"]["uncertain_below"])
        else:
            print(f"warning: {scores} holds no calibration to use (crossval said why): the model is not calibrated "
                  "and never flags an answer uncertain", file=sys.stderr)
    else:
        print(f"warning: no {scores}: the model is not calibrated and never flags an answer uncertain "
              f"(run crossval with --out {path.parent} first)", file=sys.stderr)
    if hasattr(family, "extractor"):  # features: it says when it is not music, fitted on this library's music
        other = extract.nonmusic_features(family.extractor(args))
        # the shipped model's features: its detector too, so music outside the labels stays music
        detector = music.for_library(np.concatenate(inputs), np.concatenate(other), meta.features_id, path)
        model = music.append(model, detector)
        card["music"] = {"music_segments": int(sum(map(len, inputs))), "non_music_segments": int(sum(map(len, other))),
                         "non_music": "export/nonmusic.py", "method": "export/music.py",
                         "detector": detector.source}
        model = in_labels.append(model, in_labels.fit(inputs, y, found.groups))
        card["in_labels"] = {"method": "export/in_labels.py", "clips": len(y), "labels": len(found.labels)}
        if "crossval" in card and "in_labels" in results:
            card["in_labels"]["crossval"] = {k: results["in_labels"][k] for k in
                                             ("protocol", "auroc", "auroc_mean", "outside_under_half",
                                              "inside_at_half_or_above", "ece_balanced")}
    to_onnx.write(model, path, card)
    print(f"trained {path.stem} ({family.NAME}) on {len(y)} clips of {len(found.labels)} labels "
          f"in {time.monotonic() - started:.1f} s (the head's fit {card['training']['seconds']:.1f} s) -> {path}")
    return path


def _named(data: Path | str) -> str:
    """A library as a card records it: its name, not where it lies on this machine (a home folder); a
    bucket's prefix as it is."""
    return data if isinstance(data, str) else data.resolve().name


def run_evaluate(args):
    _, meta = evaluate.session(args.model)
    found = _library(args)
    foreign = sorted({c.label for c in found.clips} - set(meta.labels))
    if foreign:
        raise SystemExit(f"{args.model} knows {list(meta.labels)}; the library also has {foreign}")
    clips, windows = extract.audio(found, meta.sample_rate)
    _report_skipped(found)
    predictions = zip([meta.labels.index(c.label) for c in clips], evaluate.predict(args.model, windows), strict=True)
    print(evaluate.report(evaluate.summarize(list(predictions), meta.labels, meta.pooling)))


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        if args.command == "evaluate":
            return run_evaluate(args)
        family = families.ALL[args.family]
        return (run_crossval if args.command == "crossval" else run_train)(args, family)
    except library.LibraryError as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
