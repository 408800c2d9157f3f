"""A planted concept, made at test time: a 2-class data set where every ``striped`` image carries a patch
of stripes and every ``dotted`` image a patch of dots, each on a varied background (a random colour
gradient with noise), and a small CNN trained on it with ``training/`` (a few seconds on 2 cores).

Besides the training and test folders it writes what TCAV needs: a ``stripes`` concept folder of NEW
stripe images (other colours, periods and angles than the training ones, no background), a ``dots``
folder likewise, and folders of random noise images (the random sets, and a random "concept").

Every test image's patch box is returned, so a test can tell whether a crop is striped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 40  # the model's input side, pixels
CLASSES = ("dotted", "striped")  # folder order: class 0 dotted, class 1 striped


@dataclass(frozen=True)
class PlantedConcepts:
    model_path: Path
    test_dir: Path
    stripes: Path  # concept folder: new stripe images
    dots: Path  # concept folder: new dot images
    random: Path  # random noise images, the random sets
    random_concept: Path  # more noise images, a "concept" that is no concept
    boxes: dict  # test image id (path relative to test_dir) -> patch box (x0, y0, x1, y1) in pixels


def stripes(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A stripe texture (h, w, 3) uint8: two colours, period 4-8 px, horizontal, vertical or diagonal."""
    period = rng.uniform(4, 8)
    angle = rng.choice([0.0, np.pi / 2, np.pi / 4, -np.pi / 4]) + rng.uniform(-0.15, 0.15)
    yy, xx = np.mgrid[0:h, 0:w]
    phase = (xx * np.cos(angle) + yy * np.sin(angle)) / period + rng.uniform()
    on = (phase % 1.0) < 0.5
    a, b = _two_colours(rng)
    return np.where(on[..., None], a, b).astype(np.uint8)


def dots(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A dot texture (h, w, 3) uint8: discs of radius 1.2-2 px on a grid of 5-8 px, two colours."""
    step = rng.uniform(5, 8)
    radius = rng.uniform(1.2, 2.0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    oy, ox = rng.uniform(0, step, 2)
    dy = (yy + oy) % step - step / 2
    dx = (xx + ox) % step - step / 2
    on = dy**2 + dx**2 <= radius**2
    a, b = _two_colours(rng)
    return np.where(on[..., None], a, b).astype(np.uint8)


def _two_colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A dark and a light colour, in random order."""
    a, b = rng.uniform(0, 70, 3), rng.uniform(185, 255, 3)
    return (a, b) if rng.random() < 0.5 else (b, a)


def background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A random colour gradient with noise, (h, w, 3) float."""
    c0, c1 = rng.uniform(0, 255, (2, 3))
    t = np.linspace(0, 1, w)[None, :, None] if rng.random() < 0.5 else np.linspace(0, 1, h)[:, None, None]
    img = c0 * (1 - t) + c1 * t + rng.normal(0, 12, (h, w, 3))
    return np.broadcast_to(img, (h, w, 3))


def patterned(rng: np.random.Generator, texture) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """An image (SIZE, SIZE, 3) uint8 with a patch of ``texture`` on a background, and the patch box."""
    img = background(rng, SIZE, SIZE).copy()
    ph, pw = rng.integers(SIZE // 2, 3 * SIZE // 4 + 1, 2)
    y0, x0 = rng.integers(0, SIZE - ph + 1), rng.integers(0, SIZE - pw + 1)
    img[y0 : y0 + ph, x0 : x0 + pw] = texture(rng, ph, pw)
    return np.clip(img, 0, 255).astype(np.uint8), (int(x0), int(y0), int(x0 + pw), int(y0 + ph))


def noise(rng: np.random.Generator, side: int) -> np.ndarray:
    """A random image: smooth or white noise, (side, side, 3) uint8."""
    if rng.random() < 0.5:
        return rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    small = rng.uniform(0, 255, (side // 8, side // 8, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((side, side), Image.BILINEAR))


def _save(folder: Path, name: str, img: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(folder / name)


def write_split(root: Path, per_class: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    boxes = {}
    for name, texture in zip(CLASSES, (dots, stripes), strict=True):
        for k in range(per_class):
            img, box = patterned(rng, texture)
            _save(root / name, f"{k:04d}.png", img)
            boxes[f"{name}/{k:04d}.png"] = box
    return boxes


def write_concept_folders(root: Path, n: int = 30, n_random: int = 220, seed: int = 7) -> None:
    """The concept folders: new textures at other sizes than the model's (any size is read), and noise."""
    rng = np.random.default_rng(seed)
    for k in range(n):
        side = int(rng.integers(32, 80))
        _save(root / "stripes", f"s{k:03d}.png", stripes(rng, side, side))
        _save(root / "dots", f"d{k:03d}.png", dots(rng, side, side))
    for k in range(n_random):
        _save(root / "random", f"r{k:03d}.png", noise(rng, int(rng.integers(32, 64))))
    for k in range(n):
        _save(root / "random_concept", f"n{k:03d}.png", noise(rng, 48))


def make_planted_concepts(root: Path, seed: int = 0, per_class: int = 300, epochs: int = 6) -> PlantedConcepts:
    """Write the data under ``root``, train the model (``root/model.keras``) and return where things are."""
    from training.train import prepare_folder, train

    write_split(root / "train", per_class, seed)
    boxes = write_split(root / "test", 60, seed + 1)
    write_concept_folders(root / "concepts", seed=seed + 2)
    data = prepare_folder(root / "train", image_size=(SIZE, SIZE), seed=seed, report=lambda s: None)
    result = train(
        data, root / "model.keras", architecture="mnist_cnn", epochs=epochs, learning_rate=2e-3, seed=seed,
        verbose=0, patience=0, reduce_lr_patience=0,
    )  # 100% validation accuracy in about 10 s
    c = root / "concepts"
    return PlantedConcepts(
        result.model_path, root / "test", c / "stripes", c / "dots", c / "random", c / "random_concept", boxes
    )
