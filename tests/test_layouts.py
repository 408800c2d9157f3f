"""Models that take (H, W), channels-first or flattened pixels are explained as they are.

explain feeds (N, H, W, C) raw pixels; an adapter in front of the model reshapes or transposes
them, so the model, its layer indices and names are unchanged. Each kind is built with Keras 3
and with tf-keras (saved as .h5, as their authors did), and checked against the original model
fed by hand in its own layout.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from conftest import SAMPLES
from PIL import Image

from explain import ModelLoadError, compute_activations, layer_table, load_model, load_model_card, predict
from explain.attribution import GradCAM, Saliency
from explain.models.layouts import input_layout

L, K = keras.layers, tf_keras.layers
CF = "channels_first"


# ---------------------------------------------------------------------------------------------
# The models, as tutorials write them
# ---------------------------------------------------------------------------------------------


def _plane(lib):
    """TensorFlow's beginner tutorial: Flatten(input_shape=(28, 28)), Dense, Dropout, Dense."""
    ly = lib.layers
    return lib.Sequential(
        [lib.Input((28, 28)), ly.Flatten(), ly.Dense(16, activation="relu"), ly.Dropout(0.2), ly.Dense(10)]
    )


def _flat(lib, channels=1):
    """An MLP baseline on flattened pixels, (None, 784) or (None, 3 * 16 * 16)."""
    ly = lib.layers
    size = 28 * 28 if channels == 1 else 3 * 16 * 16
    return lib.Sequential([lib.Input((size,)), ly.Dense(16, activation="relu"), ly.Dense(10, activation="softmax")])


def _channels_first(lib, channels=1):
    """An MNIST CNN trained channels first (on a GPU, or with image_data_format: channels_first)."""
    ly = lib.layers
    size = 28 if channels == 1 else 16
    return lib.Sequential(
        [
            lib.Input((channels, size, size)),
            ly.Conv2D(4, 3, activation="relu", data_format=CF, name="conv_a"),
            ly.BatchNormalization(axis=1, name="bn"),
            ly.MaxPooling2D(data_format=CF, name="pool"),
            ly.Conv2D(6, 3, activation="relu", data_format=CF, name="conv_b"),
            ly.Flatten(name="flat"),
            ly.Dense(10, activation="softmax", name="predictions"),
        ]
    )


KINDS = {
    "plane": (_plane, (28, 28, 1)),
    "flat_gray": (_flat, (28, 28, 1)),
    "flat_rgb": (lambda lib: _flat(lib, 3), (16, 16, 3)),
    "channels_first_gray": (_channels_first, (28, 28, 1)),
    "channels_first_rgb": (lambda lib: _channels_first(lib, 3), (16, 16, 3)),
}


def _native(x: np.ndarray, model_shape: tuple) -> np.ndarray:
    """Channels-last pixels in the model's own layout, by hand."""
    if len(model_shape) == 2:
        return x[..., 0]
    if len(model_shape) == 1:
        return x.reshape(len(x), -1)
    return np.transpose(x, (0, 3, 1, 2))


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """``(kind, library) -> (loaded model, original Keras 3 model or the tf-keras file's reference)``."""
    d = tmp_path_factory.mktemp("layouts")
    out = {}
    for kind, (build, _) in KINDS.items():
        keras.utils.set_random_seed(1)
        k3 = build(keras)
        path = d / f"{kind}.keras"
        k3.save(path)
        out[(kind, "keras3")] = (load_model(path), k3)
        tf_keras.utils.set_random_seed(1)
        k2 = build(tf_keras)
        h5 = d / f"{kind}_k2.h5"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            k2.save(h5)
        reference = keras.models.clone_model(load_model(h5))  # the conversion's own result, checked below
        reference.set_weights(k2.get_weights())
        out[(kind, "tf_keras")] = (load_model(h5), reference)
    return out


def _images(shape, n=3, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, *shape)).astype("float32")


# ---------------------------------------------------------------------------------------------
# The adapter
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lib", ["keras3", "tf_keras"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_layout_is_fed_channels_last_pixels_and_predicts_as_the_model(models, kind, lib):
    model, original = models[(kind, lib)]
    shape = KINDS[kind][1]
    card = load_model_card(None, model)
    assert card.input_shape == shape and card.color_mode == ("grayscale" if shape[-1] == 1 else "rgb")
    assert [r.name for r in layer_table(model)] == [r.name for r in layer_table(original)]
    x = _images(shape)
    ours = np.stack([p.probabilities for p in predict(model, x, [str(i) for i in range(10)])])
    expected = keras.ops.convert_to_numpy(keras.activations.softmax(original(_native(x, model.input_shape[1:]))))
    if kind.startswith(("flat", "channels_first")):  # these end in softmax already
        expected = original.predict(_native(x, model.input_shape[1:]), verbose=0)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)


def test_tf_keras_files_keep_their_weights(models):
    for kind in KINDS:
        model, original = models[(kind, "tf_keras")]
        x = _native(_images(KINDS[kind][1]), model.input_shape[1:])
        assert np.abs(model.predict(x, verbose=0) - original.predict(x, verbose=0)).max() <= 1e-5


@pytest.mark.parametrize(
    ("shape", "kind", "image_shape"),
    [
        ((28, 28), "plane", (28, 28, 1)),
        ((784,), "flat", (28, 28, 1)),
        ((3072,), "flat", (32, 32, 3)),
        ((1, 28, 28), "channels_first", (28, 28, 1)),
        ((3, None, None), "channels_first", (None, None, 3)),
        ((None, None, 3), "channels_last", (None, None, 3)),
    ],
)
def test_input_layout_of_each_shape(shape, kind, image_shape):
    layout = input_layout(
        keras.Sequential([keras.Input(shape), L.Flatten() if None not in shape else L.Activation("relu")])
    )
    assert (layout.kind, layout.image_shape) == (kind, image_shape)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: keras.Sequential([keras.Input((4, 8, 8)), L.Conv2D(2, 3, data_format=CF)]),
            r"channels-first images \(4, 8, 8\) with 4 channels",
        ),
        (lambda: keras.Sequential([keras.Input((2, 8, 8)), L.Flatten()]), r"channels-first images \(2, 8, 8\) with 2"),
        (lambda: keras.Sequential([keras.Input((1000,)), L.Dense(2)]), r"flat vectors of 1000 values, which are not"),
        (lambda: keras.Sequential([keras.Input((8, 8, 5)), L.Flatten()]), r"5 channels"),
    ],
)
def test_layouts_explain_cannot_read_are_one_line(build, message, tmp_path):
    path = tmp_path / "m.keras"
    build().save(path)
    with pytest.raises(ModelLoadError, match=message):
        load_model_card(path, load_model(path))


# ---------------------------------------------------------------------------------------------
# Channels-first layers: feature maps and CAMs on the channel axis
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lib", ["keras3", "tf_keras"])
def test_channels_first_feature_maps_are_the_layer_output_transposed(models, lib):
    model, original = models[("channels_first_gray", lib)]
    rows = {r.name: r for r in layer_table(model)}
    assert rows["conv_a"].note == "channels first" and rows["conv_a"].grid == (26, 26, 4)
    assert rows["bn"].layout == "channels_first" and rows["flat"].grid is None
    x = _images((28, 28, 1))
    acts = compute_activations(model, x, ["conv_a", "conv_b"])
    probe = keras.Model(original.inputs, [original.get_layer("conv_a").output, original.get_layer("conv_b").output])
    a, b = probe(_native(x, (1, 28, 28)))
    np.testing.assert_allclose(acts["conv_a"], np.transpose(a, (0, 2, 3, 1)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(acts["conv_b"], np.transpose(b, (0, 2, 3, 1)), rtol=1e-5, atol=1e-5)


def _gradcam_by_hand(original, layer: str, x_native: np.ndarray, size) -> np.ndarray:
    """Grad-CAM on the original channels-first model: weights are the gradients averaged over
    axes (2, 3), summed over axis 1; the logit is recomputed from the last Dense layer."""
    head = original.layers[-1]
    probe = keras.Model(original.inputs, [original.get_layer(layer).output, head.input])
    x = tf.constant(x_native)
    with tf.GradientTape() as tape:
        a, features = probe(x)
        tape.watch(a)
        logits = tf.matmul(features, head.kernel) + head.bias
        score = tf.gather(logits, tf.argmax(logits, axis=1), axis=1, batch_dims=1)
    g = tape.gradient(score, a)
    cam = tf.nn.relu(tf.einsum("bkhw,bk->bhw", a, tf.reduce_mean(g, axis=(2, 3))))
    cam = tf.image.resize(cam[..., None], size)[..., 0].numpy()
    lo, hi = cam.min(axis=(1, 2), keepdims=True), cam.max(axis=(1, 2), keepdims=True)
    return (cam - lo) / np.where(hi > lo, hi - lo, 1)


@pytest.mark.parametrize("lib", ["keras3", "tf_keras"])
@pytest.mark.parametrize("kind", ["channels_first_gray", "channels_first_rgb"])
def test_channels_first_gradcam_is_the_hand_computed_one(models, kind, lib):
    model, original = models[(kind, lib)]
    shape = KINDS[kind][1]
    x = _images(shape, n=4)
    result = GradCAM(model)(x)
    assert result.layer == "conv_b" and not result.flat.any()
    expected = _gradcam_by_hand(original, "conv_b", _native(x, model.input_shape[1:]), shape[:2])
    np.testing.assert_allclose(result.heatmap, expected, atol=1e-4)


@pytest.mark.parametrize("kind", ["plane", "flat_gray", "flat_rgb"])
def test_dense_models_get_gradient_maps_of_the_image(models, kind):
    model, original = models[(kind, "keras3")]
    shape = KINDS[kind][1]
    x = _images(shape, n=2)
    result = Saliency(model)(x)
    assert result.heatmap.shape == (2, *shape[:2])
    native = tf.constant(_native(x, model.input_shape[1:]))
    with tf.GradientTape() as tape:
        tape.watch(native)
        out = original(native)
        score = tf.reduce_max(out, axis=1) if kind == "plane" else None
    if score is not None:  # the tutorial's logits: the saliency is |d logit / d pixel|, max over channels
        g = np.abs(tape.gradient(score, native).numpy()).reshape(2, *shape).max(axis=-1)
        g = (g - g.min(axis=(1, 2), keepdims=True)) / np.ptp(g, axis=(1, 2), keepdims=True)
        np.testing.assert_allclose(result.heatmap, g, atol=1e-5)


def test_channels_first_cpu_convolution_matches_channels_last():
    """explain._keras_fixes: every channels-first layer gives its channels-last twin's output, and gradient."""
    x = np.random.default_rng(0).normal(size=(2, 2, 12, 12)).astype("float32")
    layers = [
        L.Conv2D(4, 3, data_format=CF),
        L.Conv2D(4, 3, strides=2, padding="same", data_format=CF),
        L.Conv2D(4, 3, dilation_rate=2, data_format=CF),
        L.Conv2DTranspose(4, 3, strides=2, data_format=CF),
        L.SeparableConv2D(4, 3, data_format=CF),
        L.Conv1D(4, 3, data_format=CF),
    ]
    for layer in layers:
        inp = x if not isinstance(layer, L.Conv1D) else x[:, :, 0, :]
        cf_out = layer(inp)
        twin = type(layer).from_config({**layer.get_config(), "data_format": "channels_last"})
        last = np.moveaxis(inp, 1, -1)
        twin.build(last.shape)
        twin.set_weights(layer.get_weights())
        np.testing.assert_allclose(cf_out, np.moveaxis(keras.ops.convert_to_numpy(twin(last)), -1, 1), atol=1e-5)
        t = tf.constant(inp)
        with tf.GradientTape() as tape:
            tape.watch(t)
            total = tf.reduce_sum(layer(t) ** 2)
        assert tape.gradient(total, t) is not None


# ---------------------------------------------------------------------------------------------
# Every CLI on a channels-first model and the beginner tutorial's model
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tutorial_files(models, tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("tutorial_files")
    paths = {}
    for kind in ("plane", "channels_first_gray"):
        paths[kind] = d / f"{kind}.keras"
        models[(kind, "keras3")][1].save(paths[kind])
    data = d / "data"
    for k, c in enumerate(("c0", "c9")):
        (data / c).mkdir(parents=True)
        for i in range(6):
            pixels = np.random.default_rng(10 * k + i).integers(0, 255, (28, 28), np.uint8)
            Image.fromarray(pixels).save(data / c / f"{i}.png")
    paths["data"] = data
    return paths


@pytest.mark.parametrize("kind", ["plane", "channels_first_gray"])
def test_every_cli_opens_other_layouts(tutorial_files, kind, tmp_path, capsys):
    from explain.cli import attribute, convert, filters, layers, report

    model = str(tutorial_files[kind])
    image = str(SAMPLES / "fashion_mnist_9_ankle_boot.png")
    classes = ["--classes", ",".join(f"c{i}" for i in range(10))]
    assert layers.main([model, "--list"]) == 0
    method = "gradcam" if kind.startswith("channels") else "saliency"
    assert attribute.main([model, image, "--method", method, "--out", str(tmp_path / "a.png")]) == 0
    if kind.startswith("channels"):
        assert layers.main([model, image, "--layer", "conv_a", "--out", str(tmp_path / "g.png")]) == 0
        argv = [model, "--layer", "conv_a", "--steps", "4", "--no-progress", "--out", str(tmp_path / "f.png")]
        assert filters.main(argv) == 0
    else:
        assert attribute.main([model, image, "--method", "gradcam", "--out", str(tmp_path / "b.png")]) == 2
        assert "gradcam needs a convolutional layer" in capsys.readouterr().err
    assert convert.main([model, str(tmp_path / "c.keras"), "--preprocess", "raw", *classes]) == 0
    if kind.startswith("channels"):  # the report (evaluation, heatmaps, embedding) through the adapter
        argv = [model, str(tutorial_files["data"]), "--out", str(tmp_path / "r"), "--no-progress", *classes]
        argv += ["--embedding-method", "pca", "--examples", "2"]
        assert report.main(argv) == 0 and (tmp_path / "r" / "report.html").is_file()
    out = capsys.readouterr()
    assert "Traceback" not in out.err
