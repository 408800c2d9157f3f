"""What the map-scoring metrics share: reading the maps, finding the flat ones, refusing
a batch where every map is flat, and picking one class score."""

from __future__ import annotations

import numpy as np

from explain.attribution.base import Attribution, normalize_maps
from explain.models.scores import ScoreHead, score_head
from explain.render.display import Displayable


class PerImageScores(Displayable):
    """Mixin of the metrics' results: a table with a row per image (its class, then the columns
    :meth:`_columns` names), so a notebook shows the numbers under the curves."""

    def _columns(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def table(self):
        """``(headers, rows)``: per image, its index, class index, flat, and the metric's values."""
        columns = self._columns()
        headers = ["image", "class_index", "flat", *columns]
        rows = [
            [i, int(self.class_index[i]), bool(self.flat[i]), *(float(v[i]) for v in columns.values())]
            for i in range(len(self.class_index))
        ]
        return headers, rows


def unpack_maps(heatmaps, class_index) -> tuple[np.ndarray, object, str | None]:
    """``(maps, class_index, method name or None)`` from an array or an :class:`Attribution`.

    An Attribution gives its ``heatmap``, its method's name and, where ``class_index`` is
    None, the classes it explained (a map is scored for the class it explains)."""
    if isinstance(heatmaps, Attribution):
        cls = heatmaps.class_index if class_index is None else class_index
        return np.asarray(heatmaps.heatmap), cls, heatmaps.method
    return np.asarray(heatmaps), class_index, None


def _checked_heatmaps(heatmaps: np.ndarray, x: np.ndarray) -> np.ndarray:
    """float64 ``(N, H, W)`` heatmaps, or a ValueError when they do not match the images."""
    maps = np.asarray(heatmaps, dtype=np.float64)
    if maps.ndim == 2:
        maps = maps[None]
    if maps.shape != x.shape[:3]:
        raise ValueError(
            f"Heatmaps of shape {maps.shape} do not match images of shape {x.shape}: expected {x.shape[:3]}."
        )
    return maps


def checked_maps(heatmaps, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(maps float64 (N, H, W) with non-finite values set to 0, flat bool (N,))``.

    Flat: constant (as :func:`~explain.attribution.base.normalize_maps` decides) or with any
    non-finite value, the rule of :func:`~explain.metrics.faithfulness.deletion_insertion`.

    Raises:
        ValueError: maps whose shape is not the images' ``(N, H, W)``.
    """
    maps = _checked_heatmaps(heatmaps, x)
    finite = np.isfinite(maps)
    safe = np.where(finite, maps, 0.0)
    return safe, ~finite.all(axis=(1, 2)) | normalize_maps(safe)[1]


def read_maps(model, images, heatmaps, class_index, preprocess: str):
    """What a map-scoring metric starts from: ``(head, x, idx, maps, flat, method)``, the model's
    :class:`ScoreHead`, the checked images and classes (:meth:`ScoreHead.check_batch`), the checked maps and
    flat flags (:func:`checked_maps`) and the method's name when ``heatmaps`` is an Attribution
    (:func:`unpack_maps`).

    Raises:
        ValueError: images or maps of the wrong shape.
        ExplainError: as :meth:`ScoreHead.check_batch`.
    """
    head = score_head(model, preprocess)
    maps, class_index, method = unpack_maps(heatmaps, class_index)
    x, idx = head.check_batch(images, class_index)
    maps, flat = checked_maps(maps, x)
    return head, x, idx, maps, flat, method


def refuse_all_flat(metric: str, flat: np.ndarray, method: str | None) -> None:
    """The one-line error for a metric on a method that returned only flat maps.

    Raises:
        ValueError: every entry of ``flat`` is True.
    """
    if np.all(flat):
        whose = f"of {method} " if method else "given "
        raise ValueError(
            f"{metric}: every heatmap {whose}is flat (the method returned constant maps), so there is nothing "
            "to score; try another method or layer."
        )


def class_scores(head: ScoreHead, scores: np.ndarray, probabilities: np.ndarray, classes: np.ndarray, kind: str):
    """float64 ``(B,)``: each row's class ``classes[i]`` score from :meth:`ScoreHead.predict_scores`.

    ``kind="probability"``: the class probability. ``kind="logit"``: the head's score (the
    logit where the model has one, its probability where it has none); for a binary model
    class 1 is scored by the score and class 0 by its negative, as :meth:`ScoreHead.pick`.
    """
    rows = np.arange(len(classes))
    if kind == "probability":
        return probabilities[rows, classes].astype(np.float64)
    if head.binary:
        z = scores[:, 0].astype(np.float64)
        return np.where(classes == 1, z, -z)
    return scores[rows, classes].astype(np.float64)
