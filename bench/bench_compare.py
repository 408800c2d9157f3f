"""Benchmark: ``explain.compare`` on Fashion-MNIST test images with every method, the time of each step.

    python bench/bench_compare.py [--images 100] [--model models/fashion_mnist_cnn.keras] [--methods a,b]

Runs :func:`explain.dataset.compare.compare_methods` on the demo model (or ``--model``) and the built-in
``fashion_mnist:test`` split (read from the Debian package's IDX files or Keras's cache), prints the
ranking and, per method, the seconds spent on its maps, its metrics and its sanity check, then the total
against the issue's target (5 minutes for 100 images with every method on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import explain  # quiet TensorFlow import; explain.load_model below
from explain.dataset import compare as cmp

ROOT = Path(__file__).resolve().parents[1]


def _timed_steps() -> dict[str, float]:
    """Wrap the steps of :mod:`explain.dataset.compare` to add up the seconds each takes, per method."""
    spent: dict[str, float] = {}
    for name in ("_timed", "faithfulness_scores"):
        original = getattr(cmp, name)

        def wrapper(*args, __original=original, __name=name, **kwargs):
            start = time.perf_counter()
            try:
                return __original(*args, **kwargs)
            finally:
                spent[__name] = spent.get(__name, 0.0) + time.perf_counter() - start

        setattr(cmp, name, wrapper)
    return spent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=100)
    p.add_argument("--model", type=Path, default=ROOT / "models" / "fashion_mnist_cnn.keras")
    p.add_argument("--data", default="fashion_mnist:test")
    p.add_argument("--methods", help="comma-separated (default: every method)")
    args = p.parse_args()
    model = explain.load_model(args.model)
    card = explain.load_model_card(args.model, model)
    spent = _timed_steps()
    per_method: dict[str, dict[str, float]] = {}
    last = {"method": None, "start": time.perf_counter(), "maps": 0.0, "metrics": 0.0}

    def progress(method: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if last["method"]:
            per_method[last["method"]] = {
                "total": now - last["start"],
                "maps": spent.get("_timed", 0.0) - last["maps"],
                "metrics": spent.get("faithfulness_scores", 0.0) - last["metrics"],
            }
        last.update(
            method=method, start=now, maps=spent.get("_timed", 0.0), metrics=spent.get("faithfulness_scores", 0.0)
        )
        if method:
            print(f"  [{done + 1}/{total}] {method}…", file=sys.stderr, flush=True)

    start = time.perf_counter()
    result = cmp.compare_methods(
        model, args.data, methods=args.methods.split(",") if args.methods else None, images=args.images,
        preprocess=card.preprocessing, class_names=card.known_class_names, progress=progress,
    )  # fmt: skip
    total = time.perf_counter() - start
    print(
        f"explain.compare: {len(result.images)} images of {result.data}, {len(result.scores)} methods, "
        f"{os.cpu_count()} CPUs"
    )
    print(f"  {'rank':>4} {'method':<22}{'maps s':>8}{'metrics s':>11}{'sanity s':>10}{'total s':>9}")
    for s in result.scores:
        t = per_method.get(s.method, {})
        rest = t.get("total", 0.0) - t.get("maps", 0.0) - t.get("metrics", 0.0)
        print(f"  {s.rank:>4} {s.method:<22}{t.get('maps', 0):>8.1f}{t.get('metrics', 0):>11.1f}{rest:>10.1f}"
              f"{t.get('total', 0):>9.1f}")  # fmt: skip
    verdict = "within" if total <= 300 else "OVER"
    print(f"total {total:.0f} s ({total / 60:.1f} min): {verdict} the 5-minute target for 100 images.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
