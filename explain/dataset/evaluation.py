"""Predictions over a whole data set: per-class accuracy, confusion matrix, misclassified examples.

The data come from the data layer (:mod:`explain.data`): a folder of class subfolders or a
built-in split (``fashion_mnist:test``, ``mnist:test``, ``cifar10:test``, and the ``:train``
splits), read in order and in batches, so memory stays bounded by the batch size whatever the
number of images. The data layer's names (``open_data``, ``FolderSource``, ``match_classes``,
...) are re-exported here, so ``from explain.dataset.evaluation import FolderSource`` keeps working.

Typical use::

    source = open_data("fashion_mnist:test")
    result = evaluate_model(model, source, card.class_names, batch_size=256)
    print(f"{result.accuracy:.1%}")
    for c in top_confusions(result, 5):
        print(c)            # "Shirt predicted as T-shirt/top: 117 images"

Every problem with the data is raised as :class:`~explain.errors.DataError` with one line that
says what was wrong and how to fix it.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from explain._quiet import quiet_import
from explain.data import (
    BUILTIN_CLASSES,
    CIFAR10_FILES,
    FASHION_MNIST_DIRS,
    IDX_FILES,
    SPLIT_FOLDER_NAMES,
    SPLITS,
    ArraySource,
    DataSource,
    FolderListing,
    FolderSource,
    list_class_folders,
    load_builtin_split,
    match_classes,
    open_data,
    read_cifar_batch,
    read_idx,
)
from explain.data.sources import quoted_names
from explain.errors import DataError
from explain.models.card import load_model_card
from explain.models.scores import ScoreHead, score_head
from explain.render.display import Displayable

quiet_import()
import keras  # noqa: E402

__all__ = [
    "BUILTIN_CLASSES",
    "CIFAR10_FILES",
    "FASHION_MNIST_DIRS",
    "IDX_FILES",
    "SPLITS",
    "SPLIT_FOLDER_NAMES",
    "ArraySource",
    "Confusion",
    "DataSource",
    "Evaluation",
    "FolderListing",
    "FolderSource",
    "classification_metrics",
    "evaluate_model",
    "evaluation_from_predictions",
    "list_class_folders",
    "load_builtin_split",
    "load_rows",
    "match_classes",
    "misclassified",
    "model_input_size",
    "open_data",
    "read_cifar_batch",
    "read_idx",
    "top_confusions",
]


# -- evaluation --------------------------------------------------------------------------
@dataclass(frozen=True)
class Evaluation(Displayable):
    """A model's predictions over a data set, and what follows from them. In a notebook it shows its
    per-class accuracy and confusion matrix, above a table of each class's accuracy and support.

    Attributes:
        y_true: int64 ``(N,)``, each image's true class (an index into ``class_names``).
        y_pred: int64 ``(N,)``, each image's top prediction.
        top_k_classes: int64 ``(N, k)``, the ``k`` most probable classes, most probable first
            (``top_k_classes[:, 0] == y_pred``).
        top_k_probabilities: float32 ``(N, k)`` in [0, 1], their probabilities.
        class_names: the model's classes, one per output (two for a single sigmoid output).
        confusion: int64 ``(C, C)``: ``confusion[t, p]`` images of true class ``t`` predicted
            as ``p`` (rows = true class); sums to N.
        per_class_accuracy: float64 ``(C,)`` in [0, 1]: the share of each class's images
            predicted correctly (its recall); NaN for a class without images.
        image_ids: N labels (file paths relative to the folder, or ``"fashion_mnist:test #17"``).
        source_indices: int64 ``(N,)``: each image's index in the data source (to read it again).
        data: what the data were (``DataSource.name``).
        skipped: ``(image id, reason)`` for each file that could not be read.
        notes: what a user should know (empty classes, skipped files, how classes were matched).
        outputs_probabilities: False when the model's outputs are logits (decided once from its
            last layer, :mod:`explain.models.scores`) and softmax or sigmoid was applied to them.
    """

    y_true: np.ndarray
    y_pred: np.ndarray
    top_k_classes: np.ndarray
    top_k_probabilities: np.ndarray
    class_names: tuple[str, ...]
    confusion: np.ndarray
    per_class_accuracy: np.ndarray
    image_ids: tuple[str, ...]
    source_indices: np.ndarray
    data: str = ""
    skipped: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = ()
    outputs_probabilities: bool = True

    @property
    def num_images(self) -> int:
        """N, the number of images evaluated (skipped files not counted)."""
        return len(self.y_true)

    def figure(self, ax=None):
        """Per-class accuracy (worst first) beside the confusion matrix, row-normalised
        (:func:`explain.render.figures.per_class_accuracy_chart`,
        :func:`~explain.render.figures.confusion_matrix_figure`).

        Args:
            ax: axes for the confusion matrix alone; None makes a figure with both panels.

        Returns:
            A ``matplotlib.figure.Figure``.
        """
        from explain.render.figures import confusion_matrix_figure, panel_figure, per_class_accuracy_chart

        names = self.class_names
        if ax is not None:
            return confusion_matrix_figure(self.confusion, names, normalize="true", ax=ax)
        side = max(4.5, 0.35 * len(names) + 2.5)
        title = f"{self.data or 'Evaluation'}: accuracy {self.accuracy:.1%} on {self.num_images:,} images"
        fig, (left, right) = panel_figure(2, panel_size=(side + 0.5, side), title=title)
        per_class_accuracy_chart(self.per_class_accuracy, names, support=self.support, overall=self.accuracy, ax=left)
        confusion_matrix_figure(
            self.confusion, names, normalize="true", title="Confusion matrix (share of each row)", ax=right
        )
        return fig

    def table(self):
        """``(headers, rows)``: each class's name, images and accuracy."""
        rows = zip(self.class_names, self.support, self.per_class_accuracy, strict=True)
        return ["class", "images", "accuracy"], [[n, int(s), float(a)] for n, s, a in rows]

    @property
    def accuracy(self) -> float:
        """The share of images whose top prediction is the true class, in [0, 1]."""
        return float(np.mean(self.y_true == self.y_pred)) if len(self.y_true) else math.nan

    @property
    def support(self) -> np.ndarray:
        """int64 ``(C,)``: images per true class."""
        return self.confusion.sum(axis=1)

    @property
    def classes_without_images(self) -> tuple[str, ...]:
        """The classes with no image in the data (empty or missing folder)."""
        return tuple(n for n, s in zip(self.class_names, self.support, strict=True) if s == 0)


def evaluation_from_predictions(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    class_names: Sequence[str],
    *,
    top_k: int = 5,
    image_ids: Sequence[str] | None = None,
    source_indices: np.ndarray | None = None,
    data: str = "",
    skipped: Sequence[tuple[str, str]] = (),
    notes: Sequence[str] = (),
    outputs_probabilities: bool = True,
) -> Evaluation:
    """Build an :class:`Evaluation` from labels and class probabilities already computed.

    Args:
        y_true: int ``(N,)`` in ``[0, C)``.
        probabilities: float ``(N, C)`` in [0, 1]; ties go to the lower class index.
        class_names: C names.
        top_k: how many top classes to keep per image (clipped to C).
        image_ids, source_indices: per image; default ``"#i"`` and ``0..N-1``.
        data, skipped, notes, outputs_probabilities: copied into the result.

    Returns:
        The :class:`Evaluation` (confusion matrix from ``sklearn.metrics.confusion_matrix``).

    Raises:
        ValueError: shapes that do not match, or labels out of range.
    """
    y_true = np.asarray(y_true).reshape(-1).astype(np.int64)
    p = np.asarray(probabilities, dtype=np.float32)
    c = len(class_names)
    if p.ndim != 2 or p.shape != (len(y_true), c):
        raise ValueError(f"probabilities must be (N, C) = ({len(y_true)}, {c}), got {p.shape}.")
    if len(y_true) and (y_true.min() < 0 or y_true.max() >= c):
        raise ValueError(f"y_true must be in [0, {c}), found {y_true.min()}..{y_true.max()}.")
    order, cm, per_class = _tally(y_true, p, top_k)
    n = len(y_true)
    return Evaluation(
        y_true=y_true,
        y_pred=order[:, 0],
        top_k_classes=order,
        top_k_probabilities=np.take_along_axis(p, order, axis=1),
        class_names=tuple(str(x) for x in class_names),
        confusion=cm,
        per_class_accuracy=per_class,
        image_ids=tuple(image_ids) if image_ids is not None else tuple(f"#{i}" for i in range(n)),
        source_indices=np.arange(n, dtype=np.int64) if source_indices is None else np.asarray(source_indices),
        data=data,
        skipped=tuple(skipped),
        notes=tuple(notes),
        outputs_probabilities=outputs_probabilities,
    )


def _tally(y_true: np.ndarray, p: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(int64 top-k classes (N, k), int64 confusion (C, C), float64 per-class accuracy (C,))``."""
    from sklearn.metrics import confusion_matrix

    c = p.shape[1]
    k = max(1, min(int(top_k), c))
    order = np.argsort(-p, axis=1, kind="stable")[:, :k].astype(np.int64)
    cm = confusion_matrix(y_true, order[:, 0], labels=np.arange(c)).astype(np.int64)
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)
    return order, cm, per_class.astype(np.float64)


def model_input_size(
    model: keras.Model, source: DataSource | None = None, image_size: tuple[int, int] | None = None
) -> tuple[int, int, int]:
    """The ``(height, width, channels)`` images are read at for ``model``.

    Args:
        model: a Keras image classifier.
        source: the data; a built-in split gives its own size to a model that takes any size.
        image_size: ``(height, width)`` for a model that takes any size; ignored otherwise.

    Returns:
        ``(H, W, C)``, positive ints; C is 1 or 3.

    Raises:
        DataError: the model takes any size and neither ``image_size`` nor the data give one.
        ModelLoadError: the model does not take one image input.
    """
    h, w, c = load_model_card(None, model).input_shape
    if h and w:
        return int(h), int(w), int(c)
    size = image_size or (source.image_size if source is not None else None)
    if size is None:
        raise DataError("The model accepts images of any size: give an image size (height, width) to read them at.")
    return int(size[0]), int(size[1]), int(c)


def evaluate_model(
    model: keras.Model,
    source: DataSource,
    class_names: Sequence[str] | None = None,
    *,
    batch_size: int = 256,
    top_k: int = 5,
    image_size: tuple[int, int] | None = None,
    progress: bool | Callable[[int, int], None] = True,
    preprocess: str = "raw",
) -> Evaluation:
    """Predict every image of a data set, in order and in batches, and tally the results.

    Images are read batch by batch (:meth:`DataSource.batches`), converted to the model's
    input (resized, bilinear; grayscale <-> RGB) and fed as float32 raw pixels in [0, 255]
    through the model's :class:`~explain.models.scores.ScoreHead` (one compiled forward pass); only
    ``batch_size`` images are in memory at a time. Whether the outputs are logits (softmax,
    or sigmoid for one output column, applied here) or probabilities is decided once per
    model from its last layer, never per batch, so an image's prediction does not depend on
    the batch it is in. Unreadable files are skipped and listed in ``skipped``.

    Args:
        model: a Keras classifier with one image input and one ``(batch, classes)`` output.
        source: the data (:func:`open_data`, :class:`FolderSource`, :class:`ArraySource`).
        class_names: the model's classes (its model card's ``class_names``); the data's
            classes are matched to them by name. None: the data's own classes are taken to be
            the model's outputs in order (as ``image_dataset_from_directory`` numbers sorted
            folders); their number must then equal the model's outputs.
        batch_size: images per forward pass (>= 1).
        top_k: top classes kept per image.
        image_size: ``(height, width)`` for a model that accepts any size; default the data's
            own size (built-in splits). Ignored when the model's input size is fixed.
        progress: True for a tqdm progress bar on stderr; a callable ``(images done, images in all)``
            called after each batch; False for none.
        preprocess: the model's preprocessing mode (:mod:`explain.models.preprocessing`), applied
            to the raw pixels in front of the model.

    Returns:
        An :class:`Evaluation`.

    Raises:
        DataError: data classes the model does not know; a class count that does not match
            the model without class names; no image that could be read; a model with a free
            input size and no ``image_size`` for a folder.
        ValueError: ``batch_size < 1``; class names that do not match the model's outputs;
            model outputs that are not ``(batch, classes)`` or not finite.
    """
    plan = _plan(model, source, class_names, image_size, preprocess, batch_size)
    idx, (probs,), skipped = _predict_source(plan, source, batch_size, progress)
    return _evaluation(plan, source, idx, probs, skipped, top_k)


@dataclass(frozen=True)
class _Plan:
    """How a data set is read and scored for one model (shared with :mod:`explain.dataset.embedding`)."""

    names: tuple[str, ...]  # the model's classes
    mapping: np.ndarray  # int64 data label -> model output
    notes: list[str]
    size: tuple[int, int]  # (H, W) images are read at
    channels: int
    head: ScoreHead


def _plan(model, source: DataSource, class_names, image_size, preprocess: str, batch_size: int) -> _Plan:
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    card = load_model_card(None, model)  # the input shape and the number of classes
    names, mapping, notes = _match_to_model(source, class_names, len(card.class_names))
    size = model_input_size(model, source, image_size)[:2]
    notes += _conversion_notes(source, size, card.channels)
    head = score_head(model, preprocess)  # logits or probabilities: decided once, from the last layer
    return _Plan(names, mapping, notes, size, card.channels, head)


def _evaluation(plan: _Plan, source: DataSource, idx, probs, skipped, top_k: int) -> Evaluation:
    notes = list(plan.notes)
    if skipped:
        notes.append(
            f"{len(skipped)} unreadable file{'s' if len(skipped) > 1 else ''} skipped; the first: {skipped[0][1]}"
        )
    return evaluation_from_predictions(
        plan.mapping[source.labels[idx]],
        probs,
        plan.names,
        top_k=top_k,
        image_ids=[source.image_id(i) for i in idx],
        source_indices=idx,
        data=source.name,
        skipped=skipped,
        notes=notes,
        outputs_probabilities=not plan.head.outputs_logits,
    )


def _match_to_model(
    source: DataSource, class_names: Sequence[str] | None, n_out: int
) -> tuple[tuple[str, ...], np.ndarray, list[str]]:
    """``(the model's class names, int64 data label -> model output, notes)``."""
    notes = list(source.notes)
    if class_names is None:
        if len(source.class_names) != n_out:
            raise DataError(
                f"The data have {len(source.class_names)} classes and the model has {n_out} outputs, and "
                "there are no class names to match them by: put the model card <name>.json beside the model."
            )
        names = tuple(source.class_names)
        notes.append(
            f"No class names from a model card: data class i ({quoted_names(names, 3)}) is taken to be model output i."
        )
        return names, np.arange(n_out, dtype=np.int64), notes
    names = tuple(str(c) for c in class_names)
    if len(names) != n_out:
        raise ValueError(f"{len(names)} class names for a model with {n_out} outputs.")
    mapping, missing, loose = match_classes(source.class_names, names)
    if loose:
        notes.append("Class folders matched by a looser name: " + ", ".join(f"{a!r} as {b!r}" for a, b in loose) + ".")
    if missing:
        notes.append(
            f"The data have no class {quoted_names(missing)}: no images of "
            f"{'these classes' if len(missing) > 1 else 'this class'} were evaluated."
        )
    return names, mapping, notes


def _conversion_notes(source: DataSource, size: tuple[int, int], channels: int) -> list[str]:
    """Notes on resizing and colour conversion between the data and the model's input."""
    notes = []
    if source.image_size is not None and tuple(source.image_size) != size:
        notes.append(
            f"Images resized from {source.image_size[0]}x{source.image_size[1]} to the model's input "
            f"{size[0]}x{size[1]}."
        )
    if source.channels is not None and source.channels != channels:
        kind = {1: "grayscale", 3: "RGB"}
        notes.append(f"Images converted from {kind[source.channels]} to {kind[channels]} for the model.")
    return notes


def _predict_source(
    plan: _Plan, source: DataSource, batch_size: int, progress, forward: Callable | None = None
) -> tuple[np.ndarray, list[np.ndarray], list[tuple[str, str]]]:
    """Every readable image through ``forward``, batch by batch, in order.

    Args:
        forward: ``float32 images (B, H, W, C) -> tuple of arrays (B, ...)``; default the
            class probabilities ``(B, C)`` alone.
        progress: True for a tqdm bar on stderr, False for none, or a callable
            ``(done images, total images)`` called after each batch.

    Returns:
        ``(int64 indices (N,) of the images read, forward's outputs concatenated, skipped)``.

    Raises:
        DataError: no image could be read.
        ValueError: outputs that are not finite.
    """
    from tqdm.auto import tqdm

    if forward is None:
        forward = lambda images: (plan.head.predict_probabilities(images, len(images)).astype(np.float32),)  # noqa: E731
    kept, outs, skipped = [], [], []
    quiet = progress is not True
    bar = tqdm(total=len(source), desc="Predicting", unit="img", disable=quiet, file=sys.stderr, leave=False)
    try:
        for images, idx, failures in source.batches(batch_size, plan.size, plan.channels):
            skipped += [(source.image_id(i), reason) for i, reason in failures]
            if len(idx):
                outs.append(forward(images))
                kept.append(idx)
            bar.update(len(idx) + len(failures))
            if callable(progress):
                progress(bar.n, len(source))
    finally:
        bar.close()
    if not kept:
        first = f" First: {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        raise DataError(f"None of the {len(source)} images in {source.name} could be read.{first}")
    columns = [np.concatenate([o[i] for o in outs]) for i in range(len(outs[0]))]
    return np.concatenate(kept), columns, skipped


def load_rows(
    source: DataSource, source_indices: np.ndarray, rows, size: tuple[int, int, int]
) -> tuple[np.ndarray, list[int]]:
    """Read the images of some rows of a result (an :class:`Evaluation` or an embedding) again.

    Args:
        source: the data source the result was computed on.
        source_indices: int64 ``(N,)``, the result's ``source_indices``.
        rows: which rows of the result (ints in ``[0, N)``).
        size: ``(H, W, C)`` to read them at.

    Returns:
        ``(uint8 images (B, H, W, C), the rows that could be read, in order)``; a file that can
        no longer be read is left out.
    """
    rows = [int(r) for r in rows]
    images, kept, _ = source.load(np.asarray(source_indices)[rows], size[:2], size[2])
    by_source = {int(source_indices[r]): r for r in rows}
    return images, [by_source[int(k)] for k in kept]


# -- what to look at -----------------------------------------------------------------------
@dataclass(frozen=True)
class Confusion:
    """One cell off the diagonal of the confusion matrix: images of one class predicted as another.

    Attributes:
        true_index, predicted_index: class indices.
        true_name, predicted_name: class names.
        count: how many images.
        examples: int64 ``(count,)``, the images' positions in the :class:`Evaluation`, the
            most confident wrong predictions first.
    """

    true_index: int
    predicted_index: int
    true_name: str
    predicted_name: str
    count: int
    examples: np.ndarray

    def __str__(self) -> str:
        return (
            f"{self.true_name} predicted as {self.predicted_name}: {self.count} image{'s' if self.count != 1 else ''}"
        )


def misclassified(result: Evaluation) -> np.ndarray:
    """Positions (in ``result``) of the wrongly predicted images, most confident first.

    Args:
        result: an :class:`Evaluation`.

    Returns:
        int64 ``(M,)``; ties keep the data's order.
    """
    wrong = np.flatnonzero(result.y_true != result.y_pred)
    confidence = result.top_k_probabilities[wrong, 0]
    return wrong[np.argsort(-confidence, kind="stable")].astype(np.int64)


def top_confusions(result: Evaluation, k: int = 5) -> tuple[Confusion, ...]:
    """The ``k`` most frequent confusions (true class predicted as another), most frequent first.

    Ties are broken by class index (true, then predicted). Cells with no image are never listed.

    Args:
        result: an :class:`Evaluation`.
        k: how many (>= 0).

    Returns:
        Up to ``k`` :class:`Confusion` objects.
    """
    cm = result.confusion.copy()
    np.fill_diagonal(cm, 0)
    cells = [(int(-cm[t, p]), t, p) for t, p in zip(*np.nonzero(cm), strict=True)]
    wrong = misclassified(result)
    out = []
    for neg, t, p in sorted(cells)[: max(0, int(k))]:
        examples = wrong[(result.y_true[wrong] == t) & (result.y_pred[wrong] == p)]
        out.append(Confusion(int(t), int(p), result.class_names[t], result.class_names[p], -neg, examples))
    return tuple(out)


def classification_metrics(result: Evaluation) -> dict:
    """Precision, recall and F1 per class and overall, with scikit-learn.

    ``sklearn.metrics.classification_report(..., output_dict=True)`` over every class of the
    model; a value that is undefined (precision of a class never predicted, recall of a class
    without images) is None rather than a made-up 0.

    Args:
        result: an :class:`Evaluation`.

    Returns:
        ``{"accuracy": float in [0, 1], "num_images": N, "per_class": {name: {"precision",
        "recall", "f1-score", "support"}}, "macro avg": {...}, "weighted avg": {...}}``;
        JSON-serialisable (plain floats, ints and None).
    """
    from sklearn.metrics import classification_report

    c = len(result.class_names)
    labels = list(result.class_names)
    report = classification_report(
        result.y_true,
        result.y_pred,
        labels=np.arange(c),
        target_names=labels,
        output_dict=True,
        zero_division=np.nan,
    )

    def clean(d: dict) -> dict:
        out = {}
        for key, v in d.items():
            v = float(v)
            out[key] = int(v) if key == "support" else (None if math.isnan(v) else v)
        return out

    return {
        "accuracy": result.accuracy,
        "num_images": result.num_images,
        "per_class": {name: clean(report[name]) for name in labels},
        "macro avg": clean(report["macro avg"]),
        "weighted avg": clean(report["weighted avg"]),
    }
