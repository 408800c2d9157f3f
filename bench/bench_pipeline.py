"""Benchmark: images per second of two input pipelines over the same folder of JPEGs.

(a) ``keras.utils.image_dataset_from_directory(image_size=(150, 150), batch_size=32)``
    as the Keras tutorials call it: no ``cache()``, no ``prefetch()``; it decodes every
    file on every epoch.
(b) ``training.folders.make_dataset``: Pillow decodes every file once (epoch 1) into a
    uint8 in-memory cache; later epochs reshuffle the cache. The one-off
    ``training.folders.scan_folder`` check of every file is timed on its own line.

The images are random crops (40-100% of a side, any aspect), flips and brightness
changes of real photos shipped with scikit-image (``skimage.data``: astronaut, Chelsea the
cat, coffee, rocket, ...), one class per photo, resized to ``--size`` pixels square and
saved as JPEG (quality 85-95) in a temporary folder. Nothing is downloaded.

Run::

    python bench/bench_pipeline.py                      # 2000 images, 4 classes, 3 epochs
    python bench/bench_pipeline.py --images 500 --epochs 2 --size 320

This is a benchmark, not a test: figures depend on the machine (cores, disk cache).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field", "retina")


def write_images(root: Path, n: int, n_classes: int, size: int, seed: int) -> None:
    """Write ``n`` JPEGs of ``size`` x ``size`` pixels, spread evenly over ``n_classes`` class folders."""
    import skimage.data

    rng = np.random.default_rng(seed)
    photos = [getattr(skimage.data, name)()[..., :3] for name in PHOTOS[:n_classes]]
    for name in PHOTOS[:n_classes]:
        (root / name).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        c = i % n_classes
        photo = photos[c]
        h, w = photo.shape[:2]
        ch, cw = int(h * rng.uniform(0.4, 1.0)), int(w * rng.uniform(0.4, 1.0))
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = photo[y : y + ch, x : x + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        crop = np.clip(crop * rng.uniform(0.7, 1.3), 0, 255).astype(np.uint8)
        img = Image.fromarray(np.ascontiguousarray(crop)).resize((size, size), Image.Resampling.BILINEAR)
        img.save(root / PHOTOS[c] / f"{i:05d}.jpg", quality=int(rng.integers(85, 96)))


def time_epochs(ds, epochs: int) -> list[tuple[float, int]]:
    """Iterate ``ds`` ``epochs`` times; return (seconds, images) per epoch."""
    out = []
    for _ in range(epochs):
        start = time.perf_counter()
        n = 0
        for images, _labels in ds:
            n += int(images.shape[0])
        out.append((time.perf_counter() - start, n))
    return out


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python bench/bench_pipeline.py", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="JPEGs to write (default 2000)")
    parser.add_argument("--classes", type=int, default=4, help=f"classes, 2 to {len(PHOTOS)} (default 4)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs to iterate each pipeline (default 3)")
    parser.add_argument("--size", type=int, default=160, help="side of the written JPEGs in pixels (default 160)")
    parser.add_argument("--target", type=int, default=150, help="image_size side fed to the model (default 150)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not 2 <= args.classes <= len(PHOTOS) or args.images < args.classes or args.epochs < 1 or args.size < 2:
        parser.error("need 2 <= --classes <= 7, --images >= --classes, --epochs >= 1, --size >= 2")
    return args


def _time_both(args) -> tuple[float, float, list, list]:
    """``(write seconds, scan seconds, Keras's epochs, ours)`` on freshly written JPEGs."""
    import keras
    import tensorflow as tf

    from training.folders import make_dataset, scan_folder

    target = (args.target, args.target)
    with tempfile.TemporaryDirectory(prefix="bench_pipeline_") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        write_images(root, args.images, args.classes, args.size, args.seed)
        t_write = time.perf_counter() - t0
        # Warm TensorFlow's runtime up so neither pipeline pays for it in its first epoch.
        for _ in tf.data.Dataset.range(64).map(lambda v: v * 2, num_parallel_calls=tf.data.AUTOTUNE).batch(8):
            pass
        ds_a = keras.utils.image_dataset_from_directory(
            root, image_size=target, batch_size=args.batch_size, verbose=False
        )
        a = time_epochs(ds_a, args.epochs)
        t0 = time.perf_counter()
        report = scan_folder(root)
        t_scan = time.perf_counter() - t0
        ds_b = make_dataset(report.files, target, 3, args.batch_size, shuffle_seed=args.seed)
        b = time_epochs(ds_b, args.epochs)
    return t_write, t_scan, a, b


def main(argv: list[str] | None = None) -> int:
    """Write the images, time both pipelines, print the table; return the exit code."""
    args = _parse(argv)
    t_write, t_scan, a, b = _time_both(args)
    import keras
    import tensorflow as tf

    n = args.images
    print(
        f"{n} JPEGs {args.size}x{args.size} in {args.classes} classes (written in {t_write:.1f} s), "
        f"image_size {(args.target, args.target)}, batch {args.batch_size}; {os.cpu_count()} CPUs, "
        f"TF {tf.__version__}, Keras {keras.__version__}, Python {platform.python_version()}"
    )
    print(f"{'pipeline':<42}{'epoch':>6}{'seconds':>10}{'images/s':>10}")
    for name, rows in (("(a) image_dataset_from_directory", a), ("(b) make_dataset (cache, prefetch)", b)):
        for e, (sec, count) in enumerate(rows, 1):
            print(f"{name:<42}{e:>6}{sec:>10.2f}{count / sec:>10.0f}")
        if name.startswith("(a)"):
            print(f"{'(b) scan_folder (decodes every file once)':<42}{'-':>6}{t_scan:>10.2f}{n / t_scan:>10.0f}")

    def rate(rows):
        return sum(c for _, c in rows) / sum(s for s, _ in rows)

    r1 = rate(b[:1]) / rate(a[:1])
    r1_scan = (n / (b[0][0] + t_scan)) / rate(a[:1])
    line = f"ratio (b)/(a) in images/s: epoch 1 {r1:.2f} ({r1_scan:.2f} counting scan_folder)"
    if args.epochs > 1:
        later = "epoch 2" if args.epochs == 2 else f"epochs 2-{args.epochs}"
        line += f", {later} {rate(b[1:]) / rate(a[1:]):.2f}"
    print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
