"""Benchmark: Keras 2 files (made with tf-keras) opened by explain, against Keras 2 itself.

    python bench/bench_legacy.py [--keep DIR] [--train-images 12000] [--images 64]

Three models are built with ``tf_keras`` (Keras 2), the way tutorials build them, and saved
both as HDF5 (``.h5``) and as a SavedModel folder:
  - ``tutorial_cnn``: the Keras 2 Fashion-MNIST CNN trained on ``x / 255`` (no scaling layer:
    explain needs ``--preprocess unit``), trained one epoch on ``--train-images`` images;
  - ``transfer_mobilenetv2``: TensorFlow's transfer-learning tutorial, a frozen MobileNetV2
    (random weights, 96x96) nested in a functional classifier, with
    ``mobilenet_v2.preprocess_input`` inside the model (two ``TFOpLambda`` layers);
  - ``residual_bn_binary``: a functional CNN with BatchNormalization, a skip connection and
    one sigmoid output.

For each file: the time ``explain.load_model`` takes (scan, tf-keras read, Keras 3 rebuild);
the largest absolute difference between the predictions of the converted model and of the
Keras 2 model on the same images; whether the top-5 classes agree on every image; and the
Pearson correlation between explain's Grad-CAM (default target layer) and a Grad-CAM computed
on the Keras 2 model with its own GradientTape, over the images whose map is not flat (a map
that is negative everywhere is all zeros after Grad-CAM's ReLU; the "flat maps" column counts
them in the reference, and says DIFF if explain flags other images as flat). ``--keep DIR`` leaves the files there (with
a few images) to try the CLIs and the dashboard on them.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import tensorflow as tf

import explain
from explain.attribution import GradCAM
from explain.models.preprocessing import preprocess


def _tf_keras():
    import tf_keras

    return tf_keras


# -- the Keras 2 models ------------------------------------------------------------------------
def tutorial_cnn(train_images: int):
    """The Keras 2 tutorial CNN on Fashion-MNIST, fed x / 255 by the training code."""
    k2 = _tf_keras()
    source = explain.load_builtin_split("fashion_mnist", "train")
    x, y, _ = source.load(np.arange(train_images), (28, 28), 1)
    labels = source.labels[:train_images]
    model = k2.Sequential(
        [
            k2.layers.Conv2D(32, 3, activation="relu", input_shape=(28, 28, 1)),
            k2.layers.MaxPooling2D(),
            k2.layers.Conv2D(64, 3, activation="relu"),
            k2.layers.MaxPooling2D(),
            k2.layers.Flatten(),
            k2.layers.Dropout(0.5),
            k2.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    del y
    model.fit(x / 255.0, labels, epochs=1, batch_size=128, verbose=0)
    return model, "unit", list(source.class_names)


def transfer_mobilenetv2():
    """TensorFlow's transfer-learning tutorial: preprocess_input inside, a frozen base nested."""
    k2 = _tf_keras()
    k2.utils.set_random_seed(0)
    base = k2.applications.MobileNetV2(input_shape=(96, 96, 3), include_top=False, weights=None)
    base.trainable = False
    inputs = k2.Input((96, 96, 3))
    x = k2.applications.mobilenet_v2.preprocess_input(inputs)
    x = base(x, training=False)
    x = k2.layers.GlobalAveragePooling2D()(x)
    x = k2.layers.Dropout(0.2)(x)
    outputs = k2.layers.Dense(3, activation="softmax")(x)
    return k2.Model(inputs, outputs), "raw", ["cat", "coffee", "astronaut"]


def residual_bn_binary():
    """A functional CNN with BatchNormalization (non-trivial statistics), a skip and a sigmoid."""
    k2 = _tf_keras()
    k2.utils.set_random_seed(1)
    inputs = k2.Input((32, 32, 3))
    x = k2.layers.Rescaling(1 / 255)(inputs)
    x = k2.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    y = k2.layers.Conv2D(8, 3, padding="same")(x)
    y = k2.layers.BatchNormalization()(y)
    x = k2.layers.Activation("relu")(k2.layers.Add()([x, y]))
    x = k2.layers.GlobalAveragePooling2D()(x)
    model = k2.Model(inputs, k2.layers.Dense(1, activation="sigmoid")(x))
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if isinstance(layer, k2.layers.BatchNormalization):
            g, b, m, v = layer.get_weights()
            layer.set_weights([g * 1.5, b + 0.1, rng.normal(0, 0.3, m.shape), rng.uniform(0.5, 2, v.shape)])
    return model, "raw", ["negative", "positive"]


# -- Grad-CAM on the Keras 2 model, written here with its own tape -------------------------------
def _logits(dense, h):
    kernel, bias = dense.get_weights()
    return tf.matmul(h, kernel) + bias


def reference_gradcam(model, layer_path: str, x: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Grad-CAM (Selvaraju et al. 2017) on a Keras 2 model: gradients of the pre-softmax logit
    w.r.t. the target layer, averaged over space, weighting its channels; ReLU; bilinear
    upsampling; min-max. A target layer inside a nested base is reached by running the base
    up to it and the rest of the model after it under one tape."""
    k2 = _tf_keras()
    dense = model.layers[-1]
    parts = layer_path.split("/")
    if len(parts) == 1:
        sub = k2.Model(model.inputs, [model.get_layer(parts[0]).output, dense.input])
        run = lambda t: sub(t, training=False)  # noqa: E731
    else:
        base = model.get_layer(parts[0])
        inner = k2.Model(base.inputs, [base.get_layer(parts[1]).output, base.output])
        call = len(base.inbound_nodes) - 1  # the base's call inside the classifier's graph
        before = k2.Model(model.inputs, base.get_input_at(call))
        after = k2.Model(base.get_output_at(call), dense.input)

        def run(t):
            acts, out = inner(before(t, training=False), training=False)
            return acts, after(out, training=False)

    with tf.GradientTape() as tape:
        acts, h = run(tf.convert_to_tensor(x))
        z = _logits(dense, h)
        if z.shape[-1] == 1:
            score = tf.where(classes == 1, z[:, 0], -z[:, 0])
        else:
            score = tf.gather(z, classes, axis=1, batch_dims=1)
    grads = tape.gradient(score, acts)
    cam = tf.nn.relu(tf.reduce_sum(tf.reduce_mean(grads, axis=(1, 2), keepdims=True) * acts, axis=-1))
    cam = tf.image.resize(cam[..., None], x.shape[1:3], method="bilinear")[..., 0].numpy()
    lo, hi = cam.min(axis=(1, 2), keepdims=True), cam.max(axis=(1, 2), keepdims=True)
    return (cam - lo) / np.where(hi > lo, hi - lo, 1.0)


# -- measuring ------------------------------------------------------------------------------------
def _images(shape, n: int) -> np.ndarray:
    h, w, c = shape
    if c == 1:
        source = explain.load_builtin_split("fashion_mnist", "test")
        return source.load(np.arange(n), (h, w), 1)[0].astype(np.float32)
    from skimage import data

    photos = [data.chelsea(), data.coffee(), data.astronaut(), data.rocket()]
    out = [explain.load_image(_png(photos[i % len(photos)], i), target_size=(h, w), channels=3) for i in range(n)]
    return np.stack(out).astype(np.float32)


def _png(array: np.ndarray, shift: int) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.roll(array, shift * 7, axis=1)).save(buf, "PNG")
    return buf.getvalue()


def measure(name: str, k2_model, mode: str, path: Path, n: int) -> dict:
    t0 = time.perf_counter()
    model = explain.load_model(path)
    load_s = time.perf_counter() - t0
    x = _images(tuple(model.inputs[0].shape[1:]), n)
    fed = np.asarray(preprocess(x, mode))
    p2 = k2_model.predict(fed, verbose=0, batch_size=64)
    p3 = np.asarray(explain.models.preprocessing.from_raw_pixels(model, mode)(x, training=False))
    top5 = lambda p: np.argsort(-p, axis=1, kind="stable")[:, :5]  # noqa: E731
    cam = GradCAM(model, preprocess=mode)(x)
    ref = reference_gradcam(k2_model, cam.layer, fed, cam.class_index)
    ref_flat = ref.std(axis=(1, 2)) == 0  # all-negative maps (ReLU): flat in Grad-CAM's own definition
    r = [np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b, f in zip(cam.heatmap, ref, ref_flat, strict=True) if not f]
    return {
        "model": name,
        "file": path.name,
        "load_s": load_s,
        "max_abs_diff": float(np.max(np.abs(p2 - p3))),
        "top5_same": bool((top5(p2) == top5(p3)).all()) if p2.shape[1] > 1 else bool(((p2 > 0.5) == (p3 > 0.5)).all()),
        "gradcam_layer": cam.layer,
        "flat": f"{int(ref_flat.sum())}/{len(x)}" + ("" if (ref_flat == cam.flat).all() else " DIFF"),
        "gradcam_r_min": float(np.min(r)) if r else float("nan"),
        "gradcam_r_median": float(np.median(r)) if r else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keep", type=Path, help="write the Keras 2 files (and their model cards) here")
    p.add_argument("--train-images", type=int, default=12000)
    p.add_argument("--images", type=int, default=64, help="images compared per model")
    args = p.parse_args(argv)
    out = args.keep or Path(tempfile.mkdtemp(prefix="bench_legacy_"))
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, build in (
        ("tutorial_cnn", lambda: tutorial_cnn(args.train_images)),
        ("transfer_mobilenetv2", transfer_mobilenetv2),
        ("residual_bn_binary", residual_bn_binary),
    ):
        k2_model, mode, classes = build()
        h5, saved = out / f"{name}.h5", out / f"{name}_savedmodel"
        k2_model.save(h5)
        k2_model.save(saved, save_format="tf")
        (out / f"{name}_classes.txt").write_text("\n".join(classes) + "\n")
        for path in (h5, saved):
            rows.append(measure(name, k2_model, mode, path, args.images))
            print(rows[-1], flush=True)
    print(
        f"\n{'model':<22} {'file':<34} {'load s':>7} {'max |diff|':>11} {'top-5':>6} {'flat maps':>10} "
        f"{'Grad-CAM r min/median':>22}"
    )
    for r in rows:
        print(
            f"{r['model']:<22} {r['file']:<34} {r['load_s']:7.2f} {r['max_abs_diff']:11.2e} "
            f"{'same' if r['top5_same'] else 'DIFF':>6} {r['flat']:>10} "
            f"{r['gradcam_r_min']:10.4f} / {r['gradcam_r_median']:.4f}"
            f"   @ {r['gradcam_layer']}"
        )
    print(f"\nFiles in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
