"""Evaluate a saved classifier on a test split: overall and per-class accuracy.

The model is opened by :func:`explain.models.load_model` (``.keras``, Keras 2 ``.h5`` or
SavedModel, never running code from the file) and fed through its preprocessing mode
(:mod:`explain.preprocessing`): file formats and input scaling are decided in one place."""

from __future__ import annotations

import os
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
) -> str:
    """Predict a built-in test split or a folder (never shuffled) and report accuracy.

    Args:
        model_path: a model file (loaded safely); its card ``.json`` gives class names and
            the preprocessing mode.
        dataset: a built-in data set name (its test split), or
        folder: a folder of class subfolders.
        data_dir: offline copy of the built-in data set.
        batch_size: images per forward pass.
        preprocess: a preprocessing mode overriding the card's (:data:`explain.preprocessing.MODES`).

    Returns:
        A text report: images, overall accuracy, per-class accuracy (worst first).

    Raises:
        DatasetError: data unavailable, or its classes differ from the model card's.
        ValueError: the model cannot be loaded (an ``explain.ExplainError``), or an unknown
            preprocessing mode.
    """
    from explain.models import load_model, load_model_card
    from explain.preprocessing import from_raw_pixels

    path = Path(model_path)
    model = load_model(path)
    model_card = load_model_card(path, model, preprocess=preprocess)
    net = from_raw_pixels(model, model_card.preprocessing)
    card = model_card.raw
    h, w, c = model.inputs[0].shape[1:]
    if dataset:
        data = load_builtin(dataset, data_dir)
        class_names = list(data.class_names)
        batches = (
            (data.x_test[i : i + batch_size], data.y_test[i : i + batch_size])
            for i in range(0, len(data.y_test), batch_size)
        )
    else:
        from training.folders import make_dataset, scan_folder

        scan = scan_folder(folder, class_names=card.get("class_names"))
        class_names = list(scan.class_names)
        batches = make_dataset(list(scan.files), (h, w), c, batch_size, shuffle_seed=None).as_numpy_iterator()
    if card.get("class_names") and card["class_names"] != class_names:
        raise DatasetError(f"The data's classes {class_names} differ from the model card's {card['class_names']}.")
    y_true, y_pred = [], []
    for x, y in batches:
        p = keras.ops.convert_to_numpy(net(np.asarray(x, np.float32), training=False))
        y_pred.append((p[:, 0] > 0.5).astype(int) if p.shape[-1] == 1 else p.argmax(axis=-1))
        y_true.append(np.asarray(y))
    y_true, y_pred = np.concatenate(y_true), np.concatenate(y_pred)
    lines = [f"note: {n}" for n in model_card.notes]
    lines += [f"{path.name}: {len(y_true)} images, accuracy {np.mean(y_true == y_pred):.2%}", "per-class accuracy:"]
    per_class = []
    for k, name in enumerate(class_names):
        mask = y_true == k
        if mask.any():
            per_class.append((float(np.mean(y_pred[mask] == k)), name, int(mask.sum())))
    for acc, name, n in sorted(per_class):
        lines.append(f"  {name:<24} {acc:7.2%}  ({n} images)")
    return "\n".join(lines)
