"""Benchmark: test accuracy and training time on Fashion-MNIST for the built-in architectures.

    python bench/bench_fashion_mnist.py [--architectures small_cnn mlp] [--max-minutes 10] [--epochs 30]

Each architecture trains on 48,000 images (12,000 held out for validation), with early
stopping and learning-rate halving on the validation loss, and a training-time budget
(no epoch starts that would end past ``--max-minutes``); it is then scored on the 10,000
test images. Prints one line per architecture and a summary table. Models go to a
temporary folder unless ``--keep DIR``.
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

from training.train import prepare_builtin, train


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--architectures", nargs="+", default=["small_cnn"])
    p.add_argument("--max-minutes", type=float, default=10.0)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--keep", type=Path, help="keep the models in this folder")
    args = p.parse_args()
    data = prepare_builtin("fashion_mnist", batch_size=args.batch_size, validation_fraction=0.2)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        for arch in args.architectures:
            start = time.perf_counter()
            r = train(
                data,
                folder / f"fashion_mnist_{arch}.keras",
                architecture=arch,
                epochs=args.epochs,
                patience=4,
                max_minutes=args.max_minutes,
                verbose=2,
            )
            wall = time.perf_counter() - start
            rows.append((arch, r.test_accuracy, r.epochs_run, r.training_time_s / 60, wall / 60))
            print(
                f"{arch}: test accuracy {r.test_accuracy:.2%} after {r.epochs_run} epochs, "
                f"{r.training_time_s / 60:.1f} min of training ({wall / 60:.1f} min wall)",
                flush=True,
            )
    print(f"\n{'architecture':<14} {'test acc':>9} {'epochs':>7} {'train min':>10} {'wall min':>9}")
    for arch, acc, ep, tmin, wmin in rows:
        print(f"{arch:<14} {acc:>9.2%} {ep:>7} {tmin:>10.1f} {wmin:>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
