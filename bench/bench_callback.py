"""Benchmark: the training callback's cost per logged epoch against the epoch itself.

    python bench/bench_callback.py [--epochs 2] [--images 8] [--limit N]

Trains the demo model's architecture (``small_cnn``) on Fashion-MNIST (the Debian package's IDX files or
Keras's cache) with ``python -m training train --explain-every 1``'s callback (Grad-CAM of 8 validation images
to a PNG strip and TensorBoard), timing each epoch and, inside it, the callback's ``on_epoch_end``. The issue's
target: the callback costs <= 5% of an epoch.
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

import explain  # noqa: F401  (quiet TensorFlow import)
from explain.callbacks import ExplainCallback
from training.train import prepare_builtin, train


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--limit", type=int, help="training images (default: all 60,000)")
    args = p.parse_args()
    spent: list[float] = []
    original = ExplainCallback.on_epoch_end

    def timed(self, epoch, logs=None):
        start = time.perf_counter()
        original(self, epoch, logs)
        spent.append(time.perf_counter() - start)

    ExplainCallback.on_epoch_end = timed
    data = prepare_builtin("fashion_mnist", limit=args.limit)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = train(data, Path(tmp) / "m.keras", epochs=args.epochs, patience=0, verbose=0,
                       explain={"every": 1, "images": args.images, "tensorboard": str(Path(tmp) / "tb")})
        total = time.perf_counter() - start
    epoch = result.training_time_s / max(result.epochs_run, 1)
    print(f"small_cnn on Fashion-MNIST, {result.epochs_run} epochs, {total:.1f} s in all")
    print(f"  an epoch (the card's training time / epochs, callback included): {epoch:.2f} s")
    for k, s in enumerate(spent, 1):
        first = "  (first: traces)" if k == 1 else ""
        print(f"  callback at epoch {k}: {s:.3f} s = {s / epoch:.2%} of an epoch{first}")
    later = spent[1:] or spent
    print(f"  after the first: {sum(later) / len(later):.3f} s = {sum(later) / len(later) / epoch:.2%} (target <= 5%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
