"""Benchmark: Grad-CAM and LIME time per image, side by side in one run; or every method against its floor.

    python bench/bench_attribution.py [--models mobilenetv2 xception] [--repeats 10] [--lime-samples 1000]
    python bench/bench_attribution.py --methods [NAME ...] [--repeats 5]

With ``--methods``: each attribution method on a batch (the demo model: 16 images; MobileNetV2 at 96x96: 4)
against its floor, the least work the method needs (:data:`FLOORS`): compiled forward passes (EigenCAM),
forward plus backward passes to the input (the gradient methods and the gradient CAMs; n of them for the
noise and path methods), or one forward pass per perturbed image at batch 64 (Score-CAM, Occlusion, RISE,
KernelSHAP, LIME). Method and floor are timed alternately (round-robin), medians printed with their ratio.

On MobileNetV2 (224x224) and Xception (299x299) with random weights, per image (batch 1):
  - the model's compiled forward pass (``tf.function``), the floor;
  - explain's Grad-CAM (everything included: numpy in, normalised heatmap out);
  - tf-keras-vis ``Gradcam`` and xplique ``GradCAM`` on the same model and layer, when
    installed (``pip install -e ".[bench]"``);
  - explain's Grad-CAM on the same base nested inside a Sequential classifier.
Timings are interleaved round-robin (one call of each, repeated) and the median is printed,
so the machine's noise hits every contender alike. Then LIME with ``--lime-samples``
samples on MobileNetV2: explain's LIME against the floor (quickshift segmentation plus the
same number of forward passes at the best batch size) and the ``lime`` package's default
usage (``explain_instance`` with its default batch size of 10 and an uncompiled
``model.predict``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras
import numpy as np
import tensorflow as tf

import explain  # quiet TensorFlow import; explain.load_model below
from explain.attribution import GradCAM

MODELS = {
    "mobilenetv2": (keras.applications.MobileNetV2, 224, "out_relu"),
    "xception": (keras.applications.Xception, 299, "block14_sepconv2_act"),
}


def _contenders(model, layer: str, x: np.ndarray, class_index: int) -> dict:
    forward = tf.function(lambda t: model(t, training=False))
    ours = GradCAM(model, layer=layer)
    fns = {
        "forward pass (compiled)": lambda: forward(tf.constant(x)).numpy(),
        "explain Grad-CAM": lambda: ours(x, class_index),
    }
    try:
        from tf_keras_vis.gradcam import Gradcam
        from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
        from tf_keras_vis.utils.scores import CategoricalScore

        vis = Gradcam(model, model_modifier=ReplaceToLinear(), clone=True)
        fns["tf-keras-vis Gradcam"] = lambda: vis(CategoricalScore([class_index]), x, penultimate_layer=layer)
    except ImportError:
        print("  (tf-keras-vis not installed: pip install -e '.[bench]')")
    try:
        from xplique.attributions import GradCAM as XpliqueGradCAM

        xp = XpliqueGradCAM(model, conv_layer=layer)
        target = np.eye(model.outputs[0].shape[-1], dtype=np.float32)[[class_index]]
        fns["xplique GradCAM"] = lambda: xp.explain(x, target)
    except ImportError:
        print("  (xplique not installed: pip install -e '.[bench]')")
    return fns


def _race(fns: dict, repeats: int) -> dict[str, float]:
    for fn in fns.values():  # warm up: tracing, graph building
        fn()
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def _print(results: dict[str, float], floor_key: str) -> None:
    floor = results[floor_key]
    for name, t in results.items():
        print(f"  {name:<34} {t * 1000:9.1f} ms   {t / floor:6.2f}x the forward pass")


def bench_gradcam(name: str, repeats: int) -> None:
    app, size, layer = MODELS[name]
    keras.utils.set_random_seed(0)
    model = app(weights=None, input_shape=(size, size, 3))
    x = np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)).astype(np.float32)
    print(f"\n{name} {size}x{size}, layer {layer!r}, batch 1, median of {repeats}:")
    _print(_race(_contenders(model, layer, x, 1), repeats), "forward pass (compiled)")

    base = app(weights=None, input_shape=(size, size, 3), include_top=False)
    nested = keras.Sequential(
        [keras.Input((size, size, 3)), base, keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, "softmax")]
    )
    forward = tf.function(lambda t: nested(t, training=False))
    ours = GradCAM(nested, layer=f"{base.name}/{layer}")
    print(f"  nested: Sequential([{base.name}, GAP, Dense(10)]), layer '{base.name}/{layer}':")
    fns = {"forward pass (compiled)": lambda: forward(tf.constant(x)).numpy(), "explain Grad-CAM": lambda: ours(x)}
    _print(_race(fns, repeats), "forward pass (compiled)")


def bench_lime(samples: int, repeats: int) -> None:
    from lime import lime_image
    from lime.wrappers.scikit_image import SegmentationAlgorithm

    from explain.attribution import METHODS

    if "lime" not in METHODS:
        print("\nLIME: explain.attribution has no LIME method yet; skipped.")
        return
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
    from skimage import data, transform

    image = (transform.resize(data.chelsea(), (224, 224)) * 255).astype(np.float32)
    forward = tf.function(lambda t: model(t, training=False), reduce_retracing=True)
    segmenter = SegmentationAlgorithm("quickshift", kernel_size=4, max_dist=200, ratio=0.2, random_seed=0)
    best_batch, best = None, np.inf
    for batch in (32, 64, 128, 256):
        xs = np.repeat(image[None], batch, axis=0)
        forward(tf.constant(xs))
        start = time.perf_counter()
        for _ in range(max(1, 256 // batch)):
            forward(tf.constant(xs)).numpy()
        per_image = (time.perf_counter() - start) / (max(1, 256 // batch) * batch)
        if per_image < best:
            best_batch, best = batch, per_image
    start = time.perf_counter()
    segmenter(image.astype(np.uint8))
    segmentation = time.perf_counter() - start
    floor = segmentation + samples * best
    ours = METHODS["lime"](model, num_samples=samples, batch_size=best_batch)

    def lime_default():
        explainer = lime_image.LimeImageExplainer(random_state=0)
        explainer.explain_instance(
            image.astype(np.double),
            lambda b: model.predict(b, verbose=0),
            top_labels=1,
            num_samples=samples,
            random_seed=0,
        )

    ours(image)  # warm up
    times = {"explain LIME": [], "lime default usage": []}
    for _ in range(repeats):
        start = time.perf_counter()
        ours(image)
        times["explain LIME"].append(time.perf_counter() - start)
        start = time.perf_counter()
        lime_default()
        times["lime default usage"].append(time.perf_counter() - start)
    print(f"\nLIME on mobilenetv2 224x224, {samples} samples, median of {repeats}:")
    print(
        f"  floor: quickshift {segmentation:.2f} s + {samples} forward passes at batch {best_batch} "
        f"({best * 1000:.1f} ms/image) = {floor:.2f} s"
    )
    for name, v in times.items():
        t = statistics.median(v)
        print(f"  {name:<34} {t:7.2f} s   {t / floor:6.2f}x the floor")


# -- every method against its floor ------------------------------------------------------------------------
#: Per method: what it must compute at the least, as a multiple of the floors measured below ("forward": one
#: compiled forward pass of the batch; "backward": forward plus one backward pass to the input; "masked": one
#: forward pass per perturbed image at the best batch size). The count is a function of the method object.
FLOORS = {
    "gradcam": ("backward", lambda m: 1),
    "gradcam++": ("backward", lambda m: 1),
    "hirescam": ("backward", lambda m: 1),
    "xgradcam": ("backward", lambda m: 1),
    "layercam": ("backward", lambda m: 1),
    "guided_gradcam": ("backward", lambda m: 2),  # the ordinary and the guided gradient
    "eigencam": ("forward", lambda m: 1),
    "scorecam": ("masked", lambda m: m.layer.output_shape[-1] + 1),
    "faster_scorecam": ("masked", lambda m: min(m.max_n, m.layer.output_shape[-1]) + 1),
    "ablation_cam": ("masked", lambda m: m.channels + 1),  # counted as whole forward passes: an upper floor
    "saliency": ("backward", lambda m: 1),
    "gradient_input": ("backward", lambda m: 1),
    "guided_backprop": ("backward", lambda m: 1),
    "smoothgrad": ("backward", lambda m: m.samples),
    "squaregrad": ("backward", lambda m: m.samples),
    "vargrad": ("backward", lambda m: m.samples),
    "integrated_gradients": ("backward", lambda m: m.steps),
    "gradient_shap": ("backward", lambda m: m.samples),
    "occlusion": ("masked", lambda m: _windows(m) + 1),
    "rise": ("masked", lambda m: m.num_masks),
    "kernel_shap": ("masked", lambda m: m.num_samples),
    "lime": ("masked", lambda m: m.num_samples),
}


def _windows(method) -> int:
    h, w = method.input_shape[:2]
    _, _, tops, lefts = method.patches(h, w)
    return len(tops) * len(lefts)


def _floor(head, x: np.ndarray, cls: np.ndarray, kind: str, n: int):
    """The floor as a callable on the batch ``x``: ``n`` compiled forward passes, ``n`` forward plus backward
    passes to the input, or ``n * len(x)`` perturbed images in forward passes of 64."""
    forward = _compiled_forward(head)
    if kind == "forward":
        return lambda: [forward(tf.constant(x)).numpy() for _ in range(n)]
    if kind == "masked":
        wide = tf.constant(np.repeat(x[:1], 64, axis=0))
        return lambda: [forward(wide).numpy() for _ in range(-(-n * len(x) // 64))]
    backward, idx = _compiled_backward(head), tf.constant(cls)
    return lambda: [backward(tf.constant(x), idx).numpy() for _ in range(n)]


_FORWARD: dict = {}


def _compiled_forward(head):
    if id(head) not in _FORWARD:
        _FORWARD[id(head)] = tf.function(lambda t: head.scores(t))
    return _FORWARD[id(head)]


_BACKWARD: dict = {}


def _compiled_backward(head):
    if id(head) not in _BACKWARD:

        @tf.function
        def backward(t, idx):
            with tf.GradientTape() as tape:
                tape.watch(t)
                score = tf.gather(head.scores(t), idx, batch_dims=1)
            return tape.gradient(score, t)

        _BACKWARD[id(head)] = backward
    return _BACKWARD[id(head)]


def bench_methods(model, label: str, x: np.ndarray, repeats: int, names: list[str]) -> None:
    """Each method's time on the batch ``x`` against its floor, the two interleaved round-robin (medians)."""
    from explain.attribution import METHODS
    from explain.models.scores import score_head

    head = score_head(model)
    cls = head.top_classes(x)
    print(f"\n{label}: {len(x)} images per call, median of {repeats} interleaved runs (masked floors: 64 per pass)")
    print(f"  {'method':<22}{'ms / call':>11}{'floor ms':>11}{'ratio':>8}  floor")
    for name in names:
        method = METHODS[name](model, batch_size=len(x))
        kind, count = FLOORS[name]
        n = count(method)
        times = _race({"floor": _floor(head, x, cls, kind, n), "method": lambda m=method: m(x, cls)}, repeats)
        what = {"forward": "forward", "backward": "forward+backward", "masked": "masked images per image"}[kind]
        ratio = times["method"] / times["floor"]
        print(f"  {name:<22}{times['method'] * 1000:>11.1f}{times['floor'] * 1000:>11.1f}{ratio:>8.2f}  {n} x {what}")


def demo_model():
    """The bundled demo model (models/fashion_mnist_cnn.keras) and 16 Fashion-MNIST-sized images; None when
    the file is missing."""
    path = Path(__file__).resolve().parents[1] / "models" / "fashion_mnist_cnn.keras"
    if not path.exists():
        return None
    model = explain.load_model(path)
    return model, np.random.default_rng(0).uniform(0, 255, (16, 28, 28, 1)).astype(np.float32)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--lime-samples", type=int, default=1000, help="0 skips the LIME benchmark")
    p.add_argument("--lime-repeats", type=int, default=3)
    p.add_argument(
        "--methods", nargs="*", metavar="NAME",
        help="every method (or these) against its floor on the demo model and MobileNetV2 at 96x96, then stop",
    )  # fmt: skip
    args = p.parse_args()
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs")
    if args.methods is not None:
        names = args.methods or list(FLOORS)
        demo = demo_model()
        if demo is not None:
            bench_methods(*demo[:1], "demo model (Fashion-MNIST CNN, 28x28x1)", demo[1], args.repeats, names)
        keras.utils.set_random_seed(0)
        mobilenet = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3), classes=10)
        x = np.random.default_rng(0).uniform(0, 255, (4, 96, 96, 3)).astype(np.float32)
        bench_methods(mobilenet, "MobileNetV2 96x96 (random weights)", x, args.repeats, names)
        return 0
    for name in args.models:
        bench_gradcam(name, args.repeats)
    if args.lime_samples:
        bench_lime(args.lime_samples, args.lime_repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
