"""A genre head on musicnn's frozen pretrained network, on 3-s segments at 16 kHz.

The network is export/musicnn.py (MSD weights; --backbone MTT for the MagnaTagATune ones); each
segment goes through the same ONNX log-mel front-end as in serving. The head (--head clip, the
default) is a class-balanced L2 logistic regression on the mean over a clip's segments of the
network's penultimate layer (200) and its 50 tag scores, standardised; shipped as one Dense layer
on each segment (standardisation folded in), whose segment logits the function averages
(pooling mean_logits): exactly the regression applied to the window's mean features. --head
segment is the previous head: a softmax layer fitted on every segment, probabilities averaged.
The model's second output is the network's tag scores.
"""
import dataclasses

import keras
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from export import frontend, musicnn, to_onnx
from export.folds import class_weights
from inference import segments
from inference.contract import LABELS, OUTPUT, SEGMENT_SECONDS, TAGS_OUTPUT, ModelMeta

NAME, VERSION = "genre_musicnn", "2.0.0"
SAMPLE_RATE = musicnn.SAMPLE_RATE
SEGMENT_SAMPLES = SAMPLE_RATE * SEGMENT_SECONDS  # 48000
FEATURES = {"kind": "log_mel", "n_fft": musicnn.N_FFT, "hop_length": musicnn.HOP_LENGTH,
            "n_mels": musicnn.N_MELS, "window": "hann", "center": True, "mel": "slaney",
            "log": "log10(10000 * mel + 1)", "frames": musicnn.N_FRAMES}
# The function runs this model one segment at a time: 163 ms and a peak RSS of 138 MiB for 30 s,
# against 182 ms and 473 MiB for the 10 segments at once (inference/model.py reads "batch").
BATCH = 1
C = 0.01  # L2 strength of the clip head: the inner-CV choice most often; 0.001-0.3 all score within noise
ABSENT_LOGIT = -30.0  # a genre with no clip to learn from (one side of the 2-fold protocol has no pop)
SEGMENT_EPOCHS, SEGMENT_L2, SEED = 300, 1e-3, 1234  # the segment head


def meta() -> ModelMeta:
    return ModelMeta(NAME, VERSION, LABELS, SAMPLE_RATE, SEGMENT_SAMPLES, FEATURES, batch=BATCH,
                     pooling="mean_logits", tags=musicnn.TAGS["MSD"])


def _network(name: str):
    """(the network, its tag scores, its head's input features: penultimate layer + tags [250])."""
    net = musicnn.load(name)
    tags, penultimate = net.outputs
    return net, tags, keras.layers.Concatenate()([penultimate, tags])


def backbone(name: str = "MSD") -> keras.Model:
    """log-mel [batch, 187, 96] -> [batch, 250]: the network's penultimate layer and its tag scores."""
    net, _, features = _network(name)
    return keras.Model(net.input, features, name="musicnn_features")


def add_arguments(parser):
    parser.add_argument("--head", choices=("clip", "segment"), default="clip")
    parser.add_argument("--backbone", choices=musicnn.WEIGHTS, default="MSD")
    parser.add_argument("--c", type=float, default=C, help="the clip head's inverse L2 strength")


def inputs(loaded, options) -> list[np.ndarray]:
    """What fit() and predict() take per clip: its segments' backbone features [segments, 250]."""
    front = frontend.Frontend(SAMPLE_RATE, SEGMENT_SAMPLES, FEATURES)
    net = backbone(options.backbone)
    return [net.predict(front(segments.split(audio, SEGMENT_SAMPLES)), verbose=0) for _, audio in loaded]


def _dense(kernel: np.ndarray, bias: np.ndarray) -> keras.Model:
    layer = keras.layers.Dense(len(LABELS), activation="softmax")
    head = keras.Sequential([keras.Input((len(kernel),)), layer])
    layer.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    return head


def _clip_head(features: list[np.ndarray], y: np.ndarray, c: float) -> keras.Model:
    """Logistic regression on the clips' mean features, as a Dense layer on raw segment features."""
    means = np.stack([f.mean(axis=0) for f in features])
    scaler = StandardScaler().fit(means)
    regression = LogisticRegression(C=c, class_weight="balanced", max_iter=5000).fit(scaler.transform(means), y)
    coef, intercept = np.zeros((len(LABELS), means.shape[1])), np.full(len(LABELS), ABSENT_LOGIT)
    coef[regression.classes_], intercept[regression.classes_] = regression.coef_, regression.intercept_
    kernel = coef.T / scaler.scale_[:, None]
    return _dense(kernel, intercept - scaler.mean_ @ kernel)


def _segment_head(features: list[np.ndarray], y: np.ndarray) -> keras.Model:
    """A softmax layer fitted on every segment's standardised features, classes weighted to
    balance; the standardisation folded into its weights."""
    keras.utils.set_random_seed(SEED)
    x, y = np.concatenate(features), np.repeat(y, [len(f) for f in features])
    mean, std = x.mean(0), x.std(0) + 1e-6
    dense = keras.layers.Dense(len(LABELS), activation="softmax", kernel_regularizer=keras.regularizers.l2(SEGMENT_L2))
    model = keras.Sequential([keras.Input((x.shape[1],)), dense])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    model.fit((x - mean) / std, y, epochs=SEGMENT_EPOCHS, batch_size=len(x), class_weight=class_weights(y), verbose=0)
    kernel, bias = dense.get_weights()
    return _dense(kernel / std[:, None], bias - (mean / std) @ kernel)


def fit(features: list[np.ndarray], genres: list[str], options) -> keras.Model:
    """The head: per segment, features [250] -> probabilities [10]."""
    y = np.array([LABELS.index(g) for g in genres])
    return _clip_head(features, y, options.c) if options.head == "clip" else _segment_head(features, y)


def predict(head: keras.Model, features: list[np.ndarray]) -> list[np.ndarray]:
    """Each clip's segment probabilities [segments, labels]."""
    return [head.predict(f, verbose=0) for f in features]


def onnx(head: keras.Model, options):
    """Front-end + frozen network + head as one ONNX model: audio at 16 kHz -> 10 probabilities,
    and the network's 50 tag scores."""
    net, tags, features = _network(options.backbone)
    full = keras.Model(net.input, {OUTPUT: head(features), TAGS_OUTPUT: tags})
    front = frontend.build(SAMPLE_RATE, SEGMENT_SAMPLES, FEATURES)
    return to_onnx.compose(front, full, dataclasses.replace(meta(), tags=musicnn.TAGS[options.backbone]))


def describe(options) -> dict:
    head = (f"clip: L2 logistic regression (C {options.c}) on the segments' mean penultimate + tags"
            if options.head == "clip" else f"segment: softmax layer on penultimate + tags, L2 {SEGMENT_L2}")
    return {"backbone": f"musicnn 0.1.0 {options.backbone}_musicnn (frozen)", "head": head}
