"""A genre head on musicnn's frozen MSD network (export/musicnn.py): artist-disjoint 2-fold
cross-validation, training on every clip, and export to ONNX with the log-mel front-end in-graph.

    python -m export.transfer --data ../shared/data/gtzan --out models/

Writes <out>/genre_musicnn.onnx, its power twin and .json, and <out>/crossval_musicnn.json.
Each 3-s segment (48,000 samples at 16 kHz) goes through the same ONNX front-end as in serving;
the head (a softmax layer with L2) reads the backbone's penultimate layer and its 50 tag scores.
"""
import argparse
import json
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from export import crossval, dataset, evaluate, frontend, musicnn, to_onnx
from inference import segments, spec

NAME, VERSION = "genre_musicnn", "1.0.0"
SEGMENT_SAMPLES = 3 * musicnn.SAMPLE_RATE
FEATURES = {"kind": "log_mel", "n_fft": musicnn.N_FFT, "hop_length": musicnn.HOP_LENGTH,
            "n_mels": musicnn.N_MELS, "window": "hann", "center": True, "mel": "slaney",
            "log": "log10(10000 * mel + 1)", "frames": musicnn.N_FRAMES}
EPOCHS, L2, SEED = 300, 1e-3, 1234
# The function runs this model one segment at a time: 163 ms and a peak RSS of 138 MiB for 30 s,
# against 182 ms and 473 MiB for the 10 segments at once (inference/model.py reads "batch").


def front_end():
    return frontend.build_log_mel(musicnn.SAMPLE_RATE, SEGMENT_SAMPLES, musicnn.N_FFT, musicnn.HOP_LENGTH,
                                  musicnn.N_MELS, musicnn.N_FRAMES)


def metadata() -> dict[str, str]:
    return {"name": NAME, "version": VERSION, "labels": json.dumps(list(spec.LABELS)),
            "sample_rate": str(musicnn.SAMPLE_RATE), "segment_samples": str(SEGMENT_SAMPLES),
            "features": json.dumps(FEATURES), "batch": "1"}


def backbone() -> keras.Model:
    """log-mel [batch, 187, 96] -> [batch, 250]: musicnn's penultimate layer and its tag scores."""
    net = musicnn.load()
    tags, penultimate = net.outputs
    return keras.Model(net.input, keras.layers.Concatenate()([penultimate, tags]), name="musicnn_features")


def embed(loaded, net: keras.Model) -> list[np.ndarray]:
    """Each clip's segments as backbone features, through the serving front-end."""
    import onnxruntime as ort
    session = ort.InferenceSession(front_end().SerializeToString(), providers=["CPUExecutionProvider"])
    out = []
    for _, audio in loaded:
        batch = segments.split(audio, SEGMENT_SAMPLES)
        log_mel = session.run(None, {frontend.INPUT: batch})[0]
        out.append(net.predict(log_mel, verbose=0))
    return out


def head(features: list[np.ndarray], genres: list[str]) -> keras.Model:
    """A softmax layer on the segments' standardized features, classes weighted to balance; the
    standardization is folded into the layer's weights afterwards (one Dense layer to export)."""
    keras.utils.set_random_seed(SEED)
    x = np.concatenate(features)
    y = np.concatenate([np.full(len(f), spec.LABELS.index(g)) for f, g in zip(features, genres)])
    mean, std = x.mean(0), x.std(0) + 1e-6
    dense = keras.layers.Dense(len(spec.LABELS), activation="softmax", kernel_regularizer=keras.regularizers.l2(L2))
    model = keras.Sequential([keras.Input((x.shape[1],)), dense])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    counts = np.bincount(y, minlength=len(spec.LABELS))
    weights = {i: len(y) / (np.count_nonzero(counts) * n) for i, n in enumerate(counts) if n}
    model.fit((x - mean) / std, y, epochs=EPOCHS, batch_size=len(x), class_weight=weights, verbose=0)
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel / std[:, None], bias - (mean / std) @ kernel])
    return model


def predictions(model: keras.Model, features, clips) -> list:
    """(true label index, segment probabilities) per clip, as evaluate.summarize() takes them."""
    return [(spec.LABELS.index(c.genre), model.predict(f, verbose=0)) for c, f in zip(clips, features)]


def cross_validate(clips, features, splits_dir) -> dict:
    pooled, folds = [], {}
    for fit_on, score_on in crossval.FOLDS:
        fit_stems, score_stems = dataset.read_split(splits_dir, fit_on), dataset.read_split(splits_dir, score_on)
        fit_idx = [i for i, c in enumerate(clips) if c.stem in fit_stems]
        score_idx = [i for i, c in enumerate(clips) if c.stem in score_stems]
        model = head([features[i] for i in fit_idx], [clips[i].genre for i in fit_idx])
        scored = predictions(model, [features[i] for i in score_idx], [clips[i] for i in score_idx])
        fold = evaluate.summarize(spec.LABELS, scored)
        folds[f"{fit_on}->{score_on}"] = {k: fold[k] for k in ("tracks", "track_accuracy", "segment_accuracy")}
        print(f"fit {fit_on} -> score {score_on}: track {fold['track_accuracy']:.3f}", flush=True)
        pooled += scored
    return dict(evaluate.summarize(list(spec.LABELS), pooled), folds=folds)


def export(net: keras.Model, model: keras.Model, out_dir: Path, card: dict) -> Path:
    """<out_dir>/genre_musicnn.onnx (+ power twin, .json): audio at 16 kHz -> 10 probabilities."""
    full = keras.Sequential([keras.Input((musicnn.N_FRAMES, musicnn.N_MELS)), net, model])
    onnx_model = to_onnx.compose(front_end(), full, (musicnn.N_FRAMES, musicnn.N_MELS), metadata())
    return to_onnx.write(onnx_model, Path(out_dir) / f"{NAME}.onnx", card)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="GTZAN-layout folder with splits/")
    parser.add_argument("--out", default="models")
    args = parser.parse_args(argv)
    tf.config.experimental.enable_op_determinism()
    started = time.time()
    loaded = dataset.load(dataset.find_clips(args.data), sample_rate=musicnn.SAMPLE_RATE)
    clips = [c for c, _ in loaded]
    net = backbone()
    features = embed(loaded, net)
    metrics = cross_validate(clips, features, Path(args.data) / "splits")
    out = Path(args.out)
    (out / "crossval_musicnn.json").write_text(json.dumps(metrics, indent=2) + "\n")
    model = head(features, [c.genre for c in clips])
    card = {"trained_on": f"{len(clips)} clips", "backbone": "musicnn 0.1.0 MSD_musicnn (frozen)",
            "crossval_track_accuracy": metrics["track_accuracy"], "seconds": round(time.time() - started)}
    print(export(net, model, out, card), f"CV track accuracy {metrics['track_accuracy']:.3f}")


if __name__ == "__main__":
    main()
