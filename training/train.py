"""Fit a classifier and write the ``.keras`` model, its model card and its training curves.

Every file is written atomically (temporary file, then rename), so an interrupted run never
leaves a half-written model, card or checkpoint. While training, the best epoch (lowest
validation loss) and the last epoch are checkpointed in a hidden folder beside the output;
``resume=True`` continues from the last one with its optimizer state.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from explain.io import atomic_write, save_figure
from explain.render.figures import training_curves
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
    from training.folders import make_dataset

    if color_mode not in ("rgb", "grayscale"):
        raise ValueError(f"color mode must be 'rgb' or 'grayscale', got {color_mode!r}.")
    channels = 1 if color_mode == "grayscale" else 3
    files = _folder_files(train_dir, val_dir, test_dir, validation_fraction, seed, report)
    h, w = image_size
    test = files.test
    return PreparedData(
        train=make_dataset(files.train, (h, w), channels, batch_size, shuffle_seed=seed),
        validation=make_dataset(files.validation, (h, w), channels, batch_size, shuffle_seed=None),
        test=make_dataset(test, (h, w), channels, batch_size, shuffle_seed=None) if test else None,
        class_names=files.class_names,
        input_shape=(h, w, channels),
        batch_size=batch_size,
        description={
            "dataset": Path(train_dir).resolve().name,
            "data_source": str(Path(train_dir).resolve()),
            "split": {
                "train": len(files.train),
                "validation": len(files.validation),
                "test": len(test) if test else 0,
                "validation_fraction": None if val_dir is not None else validation_fraction,
                "validation_dir": str(val_dir) if val_dir is not None else None,
                "test_dir": str(test_dir) if test_dir is not None else None,
                "seed": seed,
                "bad_files_skipped": files.bad_files,
            },
        },
    )


@dataclass(frozen=True)
class _FolderFiles:
    """The labelled files of a folder run: ``(path, label)`` lists per split."""

    class_names: tuple[str, ...]
    train: list
    validation: list
    test: list | None
    bad_files: int


def _folder_files(
    train_dir: str | os.PathLike,
    val_dir: str | os.PathLike | None,
    test_dir: str | os.PathLike | None,
    validation_fraction: float,
    seed: int,
    report: Callable[[str], object],
) -> _FolderFiles:
    """Scan the folders (reporting each scan) and divide the files into the three splits."""
    from training.folders import scan_folder, split_files

    scan = scan_folder(train_dir)
    report(scan.summary())
    if scan.empty_classes:
        raise DatasetError(
            f"Class folder(s) without a readable image in {scan.root}: {', '.join(scan.empty_classes)}. "
            "Add images or remove the folder(s)."
        )

    def scan_other(folder) -> list:
        other = scan_folder(folder, class_names=list(scan.class_names))
        report(other.summary())
        return list(other.files)

    if val_dir is not None:
        train_files, val_files = list(scan.files), scan_other(val_dir)
    else:
        train_files, val_files = split_files(list(scan.files), validation_fraction, seed)
    if not val_files:
        raise DatasetError(f"No image left for validation in {scan.root}; add images or pass --val-dir.")
    test_files = scan_other(test_dir) if test_dir is not None else None
    return _FolderFiles(tuple(scan.class_names), train_files, val_files, test_files, len(scan.bad_files))


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
    explain: dict | None = None,
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
        explain: ``{"every": N, "images": n, "tensorboard": DIR or None}``: every N epochs, Grad-CAM of n fixed
            images (a seeded, class-balanced sample of the validation split) to ``<stem>_explain/explain_gradcam.png``
            beside ``out`` and to TensorBoard (:class:`explain.callbacks.ExplainCallback`); the card records where
            (``"explain": {"strip"}``, relative to the model's folder).

    Returns:
        A :class:`TrainingResult`.

    Raises:
        ValueError: bad argument, or ``resume`` without a checkpoint.
        training.architectures.WeightsError: pretrained weights unavailable.
    """
    out = Path(out)
    _check_args(out, epochs, learning_rate)
    folder = checkpoint_folder(out)
    settings = _settings(
        data, architecture, optimizer, learning_rate, dropout, n_dense, augmentation, arch_kwargs, seed
    )
    model, state = _resume(folder, settings) if resume else _start(folder, settings)
    callbacks, time_limit = _callbacks(folder, state, patience, reduce_lr_patience, max_minutes)
    watcher = _explain_callback(out, data, explain, seed) if explain else None
    _fit(model, data, folder, state, epochs, callbacks + ([watcher] if watcher else []), verbose)
    stopped = bool(time_limit and time_limit.stopped)
    schedule = _schedule(epochs, patience, reduce_lr_patience, max_minutes, stopped, hyperparameter_search)
    card = _model_card(out.stem, data, settings, state, schedule, _test_metrics(model, data))
    if watcher is not None:
        card["explain"] = {
            "strip": f"{watcher.out.name}/explain_{watcher.method_names[0]}.png",  # beside the model file
            "tensorboard": explain.get("tensorboard"),
            "every": watcher.every, "images": len(watcher.images), "epochs": [e for e, _ in watcher.maps["gradcam"]],
        }
    card_path, curves_path = _write_outputs(out, model, card)
    shutil.rmtree(folder, ignore_errors=True)
    return _result(out, card_path, curves_path, card)


def validation_sample(data: PreparedData, n: int, seed: int) -> np.ndarray:
    """A seeded, class-balanced sample of ``n`` validation images (uint8 ``(n, H, W, C)``, fewer if the split is
    smaller), in validation order: as even a share of each class as the split allows."""
    images, labels = [], []
    for x, y in data.validation:
        images.append(np.asarray(x))
        labels.append(np.asarray(y).reshape(-1))
    x, y = np.concatenate(images), np.concatenate(labels)
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(y == c)) for c in range(len(data.class_names))]
    chosen: list[int] = []
    for k in range(max((len(p) for p in per_class), default=0)):
        chosen += [int(p[k]) for p in per_class if k < len(p)]
        if len(chosen) >= n:
            break
    return x[np.sort(chosen[:n])]


def _explain_callback(out: Path, data: PreparedData, explain: dict, seed: int):
    """The :class:`explain.callbacks.ExplainCallback` of ``train(explain=...)``: Grad-CAM of a validation sample."""
    from explain.callbacks import ExplainCallback

    images = validation_sample(data, int(explain.get("images", 8)), seed)
    return ExplainCallback(
        images, methods=("gradcam",), every=int(explain["every"]), log_dir=explain.get("tensorboard"),
        out=out.parent / f"{out.stem}_explain", class_names=data.class_names,
    )


def _schedule(
    epochs: int,
    patience: int,
    reduce_lr_patience: int,
    max_minutes: float | None,
    stopped_by_time_limit: bool,
    hyperparameter_search: dict | None,
) -> dict:
    """How the run was scheduled and stopped, as the model card records it."""
    return {
        "max_epochs": epochs,
        "early_stopping": f"val_loss, patience {patience}" if patience else None,
        "reduce_lr_on_plateau": f"val_loss, factor 0.5, patience {reduce_lr_patience}" if reduce_lr_patience else None,
        "max_minutes": max_minutes,
        "stopped_by_time_limit": stopped_by_time_limit,
        "hyperparameter_search": hyperparameter_search,
    }


def _result(out: Path, card_path: Path, curves_path: Path, card: dict) -> TrainingResult:
    """The :class:`TrainingResult` of a run, read off its model card."""
    test = card["test_metrics"] or {}
    return TrainingResult(
        model_path=out,
        card_path=card_path,
        curves_path=curves_path,
        test_accuracy=test.get("accuracy"),
        test_loss=test.get("loss"),
        val_accuracy=card["validation_metrics"]["accuracy"],
        epochs_run=card["epochs_run"],
        training_time_s=card["training_time_s"],
    )


def _settings(
    data: PreparedData,
    architecture: str,
    optimizer: str,
    learning_rate: float,
    dropout: float | None,
    n_dense: int | None,
    augmentation: dict | None,
    arch_kwargs: dict | None,
    seed: int,
) -> dict:
    """What defines a run: a checkpoint resumes only under the same settings (JSON-ready)."""
    return {
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


def _resume(folder: Path, settings: dict) -> tuple[keras.Model, dict]:
    """The model (with its optimizer state) and run state of the last checkpoint in ``folder``.

    Raises:
        ValueError: no checkpoint, or one made with other ``settings``.
    """
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
    keras.utils.set_random_seed(settings["seed"] + state["epoch"])
    return model, state


def _start(folder: Path, settings: dict) -> tuple[keras.Model, dict]:
    """A fresh, seeded, compiled model and an empty run state; old checkpoints are removed."""
    if folder.exists():
        shutil.rmtree(folder)
    keras.utils.set_random_seed(settings["seed"])
    num_classes = len(settings["class_names"])
    model = build_model(
        settings["architecture"],
        tuple(settings["input_shape"]),
        num_classes,
        dropout=settings["dropout"],
        n_dense=settings["n_dense"],
        augmentation=settings["augmentation"],
        seed=settings["seed"],
        **settings["arch_kwargs"],
    )
    compile_model(model, num_classes, settings["optimizer"], settings["learning_rate"])
    return model, {"settings": settings, "epoch": 0, "history": {}, "training_time_s": 0.0}


def _callbacks(
    folder: Path, state: dict, patience: int, reduce_lr_patience: int, max_minutes: float | None
) -> tuple[list[keras.callbacks.Callback], TimeLimit | None]:
    """Checkpoints, early stopping, learning-rate halving and the time limit (each when on)."""
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
    return callbacks, time_limit


def _fit(
    model: keras.Model,
    data: PreparedData,
    folder: Path,
    state: dict,
    epochs: int,
    callbacks: list[keras.callbacks.Callback],
    verbose: int | str,
) -> None:
    """Train up to epoch ``epochs`` from the state's epoch, then keep the best epoch's weights."""
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


def _test_metrics(model: keras.Model, data: PreparedData) -> dict | None:
    """``{"accuracy": .., "loss": ..}`` on the test split, or None without one."""
    if data.test is None:
        return None
    test_loss, test_acc = (float(v) for v in model.evaluate(data.test, verbose=0))
    return {"accuracy": test_acc, "loss": test_loss}


def _model_card(
    name: str, data: PreparedData, settings: dict, state: dict, schedule: dict, test_metrics: dict | None
) -> dict:
    """The model card written beside the ``.keras`` file (a JSON-ready dict).

    Args:
        name: the model's name (the output file's stem).
        data: the prepared data (class names, input shape, batch size, description).
        settings: the run's settings as :func:`train` checkpoints them.
        state: the run state (``epoch``, ``history``, ``best_epoch``, ``best_val_loss``,
            ``training_time_s`` in seconds).
        schedule: ``max_epochs``, ``early_stopping``, ``reduce_lr_on_plateau``,
            ``max_minutes``, ``stopped_by_time_limit`` and ``hyperparameter_search``.
        test_metrics: from the test split, or None.

    Returns:
        The card; ``validation_metrics`` holds the best epoch's accuracy (NaN without
        validation accuracy) and loss.
    """
    hist = state["history"]
    best_epoch = state.get("best_epoch", state["epoch"])
    val_acc = float(hist["val_accuracy"][best_epoch - 1]) if hist.get("val_accuracy") else float("nan")
    return {
        "name": name,
        "architecture": settings["architecture"],
        "class_names": list(data.class_names),
        "input_shape": list(data.input_shape),
        "color_mode": data.color_mode,
        "preprocessing": "raw",  # explain.models.preprocessing's mode name: the model rescales itself
        "preprocessing_note": "Inside the model (its first layers): feed raw pixels in [0, 255].",
        "output": "sigmoid, probability of class_names[1]"
        if len(data.class_names) == 2
        else "softmax over class_names",
        **data.description,
        "hyperparameters": {
            **{k: settings[k] for k in ("optimizer", "learning_rate", "dropout", "n_dense")},
            "batch_size": data.batch_size,
            **{k: schedule[k] for k in ("max_epochs", "early_stopping", "reduce_lr_on_plateau")},
            "augmentation": settings["augmentation"],
            "max_minutes": schedule["max_minutes"],
            **settings["arch_kwargs"],
        },
        "hyperparameter_search": schedule["hyperparameter_search"],
        "epochs_run": state["epoch"],
        "best_epoch": best_epoch,
        "stopped_by_time_limit": schedule["stopped_by_time_limit"],
        "history": hist,
        "validation_metrics": {"accuracy": val_acc, "loss": state.get("best_val_loss")},
        "test_metrics": test_metrics,
        "training_time_s": round(state["training_time_s"], 1),
        "versions": {"keras": keras.__version__, "tensorflow": tf.__version__, "python": platform.python_version()},
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _write_outputs(out: Path, model: keras.Model, card: dict) -> tuple[Path, Path]:
    """Write the inference model to ``out``, the card beside it and the curves PNG; return
    the card's and the curves' paths. The figure is drawn before anything is written."""
    card_path = out.with_suffix(".json")
    curves_path = out.parent / f"{out.stem}_history.png"
    # Save for inference: without the augmentation layers (in Keras 3 a bare model(x) would
    # augment) and without the optimizer state (two thirds of the file).
    inference_model = strip_augmentation(model)
    title = f"{out.stem}: {card['architecture']} on {card.get('dataset')}"
    fig = training_curves(card["history"], best_epoch=card["best_epoch"], title=title)
    atomic_write(out, inference_model.save)
    atomic_write(card_path, lambda p: p.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", "utf-8"))
    save_figure(fig, curves_path, dpi=110)
    return card_path, curves_path
