"""A genre head on musicnn's frozen Million Song Dataset network, on 3-s segments at 16 kHz.

The network is export/musicnn.py; each segment goes through the same ONNX log-mel front-end as in
serving; the head (a softmax layer with L2) reads the network's penultimate layer and its 50 tags."""
import keras
import numpy as np

from export import frontend, musicnn, to_onnx
from export.folds import class_weights
from inference import segments
from inference.contract import LABELS, SEGMENT_SECONDS, ModelMeta

NAME, VERSION = "genre_musicnn", "1.0.0"
SAMPLE_RATE = musicnn.SAMPLE_RATE
SEGMENT_SAMPLES = SAMPLE_RATE * SEGMENT_SECONDS  # 48000
FEATURES = {"kind": "log_mel", "n_fft": musicnn.N_FFT, "hop_length": musicnn.HOP_LENGTH,
            "n_mels": musicnn.N_MELS, "window": "hann", "center": True, "mel": "slaney",
            "log": "log10(10000 * mel + 1)", "frames": musicnn.N_FRAMES}
# The function runs this model one segment at a time: 163 ms and a peak RSS of 138 MiB for 30 s,
# against 182 ms and 473 MiB for the 10 segments at once (inference/model.py reads "batch").
BATCH = 1
EPOCHS, L2, SEED = 300, 1e-3, 1234


def meta() -> ModelMeta:
    return ModelMeta(NAME, VERSION, LABELS, SAMPLE_RATE, SEGMENT_SAMPLES, FEATURES, batch=BATCH)


def backbone() -> keras.Model:
    """log-mel [batch, 187, 96] -> [batch, 250]: musicnn's penultimate layer and its tag scores."""
    net = musicnn.load()
    tags, penultimate = net.outputs
    return keras.Model(net.input, keras.layers.Concatenate()([penultimate, tags]), name="musicnn_features")


def add_arguments(parser):
    pass


def inputs(loaded, options) -> list[np.ndarray]:
    """What fit() and predict() take per clip: its segments' backbone features [segments, 250]."""
    front = frontend.Frontend(SAMPLE_RATE, SEGMENT_SAMPLES, FEATURES)
    net = backbone()
    return [net.predict(front(segments.split(audio, SEGMENT_SAMPLES)), verbose=0) for _, audio in loaded]


def fit(features: list[np.ndarray], genres: list[str], options) -> keras.Model:
    """A softmax layer on the segments' standardized features, classes weighted to balance; the
    standardization is folded into the layer's weights afterwards (one Dense layer to export)."""
    keras.utils.set_random_seed(SEED)
    x = np.concatenate(features)
    y = np.concatenate([np.full(len(f), LABELS.index(g)) for f, g in zip(features, genres, strict=True)])
    mean, std = x.mean(0), x.std(0) + 1e-6
    dense = keras.layers.Dense(len(LABELS), activation="softmax", kernel_regularizer=keras.regularizers.l2(L2))
    model = keras.Sequential([keras.Input((x.shape[1],)), dense])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    model.fit((x - mean) / std, y, epochs=EPOCHS, batch_size=len(x), class_weight=class_weights(y), verbose=0)
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel / std[:, None], bias - (mean / std) @ kernel])
    return model


def predict(model: keras.Model, features: list[np.ndarray]) -> list[np.ndarray]:
    """Each clip's segment probabilities [segments, labels]."""
    return [model.predict(f, verbose=0) for f in features]


def onnx(model: keras.Model):
    """Front-end + frozen network + head as one ONNX model: audio at 16 kHz -> 10 probabilities."""
    full = keras.Sequential([keras.Input((musicnn.N_FRAMES, musicnn.N_MELS)), backbone(), model])
    return to_onnx.compose(frontend.build(SAMPLE_RATE, SEGMENT_SAMPLES, FEATURES), full, meta())


def describe(options) -> dict:
    return {"backbone": "musicnn 0.1.0 MSD_musicnn (frozen)", "head": "softmax on penultimate + tags, L2 1e-3",
            "epochs": EPOCHS, "seed": SEED}
