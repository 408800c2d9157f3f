"""Fit a classifier and write the ``.keras`` model, its model card and its training curves.

Every file is written atomically (temporary file, then rename), so an interrupted run never
leaves a half-written model, card or checkpoint. While training, the best epoch (lowest
validation loss) and the last epoch are checkpointed in a hidden folder beside the output;
``resume=True`` continues from the last one with its optimizer state.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from training.architectures import ARCHITECTURES, augmentation_layers, loss_for, strip_augmentation
from training.datasets import DatasetError, load_builtin

OPTIMIZERS = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop}


@dataclass(frozen=True)
class TrainingResult:
    """What a training run wrote and measured.

    Attributes:
        model_path: the ``.keras`` file.
        card_path: the model card ``.json`` beside it.
        curves_path: the PNG of loss and accuracy per epoch.
        test_accuracy: accuracy on the test split in [0, 1] (None without a test split).
        test_loss: loss on the test split (None without a test split).
        val_accuracy: best-epoch validation accuracy in [0, 1].
        epochs_run: epochs trained in total (early stopping or the time limit may stop sooner).
        training_time_s: wall-clock seconds spent in ``fit``, over all resumed runs.
    """

    model_path: Path
    card_path: Path
    curves_path: Path
    test_accuracy: float | None
    test_loss: float | None
    val_accuracy: float
    epochs_run: int
    training_time_s: float


@dataclass
class PreparedData:
    """Batched ``tf.data`` pipelines of uint8 images ``(B, H, W, C)`` and int labels ``(B,)``.

    Attributes:
        train, validation: pipelines (training shuffles, seeded; validation never does).
        test: the test pipeline, or None.
        class_names: one name per label.
        input_shape: ``(H, W, C)``.
        batch_size: images per training step.
        description: what the model card records about the data (name, source, split).
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset | None
    class_names: tuple[str, ...]
    input_shape: tuple[int, int, int]
    batch_size: int
    description: dict = field(default_factory=dict)

    @property
    def color_mode(self) -> str:
        return "grayscale" if self.input_shape[-1] == 1 else "rgb"


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``.

    On any exception (including KeyboardInterrupt) the temporary file is removed and
    ``path`` keeps its previous content.
    """
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


def _array_pipeline(x: np.ndarray, y: np.ndarray, batch_size: int, shuffle_seed: int | None) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices((x, y.astype(np.int32))).cache()
    if shuffle_seed is not None:
        ds = ds.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def prepare_builtin(
    name: str,
    *,
    batch_size: int = 128,
    validation_fraction: float = 0.2,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
) -> PreparedData:
    """Pipelines for a built-in data set: its training split divided into training and
    validation by a seeded random fraction, its test split kept for the final evaluation.

    Raises:
        DatasetError: unknown or unavailable data set, or too few images to split.
    """
    data = load_builtin(name, data_dir)
    x, y = data.x_train, data.y_train
    if limit is not None:
        x, y = x[:limit], y[:limit]
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = max(1, round(len(x) * validation_fraction))
    if len(x) - n_val < 1:
        raise DatasetError(f"Only {len(x)} training images: too few to hold out a validation split.")
    val_idx, train_idx = order[:n_val], order[n_val:]
    return PreparedData(
        train=_array_pipeline(x[train_idx], y[train_idx], batch_size, seed),
        validation=_array_pipeline(x[val_idx], y[val_idx], 512, None),
        test=_array_pipeline(data.x_test, data.y_test, 512, None),
        class_names=data.class_names,
        input_shape=data.input_shape,
        batch_size=batch_size,
        description={
            "dataset": data.name,
            "data_source": data.source,
            "split": {
                "train": len(train_idx),
                "validation": len(val_idx),
                "test": len(data.x_test),
                "validation_fraction": validation_fraction,
                "seed": seed,
            },
        },
    )


def prepare_folder(
    train_dir: str | os.PathLike,
    *,
    image_size: tuple[int, int] = (150, 150),
    color_mode: str = "rgb",
    batch_size: int = 32,
    validation_fraction: float = 0.2,
    val_dir: str | os.PathLike | None = None,
    test_dir: str | os.PathLike | None = None,
    seed: int = 0,
    report: Callable[[str], object] = print,
) -> PreparedData:
    """Pipelines for a folder of class subfolders (``train_dir/<class>/*.jpg``).

    Every file is checked first; the scan report (bad files skipped with their reason,
    empty classes, class imbalance) goes to ``report``. Validation comes from ``val_dir``
    or from a seeded, stratified ``validation_fraction`` of ``train_dir``; ``test_dir``
    is optional and must have the same classes.

    Raises:
        DatasetError: missing folder, fewer than two classes, a class folder without a
            readable image, or mismatched classes between the folders.
    """
    from training.folders import make_dataset, scan_folder, split_files

    if color_mode not in ("rgb", "grayscale"):
        raise ValueError(f"color mode must be 'rgb' or 'grayscale', got {color_mode!r}.")
    channels = 1 if color_mode == "grayscale" else 3
    scan = scan_folder(train_dir)
    report(scan.summary())
    if scan.empty_classes:
        raise DatasetError(
            f"Class folder(s) without a readable image in {scan.root}: {', '.join(scan.empty_classes)}. "
            "Add images or remove the folder(s)."
        )
    if val_dir is not None:
        val_scan = scan_folder(val_dir, class_names=list(scan.class_names))
        report(val_scan.summary())
        train_files, val_files = list(scan.files), list(val_scan.files)
    else:
        train_files, val_files = split_files(list(scan.files), validation_fraction, seed)
    if not val_files:
        raise DatasetError(f"No image left for validation in {scan.root}; add images or pass --val-dir.")
    test_files = None
    if test_dir is not None:
        test_scan = scan_folder(test_dir, class_names=list(scan.class_names))
        report(test_scan.summary())
        test_files = list(test_scan.files)
    h, w = image_size
    return PreparedData(
        train=make_dataset(train_files, (h, w), channels, batch_size, shuffle_seed=seed),
        validation=make_dataset(val_files, (h, w), channels, batch_size, shuffle_seed=None),
        test=make_dataset(test_files, (h, w), channels, batch_size, shuffle_seed=None) if test_files else None,
        class_names=tuple(scan.class_names),
        input_shape=(h, w, channels),
        batch_size=batch_size,
        description={
            "dataset": Path(train_dir).resolve().name,
            "data_source": str(Path(train_dir).resolve()),
            "split": {
                "train": len(train_files),
                "validation": len(val_files),
                "test": len(test_files) if test_files else 0,
                "validation_fraction": None if val_dir is not None else validation_fraction,
                "validation_dir": str(val_dir) if val_dir is not None else None,
                "test_dir": str(test_dir) if test_dir is not None else None,
                "seed": seed,
                "bad_files_skipped": len(scan.bad_files),
            },
        },
    )


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


class Checkpoints(keras.callbacks.Callback):
    """Atomic checkpoints after every epoch: ``last.keras`` (with optimizer state) and the
    run state (epoch, history, best validation loss, time) in ``state.json``; ``best.keras``
    whenever the validation loss improves."""

    def __init__(self, folder: Path, state: dict):
        super().__init__()
        self.folder = folder
        self.state = state
        self._epoch_start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        for k, v in logs.items():
            self.state["history"].setdefault(k, []).append(float(v))
        self.state["epoch"] = epoch + 1
        self.state["training_time_s"] += time.perf_counter() - self._epoch_start
        val_loss = logs.get("val_loss")
        if val_loss is not None and np.isfinite(val_loss) and val_loss < self.state.get("best_val_loss", np.inf):
            self.state["best_val_loss"] = float(val_loss)
            self.state["best_epoch"] = epoch + 1
            atomic_write(self.folder / "best.keras", self.model.save)
        atomic_write(self.folder / "last.keras", self.model.save)
        atomic_write(self.folder / "state.json", lambda p: p.write_text(json.dumps(self.state, indent=1)))


def checkpoint_folder(out: Path) -> Path:
    """Where the checkpoints of a run writing ``out`` live: ``.<stem>.checkpoints/`` beside it."""
    return out.parent / f".{out.stem}.checkpoints"


def plot_history(history: dict[str, list[float]], title: str = ""):
    """Loss and accuracy per epoch, training and validation, side by side.

    Args:
        history: Keras ``History.history``: ``{"loss": [...], "val_loss": [...], "accuracy": [...], ...}``.
        title: the figure's title.

    Returns:
        A ``matplotlib.figure.Figure`` (not attached to pyplot).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.8), layout="constrained")
    for ax, metric in zip(fig.subplots(1, 2), ("loss", "accuracy"), strict=True):
        for key, style in ((metric, "-o"), (f"val_{metric}", "-s")):
            if key in history:
                epochs = np.arange(1, len(history[key]) + 1)
                ax.plot(epochs, history[key], style, markersize=4, label="validation" if "val" in key else "training")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title)
    return fig


def build_model(
    architecture: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    dropout: float | None = None,
    n_dense: int | None = None,
    augmentation: dict | None = None,
    seed: int = 0,
    **arch_kwargs,
) -> keras.Model:
    """Build an (uncompiled) model from the registry with optional augmentation layers."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {architecture!r}. Choose one of: {', '.join(ARCHITECTURES)}.")
    kwargs = dict(arch_kwargs)
    if dropout is not None:
        kwargs["dropout"] = dropout
    if n_dense is not None:
        kwargs["n_dense"] = n_dense
    aug = augmentation_layers(**(augmentation or {}), seed=seed)
    if aug:
        kwargs["augmentation"] = aug
    return ARCHITECTURES[architecture](tuple(input_shape), num_classes, **kwargs)


def compile_model(model: keras.Model, num_classes: int, optimizer: str = "adam", learning_rate: float = 1e-3) -> None:
    """Compile with the named optimizer, the loss for the number of classes and accuracy."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {optimizer!r}. Choose one of: {', '.join(OPTIMIZERS)}.")
    model.compile(
        optimizer=OPTIMIZERS[optimizer](learning_rate=learning_rate),
        loss=loss_for(num_classes),
        metrics=["accuracy"],
    )


def _check_args(out: Path, epochs: int, learning_rate: float) -> None:
    if out.suffix != ".keras":
        raise ValueError(f"--out must end in .keras, got {out}.")
    if epochs < 1 or learning_rate <= 0:
        raise ValueError("epochs must be at least 1 and the learning rate positive.")


def train(
    data: PreparedData,
    out: str | os.PathLike,
    *,
    architecture: str = "small_cnn",
    epochs: int = 10,
    optimizer: str = "adam",
    learning_rate: float = 1e-3,
    dropout: float | None = None,
    n_dense: int | None = None,
    augmentation: dict | None = None,
    patience: int = 3,
    reduce_lr_patience: int = 2,
    seed: int = 0,
    resume: bool = False,
    max_minutes: float | None = None,
    arch_kwargs: dict | None = None,
    hyperparameter_search: dict | None = None,
    verbose: int | str = 1,
) -> TrainingResult:
    """Train a classifier on prepared data; write ``out``, its card and its curves PNG.

    The weights kept are those of the epoch with the lowest validation loss. Early
    stopping watches the validation loss (``patience`` epochs; 0 turns it off).

    Args:
        data: from :func:`prepare_builtin` or :func:`prepare_folder`.
        out: the ``.keras`` path; the card is ``out.with_suffix('.json')`` and the curves
            ``<stem>_history.png`` beside it.
        architecture: a key of ``training.architectures.ARCHITECTURES``.
        epochs: the last epoch to reach (>= 1), counting epochs of a resumed run.
        optimizer: ``"adam"``, ``"sgd"`` or ``"rmsprop"``.
        learning_rate: > 0.
        dropout, n_dense: override the architecture's defaults.
        augmentation: ``{"rotation": .., "shift": .., "zoom": .., "flip": ..}`` for
            ``augmentation_layers``; active only in training.
        patience: early-stopping patience in epochs; 0 for none.
        reduce_lr_patience: halve the learning rate after this many epochs without a lower
            validation loss (``ReduceLROnPlateau``); 0 for a constant rate.
        seed: seeds Python, NumPy and TensorFlow (weights, dropout, augmentation).
        resume: continue from the last checkpoint of a run writing the same ``out``.
        max_minutes: training-time budget; no epoch starts that is predicted to end past it.
        arch_kwargs: extra builder arguments (transfer: ``base``, ``weights``, ``fine_tune_layers``).
        hyperparameter_search: recorded in the card when the run refits a grid's best.
        verbose: Keras ``fit`` verbosity (1: progress bar).

    Returns:
        A :class:`TrainingResult`.

    Raises:
        ValueError: bad argument, or ``resume`` without a checkpoint.
        training.architectures.WeightsError: pretrained weights unavailable.
    """
    out = Path(out)
    _check_args(out, epochs, learning_rate)
    folder = checkpoint_folder(out)
    num_classes = len(data.class_names)
    settings = {
        "architecture": architecture,
        "optimizer": optimizer,
        "learning_rate": learning_rate,
        "dropout": dropout,
        "n_dense": n_dense,
        "augmentation": augmentation or {},
        "arch_kwargs": arch_kwargs or {},
        "seed": seed,
        "input_shape": list(data.input_shape),
        "class_names": list(data.class_names),
    }
    if resume:
        state_path = folder / "state.json"
        if not (state_path.is_file() and (folder / "last.keras").is_file()):
            raise ValueError(f"Nothing to resume: no checkpoint in {folder}. Run without --resume to start.")
        state = json.loads(state_path.read_text())
        if state["settings"] != settings:
            changed = sorted(k for k in settings if state["settings"].get(k) != settings[k])
            raise ValueError(
                f"The checkpoint in {folder} was made with different settings ({', '.join(changed)}); "
                "resume with the same arguments, or start afresh without --resume."
            )
        model = keras.saving.load_model(folder / "last.keras", safe_mode=True)
        keras.utils.set_random_seed(seed + state["epoch"])
    else:
        if folder.exists():
            shutil.rmtree(folder)
        keras.utils.set_random_seed(seed)
        model = build_model(
            architecture,
            data.input_shape,
            num_classes,
            dropout=dropout,
            n_dense=n_dense,
            augmentation=augmentation,
            seed=seed,
            **(arch_kwargs or {}),
        )
        compile_model(model, num_classes, optimizer, learning_rate)
        state = {"settings": settings, "epoch": 0, "history": {}, "training_time_s": 0.0}

    callbacks: list[keras.callbacks.Callback] = [Checkpoints(folder, state)]
    if patience > 0:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience))
    if reduce_lr_patience > 0:
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=reduce_lr_patience, verbose=1)
        )
    time_limit = TimeLimit(max_minutes * 60) if max_minutes else None
    if time_limit:
        callbacks.append(time_limit)
    if state["epoch"] < epochs:
        model.fit(
            data.train,
            validation_data=data.validation,
            epochs=epochs,
            initial_epoch=state["epoch"],
            callbacks=callbacks,
            shuffle=False,  # the tf.data pipeline shuffles, seeded, every epoch
            verbose=verbose,
        )
    if (folder / "best.keras").is_file():
        model.set_weights(keras.saving.load_model(folder / "best.keras", safe_mode=True).get_weights())

    test_loss = test_acc = None
    if data.test is not None:
        test_loss, test_acc = (float(v) for v in model.evaluate(data.test, verbose=0))
    hist = state["history"]
    best_epoch = state.get("best_epoch", state["epoch"])
    val_acc = float(hist.get("val_accuracy", [np.nan])[best_epoch - 1]) if hist.get("val_accuracy") else float("nan")
    card = {
        "name": out.stem,
        "architecture": architecture,
        "class_names": list(data.class_names),
        "input_shape": list(data.input_shape),
        "color_mode": data.color_mode,
        "preprocessing": "raw",  # explain.preprocessing's mode name: the model rescales itself
        "preprocessing_note": "Inside the model (its first layers): feed raw pixels in [0, 255].",
        "output": "sigmoid, probability of class_names[1]" if num_classes == 2 else "softmax over class_names",
        **data.description,
        "hyperparameters": {
            "optimizer": optimizer,
            "learning_rate": learning_rate,
            "dropout": dropout,
            "n_dense": n_dense,
            "batch_size": data.batch_size,
            "max_epochs": epochs,
            "early_stopping": f"val_loss, patience {patience}" if patience else None,
            "reduce_lr_on_plateau": f"val_loss, factor 0.5, patience {reduce_lr_patience}"
            if reduce_lr_patience
            else None,
            "augmentation": augmentation or {},
            "max_minutes": max_minutes,
            **(arch_kwargs or {}),
        },
        "hyperparameter_search": hyperparameter_search,
        "epochs_run": state["epoch"],
        "best_epoch": best_epoch,
        "stopped_by_time_limit": bool(time_limit and time_limit.stopped),
        "history": hist,
        "validation_metrics": {"accuracy": val_acc, "loss": state.get("best_val_loss")},
        "test_metrics": {"accuracy": test_acc, "loss": test_loss} if test_acc is not None else None,
        "training_time_s": round(state["training_time_s"], 1),
        "versions": {"keras": keras.__version__, "tensorflow": tf.__version__, "python": platform.python_version()},
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    card_path = out.with_suffix(".json")
    curves_path = out.parent / f"{out.stem}_history.png"
    # Save for inference: without the augmentation layers (in Keras 3 a bare model(x) would
    # augment) and without the optimizer state (two thirds of the file).
    inference_model = strip_augmentation(model)
    fig = plot_history(hist, f"{out.stem}: {architecture} on {data.description.get('dataset')}")
    atomic_write(out, inference_model.save)
    atomic_write(card_path, lambda p: p.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", "utf-8"))
    atomic_write(curves_path, lambda p: fig.savefig(p, format="png", dpi=110))
    shutil.rmtree(folder, ignore_errors=True)
    return TrainingResult(
        out, card_path, curves_path, test_acc, test_loss, val_acc, state["epoch"], card["training_time_s"]
    )
