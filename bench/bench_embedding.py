"""Benchmark: the feature-space map of Fashion-MNIST through the demo model.

For the 10,000 test images, and with ``--train`` the 60,000 training images, each in a fresh
process, it times apart:

- ``forward``: the plain prediction pass (``evaluate_model``'s probabilities only);
- ``forward+features``: the embedding's joint pass (probabilities and the penultimate layer's
  features, global-average-pooled when spatial), so the difference is what the features and the
  pooling add to the forward pass;
- ``projection``: PCA (when needed), the 2-D projection (UMAP by default) and the k-nearest
  neighbours, with numba's compilation measured separately on a small warm-up map first (UMAP
  compiles once per process).

Peak memory is the process's resident set, sampled every 20 ms during each phase, with the
resident set before the phase, so the growth is what the phase adds. Goal on 2 cores: the
projection of 10,000 points in <= 60 s; forward plus projection of 60,000 memory-bounded (the
features are N x D float32; no N x N matrix). Nothing is downloaded; figures depend on the machine.

Run::

    python bench/bench_embedding.py                  # 10,000 test images, UMAP
    python bench/bench_embedding.py --train          # and the 60,000 training images
    python bench/bench_embedding.py --method tsne    # t-SNE (openTSNE) instead
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
MODEL = ROOT / "models" / "fashion_mnist_cnn.keras"


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class _Peak:
    """The peak resident set while the ``with`` block runs (sampled every 20 ms)."""

    def __enter__(self):
        self.before = self.peak = _rss_mib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        self.t0 = time.perf_counter()
        return self

    def _watch(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss_mib())

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mib())

    def line(self, name: str) -> dict:
        return {"phase": name, "s": round(self.seconds, 2), "rss_before": round(self.before), "peak": round(self.peak)}


def _one(split: str, method: str) -> list[dict]:
    """Run in a child process: every phase on one split, as JSON lines."""
    import numpy as np

    from explain.dataset.embedding import _joint_forward, feature_layer, project
    from explain.dataset.evaluation import ArraySource, _plan, _predict_source, open_data
    from explain.models.card import load_model_card
    from explain.models.loading import load_model

    model = load_model(MODEL)
    card = load_model_card(MODEL, model)
    source = open_data(f"fashion_mnist:{split}")
    plan = _plan(model, source, card.class_names, None, card.preprocessing, 256)
    info, _ = feature_layer(model)
    joint = _joint_forward(model, plan.head, info.name, card.preprocessing)
    _predict_source(plan, ArraySource("warm", source.images[:512], source.labels[:512], source.class_names), 256, False)
    joint(source.images[:256].astype(np.float32))  # traced once, outside the timings
    out = []
    with _Peak() as p:
        _predict_source(plan, source, 256, False)
    out.append(p.line("forward"))
    with _Peak() as p:
        _, (features, _probs), _ = _predict_source(plan, source, 256, False, joint)
    out.append({**p.line("forward+features"), "features": list(features.shape)})
    with _Peak() as p:
        project(np.random.default_rng(0).normal(size=(300, features.shape[1])).astype(np.float32), method)
    out.append(p.line(f"warm-up map, 300 points (numba compiles {method})"))
    with _Peak() as p:
        coords, _neighbors, _ = project(features, method)
    out.append({**p.line(f"projection ({method}) + neighbours"), "points": len(coords)})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", action="store_true", help="also the 60,000 training images")
    ap.add_argument("--method", default="umap", choices=("umap", "tsne", "pca"))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        for line in _one(args.child, args.method):
            print("RESULT " + json.dumps(line), flush=True)
        return 0
    print(f"# embedding benchmark, {os.cpu_count()} cores, model {MODEL.name}, method {args.method}")
    for split in ["test", *(["train"] if args.train else [])]:
        cmd = [sys.executable, __file__, "--child", split, "--method", args.method]
        run = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if run.returncode:
            print(run.stderr[-2000:], file=sys.stderr)
            return run.returncode
        print(f"\nfashion_mnist:{split}")
        for raw in run.stdout.splitlines():
            if raw.startswith("RESULT "):
                r = json.loads(raw[7:])
                extra = {k: v for k, v in r.items() if k not in ("phase", "s", "rss_before", "peak")}
                print(
                    f"  {r['phase']:<48} {r['s']:>8.2f} s   RSS {r['rss_before']:>5} -> peak {r['peak']:>5} MiB"
                    + (f"   {extra}" if extra else "")
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
