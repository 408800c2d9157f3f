"""Evaluate a saved classifier on a test split: overall and per-class accuracy.

The model is opened by :func:`explain.models.load_model` (``.keras``, Keras 2 ``.h5`` or
SavedModel, never running code from the file) and fed through its preprocessing mode
(:mod:`explain.models.preprocessing`): file formats and input scaling are decided in one place."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import keras
import numpy as np

from training.datasets import DatasetError, load_builtin


def evaluate(
    model_path: str | os.PathLike,
    *,
    dataset: str | None = None,
    folder: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    batch_size: int = 128,
    preprocess: str | None = None,
    trusted_code: str | os.PathLike | list | None = None,
    max_model_mb: float | None = None,
) -> str:
    """Predict a built-in test split or a folder (never shuffled) and report accuracy.

    Args:
        model_path: a model file (loaded safely); its card ``.json`` gives class names and
            the preprocessing mode.
        dataset: a built-in data set name (its test split), or
        folder: a folder of class subfolders.
        data_dir: offline copy of the built-in data set.
        batch_size: images per forward pass.
        preprocess: a preprocessing mode overriding the card's (:data:`explain.models.preprocessing.MODES`).
        trusted_code, max_model_mb: as :func:`explain.models.load_model`.

    Returns:
        A text report: images, overall accuracy, per-class accuracy (worst first).

    Raises:
        DatasetError: data unavailable, or its classes differ from the model card's.
        ValueError: the model cannot be loaded (an ``explain.ExplainError``), or an unknown
            preprocessing mode.
    """
    from explain.models.card import load_model_card
    from explain.models.loading import load_model
    from explain.models.preprocessing import from_raw_pixels

    path = Path(model_path)
    model = load_model(path, trusted_code=trusted_code, max_model_mb=max_model_mb)
    model_card = load_model_card(path, model, preprocess=preprocess)
    net = from_raw_pixels(model, model_card.preprocessing)
    card_classes = model_card.raw.get("class_names")
    class_names, batches = _test_batches(model, dataset, folder, data_dir, batch_size, card_classes)
    if card_classes and card_classes != class_names:
        raise DatasetError(f"The data's classes {class_names} differ from the model card's {card_classes}.")
    y_true, y_pred = _predict_labels(net, batches)
    lines = [f"note: {n}" for n in model_card.notes]
    lines += [f"{path.name}: {len(y_true)} images, accuracy {np.mean(y_true == y_pred):.2%}", "per-class accuracy:"]
    return "\n".join(lines + _per_class_lines(y_true, y_pred, class_names))


def _test_batches(
    model: keras.Model,
    dataset: str | None,
    folder: str | os.PathLike | None,
    data_dir: str | os.PathLike | None,
    batch_size: int,
    card_classes: list[str] | None,
) -> tuple[list[str], Iterable[tuple[np.ndarray, np.ndarray]]]:
    """The data's class names and its ``(images, labels)`` batches, in order (never shuffled).

    A folder's images are resized to the model's input size and channels.
    """
    if dataset:
        data = load_builtin(dataset, data_dir)
        batches = (
            (data.x_test[i : i + batch_size], data.y_test[i : i + batch_size])
            for i in range(0, len(data.y_test), batch_size)
        )
        return list(data.class_names), batches
    from explain.models.card import load_model_card
    from training.folders import make_dataset, scan_folder

    h, w, c = load_model_card(None, model).input_shape
    scan = scan_folder(folder, class_names=card_classes)
    return list(scan.class_names), make_dataset(
        list(scan.files), (h, w), c, batch_size, shuffle_seed=None
    ).as_numpy_iterator()


def _predict_labels(net, batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """True and predicted labels, int arrays ``(N,)``: argmax, or P(class 1) > 0.5 for one sigmoid output."""
    y_true, y_pred = [], []
    for x, y in batches:
        p = keras.ops.convert_to_numpy(net(np.asarray(x, np.float32), training=False))
        y_pred.append((p[:, 0] > 0.5).astype(int) if p.shape[-1] == 1 else p.argmax(axis=-1))
        y_true.append(np.asarray(y))
    return np.concatenate(y_true), np.concatenate(y_pred)


def _per_class_lines(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> list[str]:
    """One line per class with images: its accuracy and image count, worst first."""
    per_class = []
    for k, name in enumerate(class_names):
        mask = y_true == k
        if mask.any():
            per_class.append((float(np.mean(y_pred[mask] == k)), name, int(mask.sum())))
    return [f"  {name:<24} {acc:7.2%}  ({n} images)" for acc, name, n in sorted(per_class)]
