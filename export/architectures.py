"""The Keras CNNs, on MFCCs [batch, N_FRAMES, N_MFCC] -> [batch, len(LABELS)] probabilities."""
import keras
from keras import layers

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


def cnn(mean, std) -> keras.Model:
    """The default: per-coefficient input standardisation (`mean`, `std` of the training MFCCs,
    baked in as constants), three conv blocks, global average pooling (a segment's genre does
    not depend on where in it a pattern occurs)."""
    def block(filters):
        return [layers.Conv2D(filters, (3, 3), padding="same", use_bias=False),
                layers.BatchNormalization(), layers.ReLU()]

    model = keras.Sequential([
        keras.Input(INPUT_SHAPE),
        layers.Rescaling(scale=1.0 / std, offset=-mean / std),
        layers.Reshape(INPUT_SHAPE + (1,)),
        *block(32), layers.MaxPooling2D((2, 2)),
        *block(64), layers.MaxPooling2D((2, 2)),
        *block(96),
        layers.GlobalAveragePooling2D(),
        layers.Dropout(0.4),
        layers.Dense(len(spec.LABELS), activation="softmax"),
    ], name="cnn")
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


ARCHITECTURES = ("cnn", "seed")
