"""Evaluate a saved ``.keras`` classifier on a test split: overall and per-class accuracy."""

from __future__ import annotations

import json
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
) -> str:
    """Predict a built-in test split or a folder (never shuffled) and report accuracy.

    Args:
        model_path: a ``.keras`` file (loaded in safe mode); its card ``.json`` gives class names.
        dataset: a built-in data set name (its test split), or
        folder: a folder of class subfolders.
        data_dir: offline copy of the built-in data set.
        batch_size: images per forward pass.

    Returns:
        A text report: images, overall accuracy, per-class accuracy (worst first).

    Raises:
        DatasetError: data unavailable, or its classes differ from the model card's.
        ValueError: the model cannot be loaded.
    """
    path = Path(model_path)
    if not path.is_file():
        raise ValueError(f"No such model file: {path}.")
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as e:
        raise ValueError(f"Could not load {path} as a Keras model: {str(e).splitlines()[0][:200]}") from None
    card_path = path.with_suffix(".json")
    card = json.loads(card_path.read_text(encoding="utf-8")) if card_path.is_file() else {}
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
        p = keras.ops.convert_to_numpy(model(np.asarray(x, np.float32), training=False))
        y_pred.append((p[:, 0] > 0.5).astype(int) if p.shape[-1] == 1 else p.argmax(axis=-1))
        y_true.append(np.asarray(y))
    y_true, y_pred = np.concatenate(y_true), np.concatenate(y_pred)
    lines = [f"{path.name}: {len(y_true)} images, accuracy {np.mean(y_true == y_pred):.2%}", "per-class accuracy:"]
    per_class = []
    for k, name in enumerate(class_names):
        mask = y_true == k
        if mask.any():
            per_class.append((float(np.mean(y_pred[mask] == k)), name, int(mask.sum())))
    for acc, name, n in sorted(per_class):
        lines.append(f"  {name:<24} {acc:7.2%}  ({n} images)")
    return "\n".join(lines)
