"""Every model file people have opens, or is refused in one line before anything is built.

HDF5 files written by Keras 3 (``model.save("x.h5")``), Git LFS pointers, config bombs, and the
user's own code passed by explicit trust (``--trust-code``). Files are made at test time, the way
their authors made them.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json
import warnings
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
import tf_keras
from conftest import LFS_POINTER, ROOT, tiny_functional, tiny_nested, tiny_sequential, write_config_bomb

from explain import ModelLoadError, load_model
from explain.models.budget import default_max_model_mb

L = keras.layers
TOLERANCE = 1e-5
TRUSTED = ROOT / "tests" / "trusted_code" / "vit_layers.py"


def _rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def _save_h5(model, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras 3: "You are saving your model as an HDF5 file ... legacy"
        model.save(path)
    return path


def _images(model, n: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, *model.input_shape[1:])).astype("float32")


def _with_batchnorm() -> keras.Model:
    keras.utils.set_random_seed(5)
    model = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            L.Rescaling(1 / 255),
            L.Conv2D(4, 3, name="conv"),
            L.BatchNormalization(name="bn"),
            L.Activation("relu"),
            L.GlobalAveragePooling2D(),
            L.Dense(3, activation="softmax"),
        ],
        name="with_batchnorm",
    )
    bn = model.get_layer("bn")  # trained-looking statistics, so that a lost moving mean shows
    rng = np.random.default_rng(0)
    bn.set_weights([rng.uniform(0.5, 2, 4), rng.normal(size=4), rng.normal(size=4), rng.uniform(0.5, 2, 4)])
    return model


KERAS3 = {
    "sequential": tiny_sequential,
    "functional_skip": tiny_functional,
    "nested_base": tiny_nested,
    "batchnorm": _with_batchnorm,
}


# ---------------------------------------------------------------------------------------------
# HDF5 written by Keras 3
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(KERAS3))
def test_keras3_h5_predicts_what_the_original_predicted(tmp_path, name):
    original = KERAS3[name]()
    path = _save_h5(original, tmp_path / f"{name}.h5")
    with h5py.File(path) as f:
        assert str(f.attrs["keras_version"]).startswith("3.")  # really written by Keras 3
    model = load_model(path)
    x = _images(original)
    diff = np.abs(model.predict(x, verbose=0) - original.predict(x, verbose=0)).max()
    assert diff <= TOLERANCE, f"{name}: max abs difference {diff}"
    assert [layer.name for layer in model.layers] == [layer.name for layer in original.layers]


def test_keras3_h5_lambda_and_custom_layers_are_refused_by_name(tmp_path):
    inp = keras.Input((4,))
    path = _save_h5(keras.Model(inp, L.Lambda(lambda t: t * 2, name="twice")(inp)), tmp_path / "lambda.h5")
    with pytest.raises(ModelLoadError, match=r"layer 'twice' is a Lambda layer .*--trust-code"):
        load_model(path)
    assert load_model(path, safe_mode=False).predict(np.ones((1, 4)), verbose=0)[0, 0] == 2.0


# ---------------------------------------------------------------------------------------------
# Git LFS pointers
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["model.keras", "model.h5", "weights.zip"])
def test_git_lfs_pointer_is_named(tmp_path, name):
    path = tmp_path / name
    path.write_text(LFS_POINTER)
    with pytest.raises(
        ModelLoadError, match=r"is a Git LFS pointer \(\d+ bytes of text\), not the model.*git lfs pull"
    ):
        load_model(path)


def test_git_lfs_pointer_inside_a_savedmodel_folder(tmp_path):
    folder = tmp_path / "saved"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_text(LFS_POINTER)
    (folder / "variables" / "variables.data-00000-of-00001").write_text(LFS_POINTER)
    with pytest.raises(ModelLoadError, match=r"saved: saved_model\.pb is a Git LFS pointer"):
        load_model(folder)


# ---------------------------------------------------------------------------------------------
# Config bombs: refused before anything is allocated
# ---------------------------------------------------------------------------------------------


def test_keras_config_bomb_is_refused_before_allocation(saved_models, tmp_path):
    bomb = write_config_bomb(saved_models["sequential"], tmp_path / "bomb.keras", units=200_000_000)
    assert bomb.stat().st_size < 100_000  # declares 5 x 200M float32 weights and 200M biases: 4.8 GB
    before = _rss_bytes()
    with pytest.raises(ModelLoadError) as info:
        load_model(bomb)
    assert _rss_bytes() - before < 500 * 1024**2
    message = str(info.value)
    assert "config bomb" in message and "'predictions', 4.8 GB" in message
    assert "\n" not in message


def _h5_bomb(model, path: Path, units: int) -> Path:
    """An HDF5 model file with the last Dense layer's units raised in its model_config."""
    _save_h5(model, path)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        layers = config["config"]["layers"]
        next(e for e in reversed(layers) if "units" in e["config"])["config"]["units"] = units
        f.attrs["model_config"] = json.dumps(config)
    return path


def test_keras2_and_keras3_h5_config_bombs_are_refused(tmp_path):
    k2 = tf_keras.Sequential([tf_keras.Input((8, 8, 3)), tf_keras.layers.Flatten(), tf_keras.layers.Dense(3)])
    before = _rss_bytes()
    for path in (_h5_bomb(k2, tmp_path / "k2.h5", 10**8), _h5_bomb(tiny_sequential(), tmp_path / "k3.h5", 10**8)):
        with pytest.raises(ModelLoadError, match=r"declares .* GB of weights .* holds .* config bomb"):
            load_model(path)
    assert _rss_bytes() - before < 500 * 1024**2


def test_memory_budget_names_the_flag(saved_models):
    with pytest.raises(ModelLoadError, match=r"more than the 0.001 MB allowed; pass --max-model-mb \d+"):
        load_model(saved_models["sequential"], max_model_mb=0.001)
    assert 256 <= default_max_model_mb() <= 4096


def test_hdf5_dataset_that_declares_more_than_it_stores(tmp_path):
    path = _save_h5(tiny_sequential(), tmp_path / "sparse.h5")
    with h5py.File(path, "r+") as f:  # a chunked dataset nobody wrote: 400 MB declared, nothing stored
        f["model_weights"].create_dataset("ghost", shape=(10**8,), dtype="float32", chunks=(1024,))
    with pytest.raises(ModelLoadError, match=r"declares a dataset 'ghost' of 400.0 MB but stores"):
        load_model(path)


# ---------------------------------------------------------------------------------------------
# The user's own code, by explicit trust
# ---------------------------------------------------------------------------------------------


class Doubler(L.Layer):
    def call(self, x):
        return x * 2


@pytest.fixture(scope="module")
def custom_files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("custom")
    inp = keras.Input((4,))
    x = Doubler(name="doubler")(inp)
    model = keras.Model(inp, L.Dense(2, name="head")(x))
    paths = {"keras": d / "custom.keras", "h5": d / "custom.h5"}
    model.save(paths["keras"])
    _save_h5(model, paths["h5"])
    (d / "my_layers.py").write_text(
        "import keras\n\nclass Doubler(keras.layers.Layer):\n    def call(self, x):\n        return x * 2\n"
    )
    (d / "other.py").write_text("import keras\n\nclass Tripler(keras.layers.Layer):\n    pass\n")
    (d / "broken.py").write_text("import keras\n\nx = 1\nraise RuntimeError('no GPU found')\n")
    paths |= {"trusted": d / "my_layers.py", "other": d / "other.py", "broken": d / "broken.py"}
    return paths


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_custom_class_is_refused_with_its_name_and_the_flag(custom_files, fmt):
    with pytest.raises(ModelLoadError, match=r"uses custom code: '.*Doubler' \(layer 'doubler'\).*--trust-code"):
        load_model(custom_files[fmt])


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_trusted_code_loads_the_custom_class(custom_files, fmt):
    model = load_model(custom_files[fmt], trusted_code=custom_files["trusted"])
    assert type(model.get_layer("doubler")).__name__ == "Doubler"
    original = keras.saving.load_model(custom_files["keras"], custom_objects={"Doubler": Doubler})
    x = np.arange(8, dtype="float32").reshape(2, 4)
    assert np.abs(model.predict(x, verbose=0) - original.predict(x, verbose=0)).max() <= TOLERANCE


def test_custom_objects_are_trust_too(custom_files):
    assert load_model(custom_files["keras"], custom_objects={"Doubler": Doubler}).get_layer("doubler")


def test_trusted_file_without_the_class(custom_files):
    with pytest.raises(ModelLoadError, match=r"the trusted code does not define: '.*Doubler'.*it defines Tripler"):
        load_model(custom_files["keras"], trusted_code=custom_files["other"])


def test_trusted_file_that_raises_on_import(custom_files):
    with pytest.raises(ModelLoadError) as info:
        load_model(custom_files["keras"], trusted_code=custom_files["broken"])
    assert str(info.value) == (
        "The trusted code broken.py raised RuntimeError (line 4) when imported: no GPU found. "
        "Fix the file, or run it with python to see the whole error."
    )


def test_trusted_code_must_be_a_python_file(custom_files, tmp_path):
    with pytest.raises(ModelLoadError, match="No such trusted code file"):
        load_model(custom_files["keras"], trusted_code=tmp_path / "missing.py")
    with pytest.raises(ModelLoadError, match=r"must be a Python file \(\.py\)"):
        load_model(custom_files["keras"], trusted_code=custom_files["keras"])


def test_lambda_loads_only_with_trust_and_safe_mode_keeps_it_out(tmp_path, custom_files):
    inp = keras.Input((4,))
    model = keras.Model(inp, L.Lambda(lambda t: t + 1, name="plus_one")(inp))
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(ModelLoadError, match=r"Lambda layer .*--trust-code"):
        load_model(path)
    with pytest.raises(ModelLoadError, match="safe mode refuses even with trusted classes"):
        load_model(path, trusted_code=custom_files["trusted"], safe_mode=True)  # the dashboard's uploads
    loaded = load_model(path, trusted_code=custom_files["trusted"])
    assert loaded.predict(np.zeros((1, 4)), verbose=0)[0, 0] == 1.0


def test_every_cli_takes_trust_code_and_the_budget(custom_files, capsys):
    from explain.cli.layers import main

    assert main([str(custom_files["keras"]), "--list", "--trust-code", str(custom_files["trusted"])]) == 0
    assert "doubler" in capsys.readouterr().out
    assert main([str(custom_files["keras"]), "--list"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--trust-code my_layers.py" in err[0]
    code = main([str(custom_files["keras"]), "--list", "--trust-code", str(custom_files["broken"])])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "raised RuntimeError (line 4)" in err[0]
    from explain.cli import attribute, convert, filters, report

    for cli in (attribute, convert, filters, report):
        with pytest.raises(SystemExit):
            cli.main(["--help"])
        out = capsys.readouterr().out
        assert "--trust-code" in out and "--max-model-mb" in out, cli.__name__


class K2Doubler(tf_keras.layers.Layer):
    def call(self, x):
        return x * 2


def test_keras2_h5_with_custom_and_lambda_layers_loads_with_trust(custom_files, tmp_path):
    """A Keras 2 file that needs the user's code is read by Keras 3's HDF5 reader with their (Keras 3)
    classes: the same layers and predictions; without trust it is refused by name."""
    k = tf_keras.layers
    layers = [k.Input((8, 8, 3)), k.Conv2D(2, 3, name="conv"), K2Doubler(name="doubler")]
    model = tf_keras.Sequential([*layers, k.Lambda(lambda t: t + 1, name="plus_one"), k.Flatten(), k.Dense(3)])
    path = _save_h5(model, tmp_path / "k2_custom.h5")
    (tmp_path / "my_layers.py").write_text(custom_files["trusted"].read_text().replace("Doubler", "K2Doubler"))
    with pytest.raises(ModelLoadError, match=r"uses custom code: 'K2Doubler' \(layer 'doubler'\)"):
        load_model(path)
    loaded = load_model(path, trusted_code=tmp_path / "my_layers.py")
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    x = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    assert np.abs(loaded.predict(x, verbose=0) - model.predict(x, verbose=0)).max() <= TOLERANCE


def test_keras2_savedmodel_config_bomb_is_refused(tmp_path):
    """A SavedModel's keras_metadata.pb edited to declare 2 GB: refused while tf_keras builds it, before
    the weight is allocated (the checkpoint holds a few KB)."""
    from tf_keras.protobuf import saved_metadata_pb2

    k = tf_keras.layers
    model = tf_keras.Sequential([k.Input((8, 8, 3)), k.Flatten(name="flat"), k.Dense(3, name="head")])
    folder = tmp_path / "saved"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(folder, save_format="tf")
    meta = saved_metadata_pb2.SavedMetadata()
    meta.ParseFromString((folder / "keras_metadata.pb").read_bytes())
    root = next(n for n in meta.nodes if n.node_path == "root")
    config = json.loads(root.metadata)
    config["config"]["layers"][-1]["config"]["units"] = 2_500_000
    root.metadata = json.dumps(config)
    (folder / "keras_metadata.pb").write_bytes(meta.SerializeToString())
    before = _rss_bytes()
    with pytest.raises(ModelLoadError, match=r"declares 1.9 GB of weights \(the largest layer, 'head'.*config bomb"):
        load_model(folder)
    assert _rss_bytes() - before < 500 * 1024**2


def test_a_config_that_declares_huge_activations_is_refused(tmp_path):
    """No weights to compare with: an UpSampling2D by 2,000 turns one 32x32 image into 16 GB."""
    model = keras.Sequential([keras.Input((32, 32, 1)), L.UpSampling2D(2000, name="up"), L.GlobalMaxPooling2D()])
    path = tmp_path / "upsampled.keras"
    model.save(path)
    with pytest.raises(ModelLoadError, match=r"layer 'up' outputs 16.4 GB of activations for one image"):
        load_model(path)
