"""musicnn (Pons and Serra, 2019) with its Million Song Dataset (MSD) or MagnaTagATune (MTT)
weights, rebuilt in Keras.

The weights come from the PyPI wheel musicnn==0.1.0 (ISC license), whose pins are obsolete: the
wheel is downloaded without its dependencies (`python -m export.musicnn fetch`) and only the TF1
checkpoints in it are read. The network mirrors musicnn/models.py build_musicnn (MSD_musicnn and
MTT_musicnn alike: mid-end 64 filters, back-end 200 units, 50 tags); tests/test_musicnn.py checks
it against the original graphs restored from the checkpoints' .meta.

Input: [batch, 187 frames, 96 mel bands] of log10(10000 * mel power + 1) at 16 kHz, n_fft 512,
hop 256 (librosa.feature.melspectrogram defaults otherwise). Output: 50 tag probabilities.
"""
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

WHEEL = "musicnn-0.1.0-py3-none-any.whl"
CACHE = Path(__file__).resolve().parents[1] / ".cache" / "musicnn"
CHECKPOINTS = "musicnn/{}_musicnn/"  # in the wheel; its files are named ".meta", ".index", ...
WEIGHTS = ("MSD", "MTT")

SAMPLE_RATE, N_FFT, HOP_LENGTH, N_MELS, N_FRAMES = 16000, 512, 256, 96, 187
TAGS = {"MSD": ("rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
                "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock",
                "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill", "instrumental", "punk",
                "oldies", "blues", "hard rock", "ambient", "acoustic", "experimental", "female vocalist", "guitar",
                "Hip-Hop", "70s", "party", "country", "easy listening", "sexy", "catchy", "funk", "electro",
                "heavy metal", "Progressive rock", "60s", "rnb", "indie pop", "sad", "House", "happy"),
        "MTT": ("guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano",
                "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing",
                "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal",
                "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice", "new age", "dance", "male voice",
                "female vocal", "beats", "harp", "cello", "no voice", "weird", "country", "metal", "female voice",
                "choral")}


def fetch() -> Path:
    """The checkpoints' folder, downloading the wheel (no dependencies) on first use."""
    if not all((CACHE / CHECKPOINTS.format(name) / ".index").exists() for name in WEIGHTS):
        CACHE.mkdir(parents=True, exist_ok=True)
        if not (CACHE / WHEEL).exists():
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "musicnn==0.1.0",
                            "-d", str(CACHE)], check=True)
        with zipfile.ZipFile(CACHE / WHEEL) as wheel:
            wheel.extractall(CACHE, [n for n in wheel.namelist()
                                     if n.startswith(tuple(CHECKPOINTS.format(name) for name in WEIGHTS))])
    return CACHE / "musicnn"


def checkpoint(weights: str = "MSD") -> Path:
    """The checkpoint folder of MSD or MTT weights; an error saying how to fetch it if it is missing."""
    folder = CACHE / CHECKPOINTS.format(weights)
    if not (folder / ".index").exists():
        raise FileNotFoundError(f"musicnn's weights are missing: run `python -m export.musicnn fetch` ({folder})")
    return folder


def log_mel(audio: np.ndarray) -> np.ndarray:
    """musicnn's input for mono audio at 16 kHz: [frames, 96], as its extractor computes it."""
    import librosa
    mel = librosa.feature.melspectrogram(y=audio, sr=SAMPLE_RATE, hop_length=HOP_LENGTH, n_fft=N_FFT,
                                         n_mels=N_MELS).T
    return np.log10(10000 * mel + 1).astype(np.float32)


def build():
    """The Keras network, weights not loaded: [batch, 187, 96] -> (50 tag probabilities, 200 penultimate)."""
    import keras
    from keras import layers, ops

    def bn(name):
        return layers.BatchNormalization(epsilon=1e-3, name=name)

    def pooled(x, width):  # max over the whole frequency axis, then drop it
        return layers.Reshape((N_FRAMES, x.shape[-1]))(layers.MaxPooling2D((1, width))(x))

    def pad_time(x):
        return layers.ZeroPadding2D(((3, 3), (0, 0)))(x)

    spectrogram = keras.Input((N_FRAMES, N_MELS), name="log_mel")
    x = bn("batch_normalization")(layers.Reshape((N_FRAMES, N_MELS, 1))(spectrogram))
    front = []
    for i, width in enumerate((int(0.4 * N_MELS), int(0.7 * N_MELS))):  # timbral: 7 frames x 38 / 67 bands
        conv = layers.Conv2D(204, (7, width), activation="relu", name=f"conv2d{'_' + str(i) if i else ''}")(pad_time(x))
        front.append(pooled(bn(f"batch_normalization_{i + 1}")(conv), N_MELS - width + 1))
    for i, length in enumerate((128, 64, 32)):  # temporal: 128 / 64 / 32 frames x 1 band
        conv = layers.Conv2D(51, (length, 1), padding="same", activation="relu", name=f"conv2d_{i + 2}")(x)
        front.append(pooled(bn(f"batch_normalization_{i + 3}")(conv), N_MELS))
    front = layers.Concatenate(axis=2)(front)  # [batch, 187, 561]
    mid, previous = [front], front
    for i in range(3):  # mid-end: 7-frame convolutions over all features, residual after the first
        conv = layers.Conv2D(64, (7, previous.shape[-1]), activation="relu", name=f"conv2d_{i + 5}")(
            pad_time(layers.Reshape((N_FRAMES, previous.shape[-1], 1))(previous)))
        out = layers.Reshape((N_FRAMES, 64))(bn(f"batch_normalization_{i + 6}")(conv))
        previous = out if i == 0 else layers.Add()([out, previous])
        mid.append(previous)
    features = layers.Concatenate(axis=2)(mid)  # [batch, 187, 753]
    pooled_time = layers.Lambda(lambda f: ops.reshape(
        ops.stack([ops.max(f, axis=1), ops.mean(f, axis=1)], axis=-1), (-1, 2 * f.shape[-1])))(features)
    penultimate = bn("batch_normalization_10")(
        layers.Dense(200, activation="relu", name="dense")(bn("batch_normalization_9")(pooled_time)))
    tags = layers.Dense(50, activation="sigmoid", name="dense_1")(penultimate)
    return keras.Model(spectrogram, [tags, penultimate], name="musicnn")


def load(weights: str = "MSD"):
    """The Keras network with the MSD or MTT checkpoint's weights."""
    import tensorflow as tf
    model = build()
    reader = tf.compat.v1.train.NewCheckpointReader(str(checkpoint(weights)) + "/")
    order = {"Conv2D": ("kernel", "bias"), "Dense": ("kernel", "bias"),
             "BatchNormalization": ("gamma", "beta", "moving_mean", "moving_variance")}
    for layer in model.layers:
        if type(layer).__name__ in order:
            layer.set_weights([reader.get_tensor(f"{layer.name}/{w}") for w in order[type(layer).__name__]])
    return model


def original(weights: str = "MSD"):
    """The original TF1 graph restored from the checkpoint's .meta, as musicnn's package runs it:
    a function log-mel patches [batch, 187, 96] -> the 50 tag scores (for tests and benchmarks).
    Its stale _output_shapes attributes are dropped (TF 2 refuses them on the gradient nodes), and
    op determinism is off while it runs (the graph's unseeded dropout refuses it)."""
    import tensorflow as tf
    from tensorflow.core.protobuf import meta_graph_pb2
    from tensorflow.python.framework import config
    folder = checkpoint(weights)
    meta = meta_graph_pb2.MetaGraphDef()
    meta.ParseFromString((folder / ".meta").read_bytes())
    for node in meta.graph_def.node:
        node.attr.pop("_output_shapes", None)
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    with graph.as_default():
        tf.compat.v1.train.import_meta_graph(meta, clear_devices=True).restore(session, str(folder) + "/")

    def tags(batch: np.ndarray) -> np.ndarray:
        deterministic = config.is_op_determinism_enabled()
        config.disable_op_determinism()
        try:
            return session.run("model/Sigmoid:0", {"model/Placeholder:0": batch, "model/Placeholder_2:0": False})
        finally:
            if deterministic:
                config.enable_op_determinism()
    return tags


if __name__ == "__main__":
    if sys.argv[1:] != ["fetch"]:
        sys.exit("usage: python -m export.musicnn fetch")
    print(fetch())
