"""A genre head on musicnn's frozen pretrained network, on 3-s segments at 16 kHz.

The network is export/musicnn.py (MSD weights); each segment goes through the same ONNX log-mel
front-end as in serving. Its features (penultimate + tags) come from a served model of this family
(--extractor, by default the shipped one: the backbone is frozen, so every model of the family gives
the same features, named by its features_id), here or through the deployed function (--endpoint),
cached per clip (export/extract.py). The head (--head clip, the
default) is a class-balanced L2 logistic regression on the mean over a clip's segments of the
network's penultimate layer (200) and its 50 tag scores, standardised; shipped as one Dense layer
on each segment (standardisation folded in), whose segment logits the function averages
(pooling mean_logits): exactly the regression applied to the window's mean features. --head
segment is the previous head: a softmax layer fitted on every segment, probabilities averaged.
The model's second output is the network's tag scores, its third the head's input features.
"""
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import softmax
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from export import extract, frontend, musicnn, quiet_keras, to_onnx
from export.folds import class_weights
from inference.config import DEFAULT_MODEL
from inference.contract import FEATURES_OUTPUT, OUTPUT, SEGMENT_SECONDS, TAGS_OUTPUT, ModelMeta

NAME, VERSION = "genre_musicnn", "2.2.0"
SAMPLE_RATE = musicnn.SAMPLE_RATE
SEGMENT_SAMPLES = SAMPLE_RATE * SEGMENT_SECONDS  # 48000
FEATURES = {"kind": "log_mel", "n_fft": musicnn.N_FFT, "hop_length": musicnn.HOP_LENGTH,
            "n_mels": musicnn.N_MELS, "window": "hann", "center": True, "mel": "slaney",
            "log": "log10(10000 * mel + 1)", "frames": musicnn.N_FRAMES}
# The function runs this model one segment at a time: 163 ms and a peak RSS of 138 MiB for 30 s,
# against 182 ms and 473 MiB for the 10 segments at once (inference/model.py reads "batch").
BATCH = 1
C = 0.01  # L2 strength of the clip head: the inner-CV choice most often; 0.001-0.3 all score within noise
ABSENT_LOGIT = -30.0  # a label with no clip to learn from (one side of GTZAN's 2-fold protocol has no pop)
WEIGHTS = "MSD"
SEGMENT_EPOCHS, SEGMENT_L2, SEED = 300, 1e-3, 1234  # the segment head


def features_id() -> str:
    """What determines the features: the network's weights and the front-end."""
    weights = next(musicnn.checkpoint(WEIGHTS).glob(".data-*")).read_bytes()
    return f"musicnn-{WEIGHTS}-{hashlib.sha256(weights).hexdigest()[:12]}-{frontend.digest(FEATURES)}"


def meta(labels: tuple[str, ...], name: str = NAME) -> ModelMeta:
    return ModelMeta(name, VERSION, labels, SAMPLE_RATE, SEGMENT_SAMPLES, FEATURES, batch=BATCH,
                     pooling="mean_logits", tags=musicnn.TAGS[WEIGHTS], features_id=features_id())


def _network():
    """(the network, its tag scores, its head's input features: penultimate layer + tags [250])."""
    keras = quiet_keras()
    net = musicnn.load(WEIGHTS)
    tags, penultimate = net.outputs
    return net, tags, keras.layers.Concatenate()([penultimate, tags])


def backbone():
    """log-mel [batch, 187, 96] -> [batch, 250] (Keras): the network's penultimate layer and its tag scores."""
    keras = quiet_keras()
    net, _, features = _network()
    return keras.Model(net.input, features, name="musicnn_features")


def add_arguments(parser):
    parser.add_argument("--head", choices=("clip", "segment"), default="clip",
                        help="clip: one regression on a clip's mean features (the default, shipped); segment: "
                             "a softmax on every segment, probabilities averaged")
    parser.add_argument("--c", type=float, default=C, help="the clip head's inverse L2 strength")
    parser.add_argument("--extractor", type=Path, default=DEFAULT_MODEL,
                        help="a served model of this family whose features are trained on (default: %(default)s)")


def extractor(options) -> extract.Extractor:
    """Where the features come from: a served model of this family, here or deployed."""
    return extract.Extractor(options.extractor, options.endpoint, options.token, options.jobs, retries=options.retries,
                             cache=options.cache, timeout=options.timeout, max_wait=options.max_wait,
                             token_command=options.token_command)


def inputs(library, options) -> tuple[list, list[np.ndarray]]:
    """The clips whose features could be had, and per clip its segments' features [segments, 250]."""
    return extract.features(library, extractor(options))


@dataclass(frozen=True)
class Head:
    """The genre layer on each segment's features [n, 250]: softmax(features @ kernel + bias).
    Fitted and run in numpy (no TensorFlow until the export); a Dense layer in the model."""
    kernel: np.ndarray  # [250, labels]
    bias: np.ndarray  # [labels]

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return softmax(features @ self.kernel + self.bias, axis=-1).astype(np.float32)

    def layer(self):
        keras = quiet_keras()
        dense = keras.layers.Dense(len(self.bias), activation="softmax")
        model = keras.Sequential([keras.Input((len(self.kernel),)), dense])
        dense.set_weights([self.kernel.astype(np.float32), self.bias.astype(np.float32)])
        return model


def _clip_head(features: list[np.ndarray], y: np.ndarray, n_labels: int, c: float) -> Head:
    """Logistic regression on the clips' mean features, as a layer on raw segment features."""
    means = np.stack([f.mean(axis=0) for f in features])
    scaler = StandardScaler().fit(means)
    regression = LogisticRegression(C=c, class_weight="balanced", max_iter=5000).fit(scaler.transform(means), y)
    weights, biases = regression.coef_, regression.intercept_
    if len(regression.classes_) == 2:  # one logit for two classes: as a softmax, half of it each way
        weights, biases = np.concatenate([-weights, weights]) / 2, np.concatenate([-biases, biases]) / 2
    coef, intercept = np.zeros((n_labels, means.shape[1])), np.full(n_labels, ABSENT_LOGIT)
    coef[regression.classes_], intercept[regression.classes_] = weights, biases
    kernel = coef.T / scaler.scale_[:, None]
    return Head(kernel, intercept - scaler.mean_ @ kernel)


def _segment_head(features: list[np.ndarray], y: np.ndarray, n_labels: int) -> Head:
    """A softmax layer fitted on every segment's standardised features, classes weighted to
    balance; the standardisation folded into its weights."""
    keras = quiet_keras()
    keras.utils.set_random_seed(SEED)
    x, y = np.concatenate(features), np.repeat(y, [len(f) for f in features])
    mean, std = x.mean(0), x.std(0) + 1e-6
    dense = keras.layers.Dense(n_labels, activation="softmax", kernel_regularizer=keras.regularizers.l2(SEGMENT_L2))
    model = keras.Sequential([keras.Input((x.shape[1],)), dense])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    model.fit((x - mean) / std, y, epochs=SEGMENT_EPOCHS, batch_size=len(x), class_weight=class_weights(y), verbose=0)
    kernel, bias = dense.get_weights()
    return Head(kernel / std[:, None], bias - (mean / std) @ kernel)


def fit(features: list[np.ndarray], y: np.ndarray, labels: tuple[str, ...], options) -> Head:
    """The head: per segment, features [250] -> a probability per label (y: each clip's label index)."""
    if options.head == "clip":
        return _clip_head(features, y, len(labels), options.c)
    return _segment_head(features, y, len(labels))


def predict(head: Head, features: list[np.ndarray]) -> list[np.ndarray]:
    """Each clip's segment probabilities [segments, labels]."""
    return [head(f) for f in features]


def onnx(head: Head, model_meta: ModelMeta, options):
    """Front-end + frozen network + head as one ONNX model: audio at 16 kHz -> a probability per
    label, the network's 50 tag scores and the head's input features."""
    keras = quiet_keras()
    net, tags, features = _network()
    full = keras.Model(net.input, {OUTPUT: head.layer()(features), TAGS_OUTPUT: tags, FEATURES_OUTPUT: features})
    return to_onnx.compose(frontend.build(SAMPLE_RATE, SEGMENT_SAMPLES, FEATURES), full, model_meta)


def describe(options) -> dict:
    head = (f"clip: L2 logistic regression (C {options.c}) on the segments' mean penultimate + tags"
            if options.head == "clip" else f"segment: softmax layer on penultimate + tags, L2 {SEGMENT_L2}")
    return {"backbone": f"musicnn 0.1.0 {WEIGHTS}_musicnn (frozen)", "head": head}
