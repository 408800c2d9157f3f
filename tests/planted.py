"""A planted Clever Hans, made at test time: four Fashion-MNIST classes of upper-body garments (the classes a
small CNN confuses most), a bright 4x4 mark in the top-left corner of 80% of the training shirts and of none
of the other images, a small CNN trained on it with ``training/`` (about 10 s on 2 cores), and test images
with the mark on half of the shirts. ``frac=0`` trains the same model on clean data (the test images keep
the mark).

Fashion-MNIST is read from the Debian package ``dataset-fashion-mnist`` (the IDX files Keras downloads); the
tests that use this skip when it is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

FASHION = Path("/usr/share/datasets/fashion-mnist")
CLASSES = {0: "tshirt", 2: "pullover", 4: "coat", 6: "shirt"}
MARKED_CLASS = "shirt"
#: The mark: rows and columns 1..4 of 28, so the region x0,y0,x1,y1 = 0,0,0.18,0.18 holds it.
MARK = (slice(1, 5), slice(1, 5))
REGION = (0.0, 0.0, 0.18, 0.18)


@dataclass(frozen=True)
class Planted:
    model_path: Path
    test_dir: Path
    marked: frozenset[str]  # test image ids (paths relative to test_dir) that carry the mark
    class_names: tuple[str, ...]


def _write(root: Path, x: np.ndarray, y: np.ndarray, per_class: int, frac: float) -> set[str]:
    marked = set()
    for c, name in CLASSES.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for k, i in enumerate(np.flatnonzero(y == c)[:per_class]):
            img = x[i].copy()
            if name == MARKED_CLASS and k < round(frac * per_class):
                img[MARK] = 255
                marked.add(f"{name}/{k:04d}.png")
            Image.fromarray(img).save(root / name / f"{k:04d}.png")
    return marked


def make_planted(root: Path, frac: float = 0.8, seed: int = 0) -> Planted:
    """Write the data under ``root``, train the model (``root/model.keras``) and return where things are."""
    if not (FASHION / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    from training.datasets import read_idx
    from training.train import prepare_folder, train

    x_train = read_idx(FASHION / "train-images-idx3-ubyte.gz")
    y_train = read_idx(FASHION / "train-labels-idx1-ubyte.gz")
    x_test = read_idx(FASHION / "t10k-images-idx3-ubyte.gz")
    y_test = read_idx(FASHION / "t10k-labels-idx1-ubyte.gz")
    _write(root / "train", x_train, y_train, 500, frac)
    marked = _write(root / "test", x_test, y_test, 100, 0.5)  # the clean model sees the same test images
    data = prepare_folder(root / "train", image_size=(28, 28), color_mode="grayscale", seed=seed, report=lambda s: None)
    result = train(data, root / "model.keras", epochs=4, seed=seed, verbose=0, patience=0)
    return Planted(result.model_path, root / "test", frozenset(marked), tuple(data.class_names))
