"""Faithfulness correlation (MuFidelity).

Bhatt, Weller & Moura 2020, "Evaluating and Aggregating Feature-based Model Explanations",
IJCAI, https://arxiv.org/abs/2005.00631 (definition 3). Defaults follow xplique's
``MuFidelity`` (https://github.com/deel-ai/xplique): a 9 x 9 grid of cells, 20% of them
removed, baseline 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explain._quiet import quiet_import
from explain.metrics._common import PerImageScores, class_scores, read_maps, refuse_all_flat
from explain.metrics.faithfulness import BASELINES, _baseline_images

quiet_import()
import keras  # noqa: E402

SCORES = ("logit", "probability")


@dataclass(frozen=True)
class MuFidelityScores(PerImageScores):
    """MuFidelity per image: does the map's mass on a set of cells predict how much the score
    drops when those cells are removed?

    Attributes:
        correlation: float64 ``(N,)`` in [-1, 1]; HIGHER is more faithful (1: the (centred)
            map's mass on every removed subset is an exact affine function of the score's drop). NaN where
            the map was flat, or where the score (or the map's mass) did not vary over the
            subsets, so that no correlation exists (xplique counts those as 0).
        flat: bool ``(N,)``: the heatmap was constant or had non-finite values; not scored.
        class_index: int64 ``(N,)``: the class whose score was tracked.
        score: ``"logit"`` or ``"probability"``: what ``f`` was (``"logit"`` is the model's
            probability where it has no logits, see :func:`mufidelity`).
        subsets: the number of random subsets (model calls per image, besides the original).
        cells_removed: cells removed in each subset; ``grid``: ``(rows, columns)`` of cells.
    """

    correlation: np.ndarray
    flat: np.ndarray
    class_index: np.ndarray
    score: str
    subsets: int
    cells_removed: int
    grid: tuple[int, int]

    def _columns(self):
        return {"mufidelity": self.correlation}


def _cells(h: int, w: int, grid_size: int | None) -> tuple[np.ndarray, int, int]:
    """``(cell index of each pixel int64 (H, W), rows, columns)``: cell ``(r, c)`` holds the
    pixels ``i, j`` with ``floor(i * rows / H) == r`` and ``floor(j * columns / W) == c``."""
    gh, gw = (h, w) if grid_size is None else (min(int(grid_size), h), min(int(grid_size), w))
    rows = np.arange(h) * gh // h
    cols = np.arange(w) * gw // w
    return rows[:, None] * gw + cols[None, :], gh, gw


def _pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Pearson correlation of ``(N, S)`` arrays; NaN where either row is constant."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis=1) / den
    return np.where(den > 0, np.clip(r, -1.0, 1.0), np.nan)


def mufidelity(
    model: keras.Model,
    images: np.ndarray,
    heatmaps,
    class_index: int | np.ndarray | None = None,
    *,
    subsets: int = 128,
    subset_fraction: float = 0.2,
    grid_size: int | None = 9,
    baseline: float | str = 0.0,
    score: str = "logit",
    seed: int = 0,
    batch_size: int = 64,
    preprocess: str = "raw",
) -> MuFidelityScores:
    """MuFidelity, the faithfulness correlation of Bhatt, Weller & Moura 2020 ("Evaluating and
    Aggregating Feature-based Model Explanations", IJCAI, https://arxiv.org/abs/2005.00631).

    For random subsets ``S`` of the image's features, each a fixed number of cells of a grid::

        muF = Pearson_S( sum_{i in S} g_i ,  f(x) - f(x with S set to the baseline) )

    where ``g`` is the heatmap and ``f`` the class score. HIGHER is better, in [-1, 1]: 1 when
    the map's mass on any subset predicts the score's drop exactly (up to scale and offset).
    The same ``subsets`` masks (drawn from ``seed``) serve every image, so an image's number
    does not depend on the batch it is in. All ``N * subsets`` perturbed images go through one
    compiled function, ``batch_size`` at a time: ``subsets + 1`` forward passes per image.

    Differences from xplique's ``MuFidelity`` (grid_size=9, subset_percent=0.2,
    baseline_mode=0, nb_samples=200): each subset is exactly ``round(subset_fraction *
    cells)`` cells, as in the paper's ``|S| = k`` (xplique removes each cell with probability
    0.2); the correlation is Pearson's, as in the paper (xplique's current code uses
    Spearman's); an undefined correlation is NaN, not 0; 128 subsets by default, not 200;
    ``f`` is the logit by default (xplique uses the model's output, a softmax model's
    probability: ``score="probability"``); the baseline is a raw pixel value (0 is black;
    xplique's 0 is in whatever space its inputs are); the map is centred (below); cells are
    ``floor(i * grid / H)``, not a nearest-neighbour resize (both give cells differing by at
    most one pixel in size).

    The map is centred first (its mean over the pixels subtracted), so ``muF`` does not
    depend on the map's units: ``g -> a * g + b`` (``a > 0``) leaves it unchanged, and an
    Attribution's [0, 1] ``heatmap`` scores as its raw signed map would. Where every subset
    has the same number of pixels (``grid_size=None``, or a grid dividing ``H`` and ``W``)
    centring changes nothing and this is the paper's formula exactly; with unequal cells
    (16 / 9 rows of 1 or 2 pixels; 224 / 9 of 24 or 25) the uncentred sum would weigh each
    subset by its pixel count times the map's arbitrary offset (the min-max scaling's zero).

    Args:
        model: a Keras classifier taking raw pixels ``(N, H, W, C)`` in [0, 255].
        images: ``(N, H, W, C)`` or ``(H, W, C)`` raw pixels in [0, 255].
        heatmaps: ``(N, H, W)`` or ``(H, W)`` real values (signed raw maps welcome), or an
            :class:`~explain.attribution.base.Attribution` (its ``heatmap``; its method names
            the error below, and its classes are scored where ``class_index`` is None).
        class_index: the class to score, one int or ``(N,)``; None: an Attribution's classes,
            else each image's top prediction.
        subsets: the number of random subsets per image (>= 3).
        subset_fraction: the fraction of cells removed in each subset, in (0, 1); rounded to
            whole cells, at least 1 and fewer than all.
        grid_size: cells per side (clipped to the image's height and width); None: each pixel
            is a feature, the paper's original definition.
        baseline: the raw pixel value removed cells take (0: black), or ``"black"`` / ``"blur"``
            (a Gaussian blur of the image, sigma ``max(H, W) / 8``).
        score: ``f``: ``"logit"`` (the model's logit, the score the attribution methods
            explain, where its maps should add up; a binary model's class 0 is ``-logit``;
            where the model has no logits, its probability) or ``"probability"``.
        seed: seeds the subsets: the same seed gives the same numbers.
        batch_size: perturbed images per model call.
        preprocess: the model's preprocessing mode (:mod:`explain.models.preprocessing`):
            cells are removed in the raw image, then preprocessed for the model.

    Returns:
        A :class:`MuFidelityScores`. Flat or non-finite maps get ``flat=True`` and NaN: they
        are never silently scored.

    Raises:
        ValueError: maps whose shape does not match the images; EVERY map flat (one line
            naming the method where known); ``subsets < 3``; ``subset_fraction`` leaving no
            cell or every cell; an unknown ``score`` or ``baseline``.
        ExplainError: class index out of range; a model that is not a single-output
            classifier; an unknown preprocessing mode.
    """
    if score not in SCORES:
        raise ValueError(f"Unknown score {score!r}. Scores are: {', '.join(SCORES)}.")
    if isinstance(baseline, str) and baseline not in BASELINES:
        raise ValueError(f"Unknown baseline {baseline!r}: give a pixel value or one of {', '.join(BASELINES)}.")
    if int(subsets) < 3:
        raise ValueError(f"subsets must be at least 3 for a correlation, got {subsets}.")
    subsets, batch_size = int(subsets), max(1, int(batch_size))
    head, x, idx, maps, flat, method = read_maps(model, images, heatmaps, class_index, preprocess)
    n, h, w = maps.shape
    cell, gh, gw = _cells(h, w, grid_size)
    k = round(float(subset_fraction) * gh * gw)
    if not 0.0 < float(subset_fraction) < 1.0 or not 1 <= k < gh * gw:
        raise ValueError(
            f"subset_fraction {subset_fraction} removes {k} of {gh * gw} cells; it must remove at least one "
            "and leave at least one (a fraction in (0, 1))."
        )
    refuse_all_flat("MuFidelity", flat, method)
    # one pass over the originals: their scores, and their top classes where none is given
    scores0, probs0 = head.predict_scores(x, batch_size)
    classes = np.where(idx < 0, np.argmax(probs0, axis=1), idx).astype(np.int64)

    rng = np.random.default_rng(seed)
    chosen = np.argsort(rng.random((subsets, gh * gw)), axis=1)[:, :k]
    removed_cells = np.zeros((subsets, gh * gw), bool)
    np.put_along_axis(removed_cells, chosen, True, axis=1)
    removed = removed_cells[:, cell][..., None]  # (subsets, H, W, 1)

    scored = np.flatnonzero(~flat)
    xs, cs = x[scored], classes[scored]
    base = _baseline_images(xs, baseline, None) if isinstance(baseline, str) else None
    # the map's mass on each subset: sum over the removed cells of the map's per-cell sums
    centred = maps[scored] - maps[scored].mean(axis=(1, 2), keepdims=True)
    per_cell = np.stack([np.bincount(cell.ravel(), weights=m.ravel(), minlength=gh * gw) for m in centred])
    mass = per_cell @ removed_cells.T.astype(np.float64)  # (scored, subsets)
    original = class_scores(head, scores0[scored], probs0[scored], cs, score)
    drops = np.empty((len(scored), subsets))
    jobs = [(j, s) for j in range(len(scored)) for s in range(subsets)]
    for start in range(0, len(jobs), batch_size):
        part = jobs[start : start + batch_size]
        batch = np.empty((len(part), *x.shape[1:]), np.float32)
        for b, (j, s) in enumerate(part):
            fill = base[j] if base is not None else np.float32(baseline)
            batch[b] = np.where(removed[s], fill, xs[j])
        rows = np.array([j for j, _ in part])
        perturbed = class_scores(head, *head.predict_scores(batch, batch_size), cs[rows], score)
        drops[rows, [s for _, s in part]] = original[rows] - perturbed
    correlation = np.full(n, np.nan)
    correlation[scored] = _pearson(mass, drops)
    return MuFidelityScores(
        correlation=correlation,
        flat=flat,
        class_index=classes,
        score=score if head.score_kind == "logit" else "probability",
        subsets=subsets,
        cells_removed=k,
        grid=(gh, gw),
    )
