"""Benchmark: dashboard latency, measured as the script rerun time under Streamlit's AppTest.

    python bench/bench_app.py [--repeats 5]

For the demo model and for a MobileNetV2 224x224 classifier (random weights, uploaded as a
``.keras`` file, as a user would): the time to switch layer with a warm cache (both layers
seen before), and the time to the first Grad-CAM (opening the Explain computation for a new
image: the explainer is built and traced, then cached). Prints medians in milliseconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402


def _timed(at: AppTest, action) -> float:
    action(at)
    start = time.perf_counter()
    at.run()
    elapsed = time.perf_counter() - start
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    return elapsed


def bench(label: str, at: AppTest, repeats: int) -> None:
    layers = at.selectbox(key="layer").options
    a, b = layers[1], layers[len(layers) // 2]
    for layer in (a, b):  # warm both
        _timed(at, lambda t, v=layer: t.selectbox(key="layer").set_value(v))
    switch = [
        _timed(at, lambda t, v=(a if i % 2 else b): t.selectbox(key="layer").set_value(v)) for i in range(repeats)
    ]
    images = [o for o in at.selectbox(key="image_choice").options if o != "Upload…"]
    first_gradcam = []
    for img in images[:repeats]:  # a new image each time: Grad-CAM is not cached yet
        first_gradcam.append(_timed(at, lambda t, v=img: t.selectbox(key="image_choice").set_value(v)))
    print(f"{label}:")
    print(f"  switch layer, warm cache       {statistics.median(switch) * 1000:8.0f} ms (median of {repeats})")
    print(
        f"  new image to first Grad-CAM    {statistics.median(first_gradcam) * 1000:8.0f} ms "
        f"(median of {len(first_gradcam)}; the whole rerun: prediction, activations, Grad-CAM, its scores)"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    start = time.perf_counter()
    at.run()
    print(f"cold start on the demo model (load, predict, activations, Grad-CAM): {time.perf_counter() - start:.1f} s")
    bench("demo model (28x28x1 CNN)", at, args.repeats)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mobilenetv2.keras"
        keras.utils.set_random_seed(0)
        keras.applications.MobileNetV2(weights=None).save(path)
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
        at.run()
        at.selectbox(key="model_choice").set_value("Upload…").run()
        start = time.perf_counter()
        at.file_uploader(key="model_upload").set_value(
            ("mobilenetv2.keras", path.read_bytes(), "application/octet-stream")
        )
        at.run()
        print(
            "\nMobileNetV2 upload to first screen (load, predict, activations, Grad-CAM): "
            f"{time.perf_counter() - start:.1f} s"
        )
        bench("MobileNetV2 224x224", at, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
