"""The tutorial classifiers and transfer learning: shapes, preprocessing, freezing, weights files, safe reload.

Nothing is downloaded: pretrained bases are built with ``weights=None`` or from files written
to tmp_path, and the ImageNet download is replaced by a fake that fails like an offline one.
"""

from __future__ import annotations

import inspect
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
from conftest import DEMO_MODEL

from explain.models.layers import get_layer
from training.architectures import (
    ARCHITECTURES,
    RANDOM_LAYERS,
    TRANSFER_BASES,
    WeightsError,
    _fix_efficientnet_normalization,
    augmentation_layers,
    classifier_head,
    loss_for,
    strip_augmentation,
    transfer,
)

L = keras.layers
MOBILENET = "mobilenetv2_1.00_224"  # the base's name inside every MobileNetV2 transfer model below


def pixels(shape, n: int = 2, seed: int = 0) -> np.ndarray:
    """Random raw pixels, float32 in [0, 255], shape (n, *shape)."""
    return np.random.default_rng(seed).uniform(0, 255, (n, *shape)).astype("float32")


def first_after_augmentation(model: keras.Model) -> keras.layers.Layer:
    return next(layer for layer in model.layers if not isinstance(layer, (L.InputLayer, *RANDOM_LAYERS)))


def check_outputs(model: keras.Model, shape, num_classes: int) -> np.ndarray:
    out = np.asarray(model(pixels(shape), training=False))
    assert model.output_shape == ((None, 1) if num_classes == 2 else (None, num_classes))
    assert np.isfinite(out).all() and (out >= 0).all() and (out <= 1).all()
    if num_classes > 2:
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    return out


def same_predictions(a: keras.Model, b: keras.Model, x: np.ndarray) -> None:
    np.testing.assert_allclose(np.asarray(a(x, training=False)), np.asarray(b(x, training=False)), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- registry and shared pieces


def test_registry_and_common_signature():
    assert set(ARCHITECTURES) == {"small_cnn", "mlp", "mnist_cnn", "cifar10_cnn", "deep_cnn", "transfer"}
    for name, builder in ARCHITECTURES.items():
        params = inspect.signature(builder).parameters
        assert list(params)[:2] == ["input_shape", "num_classes"], name
        for option in ("dropout", "n_dense", "augmentation"):
            assert params[option].kind is inspect.Parameter.KEYWORD_ONLY, (name, option)
        assert params["augmentation"].default is None
        assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()), name
        doc = inspect.getdoc(builder)
        assert all(word in doc for word in ("Args:", "Returns:", "Raises:", "http")), name


def test_small_cnn_is_still_the_demo_models_architecture():
    if not DEMO_MODEL.exists():
        pytest.skip("demo model not bundled")
    demo = keras.saving.load_model(DEMO_MODEL, safe_mode=True)
    built = ARCHITECTURES["small_cnn"](demo.input_shape[1:], demo.output_shape[-1])
    assert [(type(layer), layer.name) for layer in built.layers] == [(type(layer), layer.name) for layer in demo.layers]
    assert [w.shape for w in built.weights] == [w.shape for w in demo.weights]
    assert built.layers[-2].rate == 0.3 and built.layers[-3].units == 128


def test_head_and_loss():
    binary, multi = classifier_head(2), classifier_head(7)
    assert (binary.units, binary.get_config()["activation"], binary.name) == (1, "sigmoid", "predictions")
    assert (multi.units, multi.get_config()["activation"], multi.name) == (7, "softmax", "predictions")
    assert loss_for(2) == "binary_crossentropy"
    assert loss_for(10) == "sparse_categorical_crossentropy"
    for bad in (1, 0, -3):
        with pytest.raises(ValueError, match="at least 2 classes"):
            classifier_head(bad)
        with pytest.raises(ValueError, match="at least 2 classes"):
            loss_for(bad)
    with pytest.raises(ValueError, match="at least 2 classes"):
        ARCHITECTURES["mlp"]((8, 8, 1), 1)


def test_argument_checks():
    mlp = ARCHITECTURES["mlp"]
    mlp((8, 8, 1), 3, base="xception", weights=None, fine_tune_layers=2)  # other builders' options: ignored
    with pytest.raises(TypeError, match=r"unexpected option.*fine_tune"):
        mlp((8, 8, 1), 3, fine_tune=2)
    with pytest.raises(TypeError, match="unexpected option"):
        transfer((32, 32, 3), 3, weights=None, alpha=0.5)
    with pytest.raises(ValueError, match="dropout"):
        mlp((8, 8, 1), 3, dropout=1.0)
    with pytest.raises(ValueError, match="n_dense"):
        mlp((8, 8, 1), 3, n_dense=0)
    with pytest.raises(ValueError, match=r"\(height, width, channels\)"):
        mlp((8, 8), 3)
    with pytest.raises(ValueError, match=r"Unknown base 'vgg16'\. Choose one of: xception, mobilenetv2"):
        transfer((32, 32, 3), 3, base="vgg16", weights=None)
    with pytest.raises(ValueError, match=r"1 channel.*got 4 channels"):
        transfer((32, 32, 4), 3, weights=None)
    with pytest.raises(ValueError, match="fine_tune_layers"):
        transfer((32, 32, 3), 3, weights=None, fine_tune_layers=-1)
    assert TRANSFER_BASES == ("xception", "mobilenetv2", "efficientnetb0", "resnet50")


# ---------------------------------------------------------------- networks trained from scratch

CASES = [
    ("small_cnn", (28, 28, 1), 10),
    ("small_cnn", (32, 32, 3), 2),
    ("mlp", (28, 28, 1), 10),
    ("mlp", (32, 32, 3), 2),
    ("mnist_cnn", (28, 28, 1), 10),
    ("mnist_cnn", (32, 32, 3), 2),
    ("cifar10_cnn", (28, 28, 1), 3),
    ("cifar10_cnn", (32, 32, 3), 2),
    ("deep_cnn", (48, 48, 3), 3),
    ("deep_cnn", (46, 50, 1), 2),
]


@pytest.mark.parametrize(("name", "shape", "num_classes"), CASES)
def test_builder_contract(name, shape, num_classes):
    model = ARCHITECTURES[name](shape, num_classes)
    assert isinstance(model, keras.Sequential) and model.name == name
    rescaling = model.layers[0]
    assert isinstance(rescaling, L.Rescaling) and rescaling.scale == pytest.approx(1 / 255) and rescaling.offset == 0
    assert model.layers[-1].name == "predictions"
    assert len({layer.name for layer in model.layers}) == len(model.layers)
    assert not any(isinstance(layer, L.Lambda) for layer in model.layers)
    check_outputs(model, shape, num_classes)


@pytest.mark.parametrize(
    ("name", "min_size"), [("small_cnn", 4), ("mnist_cnn", 10), ("cifar10_cnn", 4), ("deep_cnn", 46)]
)
def test_smallest_image_each_builder_takes(name, min_size):
    ARCHITECTURES[name]((min_size, min_size, 1), 3)
    with pytest.raises(ValueError, match=f"at least {min_size}x{min_size} pixels"):
        ARCHITECTURES[name]((min_size - 1, min_size + 5, 1), 3)


def test_cifar10_dense_layers_carry_max_norm():
    model = ARCHITECTURES["cifar10_cnn"]((32, 32, 3), 10)
    hidden = [layer for layer in model.layers if isinstance(layer, L.Dense) and layer.name != "predictions"]
    assert [layer.units for layer in hidden] == [256, 128]
    for layer in hidden:
        assert isinstance(layer.kernel_constraint, keras.constraints.MaxNorm)
        assert layer.kernel_constraint.max_value == 3
    convs = [layer.filters for layer in model.layers if isinstance(layer, L.Conv2D)]
    assert convs == [32, 64, 64, 128]
    assert sum(isinstance(layer, L.MaxPooling2D) for layer in model.layers) == 2


def test_deep_cnn_at_150_pixels_has_the_tutorial_shape():
    model = ARCHITECTURES["deep_cnn"]((150, 150, 3), 2)
    assert [layer.filters for layer in model.layers if isinstance(layer, L.Conv2D)] == [32, 64, 128, 128]
    assert model.get_layer("flatten").output.shape == (None, 7 * 7 * 128)
    assert model.get_layer("dense").units == 512 and model.get_layer("dropout").rate == 0.5
    assert model.output_shape == (None, 1)


# ---------------------------------------------------------------- augmentation


def test_augmentation_layers_only_for_what_is_switched_on():
    assert augmentation_layers() == []
    assert augmentation_layers(flip=False, rotation=0, shift=0.0, zoom=0) == []
    every = augmentation_layers(rotation=0.1, shift=0.1, zoom=0.2, flip="horizontal_and_vertical", seed=3)
    assert [type(layer) for layer in every] == list(RANDOM_LAYERS)
    assert [layer.name for layer in every] == ["random_rotation", "random_translation", "random_zoom", "random_flip"]
    (flip,) = augmentation_layers(flip=True)
    assert flip.mode == "horizontal"
    (zoom,) = augmentation_layers(zoom=0.2)
    assert isinstance(zoom, L.RandomZoom)
    for bad in ({"rotation": -0.1}, {"shift": 1.5}, {"zoom": 1.0}, {"flip": "diagonal"}):
        with pytest.raises(ValueError):
            augmentation_layers(**bad)


def test_augmentation_is_identity_at_inference_and_active_in_training():
    keras.utils.set_random_seed(0)
    aug = augmentation_layers(rotation=0.2, shift=0.2, zoom=0.2, flip="horizontal", seed=0)
    augmented = ARCHITECTURES["small_cnn"]((28, 28, 1), 10, augmentation=aug)
    plain = ARCHITECTURES["small_cnn"]((28, 28, 1), 10)
    for layer in plain.layers:
        layer.set_weights(augmented.get_layer(layer.name).get_weights())
    # Inserted flat, right after the input, before the rescaling.
    assert augmented.layers[: len(aug)] == aug
    assert first_after_augmentation(augmented).name == "rescaling"

    x = pixels((28, 28, 1), n=4)
    first, second = np.asarray(augmented(x, training=False)), np.asarray(augmented(x, training=False))
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, np.asarray(plain(x, training=False)), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(augmented.predict(x, verbose=0), first, rtol=1e-5, atol=1e-6)

    images = x
    for layer in aug:
        images = layer(images, training=True)
    assert not np.allclose(np.asarray(images), x)  # in training the images do change


def test_bare_call_augments_in_keras3_and_strip_augmentation_removes_it():
    """Trap: Keras 3 random layers default to training=True, so model(x) augments; strip them for inference."""
    aug = augmentation_layers(rotation=0.2, zoom=0.2, seed=1)
    model = ARCHITECTURES["mlp"]((16, 16, 1), 3, augmentation=aug)
    x = pixels((16, 16, 1), n=4)
    assert not np.allclose(np.asarray(model(x)), np.asarray(model(x, training=False)))

    stripped = strip_augmentation(model)
    assert not any(isinstance(layer, RANDOM_LAYERS) for layer in stripped.layers)
    assert [layer.name for layer in stripped.layers] == [layer.name for layer in model.layers[len(aug) :]]
    np.testing.assert_allclose(np.asarray(stripped(x)), np.asarray(model(x, training=False)), rtol=1e-6)
    assert len(model.layers) == 5 + len(aug)  # the original is untouched


# ---------------------------------------------------------------- transfer learning


@pytest.fixture(scope="module")
def mobilenet() -> keras.Model:
    keras.utils.set_random_seed(0)
    return transfer((32, 32, 3), 5, base="mobilenetv2", weights=None)


def test_transfer_mobilenetv2_graph(mobilenet):
    names = [layer.name for layer in mobilenet.layers]
    assert names == [
        "image",
        "mobilenetv2_preprocess",
        MOBILENET,
        "global_average_pooling",
        "dense",
        "dropout",
        "predictions",
    ]
    preprocess = first_after_augmentation(mobilenet)
    assert isinstance(preprocess, L.Rescaling)
    assert preprocess.scale == pytest.approx(1 / 127.5) and preprocess.offset == pytest.approx(-1)
    assert mobilenet.get_layer("dropout").rate == 0.2 and mobilenet.get_layer("dense").units == 128
    check_outputs(mobilenet, (32, 32, 3), 5)
    # The nested base stays addressable as "<base name>/<inner layer>".
    inner = get_layer(mobilenet, f"{MOBILENET}/block_16_project")
    assert inner is mobilenet.get_layer(MOBILENET).get_layer("block_16_project")


def test_transfer_base_frozen_by_default(mobilenet):
    base = mobilenet.get_layer(MOBILENET)
    assert base.trainable is False and base.trainable_weights == []
    head = {id(w) for name in ("dense", "predictions") for w in mobilenet.get_layer(name).trainable_weights}
    assert {id(w) for w in mobilenet.trainable_weights} == head


def test_transfer_fine_tunes_the_top_layers_but_not_batch_norm():
    model = transfer((32, 32, 3), 3, weights=None, fine_tune_layers=12)
    base = model.get_layer(MOBILENET)
    top = base.layers[-12:]
    for layer in base.layers[:-12]:
        assert not layer.trainable and not layer.trainable_weights, layer.name
    for layer in top:
        is_bn = isinstance(layer, L.BatchNormalization)
        assert layer.trainable is not is_bn, layer.name
        assert bool(layer.trainable_weights) == (not is_bn and bool(layer.weights)), layer.name
    assert any(isinstance(layer, L.BatchNormalization) for layer in top)
    assert any(layer.trainable_weights for layer in top)


def test_transfer_grayscale_small_input_saves_and_reloads_safely(tmp_path):
    keras.utils.set_random_seed(1)
    aug = augmentation_layers(rotation=0.1, flip="horizontal", seed=0)
    model = transfer((28, 28, 1), 2, weights=None, augmentation=aug)
    names = [layer.name for layer in model.layers]
    assert names[:7] == [
        "image",
        "random_rotation",
        "random_flip",
        "grayscale_to_rgb",
        "resize_to_min",
        "mobilenetv2_preprocess",
        MOBILENET,
    ]
    assert model.get_layer("resize_to_min").output.shape == (None, 32, 32, 3)
    check_outputs(model, (28, 28, 1), 2)

    path = tmp_path / "transfer.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    same_predictions(model, loaded, pixels((28, 28, 1), n=3))
    assert loaded.get_layer(MOBILENET).trainable_weights == []

    stripped = strip_augmentation(model)
    assert [layer.name for layer in stripped.layers][:3] == ["image", "grayscale_to_rgb", "resize_to_min"]
    same_predictions(model, stripped, pixels((28, 28, 1), n=3))


@pytest.mark.parametrize(("name", "shape"), [("small_cnn", (28, 28, 1)), ("cifar10_cnn", (32, 32, 3))])
def test_save_and_safe_reload_give_identical_predictions(tmp_path, name, shape):
    keras.utils.set_random_seed(2)
    model = ARCHITECTURES[name](shape, 4, augmentation=augmentation_layers(zoom=0.1, seed=0))
    path = tmp_path / f"{name}.keras"
    model.save(path)
    same_predictions(model, keras.saving.load_model(path, safe_mode=True), pixels(shape, n=3))


def test_resnet50_preprocess_is_bgr_minus_imagenet_mean():
    model = transfer((32, 32, 3), 3, base="resnet50", weights=None)
    preprocess = first_after_augmentation(model)
    assert preprocess.name == "resnet50_preprocess" and isinstance(preprocess, L.Conv2D)
    assert not preprocess.trainable and not preprocess.trainable_weights
    assert model.layers[2].name == "resnet50"
    rgb = np.zeros((1, 2, 2, 3), dtype="float32")
    rgb[0, 0, 0] = (200.0, 100.0, 50.0)
    rgb[0, 1, 1] = (0.0, 255.0, 12.5)
    out = np.asarray(preprocess(rgb))
    # Hand-computed: (B, G, R) - (103.939, 116.779, 123.68).
    np.testing.assert_allclose(out[0, 0, 0], (-53.939, -16.779, 76.32), rtol=0, atol=1e-4)
    np.testing.assert_allclose(out[0, 1, 1], (-91.439, 138.221, -123.68), rtol=0, atol=1e-4)
    np.testing.assert_allclose(out[0, 0, 1], (-103.939, -116.779, -123.68), rtol=0, atol=1e-4)
    check_outputs(model, (32, 32, 3), 3)


def test_xception_at_its_minimum_size():
    model = transfer((71, 71, 3), 4, base="xception", weights=None)
    assert [layer.name for layer in model.layers][:3] == ["image", "xception_preprocess", "xception"]
    assert model.get_layer("xception").trainable_weights == []
    check_outputs(model, (71, 71, 3), 4)


def test_efficientnet_preprocesses_inside_its_own_model():
    model = transfer((32, 32, 3), 3, base="efficientnetb0", weights=None)
    assert [layer.name for layer in model.layers][:2] == ["image", "efficientnetb0"]
    inner = model.get_layer("efficientnetb0").layers
    assert isinstance(inner[1], L.Rescaling) and isinstance(inner[2], L.Normalization)
    check_outputs(model, (32, 32, 3), 3)


def test_efficientnet_imagenet_file_normalisation_fix():
    inp = keras.Input((4, 4, 3))
    norm = L.Normalization(axis=-1)
    fake_base = keras.Model(inp, norm(L.Rescaling(1 / 255)(inp)))
    stddev = np.array([0.229, 0.224, 0.225], dtype="float32")
    norm.adapt_variance.assign(stddev)
    norm.finalize_state()
    _fix_efficientnet_normalization(fake_base)
    np.testing.assert_allclose(norm.adapt_variance.numpy(), stddev**2, rtol=1e-6)
    x = np.full((1, 4, 4, 3), 255.0, dtype="float32")
    np.testing.assert_allclose(np.asarray(fake_base(x))[0, 0, 0], 1 / stddev, rtol=1e-5)  # (1 - 0) / stddev
    _fix_efficientnet_normalization(fake_base)  # idempotent: squared values no longer look like the file's
    np.testing.assert_allclose(norm.adapt_variance.numpy(), stddev**2, rtol=1e-6)


# ---------------------------------------------------------------- weights: local files and offline ImageNet


def test_transfer_loads_a_local_weights_file(tmp_path):
    keras.utils.set_random_seed(5)
    source = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    expected = source.get_weights()
    new_format = tmp_path / "mobilenet.weights.h5"
    source.save_weights(new_format)
    model = transfer((32, 32, 3), 3, weights=str(new_format))
    base = model.get_layer(MOBILENET)
    assert all(np.array_equal(a, b) for a, b in zip(base.get_weights(), expected, strict=True))
    assert base.trainable_weights == []

    # The downloaded ImageNet files are legacy H5 (topological order); a pathlib.Path works too.
    legacy = pytest.importorskip("keras.src.legacy.saving.legacy_h5_format")
    h5py = pytest.importorskip("h5py")
    legacy_path = tmp_path / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    with h5py.File(legacy_path, "w") as f:
        legacy.save_weights_to_hdf5_group(f, source)
    model = transfer((28, 28, 1), 3, weights=legacy_path)
    base = model.get_layer(MOBILENET)
    assert all(np.array_equal(a, b) for a, b in zip(base.get_weights(), expected, strict=True))


def test_missing_or_unusable_weights_file(tmp_path):
    missing = tmp_path / "nope.h5"
    with pytest.raises(WeightsError, match=r"Weights file not found: .*nope.h5.*--weights none"):
        transfer((32, 32, 3), 3, weights=missing)
    junk = tmp_path / "weights.bin"
    junk.write_bytes(b"not weights")
    with pytest.raises(WeightsError, match=r"Could not load weights from .*weights.bin into MobileNetV2"):
        transfer((32, 32, 3), 3, weights=str(junk))


def test_imagenet_download_failure_says_what_to_do(monkeypatch):
    calls = []

    def offline_get_file(fname=None, origin=None, **kwargs):
        calls.append(origin)
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -2] Name or service not known")

    monkeypatch.setattr("keras.src.utils.file_utils.get_file", offline_get_file)
    with pytest.raises(WeightsError) as info:
        transfer((32, 32, 3), 3, base="mobilenetv2", weights="imagenet")
    assert calls and calls[0].startswith("https://")  # the fake was asked, no network was touched
    message = str(info.value)
    assert message.startswith("Downloading the ImageNet weights for MobileNetV2 failed (no internet?).")
    assert "--weights PATH" in message and "--weights none" in message
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5" in message
    assert isinstance(info.value, ValueError)
