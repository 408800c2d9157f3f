"""Benchmark: the audit of a data set: SpRAy over 10,000 rows, and the Ray engine's overhead.

On the first N Fashion-MNIST test images (default all 10,000) through the demo model, in one process:

1. ``analysis``: :func:`explain.dataset.spray.spray` over the Grad-CAM rows and over the saliency rows
   (heatmaps on a 7x7 and a 28x28 grid), without 2-D maps and with UMAP maps. Goal on 2 cores: <= 60 s.
2. ``engines`` (with ``--ray``, needs the ``[scale]`` extra): the images written as PNG files to a temporary
   folder, then the saliency rows computed by the local engine and by the Ray engine on a local Ray with
   every CPU, side by side, on N and on N/10 images, twice each, alternately, the faster run kept. It prints
   the seconds in all and per image beyond the fixed start-up (Ray's actors each import TensorFlow and open
   the model), their ratios (goal <= 1.5x), and how many rows' heatmaps differ by more than 1e-5. Starting
   Ray itself is not timed.

Nothing is downloaded; figures depend on the machine.

Run::

    python bench/bench_spray.py                   # 10,000 images, the analysis
    python bench/bench_spray.py --ray             # and the two engines
    python bench/bench_spray.py --images 2000 --ray
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
sys.path.insert(0, str(ROOT))
MODEL = ROOT / "models" / "fashion_mnist_cnn.keras"


def _source(n: int):
    from explain.data import ArraySource
    from explain.data.builtin import load_builtin_split

    full = load_builtin_split("fashion_mnist", "test")
    return ArraySource(full.name, full.images[:n], full.labels[:n], full.class_names)


def _analysis(model, source, tmp: Path) -> None:
    import explain
    from explain.dataset.spray import spray

    for method in ("gradcam", "saliency"):
        rows = tmp / f"{method}.parquet"
        t0 = time.perf_counter()
        explain.attribute_dataset(model, source, method=method, out=rows, target="true", progress=False)
        made = time.perf_counter() - t0
        for projection in (None, "umap"):
            t0 = time.perf_counter()
            result = spray(rows, projection=projection)
            took = time.perf_counter() - t0
            grid = "x".join(map(str, result.grid))
            clusters = sum(len(c.clusters) for c in result.classes)
            print(f"{method:9s} rows {made:6.1f} s | analysis ({grid} grid, maps: {projection or 'none':4s}) "
                  f"{took:6.1f} s for {len(source):,} rows, {clusters} clusters")  # fmt: skip


def _write_folder(source, root: Path) -> None:
    from PIL import Image

    for i in range(len(source)):
        d = root / source.class_names[source.labels[i]].replace("/", "_")
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(source.images[i][..., 0] if source.images.shape[-1] == 1 else source.images[i]).save(
            d / f"{i:05d}.png"
        )


def _time_engine(engine: str, model, folder: Path, out: Path, batch_size: int) -> float:
    import explain
    from explain.dataset.ray_engine import attribute_dataset_ray

    t0 = time.perf_counter()
    if engine == "local":
        explain.attribute_dataset(model, str(folder), method="saliency", out=out, overwrite=True,
                                  batch_size=batch_size, progress=False)  # fmt: skip
    else:
        attribute_dataset_ray(MODEL, str(folder), model=model, method="saliency", out=out, overwrite=True,
                              batch_size=batch_size, progress=False)  # fmt: skip
    return time.perf_counter() - t0


def _engines(model, source, tmp: Path, batch_size: int) -> None:
    """Each engine on N images and on N/10, twice each, alternately (the faster kept): the total per image,
    and the marginal cost per image ((T(N) - T(N/10)) / (0.9 N)), which leaves out the fixed start-up."""
    import numpy as np
    import pyarrow.parquet as pq

    from explain.data import ArraySource
    from explain.dataset.ray_engine import connect

    n = len(source)
    small = ArraySource(source.name, source.images[: n // 10], source.labels[: n // 10], source.class_names)
    folders = {n: tmp / "images", n // 10: tmp / "tenth"}
    _write_folder(source, folders[n])
    _write_folder(small, folders[n // 10])
    ray = connect()
    print(f"Ray: {int(ray.cluster_resources().get('CPU', 0))} CPUs")
    best = {}
    for _ in range(2):
        for engine in ("local", "ray"):
            for size, folder in folders.items():
                t = _time_engine(engine, model, folder, tmp / f"{engine}{size}.parquet", batch_size)
                best[engine, size] = min(best.get((engine, size), float("inf")), t)
    a, b = pq.read_table(tmp / f"local{n}.parquet"), pq.read_table(tmp / f"ray{n}.parquet")
    diff = np.abs(np.array(a.column("heatmap").to_pylist()) - np.array(b.column("heatmap").to_pylist())).max(axis=1)
    marginal = {}
    for engine in ("local", "ray"):
        total, tenth = best[engine, n], best[engine, n // 10]
        marginal[engine] = (total - tenth) / (n - n // 10)
        print(f"{engine:5s} engine: {total:6.1f} s for {n:,} images ({1000 * total / n:.2f} ms per image), "
              f"{tenth:5.1f} s for {n // 10:,}; marginal {1000 * marginal[engine]:.2f} ms per image")  # fmt: skip
    print(f"ray / local: {best['ray', n] / best['local', n]:.2f}x in all, "
          f"{marginal['ray'] / marginal['local']:.2f}x per image beyond the start-up (goal <= 1.5x)")
    print(f"heatmaps: {int((diff > 1e-5).sum())} of {n:,} rows differ by more than 1e-5 (largest {diff.max():.1e})")
    ray.shutdown()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=10_000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--ray", action="store_true", help="also compare the local and the Ray engine")
    args = p.parse_args()
    import explain

    model = explain.load_model(MODEL)
    source = _source(args.images)
    with tempfile.TemporaryDirectory() as tmp:
        _analysis(model, source, Path(tmp))
        if args.ray:
            _engines(model, source, Path(tmp), args.batch_size)


if __name__ == "__main__":
    main()
