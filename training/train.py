"""Fit a classifier on a built-in data set and write the ``.keras`` model and its model card.

Both files are written atomically (temporary file, then rename), so an interrupted run
never leaves a half-written model or card.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from training.architectures import ARCHITECTURES
from training.datasets import DatasetError, load_builtin


@dataclass(frozen=True)
class TrainingResult:
    """What a training run wrote and measured.

    Attributes:
        model_path: the ``.keras`` file.
        card_path: the model card ``.json`` beside it.
        test_accuracy: accuracy on the test split, in [0, 1].
        test_loss: cross-entropy on the test split.
        epochs_run: epochs actually trained (early stopping or the time limit may stop sooner).
        training_time_s: wall-clock seconds spent in ``fit``.
    """

    model_path: Path
    card_path: Path
    test_accuracy: float
    test_loss: float
    epochs_run: int
    training_time_s: float


class TimeLimit(keras.callbacks.Callback):
    """Stop before an epoch that would end past ``max_seconds`` of wall-clock training time.

    After each epoch, the next one is predicted to take as long as the slowest so far; if
    that would overrun the budget, training stops there (at least one epoch always runs).
    """

    def __init__(self, max_seconds: float):
        super().__init__()
        self.max_seconds = max_seconds
        self.stopped = False
        self._start = self._epoch_start = 0.0
        self._slowest = 0.0

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        self._slowest = max(self._slowest, now - self._epoch_start)
        if now - self._start + self._slowest > self.max_seconds:
            self.stopped = True
            self.model.stop_training = True


def _atomic_write_bytes(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; give the file the usual permissions
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _pipeline(x: np.ndarray, y: np.ndarray, batch_size: int, shuffle_seed: int | None) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle_seed is None:
        ds = ds.cache()
    else:
        ds = ds.cache().shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def train_builtin(
    dataset: str,
    out: str | os.PathLike,
    *,
    architecture: str = "small_cnn",
    epochs: int = 10,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    validation_fraction: float = 0.1,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    max_minutes: float | None = None,
    verbose: int | str = 1,
) -> TrainingResult:
    """Train ``architecture`` on a built-in data set; write ``out`` and ``out.with_suffix('.json')``.

    The training split is divided into training and validation by a seeded random
    fraction; the test split (10,000 images for Fashion-MNIST) is used only for the final
    evaluation. Early stopping watches validation loss (patience 3) and restores the best
    weights.

    Args:
        dataset: ``"fashion_mnist"`` or ``"mnist"``.
        out: the ``.keras`` path to write.
        architecture: a key of ``training.architectures.ARCHITECTURES``.
        epochs: most epochs to train (>= 1).
        batch_size: images per step (>= 1).
        learning_rate: Adam learning rate (> 0).
        validation_fraction: share of the training split held out, in (0, 0.5].
        seed: seeds Python, NumPy and TensorFlow, the split and the shuffling.
        data_dir: a folder holding the four IDX files, for offline use.
        limit: use only this many training images (quick trials); None for all.
        max_minutes: training-time budget; no epoch starts that is predicted to end past it.
        verbose: Keras ``fit`` verbosity (1: progress bar).

    Returns:
        A :class:`TrainingResult`.

    Raises:
        DatasetError: unknown or unavailable data set.
        ValueError: an argument out of range, or ``out`` not ending in ``.keras``.
    """
    out = Path(out)
    if out.suffix != ".keras":
        raise ValueError(f"--out must end in .keras, got {out}.")
    if architecture not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {architecture!r}. Choose one of: {', '.join(ARCHITECTURES)}.")
    if epochs < 1 or batch_size < 1 or learning_rate <= 0:
        raise ValueError("epochs and batch size must be at least 1 and the learning rate positive.")
    if not 0 < validation_fraction <= 0.5:
        raise ValueError(f"validation fraction must be in (0, 0.5], got {validation_fraction}.")

    data = load_builtin(dataset, data_dir)
    x, y = data.x_train, data.y_train
    if limit is not None:
        x, y = x[:limit], y[:limit]
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = max(1, round(len(x) * validation_fraction))
    if len(x) - n_val < 1:
        raise DatasetError(f"Only {len(x)} training images: too few to hold out a validation split.")
    val_idx, train_idx = order[:n_val], order[n_val:]

    keras.utils.set_random_seed(seed)
    model = ARCHITECTURES[architecture](data.input_shape, len(data.class_names))
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    callbacks: list[keras.callbacks.Callback] = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
    ]
    time_limit = TimeLimit(max_minutes * 60) if max_minutes else None
    if time_limit:
        callbacks.append(time_limit)

    start = time.perf_counter()
    history = model.fit(
        _pipeline(x[train_idx], y[train_idx], batch_size, seed),
        validation_data=_pipeline(x[val_idx], y[val_idx], 512, None),
        epochs=epochs,
        callbacks=callbacks,
        shuffle=False,  # the tf.data pipeline shuffles, seeded, every epoch
        verbose=verbose,
    )
    training_time = time.perf_counter() - start
    test_loss, test_acc = model.evaluate(_pipeline(data.x_test, data.y_test, 512, None), verbose=0)

    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    card = {
        "name": out.stem,
        "architecture": architecture,
        "class_names": list(data.class_names),
        "input_shape": list(data.input_shape),
        "color_mode": data.color_mode,
        "preprocessing": "Rescaling(1/255) is the model's first layer: feed raw pixels in [0, 255].",
        "dataset": data.name,
        "data_source": data.source,
        "split": {
            "train": len(train_idx),
            "validation": len(val_idx),
            "test": len(data.x_test),
            "validation_fraction": validation_fraction,
            "seed": seed,
        },
        "hyperparameters": {
            "optimizer": "adam",
            "learning_rate": learning_rate,
            "batch_size": batch_size,
            "max_epochs": epochs,
            "early_stopping": "val_loss, patience 3, best weights restored",
            "max_minutes": max_minutes,  # no epoch is started that would end past it
        },
        "epochs_run": len(hist.get("loss", [])),
        "stopped_by_time_limit": bool(time_limit and time_limit.stopped),
        "history": hist,
        "test_metrics": {"accuracy": float(test_acc), "loss": float(test_loss)},
        "training_time_s": round(training_time, 1),
        "versions": {
            "keras": keras.__version__,
            "tensorflow": tf.__version__,
            "python": platform.python_version(),
        },
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    card_path = out.with_suffix(".json")
    # Save without the optimizer state (two thirds of the file): the model is for inference.
    inference_model = keras.models.clone_model(model)
    inference_model.set_weights(model.get_weights())
    _atomic_write_bytes(out, lambda p: inference_model.save(p))
    _atomic_write_bytes(
        card_path, lambda p: p.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    )
    return TrainingResult(out, card_path, float(test_acc), float(test_loss), card["epochs_run"], training_time)
