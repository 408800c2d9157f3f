"""Benchmark: Grad-CAM rows for a data set (``explain.attribute_dataset``) against the passes they rest on.

For the first N Fashion-MNIST test images (default all 10,000) through the demo model, in one process,
with the same batch size, it times side by side:

- ``forward+backward``: a compiled, batched forward pass and a backward pass to the input pixels (the
  gradient of each image's top score with respect to its pixels);
- ``forward+backward to layer``: the same, the backward pass stopped at Grad-CAM's target layer (the
  least any Grad-CAM can compute);
- ``rows``: ``attribute_dataset`` writing the Parquet table: reading the images, predictions and the
  penultimate features (one forward pass), the raw Grad-CAM maps for the predicted class (a forward
  and a backward pass to the layer), the part files and the final file; its set-up (the model hash,
  the compiled functions' tracing) included.

Each is run twice, alternately, and the faster run kept; the references also include their tracing.
It prints the seconds, images per second and the ratios of ``rows`` to each reference. Goal on 2
cores: rows <= 1.3x the forward and backward pass. Nothing is downloaded; figures depend on the machine.

Run::

    python bench/bench_explanations.py                 # 10,000 images
    python bench/bench_explanations.py --images 2000
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
MODEL = ROOT / "models" / "fashion_mnist_cnn.keras"


def _reference(model, images, batch_size: int, to_layer: bool) -> float:
    """Seconds for a compiled forward + backward pass over ``images`` (to the pixels, or to the target layer)."""
    import tensorflow as tf

    from explain.attribution import GradCAM

    cam = GradCAM(model, batch_size=batch_size)  # its score head and its model up to the target layer

    @tf.function(reduce_retracing=True)
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            a, h = cam._explainer(x, training=False)
            score = tf.reduce_max(cam.head.to_scores(h), axis=1)
        return tape.gradient(score, a if to_layer else x)

    t0 = time.perf_counter()
    for start in range(0, len(images), batch_size):
        step(tf.constant(images[start : start + batch_size], tf.float32)).numpy()
    return time.perf_counter() - t0


def _rows(model, source, names, batch_size: int, folder: Path) -> float:
    import explain

    out = folder / f"rows-{time.perf_counter_ns()}.parquet"
    t0 = time.perf_counter()
    explain.attribute_dataset(
        model, source, "gradcam", out=out, class_names=names, batch_size=batch_size, progress=False
    )
    seconds = time.perf_counter() - t0
    out.unlink()
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/bench_explanations.py", description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=10_000, help="test images (default 10,000)")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)

    import explain
    from explain.data import ArraySource

    model = explain.load_model(MODEL)
    names = explain.load_model_card(MODEL, model).class_names
    full = explain.open_data("fashion_mnist:test")
    n = min(args.images, len(full))
    source = ArraySource(f"fashion_mnist:test[:{n}]", full.images[:n], full.labels[:n], full.class_names)
    images = source.images.astype("float32")
    best = {"forward+backward": [], "forward+backward to layer": [], "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(2):
            best["forward+backward"].append(_reference(model, images, args.batch_size, to_layer=False))
            best["forward+backward to layer"].append(_reference(model, images, args.batch_size, to_layer=True))
            best["rows"].append(_rows(model, source, names, args.batch_size, Path(tmp)))
    seconds = {k: min(v) for k, v in best.items()}
    print(f"{n:,} Fashion-MNIST test images, batch size {args.batch_size}, {os.cpu_count()} CPUs (best of 2)")
    for k, s in seconds.items():
        print(f"  {k:<27} {s:7.2f} s  {n / s:9,.0f} images/s")
    for k in ("forward+backward", "forward+backward to layer"):
        goal = "  (goal <= 1.3x)" if k == "forward+backward" else ""
        print(f"  rows / {k:<27} {seconds['rows'] / seconds[k]:5.2f}x{goal}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
