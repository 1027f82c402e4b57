"""A small CNN on 13 MFCCs of 3-s segments at 22,050 Hz (--arch seed: the seed demo's network).

Trained on augmented random segments; a twentieth of genre_musicnn's compute."""
import functools

import numpy as np

from export import augment, extract, frontend, quiet_keras, to_onnx
from export.folds import class_weights
from inference import segments
from inference.contract import SEGMENT_SECONDS, ModelMeta

NAME, VERSION = "genre_cnn", "1.0.0"
SAMPLE_RATE = 22050
SEGMENT_SAMPLES = SAMPLE_RATE * SEGMENT_SECONDS  # 66150
# The model ignores the spectrum above this (its mel weights are zero there): 30 of the GTZAN clips
# we have are band-limited to ~7.6 kHz, all in a few genres per split, so a full-band model learns
# "no treble -> blues" instead of the genre. Web audio varies in bandwidth as well.
BAND_LIMIT_HZ = 7500.0
# librosa.feature.mfcc(y, sr=SAMPLE_RATE, n_mfcc=13, n_fft=2048, hop_length=512): Hann window,
# centred frames with zero padding, 128 Slaney mel bands, power_to_db(ref=1, amin, top_db), DCT-II.
FEATURES = {"kind": "mfcc", "n_mfcc": 13, "n_fft": 2048, "hop_length": 512, "n_mels": 128, "window": "hann",
            "center": True, "mel": "slaney", "amin": 1e-10, "top_db": 80.0, "dct": "ortho",
            "frames": 1 + SEGMENT_SAMPLES // 512, "band_limit_hz": BAND_LIMIT_HZ}
INPUT_SHAPE = (FEATURES["frames"], FEATURES["n_mfcc"])  # (130, 13)
SEED, EPOCHS, SEGMENTS_PER_CLIP = 1234, 20, 40  # random offsets drawn per clip per run, each augmented


def meta(labels: tuple[str, ...], name: str = NAME) -> ModelMeta:
    return ModelMeta(name, VERSION, labels, SAMPLE_RATE, SEGMENT_SAMPLES, FEATURES)


def mfcc(band_limit_hz: float | None = BAND_LIMIT_HZ) -> frontend.Frontend:
    """The front-end, run by onnxruntime: audio [n, SEGMENT_SAMPLES] -> MFCC [n, 130, 13]."""
    return frontend.Frontend(SAMPLE_RATE, SEGMENT_SAMPLES, dict(FEATURES, band_limit_hz=band_limit_hz))


def seed_network(n_labels: int):
    """The seed demo's network, exactly (98,058 parameters for 10 labels)."""
    keras = quiet_keras()
    layers = keras.layers
    model = keras.Sequential([
        keras.Input(INPUT_SHAPE),
        layers.Reshape((*INPUT_SHAPE, 1)),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.MaxPooling2D((3, 3), strides=(2, 2), padding="same"),
        layers.BatchNormalization(),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((3, 3), strides=(2, 2), padding="same"),
        layers.BatchNormalization(),
        layers.Conv2D(64, (2, 2), activation="relu"),
        layers.MaxPooling2D((2, 2), strides=(2, 2), padding="same"),
        layers.BatchNormalization(),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dropout(0.3),
        layers.Dense(n_labels, activation="softmax"),
    ], name="seed")
    model.compile(optimizer=keras.optimizers.Adam(1e-4),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@functools.cache
def _own_layers() -> tuple[type, type]:
    """The family's own Keras layers, defined when first needed (Keras brings TensorFlow: ~600 MB)."""
    keras = quiet_keras()
    layers, ops = keras.layers, keras.ops

    class SegmentMeanRemoval(layers.Layer):
        """Cepstral mean normalisation: subtracts each coefficient's mean over the segment's frames.
        The mean is mostly the recording's colour (microphone, mastering, the artist's studio), which on
        119 clips identifies the artist rather than the genre; what stays is how the timbre moves."""

        def call(self, x):
            return x - ops.mean(x, axis=1, keepdims=True)

    class LogStdPool(layers.Layer):
        """Log standard deviation of each channel over the frames: how much the timbre moves."""

        def call(self, x):
            return ops.log(ops.sqrt(ops.var(x, axis=1) + 1e-5))

    return SegmentMeanRemoval, LogStdPool


def cnn_network(x: np.ndarray, n_labels: int):
    """The default, small on purpose (119 clips): segment mean removal and standardisation (the
    statistics of the training MFCCs x, baked in as constants), a temporal convolution over the
    frames (16 learnt filters of 9 frames, ~0.2 s: slopes, onsets, vibrato), log-std pooling of the
    input and of the filter outputs, batch norm, dropout and an L2-regularised softmax layer."""
    centred = x - x.mean(axis=1, keepdims=True)
    mean, std = centred.mean(axis=(0, 1)), centred.std(axis=(0, 1)) + 1e-6
    keras = quiet_keras()
    layers = keras.layers
    SegmentMeanRemoval, LogStdPool = _own_layers()
    audio_mfcc = keras.Input(INPUT_SHAPE)
    h = SegmentMeanRemoval()(audio_mfcc)
    h = layers.Rescaling(scale=1.0 / std, offset=-mean / std)(h)
    moves = layers.Conv1D(16, 9, use_bias=False)(h)
    h = layers.Concatenate()([LogStdPool()(h), LogStdPool()(moves)])
    h = layers.BatchNormalization()(h)
    h = layers.Dropout(0.3)(h)
    out = layers.Dense(n_labels, activation="softmax", kernel_regularizer=keras.regularizers.l2(1e-3))(h)
    model = keras.Model(audio_mfcc, out, name="cnn")
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def add_arguments(parser):
    parser.add_argument("--arch", choices=("cnn", "seed"), default="cnn")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--per-clip", type=int, default=SEGMENTS_PER_CLIP, help="augmented segments per clip")
    parser.add_argument("--seed", type=int, default=SEED)


def inputs(library, options) -> tuple[list, list[np.ndarray]]:
    """The clips that decode, and per clip its window's audio (this family learns from audio)."""
    if options.endpoint:
        raise SystemExit(f"{NAME} learns from audio, which the function does not send back: leave out --endpoint")
    return extract.audio(library, SAMPLE_RATE)


def fit(audio: list[np.ndarray], y: np.ndarray, labels: tuple[str, ...], options):
    """Train options.arch on MFCCs of augmented random segments; deterministic for a given seed."""
    keras = quiet_keras()
    import tensorflow as tf
    keras.utils.set_random_seed(options.seed)
    tf.config.experimental.enable_op_determinism()
    rng = np.random.default_rng(options.seed)
    batch = np.concatenate([augment.augment(augment.random_segments(a, options.per_clip, SEGMENT_SAMPLES, rng),
                                            rng, SAMPLE_RATE, BAND_LIMIT_HZ) for a in audio])
    x, y = mfcc()(batch), np.repeat(y, options.per_clip)
    model = seed_network(len(labels)) if options.arch == "seed" else cnn_network(x, len(labels))
    model.fit(x, y, epochs=options.epochs, batch_size=32, shuffle=True, class_weight=class_weights(y), verbose=2)
    return model


def predict(model, audio: list[np.ndarray]) -> list[np.ndarray]:
    """Each clip's segment probabilities [segments, labels]."""
    front = mfcc()
    return [model.predict(front(segments.split(a, SEGMENT_SAMPLES)), verbose=0) for a in audio]


def onnx(model, model_meta: ModelMeta, options):
    """Front-end + network as one ONNX model."""
    return to_onnx.compose(frontend.build(SAMPLE_RATE, SEGMENT_SAMPLES, FEATURES), model, model_meta)


def describe(options) -> dict:
    return {"arch": options.arch, "epochs": options.epochs, "segments_per_clip": options.per_clip,
            "seed": options.seed}
