"""Tiny in-memory models and generated images. Nothing is downloaded; files go to tmp_path."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

import explain  # noqa: F401  (quiet TensorFlow import first)

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_images"
DEMO_MODEL = ROOT / "models" / "fashion_mnist_cnn.keras"
L = keras.layers


def tiny_sequential(channels: int = 3, size: int = 16) -> keras.Model:
    """Rescaling, two convs, pooling, a dense head: 7 layers, softmax over 3 classes."""
    keras.utils.set_random_seed(1)
    return keras.Sequential(
        [
            keras.Input((size, size, channels)),
            L.Rescaling(1 / 255, name="rescale"),
            L.Conv2D(4, 3, activation="relu", name="conv_a"),
            L.MaxPooling2D(name="pool"),
            L.Conv2D(6, 3, padding="same", activation="relu", name="conv_b"),
            L.GlobalAveragePooling2D(name="gap"),
            L.Dense(5, activation="relu", name="hidden"),
            L.Dense(3, activation="softmax", name="predictions"),
        ],
        name="tiny_sequential",
    )


def tiny_functional(channels: int = 3, size: int = 16) -> keras.Model:
    """A functional model with a residual branch (Add) and a logits -> softmax head."""
    keras.utils.set_random_seed(2)
    inp = keras.Input((size, size, channels), name="pixels")
    x = L.Rescaling(1 / 255, name="rescale")(inp)
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="conv_a")(x)
    y = L.Conv2D(4, 3, padding="same", activation="relu", name="conv_b")(x)
    x = L.Add(name="add")([x, y])
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dense(3, name="logits")(x)
    out = L.Activation("softmax", name="predictions")(x)
    return keras.Model(inp, out, name="tiny_functional")


def tiny_nested(channels: int = 3, size: int = 16) -> keras.Model:
    """A functional 'pretrained base' nested inside a Sequential classifier, as in transfer learning."""
    keras.utils.set_random_seed(3)
    b_in = keras.Input((size, size, channels), name="base_input")
    x = L.Rescaling(1 / 127.5, offset=-1, name="base_rescale")(b_in)
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="block_1_conv")(x)
    x = L.MaxPooling2D(name="block_1_pool")(x)
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="block_2_conv")(x)
    base = keras.Model(b_in, x, name="tiny_base")
    return keras.Sequential(
        [
            keras.Input((size, size, channels)),
            base,
            L.GlobalAveragePooling2D(name="gap"),
            L.Dense(3, activation="softmax", name="predictions"),
        ],
        name="tiny_nested",
    )


def tiny_sigmoid() -> keras.Model:
    """A binary classifier: one conv layer and a single sigmoid output."""
    keras.utils.set_random_seed(4)
    return keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            L.Rescaling(1 / 255),
            L.Conv2D(4, 3, activation="relu", name="conv"),
            L.GlobalAveragePooling2D(),
            L.Dense(1, activation="sigmoid", name="predictions"),
        ]
    )


def left_half_model(size=16, gain=10.0):
    """A model whose answer is known: softmax over 2 classes with
    logit(1) - logit(0) = gain * (mean brightness of the left half - 0.5)."""
    model = keras.Sequential(
        [keras.Input((size, size, 3)), L.Rescaling(1 / 255), L.Flatten(), L.Dense(2, activation="softmax")]
    )
    left = np.zeros((size, size, 3), np.float32)
    left[:, : size // 2] = 1.0
    kernel = np.zeros((size * size * 3, 2), np.float32)
    kernel[:, 1] = gain * left.ravel() / left.sum()
    model.layers[-1].set_weights([kernel, np.array([0.0, -gain / 2], np.float32)])
    return model


#: What ``git clone`` leaves in place of a file kept in Git LFS, when LFS is not installed.
LFS_POINTER = (
    "version https://git-lfs.github.com/spec/v1\n"
    "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    "size 1511224\n"
)


def write_config_bomb(source: Path, out: Path, units: int = 1_000_000) -> Path:
    """Copy a ``.keras`` file with its last layer's ``units`` raised in config.json, weights unchanged:
    a small file whose config declares gigabytes (the way such a file is made by hand)."""
    import json
    import zipfile

    with zipfile.ZipFile(source) as zf:
        members = {i.filename: zf.read(i.filename) for i in zf.infolist()}
    config = json.loads(members["config.json"])
    layers = config["config"]["layers"]
    dense = next(entry for entry in reversed(layers) if "units" in entry["config"])
    dense["config"]["units"] = units
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out


def fix_weights(model: keras.Model, seed: int, scale: float = 1.0) -> keras.Model:
    """Overwrite every weight of ``model`` with a fixed draw from ``seed`` (N(0, scale^2 / fan-in)), for the
    tests that compute a method's answer by hand on a tiny model."""
    rng = np.random.default_rng(seed)
    weights = []
    for w in model.get_weights():
        fan_in = int(np.prod(w.shape[:-1])) if w.ndim > 1 else 1
        weights.append(rng.normal(0.0, scale / np.sqrt(fan_in), w.shape).astype(np.float32))
    model.set_weights(weights)
    return model


#: Few samples, steps or masks per method: the tests that run every method check its contract, not the
#: quality of its maps (the numbers are checked by hand in test_method_maths.py and its siblings).
FAST = {
    "smoothgrad": {"samples": 4},
    "squaregrad": {"samples": 4},
    "vargrad": {"samples": 4},
    "gradient_shap": {"samples": 4},
    "integrated_gradients": {"steps": 8},
    "lime": {"num_samples": 60},
    "kernel_shap": {"num_samples": 60},
    "rise": {"masks": 64},
}


#: Attribution methods that explain any classifier (attention rollout needs attention layers: tested apart).
def universal_methods() -> list[str]:
    from explain.attribution import METHODS

    return sorted(set(METHODS) - {"attention_rollout"})


BUILDERS = {"sequential": tiny_sequential, "functional": tiny_functional, "nested": tiny_nested}


@pytest.fixture(autouse=True, scope="session")
def _app_runs_wait_for_the_warm_up():
    """Every AppTest run waits for the dashboard's background warm-up first.

    AppTest compiles app.py again on every run, with ``ast.parse``, and the warm-up thread traces
    tf.functions (AutoGraph parses their source too). CPython 3.11's ast keeps one recursion-depth
    counter for all threads, so the two at once can fail with "SystemError: AST constructor
    recursion depth mismatch". A served dashboard compiles app.py once, before any warm-up, so
    this only happens under AppTest.
    """
    from dashboard_helpers import wait_for_warm_up
    from streamlit.testing.v1 import AppTest

    original = AppTest._run

    def run(self, *args, **kwargs):
        wait_for_warm_up()
        return original(self, *args, **kwargs)

    AppTest._run = run
    yield
    AppTest._run = original


@pytest.fixture(params=sorted(BUILDERS))
def any_model(request) -> keras.Model:
    return BUILDERS[request.param]()


@pytest.fixture(scope="session")
def saved_models(tmp_path_factory) -> dict[str, Path]:
    """Each tiny model saved as .keras (grayscale sequential too), loaded back by the tests."""
    d = tmp_path_factory.mktemp("models")
    paths = {}
    for name, build in BUILDERS.items():
        paths[name] = d / f"{name}.keras"
        build().save(paths[name])
    paths["gray"] = d / "gray.keras"
    tiny_sequential(channels=1, size=28).save(paths["gray"])
    return paths


def random_image(h: int = 40, w: int = 30, mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    bands = {"L": 1, "RGB": 3, "RGBA": 4, "LA": 2, "CMYK": 4}[mode]
    arr = rng.integers(0, 256, (h, w, bands), dtype=np.uint8)
    return Image.fromarray(arr[..., 0] if bands == 1 else arr, mode)


@pytest.fixture
def png_path(tmp_path) -> Path:
    path = tmp_path / "img.png"
    random_image().save(path)
    return path


@pytest.fixture(scope="session")
def planted_clever_hans(tmp_path_factory):
    """The planted Clever Hans of tests/planted.py, trained once per test session (about 10 s)."""
    from planted import make_planted

    return make_planted(tmp_path_factory.mktemp("planted"))


@pytest.fixture(scope="session")
def planted_concepts(tmp_path_factory):
    """The planted stripes / dots concept data of tests/concepts_planted.py and its model, trained once per
    test session (about 15 s)."""
    from concepts_planted import make_planted_concepts

    return make_planted_concepts(tmp_path_factory.mktemp("planted_concepts"))
