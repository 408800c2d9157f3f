"""Hyperparameter grid search (learning rate x dropout x dense units) with keras-tuner.

The tutorials' nested loops over learning rates, dropout rates and dense sizes, done by
``keras_tuner.GridSearch`` (https://keras.io/keras_tuner/api/tuners/grid/). Every
combination's best validation accuracy goes to ``<stem>_grid.csv`` and a chart
``<stem>_grid.png``; the best combination is then refitted for the full number of epochs
with :func:`training.train.train` and saved with its model card.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from explain.io import atomic_write, save_figure
from explain.render.figures import ranked_bars
from training.train import PreparedData, TrainingResult, build_model, compile_model, train

GRID_COLUMNS = ("learning_rate", "dropout", "n_dense", "val_accuracy")


@dataclass(frozen=True)
class GridResult:
    """The grid's outcome.

    Attributes:
        trials: number of combinations tried.
        rows: one dict per combination (``GRID_COLUMNS``), best first.
        best: the best combination's hyperparameters.
        csv_path, chart_path: the files written.
        training: the refit of the best combination.
    """

    trials: int
    rows: tuple[dict, ...]
    best: dict
    csv_path: Path
    chart_path: Path
    training: TrainingResult


def plot_grid(rows: list[dict], title: str = ""):
    """Horizontal bars of validation accuracy per combination, best on top and highlighted.

    Returns:
        A ``matplotlib.figure.Figure`` (:func:`explain.render.figures.ranked_bars`).
    """
    labels = [f"lr={r['learning_rate']:g}  dropout={r['dropout']:g}  dense={r['n_dense']}" for r in rows]
    values = [r["val_accuracy"] for r in rows]
    return ranked_bars(labels, values, title=title or "Hyperparameter grid", xlabel="best validation accuracy")


def grid_search(
    data: PreparedData,
    out: str | os.PathLike,
    *,
    learning_rates: list[float],
    dropouts: list[float],
    dense_units: list[int],
    trial_epochs: int = 3,
    architecture: str = "small_cnn",
    epochs: int = 10,
    optimizer: str = "adam",
    augmentation: dict | None = None,
    patience: int = 3,
    reduce_lr_patience: int = 2,
    seed: int = 0,
    max_minutes: float | None = None,
    arch_kwargs: dict | None = None,
    verbose: int | str = 1,
) -> GridResult:
    """Try every (learning rate, dropout, dense units) combination, then refit the best.

    Args:
        data: prepared pipelines (validation scores the combinations).
        out: the best model's ``.keras`` path.
        learning_rates, dropouts, dense_units: the grid's axes (non-empty).
        trial_epochs: epochs per combination.
        architecture ... arch_kwargs: as :func:`training.train.train`; ``epochs``,
            ``patience`` and ``max_minutes`` apply to the refit.
        verbose: Keras verbosity.

    Returns:
        A :class:`GridResult`.

    Raises:
        ValueError: an empty axis, or an architecture without dropout / dense settings.
    """
    out = Path(out)
    if not (learning_rates and dropouts and dense_units):
        raise ValueError("Each grid axis needs at least one value (--learning-rates, --dropouts, --dense-units).")
    fixed = {"architecture": architecture, "optimizer": optimizer, "augmentation": augmentation}
    fixed |= {"seed": seed, "arch_kwargs": arch_kwargs}  # the same in every trial and in the refit
    grid = {"learning_rate": learning_rates, "dropout": dropouts, "n_dense": [int(n) for n in dense_units]}
    rows = _search(data, out, grid, fixed, trial_epochs, verbose)
    best = {k: rows[0][k] for k in ("learning_rate", "dropout", "n_dense")}
    expected = len(list(itertools.product(learning_rates, dropouts, dense_units)))
    title = f"{architecture}: {len(rows)} of {expected} combinations, {trial_epochs} epochs each"
    csv_path, chart_path = _write_grid(rows, out, title)
    training = train(
        data,
        out,
        epochs=epochs,
        patience=patience,
        reduce_lr_patience=reduce_lr_patience,
        max_minutes=max_minutes,
        hyperparameter_search={"grid": rows, "trial_epochs": trial_epochs, "tool": "keras_tuner.GridSearch"},
        verbose=verbose,
        **fixed,
        **best,
    )
    return GridResult(len(rows), tuple(rows), best, csv_path, chart_path, training)


def _search(
    data: PreparedData, out: Path, grid: dict[str, list], fixed: dict, trial_epochs: int, verbose: int | str
) -> list[dict]:
    """Fit every combination of ``grid`` for ``trial_epochs`` (tuner files in a temporary
    folder beside ``out``); one row per finished combination, best validation accuracy first.
    ``fixed`` holds the other :func:`training.train.train` settings (architecture, optimizer,
    augmentation, seed, arch_kwargs).

    Raises:
        ValueError: no combination finished.
    """
    import keras_tuner as kt

    num_classes = len(data.class_names)
    arch_kwargs = fixed["arch_kwargs"] or {}

    def build(hp):
        net = build_model(
            fixed["architecture"],
            data.input_shape,
            num_classes,
            dropout=hp.Choice("dropout", list(grid["dropout"])),
            n_dense=hp.Choice("n_dense", grid["n_dense"]),
            augmentation=fixed["augmentation"],
            seed=fixed["seed"],
            **arch_kwargs,
        )
        compile_model(net, num_classes, fixed["optimizer"], hp.Choice("learning_rate", list(grid["learning_rate"])))
        return net

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.stem}.tuner.", dir=out.parent) as tmp:
        tuner = kt.GridSearch(
            build, objective="val_accuracy", seed=fixed["seed"], directory=tmp, project_name="grid", overwrite=True
        )
        tuner.search(data.train, validation_data=data.validation, epochs=trial_epochs, shuffle=False, verbose=verbose)
        trials = [t for t in tuner.oracle.trials.values() if t.score is not None]
        rows = [{**_row(t.hyperparameters.values), "val_accuracy": float(t.score)} for t in trials]
    if not rows:
        raise ValueError("No grid combination finished training; see the messages above.")
    return sorted(rows, key=lambda r: -r["val_accuracy"])


def _row(hp: dict) -> dict:
    return {"learning_rate": float(hp["learning_rate"]), "dropout": float(hp["dropout"]), "n_dense": int(hp["n_dense"])}


def _write_grid(rows: list[dict], out: Path, title: str) -> tuple[Path, Path]:
    """Write ``<stem>_grid.csv`` (``GRID_COLUMNS``) and the chart ``<stem>_grid.png`` beside ``out``."""
    csv_path = out.parent / f"{out.stem}_grid.csv"
    chart_path = out.parent / f"{out.stem}_grid.png"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=GRID_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(csv_path, lambda p: p.write_text(buf.getvalue(), encoding="utf-8"))
    save_figure(plot_grid(rows, title), chart_path, dpi=110)
    return csv_path, chart_path
