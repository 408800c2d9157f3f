"""Benchmark: the model files issue 19 is about, made as their authors made them, through explain.

Four classifiers are trained briefly on Fashion-MNIST (the Debian package's IDX files; nothing is
downloaded) and saved the way their authors save them:

- ``keras3_h5``: a small CNN saved by Keras 3 with ``model.save("cnn.h5")`` (still HDF5);
- ``tutorial``: TensorFlow's beginner tutorial, ``Flatten(input_shape=(28, 28))``, trained on
  ``x / 255`` (``--preprocess unit``), saved as ``.keras``;
- ``channels_first``: an MNIST-style CNN trained channels first, saved as ``.keras``;
- ``vit``: the keras.io Vision Transformer (custom ``Patches`` / ``PatchEncoder``), saved as
  ``.keras`` and opened with ``--trust-code tests/trusted_code/vit_layers.py``.

For each, every CLI runs in its own process (``explain.layers --list`` and a feature-map grid,
``explain.attribute``, ``explain.filters``, ``explain.report`` on 60 test images, ``explain.convert``),
and the heatmap explain gives is compared with one computed by hand on the original, in-memory
model fed in its own layout (Pearson r over the pixels, on 20 test images): Grad-CAM at the default
target layer (channels first: gradients averaged over axes 2, 3; ViT: the tokens reshaped to their
grid), and for the tutorial's MLP, which has no spatial layer and so no Grad-CAM (``--method
gradcam`` exits 2 and names the gradient methods), the saliency map. Then a small config bomb (the
channels-first CNN's ``.keras`` with its last ``Dense`` declaring 4 GB) is opened by
``explain.layers --list``: exit code, time and peak memory of the process against the same command
on the file it was made from. Last, what the checks before building cost: ``explain.load_model``
against ``keras.saving.load_model`` on MobileNetV2.

Run::

    python bench/bench_model_files.py              # about 3 minutes on 2 cores
    python bench/bench_model_files.py --epochs 2   # better-trained models
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import math
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRUSTED = ROOT / "tests" / "trusted_code" / "vit_layers.py"
sys.path.insert(0, str(TRUSTED.parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import explain  # noqa: E402  (quiet TensorFlow import, channels-first convolutions on the CPU)
from explain.attribution import GradCAM, Saliency  # noqa: E402
from explain.data import load_builtin_split  # noqa: E402

L = keras.layers
SAMPLE = ROOT / "sample_images" / "fashion_mnist_9_ankle_boot.png"


# ---------------------------------------------------------------------------------------------
# The models, as their authors build and save them
# ---------------------------------------------------------------------------------------------


def keras3_h5_cnn():
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            L.Rescaling(1 / 255),
            L.Conv2D(16, 3, activation="relu"),
            L.BatchNormalization(),
            L.MaxPooling2D(),
            L.Conv2D(32, 3, activation="relu"),
            L.GlobalAveragePooling2D(),
            L.Dense(10, activation="softmax"),
        ],
        name="cnn_keras3_h5",
    )


def tutorial_mlp():
    """https://www.tensorflow.org/tutorials/quickstart/beginner (pixels divided by 255 outside)."""
    return keras.Sequential(
        [L.Flatten(input_shape=(28, 28)), L.Dense(128, activation="relu"), L.Dropout(0.2), L.Dense(10)],
        name="tutorial",
    )


def channels_first_cnn():
    cf = "channels_first"
    return keras.Sequential(
        [
            keras.Input((1, 28, 28)),
            L.Rescaling(1 / 255),
            L.Conv2D(16, 3, activation="relu", data_format=cf),
            L.MaxPooling2D(data_format=cf),
            L.Conv2D(32, 3, activation="relu", data_format=cf),
            L.MaxPooling2D(data_format=cf),
            L.Flatten(),
            L.Dense(10, activation="softmax"),
        ],
        name="channels_first",
    )


def vit():
    import vit_layers

    return vit_layers.vit_classifier(image_size=28, channels=1, patch_size=7, projection_dim=32, num_classes=10)


#: name -> (builder, file name, how the pixels reach the model: "raw" (0-255), "unit" (x/255 outside), layout)
MODELS = {
    "keras3_h5": (keras3_h5_cnn, "cnn.h5", "raw", "nhwc"),
    "tutorial": (tutorial_mlp, "tutorial.keras", "unit", "plane"),
    "channels_first": (channels_first_cnn, "cnn_channels_first.keras", "raw", "nchw"),
    "vit": (vit, "vit.keras", "raw", "nhwc"),
}


def native(x: np.ndarray, layout: str, scaling: str) -> np.ndarray:
    """``(N, 28, 28, 1)`` raw pixels as the model's author fed them."""
    x = x / 255.0 if scaling == "unit" else x
    if layout == "plane":
        return x[..., 0]
    if layout == "nchw":
        return np.transpose(x, (0, 3, 1, 2))
    return x


def train(name: str, x: np.ndarray, y: np.ndarray, epochs: int, folder: Path):
    build, file_name, scaling, layout = MODELS[name]
    keras.utils.set_random_seed(0)
    model = build()
    loss = "sparse_categorical_crossentropy" if model.layers[-1].activation.__name__ == "softmax" else None
    loss = loss or keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile("adam", loss, metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(native(x, layout, scaling), y, epochs=epochs, batch_size=64, verbose=0)
    seconds = time.perf_counter() - start
    path = folder / file_name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras 3 on .h5: "considered legacy"
        model.save(path)
    return model, path, seconds


# ---------------------------------------------------------------------------------------------
# The heatmaps, by hand, on the original model
# ---------------------------------------------------------------------------------------------


def _minmax(maps: np.ndarray) -> np.ndarray:
    lo, hi = maps.min(axis=(1, 2), keepdims=True), maps.max(axis=(1, 2), keepdims=True)
    return (maps - lo) / np.where(hi > lo, hi - lo, 1)


def gradcam_by_hand(model, layer: str, x_native: np.ndarray, layout: str) -> np.ndarray:
    """Selvaraju et al. 2017 on the model as its author feeds it: the score is the pre-softmax logit."""
    head, target = model.layers[-1], model.get_layer(layer)
    before = keras.Model(model.inputs, target.output)
    if isinstance(model, keras.Sequential):  # the layers between the target and the head, one after another
        between = model.layers[model.layers.index(target) + 1 : -1]

        def after(t):
            for lyr in between:
                t = lyr(t, training=False)
            return t
    else:
        after = keras.Model(target.output, head.input)
    with tf.GradientTape() as tape:
        a = before(tf.constant(x_native, tf.float32))
        tape.watch(a)
        logits = tf.matmul(after(a), head.kernel) + head.bias
        score = tf.gather(logits, tf.argmax(logits, axis=1), axis=1, batch_dims=1)
    g = tape.gradient(score, a).numpy()
    a = a.numpy()
    if layout == "nchw":
        a, g = np.transpose(a, (0, 2, 3, 1)), np.transpose(g, (0, 2, 3, 1))
    elif a.ndim == 3:  # ViT tokens: their grid
        side = math.isqrt(a.shape[1])
        a, g = a.reshape(len(a), side, side, -1), g.reshape(len(g), side, side, -1)
    cam = np.maximum(np.einsum("bhwk,bk->bhw", a, g.mean(axis=(1, 2))), 0)
    return _minmax(tf.image.resize(cam[..., None], (28, 28)).numpy()[..., 0])


def saliency_by_hand(model, x_native: np.ndarray, scaling: str) -> np.ndarray:
    """Simonyan et al. 2013: |d logit / d raw pixel|, max over channels (one here)."""
    x = tf.constant(x_native, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = model(x, training=False)
        score = tf.reduce_max(logits, axis=1)
    g = np.abs(tape.gradient(score, x).numpy()) / (255.0 if scaling == "unit" else 1.0)
    return _minmax(g.reshape(len(g), 28, 28))


def pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.reshape(len(a), -1) - a.reshape(len(a), -1).mean(axis=1, keepdims=True)
    b = b.reshape(len(b), -1) - b.reshape(len(b), -1).mean(axis=1, keepdims=True)
    return (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))


def agreement(name: str, original, path: Path, images: np.ndarray) -> tuple[str, str, np.ndarray, int, int]:
    """explain on the saved file against the hand computation on the original model: ``(method, target
    layer, Pearson r of the images where both maps are informative, both flat, flat in one only)``.

    A Grad-CAM map is flat (all zero) where the weighted sum is negative everywhere before its ReLU; both
    computations must say so for the same images, and r is undefined there."""
    _, _, scaling, layout = MODELS[name]
    trust = TRUSTED if name == "vit" else None
    loaded = explain.load_model(path, trusted_code=trust)
    x_native = native(images, layout, scaling)
    if name == "tutorial":
        ours, method, layer = Saliency(loaded, preprocess=scaling)(images), "saliency", "-"
        hand = saliency_by_hand(original, x_native, scaling)
    else:
        ours, method = GradCAM(loaded, preprocess=scaling)(images), "gradcam"
        layer = ours.layer
        hand = gradcam_by_hand(original, layer, x_native, layout)
    hand_flat = hand.max(axis=(1, 2)) == 0
    both = ~ours.flat & ~hand_flat
    return (
        method,
        layer,
        pearson(ours.heatmap[both], hand[both]),
        int((ours.flat & hand_flat).sum()),
        int((ours.flat != hand_flat).sum()),
    )


# ---------------------------------------------------------------------------------------------
# Every CLI, each in its own process
# ---------------------------------------------------------------------------------------------


#: Runs a command and prints its peak resident set (kB) on stderr's last line.
_MEASURED = (
    "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r.returncode)"
)


def run(argv: list[str]) -> tuple[int, float, float, str]:
    """``(exit code, seconds, peak RSS of the process in MB, its last stderr line)``."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _MEASURED, sys.executable, "-W", "ignore", "-m", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    seconds = time.perf_counter() - start
    err = [line for line in done.stderr.strip().splitlines() if line.strip()]
    peak = int(err.pop()) / 1024 if err and err[-1].isdigit() else float("nan")
    return done.returncode, seconds, peak, err[-1] if err else ""


def cli_runs(name: str, path: Path, data: Path, folder: Path) -> list[tuple[str, int, float, float, str]]:
    """``(command, exit code, seconds, peak MB, last stderr line)`` for every CLI on one file."""
    _, _, scaling, _ = MODELS[name]
    flags = ["--preprocess", scaling] + (["--trust-code", str(TRUSTED)] if name == "vit" else [])
    layer = {"keras3_h5": "conv2d", "channels_first": "conv2d", "vit": "add", "tutorial": None}[name]
    loaded = explain.load_model(path, trusted_code=TRUSTED if name == "vit" else None)
    rows = explain.layer_table(loaded)
    if layer is not None:
        layer = next(r.name for r in rows if r.name.startswith(layer) and r.is_spatial)
    method = "saliency" if name == "tutorial" else "gradcam"
    out = folder / name
    calls = [
        ("layers --list", ["explain.layers", str(path), "--list", *flags]),
        ("attribute", ["explain.attribute", str(path), str(SAMPLE), "--method", method, "--out", f"{out}_heat.png"]),
        ("convert", ["explain.convert", str(path), f"{out}_converted.keras", *flags]),
        ("report", ["explain.report", str(path), str(data), "--out", f"{out}_report", "--no-progress", *flags]),
    ]
    calls[1] = (calls[1][0], [*calls[1][1], *flags])
    if layer is not None:
        grid = ["explain.layers", str(path), str(SAMPLE), "--layer", layer, "--out", f"{out}.png", *flags]
        calls[1:1] = [("layers grid", grid)]
        calls.append(
            ("filters", ["explain.filters", str(path), "--layer", layer, "--channels", "0-7", "--steps", "32",
                         "--no-progress", "--out", f"{out}_filters.png", *flags])
        )  # fmt: skip
    else:
        calls.append(
            ("attribute gradcam", ["explain.attribute", str(path), str(SAMPLE), "--method", "gradcam", *flags])
        )
    return [(label, *run(argv)) for label, argv in calls]


def write_folder(images: np.ndarray, labels: np.ndarray, names: list[str], folder: Path) -> Path:
    from PIL import Image

    for i, (img, y) in enumerate(zip(images, labels, strict=True)):
        (folder / names[y]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[..., 0].astype(np.uint8)).save(folder / names[y] / f"{i}.png")
    return folder


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/bench_model_files.py", description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train-images", type=int, default=6000)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # Keras: "Do not pass an `input_shape`" (the tutorial does), legacy HDF5

    train_split, test = load_builtin_split("fashion_mnist", "train"), load_builtin_split("fashion_mnist", "test")
    x = train_split.images[: args.train_images].astype(np.float32)
    y = train_split.labels[: args.train_images]
    folder = Path(tempfile.mkdtemp(prefix="bench-model-files-"))
    classes = [n.replace("/", "-") for n in test.class_names]
    data = write_folder(test.images[:60], test.labels[:60], classes, folder / "data")
    probe = test.images[100:120].astype(np.float32)
    print(f"Fashion-MNIST: trained on {len(x):,} images, {args.epochs} epoch(s); files in {folder}\n")

    print(f"{'file':<26} {'trained':>7} {'method @ layer':<28} {'Pearson r':>18}  flat in both / in one")
    results = {}
    for name in MODELS:
        original, path, seconds = train(name, x, y, args.epochs, folder)
        method, layer, r, flat_both, flat_one = agreement(name, original, path, probe)
        results[name] = path
        print(
            f"{path.name:<26} {seconds:6.0f}s {method + ' @ ' + layer:<28} min {r.min():.4f} mean {r.mean():.4f}"
            f"  {flat_both} / {flat_one} of {len(probe)}"
        )

    print(f"\n{'file':<26} {'command':<18} {'exit':>4} {'seconds':>8}  note")
    for name, path in results.items():
        for label, code, seconds, _, err in cli_runs(name, path, data, folder):
            note = err[:90] if code else ""
            print(f"{path.name:<26} {label:<18} {code:>4} {seconds:8.1f}  {note}")
    config_bomb(results["channels_first"], folder)
    load_overhead(folder)
    return 0


def load_overhead(folder: Path, repeats: int = 3) -> None:
    """What the checks before building cost: ``explain.load_model`` against ``keras.saving.load_model``
    on MobileNetV2 (224 x 224, random weights), alternating, the median of ``repeats`` each."""
    path = folder / "mobilenetv2.keras"
    keras.applications.MobileNetV2(weights=None).save(path)
    times: dict[str, list[float]] = {"keras.saving.load_model": [], "explain.load_model": []}
    for _ in range(repeats):
        for label, load in (
            ("keras.saving.load_model", lambda: keras.saving.load_model(path, compile=False, safe_mode=True)),
            ("explain.load_model", lambda: explain.load_model(path)),
        ):
            start = time.perf_counter()
            load()
            times[label].append(time.perf_counter() - start)
    print(f"\nloading MobileNetV2 (.keras, 3.5 M weights), median of {repeats}:")
    for label, values in times.items():
        print(f"  {label:<26} {np.median(values):.2f} s")


def config_bomb(source: Path, folder: Path) -> None:
    """A small .keras whose config declares about 4 GB, opened by ``explain.layers --list``, beside its source."""
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import write_config_bomb  # the one way this project makes such a file

    fan_in = 32 * 5 * 5  # the channels-first CNN's Flatten
    bomb = write_config_bomb(source, folder / "bomb.keras", units=10**9 // (fan_in + 1))
    print(f"\nconfig bomb: {bomb.stat().st_size / 1024:.0f} KB file, made from {source.name}")
    print(f"{'file':<26} {'exit':>4} {'seconds':>8} {'peak RSS MB':>12}  message")
    for path in (source, bomb):
        code, seconds, peak, err = run(["explain.layers", str(path), "--list"])
        print(f"{path.name:<26} {code:>4} {seconds:8.1f} {peak:12.0f}  {err[err.find('its config') :][:110]}")


if __name__ == "__main__":
    sys.exit(main())
