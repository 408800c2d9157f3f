"""Keras 2 model files (legacy .h5, SavedModel folders, zipped SavedModels) open as Keras 3 models.

The Keras 2 models are built with ``tf_keras`` at test time (tiny: 16x16 inputs, a few filters),
saved once per module into a temporary folder, and loaded through ``explain.load_model``.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json
import shutil
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import explain  # noqa: F401  (quiet TensorFlow import first)
from explain import ModelLoadError, load_model, resolve_layer
from explain.models.legacy import convert_to_keras3, legacy_kind, read_h5_config, read_savedmodel_config, scan_config

K = tf_keras.layers
TOLERANCE = 1e-5


# ---------------------------------------------------------------------------------------------
# Keras 2 models
# ---------------------------------------------------------------------------------------------


def k2_sequential():
    """Rescaling, conv, BatchNormalization, LeakyReLU, pooling, Dropout, a softmax head."""
    return tf_keras.Sequential(
        [
            K.Input((16, 16, 3)),
            K.Rescaling(1 / 255, name="rescale"),
            K.Conv2D(4, 3, activation="relu", name="conv_a"),
            K.BatchNormalization(name="bn"),
            K.LeakyReLU(0.2, name="leaky"),
            K.MaxPooling2D(name="pool"),
            K.Dropout(0.3, name="drop"),
            K.Flatten(name="flat"),
            K.Dense(3, activation="softmax", name="predictions"),
        ],
        name="k2_sequential",
    )


def k2_functional():
    """A residual branch (Add) and a softmax head."""
    inp = K.Input((16, 16, 3), name="pixels")
    x = K.Rescaling(1 / 255, name="rescale")(inp)
    x = K.Conv2D(4, 3, padding="same", activation="relu", name="conv_a")(x)
    y = K.Conv2D(4, 3, padding="same", activation="relu", name="conv_b")(x)
    x = K.Add(name="add")([x, y])
    x = K.GlobalAveragePooling2D(name="gap")(x)
    return tf_keras.Model(inp, K.Dense(3, activation="softmax", name="predictions")(x), name="k2_functional")


def k2_nested_functional():
    """A frozen functional base inside a Sequential classifier (transfer learning)."""
    b_in = K.Input((16, 16, 3), name="base_input")
    x = K.Rescaling(1 / 127.5, offset=-1, name="base_rescale")(b_in)
    x = K.Conv2D(4, 3, padding="same", activation="relu", name="block_1_conv")(x)
    x = K.BatchNormalization(name="block_1_bn")(x)
    x = K.MaxPooling2D(name="block_1_pool")(x)
    x = K.Conv2D(8, 3, padding="same", activation="relu", name="block_2_conv")(x)
    base = tf_keras.Model(b_in, x, name="tiny_base")
    base.trainable = False
    head = [K.GlobalAveragePooling2D(name="gap"), K.Dense(3, activation="softmax", name="predictions")]
    return tf_keras.Sequential([K.Input((16, 16, 3)), base, *head], name="k2_nested_functional")


def k2_nested_sequential():
    """A grayscale binary classifier: a Sequential base (no explicit Input) and one sigmoid output."""
    base = tf_keras.Sequential(
        [
            K.Conv2D(4, 3, input_shape=(16, 16, 1), name="conv"),
            K.BatchNormalization(name="bn"),
            K.ReLU(name="relu"),
            K.DepthwiseConv2D(3, padding="same", name="depthwise"),
        ],
        name="gray_base",
    )
    return tf_keras.Sequential(
        [base, K.GlobalAveragePooling2D(name="gap"), K.Dense(1, activation="sigmoid", name="predictions")],
        name="k2_nested_sequential",
    )


def k2_tutorial():
    """TensorFlow's transfer-learning tutorial in small: augmentation, mobilenet_v2.preprocess_input
    (TFOpLambda layers tf.math.truediv and tf.math.subtract), a frozen base called with
    training=False, Dropout and one logit."""
    augment = tf_keras.Sequential([K.RandomFlip("horizontal"), K.RandomRotation(0.2)], name="data_augmentation")
    b_in = K.Input((16, 16, 3))
    x = K.Conv2D(4, 3, padding="same", name="conv_1")(b_in)
    x = K.BatchNormalization(name="bn_1")(x)
    base = tf_keras.Model(b_in, K.ReLU(6.0, name="relu_1")(x), name="base")
    base.trainable = False
    inp = K.Input((16, 16, 3))
    x = tf_keras.applications.mobilenet_v2.preprocess_input(augment(inp))
    x = base(x, training=False)
    x = K.Dropout(0.2)(K.GlobalAveragePooling2D()(x))
    return tf_keras.Model(inp, K.Dense(1)(x), name="k2_tutorial")


def k2_zoo():
    """Many layer types and every kind of scalar arithmetic in one functional model."""
    inp = K.Input((16, 16, 3), name="image")
    x = 2.0 * (1.0 - inp / 255.0) + 0.5  # truediv, subtract (number first), multiply (number first), add
    x = tf.math.add(tf.math.multiply(x, 0.5), 0.1) - 1
    x = K.Normalization(mean=[0.1, 0.2, 0.3], variance=[0.5, 1.0, 2.0], name="norm")(x)
    x = K.Normalization(name="norm_adapted")(x)  # the fixture adapts it: mean, variance and count are weights
    a = K.Conv2D(
        4, 3, padding="same", kernel_regularizer="l2", kernel_constraint=tf_keras.constraints.MaxNorm(3),
        bias_initializer=tf_keras.initializers.Constant(0.1), name="conv",
    )(x)  # fmt: skip
    a = K.PReLU(shared_axes=[1, 2], name="prelu")(K.BatchNormalization(center=False, name="bn")(a))
    b = K.SeparableConv2D(4, 3, padding="same", depth_multiplier=2, activation="elu", name="sep")(x)
    b = K.LayerNormalization(name="ln")(b)
    c = K.DepthwiseConv2D(3, padding="same", activation="selu", name="dw")(x)
    c = K.GroupNormalization(groups=2, name="gn")(K.Conv2D(4, 1, activation="swish", name="pw")(c))
    x = K.Concatenate(name="concat")([a, b, c])
    x = K.Conv2DTranspose(4, 3, strides=2, padding="same", activation="gelu", name="up_conv")(x)
    x = K.Cropping2D(1)(K.ZeroPadding2D(1)(K.AveragePooling2D()(x)))
    x = K.UpSampling2D(interpolation="bilinear")(K.SpatialDropout2D(0.2)(x))
    y = K.Multiply()([x, K.Activation("sigmoid")(x)])
    m = K.Maximum()([x, K.Subtract()([x, y])])
    x = K.ReLU(max_value=6.0, negative_slope=0.1)(K.Average()([x, m]))
    x = K.Permute((2, 1, 3))(K.Resizing(8, 8)(K.ELU(alpha=0.5)(x)))
    x = K.Concatenate()([K.GlobalMaxPooling2D()(x), K.GlobalAveragePooling2D()(K.Softmax()(x))])
    x = K.Flatten()(K.Reshape((2, 4))(K.GaussianNoise(0.1)(x)))
    x = K.Dense(6, activation="tanh", name="hidden")(K.UnitNormalization()(x))
    x = K.Activation("softsign")(K.Dense(5, activation="softplus", kernel_initializer="he_normal")(x))
    return tf_keras.Model(inp, K.Dense(3, activation="softmax", name="predictions")(x), name="k2_zoo")


MODELS = {
    "sequential": k2_sequential,
    "functional": k2_functional,
    "nested_functional": k2_nested_functional,
    "nested_sequential": k2_nested_sequential,
    "tutorial": k2_tutorial,
    "zoo": k2_zoo,
}


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, tf_keras.Model):
            yield from _all_layers(layer)


def _statistic(rng, weight) -> np.ndarray:
    if "gamma" in weight.name or "variance" in weight.name:
        return rng.uniform(0.5, 1.5, weight.shape)
    return rng.normal(0, 0.3, weight.shape)


def _randomise_batchnorm(model, seed: int = 0) -> None:
    """Non-trivial BatchNormalization statistics, so that inference mode matters."""
    rng = np.random.default_rng(seed)
    for layer in _all_layers(model):
        if isinstance(layer, K.BatchNormalization):
            layer.set_weights([_statistic(rng, w) for w in layer.weights])


def _paths(model, prefix: str = "") -> list[tuple[str, bool]]:
    """(path, trainable) of every layer but inputs, nested models' layers after the model."""
    rows = []
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        rows.append((prefix + layer.name, layer.trainable))
        if isinstance(layer, tf_keras.Model | keras.Model):
            rows += _paths(layer, prefix + layer.name + "/")
    return rows


@dataclass
class Keras2File:
    h5: Path
    savedmodel: Path
    x: np.ndarray
    expected: np.ndarray
    paths: list
    sequential: bool


def _images(model, seed: int = 0) -> np.ndarray:
    shape = (4, *model.input_shape[1:])
    return np.random.default_rng(seed).uniform(0, 255, shape).astype("float32")


def _save(model, h5: Path, savedmodel: Path | None = None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "HDF5 ... is considered legacy"
        model.save(h5)
        if savedmodel is not None:
            model.save(savedmodel, save_format="tf")


@pytest.fixture(scope="module")
def keras2_files(tmp_path_factory) -> dict[str, Keras2File]:
    """Each Keras 2 model saved as .h5 and as a SavedModel folder, with its predictions."""
    folder = tmp_path_factory.mktemp("keras2")
    files = {}
    for i, (name, build) in enumerate(MODELS.items()):
        tf_keras.utils.set_random_seed(i)
        model = build()
        _randomise_batchnorm(model, i)
        if name == "zoo":
            model.get_layer("norm_adapted").adapt(np.random.default_rng(0).normal(size=(8, 16, 16, 3)))
        x = _images(model, i)
        files[name] = Keras2File(
            folder / f"{name}.h5",
            folder / f"{name}_savedmodel",
            x,
            model.predict(x, verbose=0),
            _paths(model),
            isinstance(model, tf_keras.Sequential),
        )
        _save(model, files[name].h5, files[name].savedmodel)
    return files


# ---------------------------------------------------------------------------------------------
# Fidelity: the Keras 3 model is the Keras 2 model
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["h5", "savedmodel"])
@pytest.mark.parametrize("name", list(MODELS))
def test_keras2_file_converts_with_same_layers_weights_and_predictions(keras2_files, name, fmt):
    f = keras2_files[name]
    model = load_model(getattr(f, fmt))
    assert isinstance(model, keras.Model) and isinstance(model, keras.Sequential) == f.sequential
    assert _paths(model) == f.paths  # same names, nesting, order and trainable flags
    assert not model.compiled
    diff = np.abs(model.predict(f.x, verbose=0) - f.expected).max()
    assert diff <= TOLERANCE, f"{name} ({fmt}): max abs difference {diff}"


def test_nested_base_keeps_its_name_and_frozen_flags(keras2_files):
    model = load_model(keras2_files["nested_functional"].h5)
    assert resolve_layer(model, "tiny_base/block_2_conv").output_shape == (None, 8, 8, 8)
    base = model.get_layer("tiny_base")
    assert isinstance(base, keras.Model) and not base.trainable and not base.trainable_weights
    assert model.get_layer("predictions").trainable and len(model.trainable_weights) == 2


def test_tfoplambda_arithmetic_becomes_rescaling(keras2_files):
    model = load_model(keras2_files["tutorial"].savedmodel)
    div, sub = model.get_layer("tf.math.truediv"), model.get_layer("tf.math.subtract")
    assert isinstance(div, keras.layers.Rescaling) and isinstance(sub, keras.layers.Rescaling)
    assert (div.scale, div.offset, sub.scale, sub.offset) == pytest.approx((1 / 127.5, 0.0, 1.0, -1.0))


def test_convert_to_keras3_on_a_model_in_memory():
    tf_keras.utils.set_random_seed(0)
    tf_model = k2_functional()
    x = _images(tf_model)
    model = convert_to_keras3(tf_model)
    assert [layer.name for layer in model.layers] == [layer.name for layer in tf_model.layers]
    np.testing.assert_allclose(model.predict(x, verbose=0), tf_model.predict(x, verbose=0), atol=TOLERANCE)


def test_mobilenet_v2_base_converts(tmp_path):
    tf_keras.utils.set_random_seed(0)
    base = tf_keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False, weights=None)
    base.trainable = False
    model = tf_keras.Sequential([base, K.GlobalAveragePooling2D(), K.Dense(3, activation="softmax")])
    _randomise_batchnorm(model)
    x = _images(model)
    _save(model, tmp_path / "mobilenet.h5")
    converted = load_model(tmp_path / "mobilenet.h5")
    assert resolve_layer(converted, "mobilenetv2_1.00_32/block_16_project").output_shape == (None, 1, 1, 320)
    assert len(converted.get_layer("mobilenetv2_1.00_32").layers) == len(base.layers)

    # called eagerly (inference mode, as predict runs them): no predict function traced through 155 layers, 4 times
    def out(m):
        return np.asarray(m(x, training=False))

    diff = np.abs(out(converted) - out(model)).max()
    assert diff <= TOLERANCE
    features = converted.get_layer("mobilenetv2_1.00_32")  # the softmax could hide a difference: check the base too
    expected = out(base)
    assert np.abs(out(features) - expected).max() <= TOLERANCE * np.abs(expected).max()


# ---------------------------------------------------------------------------------------------
# Other ways the same files arrive
# ---------------------------------------------------------------------------------------------


def _assert_same_predictions(model, f: Keras2File) -> None:
    assert np.abs(model.predict(f.x, verbose=0) - f.expected).max() <= TOLERANCE


def test_hdf5_under_another_name(keras2_files, tmp_path):
    upload = tmp_path / "upload.bin"
    shutil.copy(keras2_files["functional"].h5, upload)
    assert legacy_kind(upload) == "hdf5"
    _assert_same_predictions(load_model(upload), keras2_files["functional"])


@pytest.fixture
def scratch(tmp_path, monkeypatch) -> Path:
    """The folder that temporary folders are made in during the test."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.mark.parametrize("inside", ["", "my_model/"])
def test_zipped_savedmodel_opens_and_is_cleaned_up(keras2_files, tmp_path, scratch, inside):
    f = keras2_files["nested_sequential"]
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(f.savedmodel.rglob("*")):
            zf.write(p, inside + p.relative_to(f.savedmodel).as_posix())
    _assert_same_predictions(load_model(archive), f)
    assert list(scratch.iterdir()) == []  # the unpacked folder is gone


def _old_style(obj):
    """A config as Keras 2.0-2.3 wrote it: no module / registered_name / build_config keys,
    a Sequential's config a bare list of layers, a functional model's class 'Model'."""
    if isinstance(obj, list):
        return [_old_style(v) for v in obj]
    if not isinstance(obj, dict):
        return obj
    obj = {k: _old_style(v) for k, v in obj.items() if k not in ("module", "registered_name", "build_config")}
    if obj.get("class_name") == "Sequential":
        obj["config"] = obj["config"]["layers"]
    if obj.get("class_name") == "Functional":
        obj["class_name"] = "Model"
    return obj


@pytest.mark.parametrize("name", ["sequential", "nested_functional"])
def test_old_keras_h5_layout(keras2_files, tmp_path, name):
    f = keras2_files[name]
    old = tmp_path / "old.h5"
    shutil.copy(f.h5, old)
    with h5py.File(old, "r+") as h5:
        config = _old_style(json.loads(h5.attrs["model_config"]))
        h5.attrs["model_config"] = np.bytes_(json.dumps(config).encode())  # bytes, as h5py 2 wrote it
    assert isinstance(read_h5_config(old)["config"], list)
    model = load_model(old)
    assert _paths(model) == f.paths
    _assert_same_predictions(model, f)


# ---------------------------------------------------------------------------------------------
# No code from the file runs
# ---------------------------------------------------------------------------------------------


def _marker_model(marker: Path):
    """A Lambda layer that writes ``marker`` whenever its function runs (also when Keras 2 rebuilds it)."""
    inp = K.Input((8, 8, 1))
    x = K.Conv2D(2, 3, name="conv")(inp)
    x = K.Lambda(lambda t, m=str(marker): (open(m, "w").write("ran"), t)[1], name="my_lambda")(x)
    return tf_keras.Model(inp, K.Dense(2)(K.Flatten()(x)))


@pytest.fixture(scope="module")
def lambda_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lambda")
    marker = folder / "marker.txt"
    h5, savedmodel = folder / "model.h5", folder / "model_savedmodel"
    _save(_marker_model(marker), h5, savedmodel)
    assert marker.exists()  # building and tracing ran the lambda: the trap is armed
    marker.unlink()
    return h5, savedmodel, marker


def test_keras2_alone_would_run_the_lambda(lambda_files):
    h5, _, marker = lambda_files
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tf_keras.models.load_model(h5, compile=False)
    assert marker.exists()
    marker.unlink()


@pytest.mark.parametrize("which", [0, 1], ids=["h5", "savedmodel"])
def test_lambda_is_refused_and_never_runs(lambda_files, which):
    path, marker = lambda_files[which], lambda_files[2]
    with pytest.raises(ModelLoadError, match=r"layer 'my_lambda' is a Lambda layer \(Python code\); explain never"):
        load_model(path)
    assert not marker.exists()


@tf_keras.saving.register_keras_serializable(package="my_package")
class Doubler(K.Layer):
    """A custom layer class: its code lives in this file, not in Keras."""

    def call(self, x):
        return x * 2


@tf_keras.saving.register_keras_serializable(package="my_package")
class Fives(tf_keras.initializers.Initializer):
    """A custom initializer class."""

    def __call__(self, shape, dtype=None):
        return tf.fill(shape, 5.0)


@pytest.fixture(scope="module")
def custom_layer_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("custom")
    base = tf_keras.Sequential([K.Input((8, 8, 1)), Doubler(name="doubler")], name="base")
    model = tf_keras.Sequential([K.Input((8, 8, 1)), base, K.Flatten(), K.Dense(2)])
    _save(model, folder / "custom.h5", folder / "custom_savedmodel")
    return folder / "custom.h5", folder / "custom_savedmodel"


@pytest.mark.parametrize("which", [0, 1], ids=["h5", "savedmodel"])
def test_custom_layer_class_is_refused(custom_layer_files, which):
    with pytest.raises(ModelLoadError, match=r"uses custom code: 'my_package>Doubler'.*--trust-code"):
        load_model(custom_layer_files[which])


def _h5_with(tmp_path, build, name="model.h5") -> Path:
    _save(build(), tmp_path / name)
    return tmp_path / name


@pytest.mark.parametrize(
    ("op", "message"),
    [
        (lambda x: tf.math.square(x), r"layer 'tf.math.square' is a TensorFlow operation \(tf.math.square\)"),
        (lambda x: x[..., :1], r"'tf.__operators__.getitem' .* slices a tensor"),
        (lambda x: 2.0 / x, r"not a division by a non-zero number"),
        (lambda x: x * x, r"does not combine one tensor with one number"),
    ],
    ids=["square", "slice", "number_over_x", "x_times_x"],
)
def test_other_tensorflow_operations_are_refused(tmp_path, op, message):
    def build():
        inp = K.Input((4, 4, 3))
        return tf_keras.Model(inp, K.Flatten()(op(inp)))

    with pytest.raises(ModelLoadError, match=message):
        load_model(_h5_with(tmp_path, build))


def test_custom_initializer_is_refused(tmp_path):
    def build():
        return tf_keras.Sequential([K.Input((3,)), K.Dense(2, kernel_initializer=Fives(), name="dense")])

    with pytest.raises(ModelLoadError, match=r"uses custom code: 'my_package>Fives' \(layer 'dense'\)"):
        load_model(_h5_with(tmp_path, build))


def test_hard_sigmoid_is_refused_as_it_differs_in_keras3(tmp_path):
    def build():
        return tf_keras.Sequential([K.Input((3,)), K.Dense(2, activation="hard_sigmoid", name="gate")])

    with pytest.raises(ModelLoadError, match=r"layer 'gate' uses the hard_sigmoid activation"):
        load_model(_h5_with(tmp_path, build))


CUSTOM = "uses custom code: "


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        (
            {"class_name": "Dense", "module": "my_package.layers", "config": {"name": "d"}},
            CUSTOM + r"'my_package\.layers\.Dense' \(layer 'd'\).*--trust-code",
        ),
        (
            {"class_name": "Dense", "registered_name": "pkg>Dense", "config": {"name": "d"}},
            CUSTOM + r"'pkg>Dense' \(layer 'd'\)",
        ),
        ({"class_name": "Dense", "config": {"name": "d", "activation": "my_act"}}, "layer 'd' .*activation 'my_act'"),
        (
            {"class_name": "Conv2D", "config": {"name": "d", "bias_constraint": {"class_name": "Mine"}}},
            CUSTOM + r"'Mine' \(layer 'd'\)",
        ),
        (
            {"class_name": "Dense", "config": {"name": "d", "extra": {"class_name": "Thing"}}},
            CUSTOM + r"'Thing' \(layer 'd'\)",
        ),
        (
            {"class_name": "StringLookup", "config": {"name": "d", "vocabulary": "/etc/passwd"}},
            "layer 'd' .*does not open",
        ),
    ],
)
def test_scan_config_refuses_non_builtin_objects(layer, message):
    config = {"class_name": "Sequential", "config": {"name": "s", "layers": [layer]}}
    with pytest.raises(ModelLoadError, match=f"model.h5.*{message}"):
        scan_config(config, "model.h5")


def test_scan_config_refuses_a_custom_model_class():
    config = {"class_name": "MyModel", "registered_name": "pkg>MyModel", "config": {"name": "m", "layers": []}}
    with pytest.raises(ModelLoadError, match=r"model\.h5 uses custom code: 'pkg>MyModel'"):
        scan_config(config, "model.h5")


def test_scan_config_names_every_custom_class_at_once():
    layers = [
        {"class_name": "Patches", "config": {"name": "patches", "trainable": True}},
        {"class_name": "Custom>PatchEncoder", "config": {"name": "encoder", "trainable": True}},
    ]
    config = {"class_name": "Sequential", "config": {"name": "vit", "layers": layers}}
    with pytest.raises(ModelLoadError) as info:
        scan_config(config, "vit.h5", "keras3")
    assert "'Patches' (layer 'patches'), 'Custom>PatchEncoder' (layer 'encoder')" in str(info.value)
    assert "--trust-code my_layers.py" in str(info.value)


def test_convert_to_keras3_refuses_a_lambda_in_memory_too():
    inp = K.Input((4,))
    with pytest.raises(ModelLoadError, match="layer 'twice' is a Lambda layer"):
        convert_to_keras3(tf_keras.Model(inp, K.Lambda(lambda t: 2 * t, name="twice")(inp)))


# ---------------------------------------------------------------------------------------------
# Bad input: one clear message each
# ---------------------------------------------------------------------------------------------


def test_truncated_h5(keras2_files, tmp_path):
    data = keras2_files["functional"].h5.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match=r"cut\.h5 is not a readable HDF5 file: it is truncated or damaged"):
        load_model(cut)


def test_weights_only_h5(tmp_path):
    model = k2_functional()
    model.save_weights(tmp_path / "weights.h5")
    with pytest.raises(ModelLoadError, match=r"holds model weights only .* needs a whole model"):
        load_model(tmp_path / "weights.h5")


def test_hdf5_that_is_no_keras_model(tmp_path):
    with h5py.File(tmp_path / "data.h5", "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(ModelLoadError, match="is an HDF5 file but not a Keras model"):
        load_model(tmp_path / "data.h5")


def test_empty_h5(tmp_path):
    (tmp_path / "empty.h5").write_bytes(b"")
    with pytest.raises(ModelLoadError, match=r"empty\.h5 is empty \(0 bytes\)"):
        load_model(tmp_path / "empty.h5")


def test_savedmodel_not_written_by_keras(tmp_path):
    module = tf.Module()
    module.v = tf.Variable(1.0)
    tf.saved_model.save(module, str(tmp_path / "module"))
    with pytest.raises(
        ModelLoadError, match=r"SavedModel directory has no keras_metadata\.pb: it was not written by Keras 2'"
    ):
        load_model(tmp_path / "module")


def test_savedmodel_without_its_variables(keras2_files, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(keras2_files["functional"].savedmodel, copy)
    shutil.rmtree(copy / "variables")
    with pytest.raises(ModelLoadError, match=r"the SavedModel's weights are missing \(no variables/variables.index\)"):
        load_model(copy)


def test_savedmodel_with_another_models_variables(keras2_files, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(keras2_files["functional"].savedmodel, copy)
    shutil.rmtree(copy / "variables")
    shutil.copytree(keras2_files["sequential"].savedmodel / "variables", copy / "variables")
    with pytest.raises(ModelLoadError, match="the weights in variables/ do not fit the model"):
        load_model(copy)


def test_savedmodel_with_damaged_metadata(keras2_files, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(keras2_files["functional"].savedmodel, copy)
    (copy / "keras_metadata.pb").write_bytes(b"\xff" * 16)
    with pytest.raises(ModelLoadError, match=r"copy: keras_metadata\.pb is damaged"):
        load_model(copy)


def test_savedmodel_missing_one_layers_variables(tmp_path):
    def dense_stack(n):
        inp = K.Input((4,), name="x")
        out = inp
        for j in range(n):
            out = K.Dense(3, name=f"dense_{j}")(out)
        return tf_keras.Model(inp, out, name="stack")

    dense_stack(3).save(tmp_path / "three", save_format="tf")
    dense_stack(2).save(tmp_path / "two", save_format="tf")
    shutil.rmtree(tmp_path / "three" / "variables")
    shutil.copytree(tmp_path / "two" / "variables", tmp_path / "three" / "variables")
    with pytest.raises(ModelLoadError, match=r"the weights in variables/ do not fit the model .*dense_2/"):
        load_model(tmp_path / "three")


def _zip(path: Path, members: dict) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            if isinstance(data, zipfile.ZipInfo):
                zf.writestr(data, b"target")
            else:
                zf.writestr(name, data)
    return path


def _symlink_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = 0o120777 << 16  # a symbolic link, as zip -y stores it
    return info


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"saved_model.pb": b"", "../evil.txt": b"x"}, r"member '\.\./evil\.txt' points outside"),
        ({"saved_model.pb": b"", "/etc/evil": b"x"}, r"member '/etc/evil' points outside"),
        ({"m/saved_model.pb": b"", "m/variables/../../evil": b"x"}, "points outside"),
        ({"saved_model.pb": b"", "link": _symlink_info("link")}, "member 'link' is a symbolic link"),
        ({"saved_model.pb": b"\0" * (17 * 2**20)}, r"compressed \d+:1; refusing it as a possible zip bomb"),
        ({"readme.txt": b"hi"}, r"holds no SavedModel \(saved_model.pb"),
        ({"a/saved_model.pb": b"", "b/saved_model.pb": b""}, "holds 2 SavedModel folders"),
    ],
    ids=["dotdot", "absolute", "nested_dotdot", "symlink", "bomb", "no_savedmodel", "two_savedmodels"],
)
def test_bad_zip_is_refused_before_unpacking(tmp_path, scratch, members, message):
    with pytest.raises(ModelLoadError, match=message):
        load_model(_zip(tmp_path / "upload.zip", members))
    assert list(scratch.iterdir()) == [] and not (tmp_path / "evil.txt").exists()


def test_damaged_zip(tmp_path):
    (tmp_path / "upload.zip").write_bytes(b"PK\x03\x04 and then nothing")
    with pytest.raises(ModelLoadError, match=r"upload\.zip is a damaged zip file"):
        load_model(tmp_path / "upload.zip")


def test_zip_with_a_savedmodel_not_written_by_keras(tmp_path, scratch):
    archive = _zip(tmp_path / "upload.zip", {"model/saved_model.pb": b"", "model/variables/x": b""})
    with pytest.raises(ModelLoadError, match=r"upload\.zip: this TensorFlow SavedModel directory has no"):
        load_model(archive)
    assert list(scratch.iterdir()) == []  # unpacked, refused, and cleaned up


def test_read_savedmodel_config_reads_the_root_model(keras2_files):
    config = read_savedmodel_config(keras2_files["tutorial"].savedmodel)
    assert config["class_name"] == "Functional" and config["config"]["name"] == "k2_tutorial"
    scan_config(config, "model")  # the TFOpLambda arithmetic passes the scan
