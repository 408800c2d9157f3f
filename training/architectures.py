"""Classifier architectures from the Keras tutorials, plus transfer learning on a pretrained base.

Every builder in :data:`ARCHITECTURES` has one call shape::

    builder(input_shape, num_classes, *, dropout=..., n_dense=..., augmentation=None, **kwargs) -> keras.Model

and returns an uncompiled model whose preprocessing lives inside it, so the model takes raw
pixels, float32 in [0, 255], shape ``(N, H, W, C)``. Its output is ``(N, num_classes)``
softmax probabilities, or ``(N, 1)`` sigmoid probabilities of class 1 when
``num_classes == 2`` (binary, as the tutorials do; compile with :func:`loss_for`).

Only built-in Keras layers are used (no ``Lambda``, no custom classes), so the saved
``.keras`` files load with ``safe_mode=True`` in a process that cannot import ``training``.

Augmentation layers (:func:`augmentation_layers`) are inserted right after the input. Trap:
Keras 3 random preprocessing layers default to ``training=True`` when called without a
``training`` argument, so ``model(x)`` augments; ``model(x, training=False)`` and
``model.predict(x)`` do not. :func:`strip_augmentation` returns a copy without them.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras
import numpy as np
from keras import layers


class WeightsError(ValueError):
    """Pretrained weights could not be had: the download failed, or a local weights file is missing or unusable."""


RANDOM_LAYERS = (layers.RandomRotation, layers.RandomTranslation, layers.RandomZoom, layers.RandomFlip)
"""The layer types :func:`augmentation_layers` makes (and :func:`strip_augmentation` removes)."""

_FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical")
_OTHER_BUILDERS_OPTIONS = frozenset({"base", "weights", "fine_tune_layers"})


# --------------------------------------------------------------------------------------------
# Shared pieces: head, loss, augmentation, argument checks
# --------------------------------------------------------------------------------------------


def _check_num_classes(num_classes: int) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ValueError(
            f"A classifier needs at least 2 classes, got num_classes={num_classes!r}. "
            "Check that the data folder has one sub-folder per class and at least two of them."
        )


def classifier_head(num_classes: int) -> keras.layers.Dense:
    """The output layer every builder ends with, named ``"predictions"``.

    Two classes give one sigmoid unit, P(class 1), as the binary tutorials do (cats vs dogs);
    more give a softmax over the classes.

    Args:
        num_classes: number of classes, >= 2.

    Returns:
        An unbuilt ``Dense(1, activation="sigmoid")`` for 2 classes, else
        ``Dense(num_classes, activation="softmax")``. Output shape ``(N, 1)`` or
        ``(N, num_classes)``, probabilities in [0, 1].

    Raises:
        ValueError: ``num_classes < 2``.

    Source: https://www.tensorflow.org/tutorials/images/classification and
    https://keras.io/examples/vision/image_classification_from_scratch/ (binary head).
    """
    _check_num_classes(num_classes)
    if num_classes == 2:
        return layers.Dense(1, activation="sigmoid", name="predictions")
    return layers.Dense(num_classes, activation="softmax", name="predictions")


def loss_for(num_classes: int) -> str:
    """The Keras loss that matches :func:`classifier_head` for integer labels.

    Args:
        num_classes: number of classes, >= 2.

    Returns:
        ``"binary_crossentropy"`` for 2 classes (labels 0/1), else
        ``"sparse_categorical_crossentropy"`` (labels 0 .. num_classes - 1).

    Raises:
        ValueError: ``num_classes < 2``.
    """
    _check_num_classes(num_classes)
    return "binary_crossentropy" if num_classes == 2 else "sparse_categorical_crossentropy"


def augmentation_layers(
    rotation: float = 0.0,
    shift: float = 0.0,
    zoom: float = 0.0,
    flip: bool | str = False,
    seed: int | None = None,
) -> list[keras.layers.Layer]:
    """Random data-augmentation layers, one per transformation that is switched on.

    The layers transform images only in training (``fit``, or ``model(x, training=True)``);
    ``predict``, ``evaluate`` and ``model(x, training=False)`` pass images through unchanged.
    Careful: a bare ``model(x)`` counts as training for these layers in Keras 3.

    Args:
        rotation: largest rotation as a fraction of a full turn (0.1 = ±36°), in [0, 1].
        shift: largest translation as a fraction of height and of width, in [0, 1].
        zoom: largest zoom in or out as a fraction of the size, in [0, 1).
        flip: ``False`` (off), ``"horizontal"``, ``"vertical"`` or
            ``"horizontal_and_vertical"``; ``True`` means ``"horizontal"``.
        seed: seeds the layers (layer i gets ``seed + i``); None for unseeded.

    Returns:
        A list of ``RandomRotation``, ``RandomTranslation``, ``RandomZoom``, ``RandomFlip``
        (in that order, only the non-zero ones), named ``random_rotation`` etc.; empty when
        everything is off. Each keeps the image shape ``(N, H, W, C)``; pixels uncovered by a
        rotation, shift or zoom-out are filled by reflection (the Keras default).

    Raises:
        ValueError: a factor out of range, or an unknown flip mode.

    Source: https://www.tensorflow.org/tutorials/images/data_augmentation and
    https://keras.io/examples/vision/image_classification_from_scratch/
    """
    for name, value, high in (("rotation", rotation, 1.0), ("shift", shift, 1.0)):
        if not 0.0 <= value <= high:
            raise ValueError(f"{name} must be in [0, {high:g}], got {value!r}.")
    if not 0.0 <= zoom < 1.0:
        raise ValueError(f"zoom must be in [0, 1), got {zoom!r}.")
    if flip is True:
        flip = "horizontal"
    if flip not in (False, None, "", *_FLIP_MODES):
        raise ValueError(f"flip must be False or one of {', '.join(_FLIP_MODES)}; got {flip!r}.")

    def next_seed() -> int | None:
        return None if seed is None else seed + len(out)

    out: list[keras.layers.Layer] = []
    if rotation:
        out.append(layers.RandomRotation(rotation, seed=next_seed(), name="random_rotation"))
    if shift:
        out.append(layers.RandomTranslation(shift, shift, seed=next_seed(), name="random_translation"))
    if zoom:
        out.append(layers.RandomZoom(zoom, seed=next_seed(), name="random_zoom"))
    if flip:
        out.append(layers.RandomFlip(flip, seed=next_seed(), name="random_flip"))
    return out


def strip_augmentation(model: keras.Model) -> keras.Model:
    """A copy of ``model`` without its random augmentation layers, for inference and saving.

    Every other layer keeps its name, configuration (``trainable`` included) and weights
    (copied, not shared). The original model is not modified.

    Args:
        model: a ``keras.Sequential`` or functional model, e.g. from a builder here.

    Returns:
        A new model of the same kind; input ``(N, H, W, C)`` and output as ``model``'s.
        Without augmentation layers it returns a copy all the same.
    """
    if isinstance(model, keras.Sequential):
        clone = keras.Sequential(
            [
                keras.Input(shape=model.input_shape[1:], name=model.inputs[0].name),
                *(
                    keras.layers.deserialize(keras.layers.serialize(layer))
                    for layer in model.layers
                    if not isinstance(layer, RANDOM_LAYERS)
                ),
            ],
            name=model.name,
        )
    else:

        def call_function(layer, *args, **kwargs):
            return args[0] if isinstance(layer, RANDOM_LAYERS) else layer(*args, **kwargs)

        clone = keras.models.clone_model(model, call_function=call_function)
    for layer in clone.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return clone


def _check_args(
    builder: str,
    input_shape: Sequence[int],
    num_classes: int,
    dropout: float,
    n_dense: int,
    augmentation: list[keras.layers.Layer] | None,
    kwargs: dict,
    *,
    min_size: int = 1,
    allowed_kwargs: frozenset[str] = _OTHER_BUILDERS_OPTIONS,
) -> tuple[tuple[int, int, int], list[keras.layers.Layer]]:
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"input_shape must be (height, width, channels) with positive sizes, got {input_shape!r}.")
    if min(shape[:2]) < min_size:
        raise ValueError(
            f"{builder} needs images of at least {min_size}x{min_size} pixels (its pooling would shrink smaller ones "
            f"to nothing), got {shape[0]}x{shape[1]}. Use a larger image size or another architecture."
        )
    _check_num_classes(num_classes)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
    if isinstance(n_dense, bool) or not isinstance(n_dense, (int, np.integer)) or n_dense < 1:
        raise ValueError(f"n_dense must be a positive integer, got {n_dense!r}.")
    unknown = sorted(set(kwargs) - allowed_kwargs)
    if unknown:
        raise TypeError(
            f"{builder}() got unexpected option(s) {', '.join(unknown)}. "
            f"Options are dropout, n_dense, augmentation{''.join(', ' + k for k in sorted(allowed_kwargs))}."
        )
    augmentation = list(augmentation or [])
    for layer in augmentation:
        if not isinstance(layer, keras.layers.Layer):
            raise TypeError(f"augmentation must be a list of Keras layers, got {type(layer).__name__}.")
    return shape, augmentation  # type: ignore[return-value]


def _rescaled_sequential(
    name: str,
    input_shape: tuple[int, int, int],
    augmentation: list[keras.layers.Layer],
    body: list[keras.layers.Layer],
    num_classes: int,
) -> keras.Sequential:
    """Input ``"image"`` -> augmentation -> ``Rescaling(1/255)`` named ``"rescaling"`` -> body ->
    :func:`classifier_head`, as a ``keras.Sequential`` called ``name`` (the head is made last)."""
    head = classifier_head(num_classes)
    stack = [keras.Input(shape=input_shape, name="image"), *augmentation]
    return keras.Sequential([*stack, layers.Rescaling(1.0 / 255, name="rescaling"), *body, head], name=name)


# --------------------------------------------------------------------------------------------
# Networks trained from scratch
# --------------------------------------------------------------------------------------------


def small_cnn(
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    dropout: float = 0.3,
    n_dense: int = 128,
    augmentation: list[keras.layers.Layer] | None = None,
    **kwargs,
) -> keras.Model:
    """The bundled demo model: two conv + max-pool blocks, batch norm, a dense layer, softmax.

    The shape of the Keras "Simple MNIST convnet" example with ``padding="same"``, one batch
    normalisation after the second convolution (Ioffe & Szegedy 2015, arXiv:1502.03167) and a
    128-unit dense layer; it reaches about 91-92% on Fashion-MNIST in a few epochs on a CPU.

    Layers (``model.layers``, without augmentation): 0 rescaling, 1 conv2d, 2 max_pooling2d,
    3 conv2d_1, 4 batch_normalization, 5 max_pooling2d_1, 6 flatten, 7 dropout, 8 dense,
    9 dropout_1, 10 predictions. Augmentation layers, when given, come before ``rescaling``.

    Args:
        input_shape: ``(H, W, C)``, H and W >= 4; e.g. ``(28, 28, 1)``.
        num_classes: >= 2; 2 gives a sigmoid head (see :func:`classifier_head`).
        dropout: rate of both dropout layers, in [0, 1).
        n_dense: units of the hidden dense layer.
        augmentation: layers from :func:`augmentation_layers`, inserted after the input.
        **kwargs: options of other builders (``base``, ``weights``, ``fine_tune_layers``) are
            accepted and ignored, so one call shape serves every builder.

    Returns:
        An uncompiled ``keras.Sequential`` named ``small_cnn``: input ``(N, H, W, C)`` float in
        [0, 255], output ``(N, num_classes)`` (or ``(N, 1)`` for 2 classes). 421,898
        parameters at 28x28x1 with 10 classes.

    Raises:
        ValueError: an argument out of range. TypeError: an unknown option.

    Source: https://keras.io/examples/vision/mnist_convnet/
    """
    input_shape, augmentation = _check_args(
        "small_cnn", input_shape, num_classes, dropout, n_dense, augmentation, kwargs, min_size=4
    )
    body = [
        layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2d"),
        layers.MaxPooling2D(name="max_pooling2d"),
        layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2d_1"),
        layers.BatchNormalization(name="batch_normalization"),
        layers.MaxPooling2D(name="max_pooling2d_1"),
        layers.Flatten(name="flatten"),
        layers.Dropout(dropout, name="dropout"),
        layers.Dense(n_dense, activation="relu", name="dense"),
        layers.Dropout(dropout, name="dropout_1"),
    ]
    return _rescaled_sequential("small_cnn", input_shape, augmentation, body, num_classes)


def mlp(
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    dropout: float = 0.2,
    n_dense: int = 128,
    augmentation: list[keras.layers.Layer] | None = None,
    **kwargs,
) -> keras.Model:
    """The multilayer perceptron of the TensorFlow "Basic classification" tutorial.

    Rescaling(1/255) -> Flatten -> Dense(n_dense, relu) -> Dropout -> head. No convolutions,
    so no Grad-CAM; saliency-style attributions still work.

    Args:
        input_shape: ``(H, W, C)``; e.g. ``(28, 28, 1)``.
        num_classes: >= 2; 2 gives a sigmoid head (see :func:`classifier_head`).
        dropout: dropout rate after the hidden layer, in [0, 1) (0.2 as in the TF quickstart).
        n_dense: units of the hidden layer.
        augmentation: layers from :func:`augmentation_layers`, inserted after the input.
        **kwargs: other builders' options, accepted and ignored (see :func:`small_cnn`).

    Returns:
        An uncompiled ``keras.Sequential`` named ``mlp``: input ``(N, H, W, C)`` float in
        [0, 255], output ``(N, num_classes)`` or ``(N, 1)``. 101,770 parameters at 28x28x1
        with 10 classes.

    Raises:
        ValueError: an argument out of range. TypeError: an unknown option.

    Source: https://www.tensorflow.org/tutorials/keras/classification and
    https://www.tensorflow.org/tutorials/quickstart/beginner
    """
    input_shape, augmentation = _check_args("mlp", input_shape, num_classes, dropout, n_dense, augmentation, kwargs)
    body = [
        layers.Flatten(name="flatten"),
        layers.Dense(n_dense, activation="relu", name="dense"),
        layers.Dropout(dropout, name="dropout"),
    ]
    return _rescaled_sequential("mlp", input_shape, augmentation, body, num_classes)


def mnist_cnn(
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    dropout: float = 0.5,
    n_dense: int = 32,
    augmentation: list[keras.layers.Layer] | None = None,
    **kwargs,
) -> keras.Model:
    """The small MNIST CNN: two conv + max-pool blocks, dense 32, softmax.

    Rescaling -> Conv2D(32, 3x3, relu) -> MaxPool 2x2 -> Conv2D(64, 3x3, relu) -> MaxPool ->
    Flatten -> Dropout -> Dense(n_dense, relu) -> head. Convolutions are unpadded ("valid"),
    as in the Keras example: 28x28 shrinks to 26, 13, 11, 5.

    Args:
        input_shape: ``(H, W, C)``, H and W >= 10; e.g. ``(28, 28, 1)``.
        num_classes: >= 2; 2 gives a sigmoid head (see :func:`classifier_head`).
        dropout: dropout rate before the dense layer, in [0, 1) (0.5 as in the example).
        n_dense: units of the hidden dense layer.
        augmentation: layers from :func:`augmentation_layers`, inserted after the input.
        **kwargs: other builders' options, accepted and ignored (see :func:`small_cnn`).

    Returns:
        An uncompiled ``keras.Sequential`` named ``mnist_cnn``: input ``(N, H, W, C)`` float in
        [0, 255], output ``(N, num_classes)`` or ``(N, 1)``. 70,378 parameters at 28x28x1
        with 10 classes.

    Raises:
        ValueError: an argument out of range, or an image smaller than 10x10. TypeError: an
        unknown option.

    Source: https://keras.io/examples/vision/mnist_convnet/
    """
    input_shape, augmentation = _check_args(
        "mnist_cnn", input_shape, num_classes, dropout, n_dense, augmentation, kwargs, min_size=10
    )
    body = [
        layers.Conv2D(32, 3, activation="relu", name="conv_1"),
        layers.MaxPooling2D(name="pool_1"),
        layers.Conv2D(64, 3, activation="relu", name="conv_2"),
        layers.MaxPooling2D(name="pool_2"),
        layers.Flatten(name="flatten"),
        layers.Dropout(dropout, name="dropout"),
        layers.Dense(n_dense, activation="relu", name="dense"),
    ]
    return _rescaled_sequential("mnist_cnn", input_shape, augmentation, body, num_classes)


def cifar10_cnn(
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    dropout: float = 0.2,
    n_dense: int = 256,
    augmentation: list[keras.layers.Layer] | None = None,
    **kwargs,
) -> keras.Model:
    """The CIFAR-10 CNN with dropout, batch norm and max-norm weight constraints.

    Four conv blocks, each Conv2D(3x3, relu, padding "same") -> [MaxPool 2x2 for the two
    64-filter ones] -> Dropout -> BatchNorm, with 32, 64, 64, 128 filters; then Flatten ->
    Dropout -> Dense(n_dense, relu, MaxNorm(3)) -> Dropout -> BatchNorm ->
    Dense(n_dense // 2, relu, MaxNorm(3)) -> Dropout -> BatchNorm -> head. Max-norm caps each
    unit's incoming weight vector at L2 norm 3 (Srivastava et al. 2014, JMLR 15, "Dropout").

    Args:
        input_shape: ``(H, W, C)``, H and W >= 4; e.g. ``(32, 32, 3)``.
        num_classes: >= 2; 2 gives a sigmoid head (see :func:`classifier_head`).
        dropout: rate of every dropout layer, in [0, 1) (0.2 in the tutorial).
        n_dense: units of the first dense layer; the second has ``n_dense // 2`` (at least 1).
        augmentation: layers from :func:`augmentation_layers`, inserted after the input.
        **kwargs: other builders' options, accepted and ignored (see :func:`small_cnn`).

    Returns:
        An uncompiled ``keras.Sequential`` named ``cifar10_cnn``: input ``(N, H, W, C)`` float
        in [0, 255], output ``(N, num_classes)`` or ``(N, 1)``. 2,264,458 parameters at
        32x32x3 with 10 classes.

    Raises:
        ValueError: an argument out of range. TypeError: an unknown option.

    Source: https://stackabuse.com/image-recognition-in-python-with-tensorflow-and-keras/
    (Keras CIFAR-10 tutorial with ``kernel_constraint=maxnorm(3)``).
    """
    input_shape, augmentation = _check_args(
        "cifar10_cnn", input_shape, num_classes, dropout, n_dense, augmentation, kwargs, min_size=4
    )
    stack: list[keras.layers.Layer] = []
    for block, (filters, pool) in enumerate(((32, False), (64, True), (64, True), (128, False)), start=1):
        stack.append(layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{block}_conv"))
        if pool:
            stack.append(layers.MaxPooling2D(name=f"block{block}_pool"))
        stack.append(layers.Dropout(dropout, name=f"block{block}_dropout"))
        stack.append(layers.BatchNormalization(name=f"block{block}_bn"))
    stack += [layers.Flatten(name="flatten"), layers.Dropout(dropout, name="flatten_dropout")]
    for i, units in enumerate((n_dense, max(1, n_dense // 2)), start=1):
        stack += [
            layers.Dense(units, activation="relu", kernel_constraint=keras.constraints.MaxNorm(3), name=f"dense_{i}"),
            layers.Dropout(dropout, name=f"dense_{i}_dropout"),
            layers.BatchNormalization(name=f"dense_{i}_bn"),
        ]
    return _rescaled_sequential("cifar10_cnn", input_shape, augmentation, stack, num_classes)


def deep_cnn(
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    dropout: float = 0.5,
    n_dense: int = 512,
    augmentation: list[keras.layers.Layer] | None = None,
    **kwargs,
) -> keras.Model:
    """Chollet's cats-vs-dogs CNN for 150x150 photos: four conv + max-pool blocks, dense 512.

    Rescaling -> [Conv2D(f, 3x3, relu, unpadded) -> MaxPool 2x2] for f = 32, 64, 128, 128 ->
    Flatten -> Dropout(0.5) -> Dense(n_dense, relu) -> head. At 150x150 the last feature
    map is 7x7x128. Pair it with augmentation (flip, rotation 0.1, zoom 0.2), as the
    tutorials do, when the training set has a few thousand images.

    Args:
        input_shape: ``(H, W, C)``, H and W >= 46; e.g. ``(150, 150, 3)``.
        num_classes: >= 2; 2 gives a sigmoid head (see :func:`classifier_head`).
        dropout: dropout rate before the dense layer, in [0, 1).
        n_dense: units of the hidden dense layer.
        augmentation: layers from :func:`augmentation_layers`, inserted after the input.
        **kwargs: other builders' options, accepted and ignored (see :func:`small_cnn`).

    Returns:
        An uncompiled ``keras.Sequential`` named ``deep_cnn``: input ``(N, H, W, C)`` float in
        [0, 255], output ``(N, num_classes)`` or ``(N, 1)``. 3,453,121 parameters at
        150x150x3 with 2 classes.

    Raises:
        ValueError: an argument out of range, or an image smaller than 46x46. TypeError: an
        unknown option.

    Source: F. Chollet, Deep Learning with Python (1st ed., 2017), §5.2, notebook
    https://github.com/fchollet/deep-learning-with-python-notebooks (5.2-using-convnets-with-small-datasets);
    in-model preprocessing and augmentation as in
    https://keras.io/examples/vision/image_classification_from_scratch/
    """
    input_shape, augmentation = _check_args(
        "deep_cnn", input_shape, num_classes, dropout, n_dense, augmentation, kwargs, min_size=46
    )
    stack: list[keras.layers.Layer] = []
    for block, filters in enumerate((32, 64, 128, 128), start=1):
        stack.append(layers.Conv2D(filters, 3, activation="relu", name=f"block{block}_conv"))
        stack.append(layers.MaxPooling2D(name=f"block{block}_pool"))
    stack += [
        layers.Flatten(name="flatten"),
        layers.Dropout(dropout, name="dropout"),
        layers.Dense(n_dense, activation="relu", name="dense"),
    ]
    return _rescaled_sequential("deep_cnn", input_shape, augmentation, stack, num_classes)


# --------------------------------------------------------------------------------------------
# Transfer learning on a pretrained keras.applications base
# --------------------------------------------------------------------------------------------

_IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)
_EFFICIENTNET_STDDEV_RGB = (0.229, 0.224, 0.225)
_MOBILENET_V2_SIZES = (96, 128, 160, 192, 224)


@dataclass(frozen=True)
class _Base:
    title: str  # as Keras spells it in messages
    constructor: str  # attribute of keras.applications
    min_size: int
    preprocessing: str  # "tf" ([-1, 1]), "caffe" (BGR minus mean) or "none" (inside the base)
    notop_file: Callable[[int], str]  # the no-top ImageNet weights file, given the MobileNetV2 size


_BASES: dict[str, _Base] = {
    "xception": _Base(
        "Xception", "Xception", 71, "tf", lambda _: "xception_weights_tf_dim_ordering_tf_kernels_notop.h5"
    ),
    "mobilenetv2": _Base(
        "MobileNetV2",
        "MobileNetV2",
        32,
        "tf",
        lambda rows: f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5",
    ),
    "efficientnetb0": _Base("EfficientNetB0", "EfficientNetB0", 32, "none", lambda _: "efficientnetb0_notop.h5"),
    "resnet50": _Base(
        "ResNet50", "ResNet50", 32, "caffe", lambda _: "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    ),
}

TRANSFER_BASES: tuple[str, ...] = tuple(_BASES)
"""The ``base`` names :func:`transfer` accepts.

Preprocessing per base, as built-in layers in front of it: MobileNetV2 and Xception:
``Rescaling(1/127.5, offset=-1)`` to [-1, 1], named ``<base>_preprocess``; EfficientNetB0:
none outside (its model rescales and normalises [0, 255] input itself); ResNet50 ("caffe"
mode): a frozen 1x1 Conv2D named ``resnet50_preprocess`` whose kernel swaps RGB to BGR and
whose bias subtracts the ImageNet mean (103.939, 116.779, 123.68).

The base is one layer of the model :func:`transfer` returns, named as Keras names it
(``xception``, ``mobilenetv2_1.00_224``, ``efficientnetb0``, ``resnet50``; MobileNetV2 gets
the name of its ImageNet weights size, 96/128/160/192/224, whatever ``weights`` is), so its
inner layers are addressable as ``"<base name>/<layer>"``, e.g.
``mobilenetv2_1.00_224/block_16_project``.
"""


def _resnet50_preprocess(x):
    """RGB -> BGR and minus the ImageNet mean, as a frozen 1x1 convolution (a built-in layer)."""
    conv = layers.Conv2D(3, 1, use_bias=True, trainable=False, name="resnet50_preprocess")
    y = conv(x)
    kernel = np.zeros((1, 1, 3, 3), dtype="float32")
    for out_channel in range(3):
        kernel[0, 0, 2 - out_channel, out_channel] = 1.0  # BGR output channel j reads RGB input 2 - j
    conv.set_weights([kernel, -np.asarray(_IMAGENET_BGR_MEAN, dtype="float32")])
    return y


def _fix_efficientnet_normalization(base: keras.Model) -> None:
    """Make a base loaded from an ImageNet file normalise as the downloaded one does.

    Keras stores the ImageNet standard deviations as the Normalization layer's *variance*
    and, only when built with ``weights="imagenet"``, adds a Rescaling by 1/sqrt(stddev)
    after it. A base built with ``weights=None`` and loaded from the same file lacks that
    layer; squaring the variance gives the same (x - mean) / stddev without a new layer.
    """
    for layer in base.layers:
        if isinstance(layer, layers.Normalization) and getattr(layer, "adapt_variance", None) is not None:
            variance = np.asarray(layer.adapt_variance.numpy()).reshape(-1)
            if variance.shape == (3,) and np.allclose(variance, _EFFICIENTNET_STDDEV_RGB, atol=1e-4):
                layer.adapt_variance.assign(np.square(variance).reshape(layer.adapt_variance.shape))
                layer.finalize_state()
            return


def _build_base(spec: _Base, shape: tuple[int, int, int], weights: str | None, mobilenet_rows: int) -> keras.Model:
    constructor = getattr(keras.applications, spec.constructor)
    extra = {"name": f"mobilenetv2_1.00_{mobilenet_rows}"} if spec.constructor == "MobileNetV2" else {}
    if weights == "imagenet":
        try:
            with warnings.catch_warnings():  # MobileNetV2: "Weights for input shape (224, 224) will be loaded"
                warnings.filterwarnings("ignore", message=r".*will be loaded as the default", category=UserWarning)
                return constructor(include_top=False, weights="imagenet", input_shape=shape, **extra)
        except Exception as exc:
            if "URL fetch failure" not in str(exc) and "corrupted file" not in str(exc):
                raise
            url = re.search(r"(https?://\S+?):? ", str(exc) + " ")
            where = f" It is published at {url.group(1)}." if url else ""
            raise WeightsError(
                f"Downloading the ImageNet weights for {spec.title} failed (no internet?). "
                f"Pass --weights PATH to a local weights file (e.g. {spec.notop_file(mobilenet_rows)}) "
                f"or --weights none to train from scratch.{where}"
            ) from exc
    base = constructor(include_top=False, weights=None, input_shape=shape, **extra)
    if weights is not None:
        try:
            base.load_weights(weights)
        except Exception as exc:
            raise WeightsError(
                f"Could not load weights from {weights} into {spec.title}: {exc} "
                f"Expected the Keras no-top ImageNet file ({spec.notop_file(mobilenet_rows)}) or a .weights.h5 "
                f"file saved from the same base; files must end in .h5, .hdf5, .weights.h5 or .keras."
            ) from exc
        if spec.constructor == "EfficientNetB0":
            _fix_efficientnet_normalization(base)
    return base


def _set_trainable(base: keras.Model, fine_tune_layers: int) -> None:
    if fine_tune_layers <= 0:
        base.trainable = False
        return
    base.trainable = True
    cut = max(0, len(base.layers) - fine_tune_layers)
    for i, layer in enumerate(base.layers):
        layer.trainable = i >= cut and not isinstance(layer, layers.BatchNormalization)


def transfer(
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    dropout: float = 0.2,
    n_dense: int = 128,
    augmentation: list[keras.layers.Layer] | None = None,
    base: str = "mobilenetv2",
    weights: str | os.PathLike | None = "imagenet",
    fine_tune_layers: int = 0,
    **kwargs,
) -> keras.Model:
    """Transfer learning: a pretrained ``keras.applications`` base, frozen, under a small new head.

    Functional graph: Input -> augmentation -> [grayscale: Concatenate([x, x, x]) named
    ``grayscale_to_rgb``] -> [smaller than the base's minimum (71 for Xception, 32 for the
    others): Resizing named ``resize_to_min``, scaling both sides by the same factor] ->
    the base's own preprocessing as built-in layers -> base (``include_top=False``, called
    with ``training=False`` so its BatchNorm layers stay in inference mode even when fine-
    tuning) -> GlobalAveragePooling2D -> Dense(n_dense, relu) -> Dropout -> head.

    The base's preprocessing and its layer name (inner layers are addressable as
    ``"<base name>/<layer>"``) are listed under :data:`TRANSFER_BASES`.

    Args:
        input_shape: ``(H, W, C)`` with C = 1 (grayscale) or 3 (RGB); any H, W >= 1.
        num_classes: >= 2; 2 gives a sigmoid head (see :func:`classifier_head`).
        dropout: dropout rate before the head, in [0, 1).
        n_dense: units of the new hidden dense layer.
        augmentation: layers from :func:`augmentation_layers`, inserted after the input.
        base: one of :data:`TRANSFER_BASES`: ``"xception"``, ``"mobilenetv2"``,
            ``"efficientnetb0"``, ``"resnet50"`` (case-insensitive).
        weights: ``"imagenet"`` (downloaded once into ``~/.keras/models/``), a path to a local
            weights file (the Keras no-top ``.h5`` file, or a ``.weights.h5`` / ``.keras`` file
            saved from the same base), or None (or ``"none"``) for random initialisation.
        fine_tune_layers: 0 freezes the whole base (``base.trainable = False``); N > 0 makes
            the top N layers of ``base.layers`` trainable except BatchNormalization layers,
            which stay frozen (as in the Keras transfer-learning guide).
        **kwargs: none other accepted.

    Returns:
        An uncompiled functional ``keras.Model`` named ``transfer_<base>``: input
        ``(N, H, W, C)`` float in [0, 255], output ``(N, num_classes)`` or ``(N, 1)``. With
        10 classes at 160x160x3: MobileNetV2 2,423,242 parameters (165,258 trainable),
        Xception 21,125,042 (263,562), EfficientNetB0 4,214,829 (165,258),
        ResNet50 23,851,286 (263,562).

    Raises:
        WeightsError: the ImageNet download failed (no internet), or the weights file does
            not exist or does not fit the base.
        ValueError: an unknown base, a channel count other than 1 or 3, or another argument
            out of range. TypeError: an unknown option.

    Source: https://keras.io/guides/transfer_learning/ and
    https://www.tensorflow.org/tutorials/images/transfer_learning; bases: Sandler et al. 2018
    (MobileNetV2, arXiv:1801.04381), Chollet 2017 (Xception, arXiv:1610.02357), Tan & Le 2019
    (EfficientNet, arXiv:1905.11946), He et al. 2016 (ResNet, arXiv:1512.03385).
    """
    input_shape, augmentation = _check_args(
        "transfer", input_shape, num_classes, dropout, n_dense, augmentation, kwargs, allowed_kwargs=frozenset()
    )
    key, weights = _check_transfer_options(base, input_shape[2], fine_tune_layers, weights)
    spec = _BASES[key]
    inputs = keras.Input(shape=input_shape, name="image")
    x, size = _adapt_input(inputs, augmentation, key)
    rows = size[0] if size[0] == size[1] and size[0] in _MOBILENET_V2_SIZES else 224
    base_model = _build_base(spec, (*size, 3), weights, rows)
    _set_trainable(base_model, fine_tune_layers)
    x = base_model(x, training=False)
    x = layers.GlobalAveragePooling2D(name="global_average_pooling")(x)
    x = layers.Dense(n_dense, activation="relu", name="dense")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = classifier_head(num_classes)(x)
    return keras.Model(inputs, outputs, name=f"transfer_{key}")


def _check_transfer_options(
    base: str, channels: int, fine_tune_layers: int, weights: str | os.PathLike | None
) -> tuple[str, str | None]:
    """The base's key in ``_BASES`` and the weights as ``"imagenet"``, a file path or None.

    Raises:
        ValueError: unknown base, channels other than 1 or 3, or a bad ``fine_tune_layers``.
        WeightsError: a weights file that does not exist.
    """
    key = str(base).lower()
    if key not in _BASES:
        raise ValueError(f"Unknown base {base!r}. Choose one of: {', '.join(TRANSFER_BASES)}.")
    if channels not in (1, 3):
        raise ValueError(f"transfer needs grayscale (1 channel) or RGB (3 channels) images, got {channels} channels.")
    if (
        isinstance(fine_tune_layers, bool)
        or not isinstance(fine_tune_layers, (int, np.integer))
        or fine_tune_layers < 0
    ):
        raise ValueError(f"fine_tune_layers must be a non-negative integer, got {fine_tune_layers!r}.")
    if isinstance(weights, str) and weights.lower() == "none":
        weights = None
    if weights is not None and weights != "imagenet":
        weights = os.fspath(weights)
        if not os.path.isfile(weights):
            raise WeightsError(
                f"Weights file not found: {weights}. Pass --weights imagenet to download the ImageNet weights, "
                f"a path to an existing file (e.g. {_BASES[key].notop_file(224)}), "
                "or --weights none to train from scratch."
            )
    return key, weights


def _adapt_input(inputs, augmentation: list[keras.layers.Layer], key: str):
    """Augmentation, gray to RGB, resizing up to the base's minimum size and the base's own
    preprocessing, as built-in layers after ``inputs``. Returns the tensor and its ``(H, W)``."""
    spec = _BASES[key]
    height, width, channels = inputs.shape[1:]
    scale = max(1.0, spec.min_size / min(height, width))
    size = (math.ceil(height * scale), math.ceil(width * scale))
    x = inputs
    for layer in augmentation:
        x = layer(x)
    if channels == 1:
        x = layers.Concatenate(name="grayscale_to_rgb")([x, x, x])
    if size != (height, width):
        x = layers.Resizing(*size, name="resize_to_min")(x)
    if spec.preprocessing == "tf":
        x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name=f"{key}_preprocess")(x)
    elif spec.preprocessing == "caffe":
        x = _resnet50_preprocess(x)
    return x, size


ARCHITECTURES: dict[str, Callable[..., keras.Model]] = {
    "small_cnn": small_cnn,
    "mlp": mlp,
    "mnist_cnn": mnist_cnn,
    "cifar10_cnn": cifar10_cnn,
    "deep_cnn": deep_cnn,
    "transfer": transfer,
}
"""Every builder by name; all share the call shape in the module docstring."""
