"""The Keras CNNs, on MFCCs [batch, N_FRAMES, N_MFCC] -> [batch, len(LABELS)] probabilities."""
import keras
from keras import layers, ops

from inference import spec

INPUT_SHAPE = (spec.N_FRAMES, spec.N_MFCC)


def seed() -> keras.Model:
    """The seed demo's network, exactly: 98,058 parameters."""
    model = keras.Sequential([
        keras.Input(INPUT_SHAPE),
        layers.Reshape(INPUT_SHAPE + (1,)),
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
        layers.Dense(len(spec.LABELS), activation="softmax"),
    ], name="seed")
    model.compile(optimizer=keras.optimizers.Adam(1e-4),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class SegmentMeanRemoval(layers.Layer):
    """Cepstral mean normalisation: subtracts each coefficient's mean over the segment's frames.
    The mean is mostly the recording's colour (microphone, mastering, the artist's studio), which on
    119 clips identifies the artist rather than the genre; what stays is how the timbre moves."""

    def call(self, x):
        return x - ops.mean(x, axis=1, keepdims=True)


def cnn_input_stats(mfcc):
    """Per-coefficient mean and std of the training MFCCs after SegmentMeanRemoval."""
    centred = mfcc - mfcc.mean(axis=1, keepdims=True)
    return centred.mean(axis=(0, 1)), centred.std(axis=(0, 1)) + 1e-6


class LogStdPool(layers.Layer):
    """Log standard deviation of each channel over the frames: how much the timbre moves."""

    def call(self, x):
        return ops.log(ops.sqrt(ops.var(x, axis=1) + 1e-5))


def cnn(mean, std) -> keras.Model:
    """The default, small on purpose (119 clips): segment mean removal and standardisation (the
    training statistics, baked in as constants), a temporal convolution over the frames (16 learnt
    filters of 9 frames, ~0.2 s: slopes, onsets, vibrato), log-std pooling of the input and of the
    filter outputs, batch norm, dropout and an L2-regularised softmax layer."""
    audio_mfcc = keras.Input(INPUT_SHAPE)
    x = SegmentMeanRemoval()(audio_mfcc)
    x = layers.Rescaling(scale=1.0 / std, offset=-mean / std)(x)
    moves = layers.Conv1D(16, 9, use_bias=False)(x)
    h = layers.Concatenate()([LogStdPool()(x), LogStdPool()(moves)])
    h = layers.BatchNormalization()(h)
    h = layers.Dropout(0.3)(h)
    out = layers.Dense(len(spec.LABELS), activation="softmax", kernel_regularizer=keras.regularizers.l2(1e-3))(h)
    model = keras.Model(audio_mfcc, out, name="cnn")
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


ARCHITECTURES = ("cnn", "seed")
