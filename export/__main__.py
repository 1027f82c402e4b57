"""Training, cross-validation, evaluation and ONNX export of the model families; writes models/.

    python -m export crossval FAMILY --data ../shared/data/gtzan [--out models/]
    python -m export train FAMILY --data ../shared/data/gtzan [--out models/] [--split all]
    python -m export evaluate --model models/genre_cnn.onnx --data DIR [--split valid]

crossval scores a family by both protocols of export/folds.py (grouped 5-fold x 3 over all clips,
artists apart: the one that selects models; and the 2-fold split lists) and writes
<out>/crossval_<family>.json and <out>/confusion_<family>.png; train fits on every clip (or one
split list) and writes <out>/<family>.onnx, its serving twin and its .json card (with the
cross-validation figures if that file is there).
"""
import argparse
import json
import time
from pathlib import Path

from export import tensorflow_quiet

with tensorflow_quiet():  # the families load Keras, and so TensorFlow
    from export import crossval, dataset, evaluate, families, folds, to_onnx


def _common(parser, split_default: str | None):
    parser.add_argument("--data", required=True, help="GTZAN-layout folder (<genre>/<genre>.000NN.*)")
    parser.add_argument("--splits-dir", help="folder of <split>_filtered.txt (default: DATA/splits)")
    if split_default:
        parser.add_argument("--split", default=split_default, help="only this split list's clips (train, valid, all)")


def _parser() -> argparse.ArgumentParser:
    listing = "\n".join(f"  {name:16} {families.summary(f)}" for name, f in families.ALL.items())
    parser = argparse.ArgumentParser(prog="python -m export", description=__doc__, epilog=f"families:\n{listing}",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for command, text in (("crossval", "cross-validate a family"), ("train", "train a family and export it")):
        per_family = commands.add_parser(command, help=text).add_subparsers(dest="family", required=True)
        for name, family in families.ALL.items():
            sub = per_family.add_parser(name, help=families.summary(family))
            _common(sub, "all" if command == "train" else None)
            sub.add_argument("--out", default="models", help="folder for what it writes")
            if command == "crossval":
                sub.add_argument("--artists", help="artists.csv (default: DATA/artists.csv)")
            family.add_arguments(sub)
    scoring = commands.add_parser("evaluate", help="score an exported model on a folder of clips")
    scoring.add_argument("--model", required=True)
    _common(scoring, "all")
    return parser


def _clips(args):
    splits_dir = Path(args.splits_dir or Path(args.data) / "splits")
    return dataset.find_clips(args.data), splits_dir


def run_crossval(args, family) -> dict:
    clips, splits_dir = _clips(args)
    loaded = dataset.load(clips, family.SAMPLE_RATE)
    clips = [c for c, _ in loaded]
    inputs = family.inputs(loaded, args)
    groups = folds.artists(Path(args.artists or Path(args.data) / "artists.csv"), [c.stem for c in clips])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    grouped, answers = crossval.cross_validate(family, clips, inputs, folds.grouped(clips, groups), args)
    two_fold, _ = crossval.cross_validate(family, clips, inputs, folds.two_fold(clips, splits_dir), args)
    results = {"family": family.NAME, "options": family.describe(args), "clips": len(clips),
               "artists": len(set(groups)),
               "grouped": dict(grouped, protocol=f"StratifiedGroupKFold({folds.GROUPED_FOLDS}) by artist, seeds "
                                                 f"{list(folds.GROUPED_SEEDS)}; pooled track-level per repeat"),
               "two_fold": dict(two_fold, protocol="fit train list -> score valid list and back; pooled"),
               "calibration": crossval.calibration(answers, family.meta().pooling,
                                                   out / f"calibration_{family.NAME}.png",
                                                   f"{family.NAME}: grouped CV, out of fold")}
    (out / f"crossval_{family.NAME}.json").write_text(json.dumps(results, indent=2) + "\n")
    crossval.plot_confusion(grouped, out / f"confusion_{family.NAME}.png",
                            f"{family.NAME}: grouped CV x{grouped['repeats']} ({grouped['track_accuracy']:.0%})")
    for protocol in ("grouped", "two_fold"):
        print(f"== {family.NAME}, {results[protocol]['protocol']}\n{evaluate.report(results[protocol])}")
    print(f"== calibration, out of fold: {json.dumps(results['calibration'])}")
    return results


def run_train(args, family) -> Path:
    clips, splits_dir = _clips(args)
    loaded = dataset.load(dataset.select(clips, splits_dir, args.split), family.SAMPLE_RATE)
    started = time.perf_counter()
    trained = family.fit(family.inputs(loaded, args), [c.genre for c, _ in loaded], args)
    card = {"training": dict(family.describe(args), data=str(args.data), split=args.split, clips=len(loaded),
                             seconds=round(time.perf_counter() - started, 1))}
    model = family.onnx(trained, args)
    scores = Path(args.out) / f"crossval_{family.NAME}.json"
    if scores.exists():  # written by crossval into the same folder: its figures, and its calibration baked in
        results = json.loads(scores.read_text())
        if results["options"] != family.describe(args):  # its figures and calibration are another model's
            raise SystemExit(f"{scores} was made with {results['options']}, not {family.describe(args)}: "
                             "rerun crossval with these options, or train into another --out")
        card["crossval"] = {p: {k: results[p][k] for k in ("protocol", "track_accuracy", "track_accuracy_min",
                                                           "track_accuracy_max", "segment_accuracy", "f1")}
                            for p in ("grouped", "two_fold")}
        card["calibration"] = results["calibration"]
        model = to_onnx.calibrated(model, results["calibration"]["temperature"],
                                   results["calibration"]["uncertain_below"])
    path = to_onnx.write(model, Path(args.out) / f"{family.NAME}.onnx", card)
    print(f"trained {family.NAME} on {len(loaded)} clips in {card['training']['seconds']:.0f} s -> {path}")
    return path


def run_evaluate(args):
    clips, splits_dir = _clips(args)
    _, meta = evaluate.session(args.model)
    loaded = dataset.load(dataset.select(clips, splits_dir, args.split), meta.sample_rate)
    print(evaluate.report(evaluate.summarize(evaluate.predict(args.model, loaded), meta.pooling)))


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.command == "evaluate":
        return run_evaluate(args)
    family = families.ALL[args.family]
    return (run_crossval if args.command == "crossval" else run_train)(args, family)


if __name__ == "__main__":
    main()
