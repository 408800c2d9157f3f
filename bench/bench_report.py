"""Benchmark: the model report over the full Fashion-MNIST test split (10,000 images).

Runs ``explain.write_report`` (what ``python -m explain.report`` does) with the demo model
``models/fashion_mnist_cnn.keras`` on

(a) ``fashion_mnist:test``, the built-in split, read from the local IDX files and sliced in
    batches; and, with ``--folder``,
(b) the same 10,000 images written as PNG files into a temporary folder of class subfolders,
    read file by file in batches (what a user's own test folder costs).

Each run is a fresh process, so its peak resident memory (``resource.getrusage`` ``ru_maxrss``)
is its own; the line also gives the resident memory after TensorFlow, the model and the data
source are loaded, before the report starts, so the difference is what the report adds.
Wall time covers the whole report: predictions, metrics, Grad-CAM galleries, figures, HTML and
files. Nothing is downloaded; figures depend on the machine.

Run::

    python bench/bench_report.py                 # the built-in split
    python bench/bench_report.py --folder        # and the same images as a folder of PNGs
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
MODEL = ROOT / "models" / "fashion_mnist_cnn.keras"


def _rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(data: str, out: str, batch_size: int) -> None:
    """One report in this process; print one JSON line."""
    import explain

    model = explain.load_model(MODEL)
    card = explain.load_model_card(MODEL, model)
    source = explain.open_data(data)
    before = _current_rss_mb()
    start = time.perf_counter()
    report = explain.write_report(
        model, source, out, model_path=MODEL, card=card, batch_size=batch_size, progress=False
    )
    wall = time.perf_counter() - start
    size = sum(f.stat().st_size for f in report.files) / 2**20
    print(
        json.dumps(
            {
                "images": report.evaluation.num_images,
                "accuracy": report.evaluation.accuracy,
                "wall_s": wall,
                "rss_before_mb": before,
                "peak_rss_mb": _rss_mb(),
                "files": len(report.files),
                "files_mb": size,
            }
        )
    )


def export_folder(root: Path) -> None:
    """Write the Fashion-MNIST test split as PNGs in one subfolder per class."""
    import numpy as np
    from PIL import Image

    import explain

    source = explain.open_data("fashion_mnist:test")
    for name in source.class_names:
        (root / name.replace("/", "_")).mkdir(parents=True)
    for i in range(len(source)):
        label = source.class_names[int(source.labels[i])]
        Image.fromarray(np.asarray(source.images[i, ..., 0])).save(root / label.replace("/", "_") / f"{i:05d}.png")


def run(data: str, label: str, batch_size: int) -> None:
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", data, out, "--batch-size", str(batch_size)],
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        print(f"{label}: failed\n{proc.stderr[-2000:]}")
        return
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    print(
        f"{label:<34} {r['images']:>6,} images  accuracy {r['accuracy']:.2%}  report {r['wall_s']:6.1f} s  "
        f"({r['images'] / r['wall_s']:,.0f} images/s)  peak RSS {r['peak_rss_mb']:,.0f} MiB "
        f"(before the report {r['rss_before_mb']:,.0f} MiB, +{r['peak_rss_mb'] - r['rss_before_mb']:,.0f})  "
        f"{r['files']} files, {r['files_mb']:.1f} MiB"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--folder", action="store_true", help="also run on the same images as a folder of PNGs")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--child", nargs=2, metavar=("DATA", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(*args.child, args.batch_size)
        return
    print(f"explain.report benchmark: {MODEL.name}, batch size {args.batch_size}")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    run("fashion_mnist:test", "fashion_mnist:test (built-in split)", args.batch_size)
    if args.folder:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            export_folder(Path(tmp) / "fashion_mnist_test")
            print(f"(wrote 10,000 PNGs in {time.perf_counter() - start:.1f} s)")
            run(str(Path(tmp) / "fashion_mnist_test"), "the same as a folder of 10,000 PNGs", args.batch_size)


if __name__ == "__main__":
    main()
