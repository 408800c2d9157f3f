"""Benchmark: TCAV and CRAFT, against the issue's targets, with where the time goes.

    python bench/bench_concepts.py [--part tcav|craft|both] [--craft-images 500]

1. **TCAV** on the demo model (``models/fashion_mnist_cnn.keras``): 2 concepts (stripes and dots, drawn
   here at 28x28 grayscale, 30 images each), 10 runs (random noise images), 1 layer, one class of
   ``fashion_mnist:test`` (all its 1000 images). Its floor, measured in the same run on the same compiled
   functions: the forward passes of the concept, random and class images plus one backward pass per class
   image. Target: <= 30 s and within 1.5x of the floor.
2. **CRAFT** for one class of 500 images on a MobileNetV2 (random weights: nothing is downloaded) nested in
   a Sequential classifier at 96x96, the images cut from ``skimage.data``'s photos. Target: <= 3 minutes;
   the seconds per phase (reading, crops, NMF, importance) are printed.

Both also check a new user's path on the nested model: TCAV with concept folders cut from ``skimage.data``
photos (brick, grass, gravel) runs at a nested layer, and CRAFT's crops come back at the model's size.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import explain  # noqa: E402
from explain.concepts import craft, tcav  # noqa: E402
from explain.concepts._latent import LatentModel  # noqa: E402


def _write(folder: Path, images) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k, img in enumerate(images):
        Image.fromarray(img).save(folder / f"{k:04d}.png")
    return folder


def _textures(root: Path, size: int, gray: bool) -> dict[str, Path]:
    """Concept folders of stripes and dots, and a random folder of noise (tests/concepts_planted.py's)."""
    from concepts_planted import dots, noise, stripes

    rng = np.random.default_rng(0)

    def fix(img):
        return np.asarray(Image.fromarray(img).convert("L")) if gray else img

    return {
        "stripes": _write(root / "stripes", [fix(stripes(rng, size, size)) for _ in range(30)]),
        "dots": _write(root / "dots", [fix(dots(rng, size, size)) for _ in range(30)]),
        "random": _write(root / "random", [fix(noise(rng, size)) for _ in range(220)]),
    }


def _floor(model, layer, pixels: list[np.ndarray], class_images: np.ndarray, class_index: int) -> float:
    """Seconds of the forward passes of the concept and random images and the forward and backward pass of
    the class images, on warm compiled functions (the same ones tcav() uses)."""
    latent = LatentModel(model, layer, 32)
    latent.activations(pixels[0][:2])
    latent.activations_and_gradients(class_images[:2], class_index)  # traced, untimed
    start = time.perf_counter()
    for p in pixels:
        latent.activations(p)
    latent.activations_and_gradients(class_images, class_index)
    return time.perf_counter() - start


def bench_tcav(tmp: Path) -> None:
    model_path = ROOT / "models" / "fashion_mnist_cnn.keras"
    model = explain.load_model(model_path)
    card = explain.load_model_card(model_path, model)
    folders = _textures(tmp / "fm", 28, gray=True)
    data = explain.open_data("fashion_mnist:test")
    cls = card.class_names[1]
    layer = "conv2d_1"
    start = time.perf_counter()
    result = tcav(model, {"stripes": folders["stripes"], "dots": folders["dots"]}, folders["random"], [layer], [cls],
                  data, runs=10, max_images=1000, class_names=card.class_names, batch_size=64)
    total = time.perf_counter() - start
    # The floor's inputs, read outside the timing (reading files is not a forward pass).
    read = [np.stack([np.asarray(Image.open(f))[..., None] for f in sorted(folders[k].iterdir())]) for k in folders]
    images, _ = explain.concepts._latent.class_images(data, 1, card.class_names, (28, 28), 1, 1000, 0)
    floor = _floor(model, layer, read, images, 1)
    print(f"TCAV, demo model, class {cls!r} ({result.classes[0].images} images), 2 concepts, 10 runs, {layer}:")
    for c in result.classes[0].layers[0].concepts:
        print(f"  {c.name}: score {c.score_mean:.2f} ± {c.score_std:.2f}, p {c.p_value:.2g}, {c.direction}")
    print(f"  total {total:.2f} s (target <= 30 s); floor {floor:.2f} s; ratio {total / floor:.2f}x (target <= 1.5x)")


def _photos(side: int, n: int, seed: int = 0) -> np.ndarray:
    """``n`` random crops (uint8 RGB, side x side) of skimage.data's colour photos."""
    import skimage.data as d

    photos = [d.astronaut(), d.coffee(), d.chelsea(), d.rocket(), d.horse()]
    photos = [np.stack([p] * 3, -1) if p.ndim == 2 else p[..., :3] for p in photos]
    photos = [(p * 255).astype(np.uint8) if p.dtype == bool else p for p in photos]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        p = photos[rng.integers(len(photos))]
        s = int(rng.integers(side, min(p.shape[:2]) + 1))
        y, x = rng.integers(0, p.shape[0] - s + 1), rng.integers(0, p.shape[1] - s + 1)
        out.append(np.asarray(Image.fromarray(p[y : y + s, x : x + s]).resize((side, side), Image.BILINEAR)))
    return np.stack(out)


def _mobilenet(side: int):
    import keras

    base = keras.applications.MobileNetV2(input_shape=(side, side, 3), include_top=False, weights=None)
    model = keras.Sequential([keras.Input((side, side, 3)), keras.layers.Rescaling(1 / 127.5, offset=-1), base,
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")])
    return model, base.name


def _texture_folders(root: Path, side: int) -> dict[str, Path]:
    """Concept folders cut from skimage.data's textures, as a new user would make them: brick, grass, gravel."""
    import skimage.data as d

    rng = np.random.default_rng(1)
    folders = {}
    for name in ("brick", "grass", "gravel"):
        photo = getattr(d, name)()
        crops = []
        for _ in range(20):
            s = int(rng.integers(side, side * 2))
            y, x = rng.integers(0, photo.shape[0] - s), rng.integers(0, photo.shape[1] - s)
            crops.append(photo[y : y + s, x : x + s])
        folders[name] = _write(root / name, crops)
    folders["random"] = _write(root / "random", list(_photos(side, 120, seed=5)))
    return folders


def bench_craft(tmp: Path, n_images: int) -> None:
    side = 96
    model, base = _mobilenet(side)
    images = _photos(side, n_images)
    data = explain.ArraySource("skimage photos", images, np.zeros(n_images, np.int64), ("a", "b", "c"))
    start = time.perf_counter()
    result = craft(model, data, "a", concepts=10, max_images=n_images, class_names=("a", "b", "c"), batch_size=64)
    total = time.perf_counter() - start
    print(f"CRAFT, MobileNetV2 nested at {side} px (random weights), {result.images} images, layer {result.layer}:")
    print(f"  {result.crops} crops (of {result.crops_requested}), {len(result.concepts)} concepts, importance over "
          f"{result.importance_images} images")
    print("  time per phase: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items()))
    print(f"  total {total:.1f} s (target <= 180 s)")
    folders = _texture_folders(tmp / "textures", side)
    start = time.perf_counter()
    t = tcav(model, {k: v for k, v in folders.items() if k != "random"}, folders["random"],
             [f"{base}/block_13_expand_relu"], ["a"], data, runs=10, max_images=100, class_names=("a", "b", "c"))
    print(f"TCAV, the same model, brick / grass / gravel folders cut from skimage.data, layer "
          f"{t.classes[0].layers[0].layer}: {time.perf_counter() - start:.1f} s")
    for c in t.classes[0].layers[0].concepts:
        print(f"  {c.name}: score {c.score_mean:.2f} ± {c.score_std:.2f}, CAV accuracy {c.cav_accuracy:.2f}, "
              f"p {c.p_value:.2g} ({c.direction}; random weights: no concept is expected to matter)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("tcav", "craft", "both"), default="both")
    p.add_argument("--craft-images", type=int, default=500)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.part in ("tcav", "both"):
            bench_tcav(Path(tmp))
        if args.part in ("craft", "both"):
            bench_craft(Path(tmp), args.craft_images)
    return 0


if __name__ == "__main__":
    sys.exit(main())
