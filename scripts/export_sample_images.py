"""Export the real sample images used by the README, the app and the tests.

    python scripts/export_sample_images.py [--out sample_images] [--data-dir DIR]

Writes one Fashion-MNIST *test* image per class (PNG, 28x28 grayscale, the true class in
the file name: ``fashion_mnist_<class index>_<class>.png``) and three photos from
``skimage.data`` (chelsea the cat, a cup of coffee, the astronaut Eileen Collins; public
domain or CC0, see ``skimage.data``) as ``photo_<name>.jpg``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.datasets import load_builtin


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python scripts/export_sample_images.py", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "sample_images")
    p.add_argument("--data-dir", help="folder with the four Fashion-MNIST IDX files (offline)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    data = load_builtin("fashion_mnist", args.data_dir)
    for c, name in enumerate(data.class_names):
        i = int(np.flatnonzero(data.y_test == c)[0])
        path = args.out / f"fashion_mnist_{c}_{slug(name)}.png"
        Image.fromarray(data.x_test[i, ..., 0], "L").save(path, optimize=True)
        print(f"{path.name}: test image {i}, class {c} {name!r}")

    import skimage.data

    for name in ("chelsea", "coffee", "astronaut"):
        rgb = getattr(skimage.data, name)()
        path = args.out / f"photo_{name}.jpg"
        Image.fromarray(rgb).save(path, quality=90, optimize=True)
        print(f"{path.name}: skimage.data.{name}() {rgb.shape[1]}x{rgb.shape[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
