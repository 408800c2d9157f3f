"""Faithfulness: deletion / insertion AUC.

Petsiuk et al. 2018, "RISE: Randomized Input Sampling for Explanation of Black-box Models",
BMVC, https://arxiv.org/abs/1806.07421.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explain._quiet import quiet_import
from explain.metrics._common import PerImageScores, checked_maps
from explain.models.scores import score_head

quiet_import()
import keras  # noqa: E402

#: A sanity check fails when the mean Spearman correlation between the maps of the trained
#: and the randomised model is above this.
SANITY_THRESHOLD = 0.5

BASELINES = ("blur", "black")


# -- deletion / insertion ----------------------------------------------------------------
@dataclass(frozen=True)
class FaithfulnessScores(PerImageScores):
    """Deletion and insertion curves and their areas, per image.

    Attributes:
        deletion_auc: float64 ``(N,)`` in [0, 1]; lower is more faithful. NaN where flat.
        insertion_auc: float64 ``(N,)`` in [0, 1]; higher is more faithful. NaN where flat.
        deletion_curve: float64 ``(N, steps + 1)``: the class probability after removing
            each fraction of pixels (NaN rows where flat).
        insertion_curve: float64 ``(N, steps + 1)``: the class probability after inserting
            each fraction of pixels into the baseline (NaN rows where flat).
        fractions: float64 ``(steps + 1,)``: fraction of pixels removed / inserted, 0 to 1.
        flat: bool ``(N,)``: the heatmap was constant or had non-finite values, so it gives
            no pixel order and was not scored.
        class_index: int64 ``(N,)``: the class whose probability was tracked.
        baseline: ``"blur"`` or ``"black"``.
    """

    deletion_auc: np.ndarray
    insertion_auc: np.ndarray
    deletion_curve: np.ndarray
    insertion_curve: np.ndarray
    fractions: np.ndarray
    flat: np.ndarray
    class_index: np.ndarray
    baseline: str

    def _columns(self):
        return {"deletion_auc": self.deletion_auc, "insertion_auc": self.insertion_auc}

    def figure(self, ax=None):
        """The deletion and insertion curves, each image thin, the mean bold
        (:func:`explain.render.figures.score_curves`). Returns a ``matplotlib.figure.Figure``."""
        from explain.render.figures import score_curves

        return score_curves(
            self.fractions, {"deletion (lower is better)": self.deletion_curve,
                             "insertion (higher is better)": self.insertion_curve},
            title=f"Deletion / insertion, {self.baseline} baseline", ylabel="class probability", ax=ax,
        )


def _baseline_images(x: np.ndarray, baseline: str, blur_sigma: float | None) -> np.ndarray:
    if baseline == "black":
        return np.zeros_like(x)
    from scipy.ndimage import gaussian_filter

    h, w = x.shape[1:3]
    sigma = float(blur_sigma) if blur_sigma is not None else max(h, w) / 8.0
    return gaussian_filter(x, sigma=(0.0, sigma, sigma, 0.0), mode="reflect").astype(np.float32)


def _trapezoid(curves: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    return ((curves[:, 1:] + curves[:, :-1]) * 0.5 * np.diff(fractions)).sum(axis=1)


def _curves(head, x, maps, classes, fractions, baseline, blur_sigma, batch_size) -> np.ndarray:
    """Deletion and insertion curves ``(2, N, steps + 1)`` of non-flat maps: the class
    probability with the top fraction of pixels removed (deletion) or kept (insertion)."""
    n, h, w = maps.shape
    base = _baseline_images(x, baseline, blur_sigma)
    counts = np.round(fractions * h * w).astype(np.int64)
    # rank[i, p] = position of pixel p in image i's order (0 = highest heatmap value)
    order = np.argsort(-maps.reshape(n, -1), axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(h * w)[None], axis=1)
    rank = rank.reshape(n, h, w)
    # jobs: (image j, step k, insertion?) in a fixed order; built one batch at a time.
    jobs = [(j, k, ins) for ins in (False, True) for j in range(n) for k in range(len(fractions))]
    probs = np.empty(len(jobs))
    for s in range(0, len(jobs), batch_size):
        part = jobs[s : s + batch_size]
        batch = np.empty((len(part), *x.shape[1:]), np.float32)
        for b, (j, k, ins) in enumerate(part):
            top = (rank[j] < counts[k])[..., None]
            batch[b] = np.where(top, x[j], base[j]) if ins else np.where(top, base[j], x[j])
        cls = np.array([classes[j] for j, _, _ in part], np.int64)
        probs[s : s + len(part)] = head.predict_probabilities(batch, batch_size)[np.arange(len(part)), cls]
    return probs.reshape(2, n, len(fractions))


def deletion_insertion(
    model: keras.Model,
    images: np.ndarray,
    heatmaps: np.ndarray,
    class_index: int | np.ndarray | None,
    *,
    steps: int = 20,
    baseline: str = "blur",
    batch_size: int = 64,
    blur_sigma: float | None = None,
    preprocess: str = "raw",
) -> FaithfulnessScores:
    """Deletion and insertion AUC of heatmaps (Petsiuk et al. 2018, RISE,
    https://arxiv.org/abs/1806.07421).

    Pixels are ordered by heatmap value, highest first. Deletion replaces them by the
    baseline in ``steps`` equal chunks and records the class probability after each step;
    insertion starts from the baseline and puts the original pixels back in the same order.
    The areas under the curves (trapezoidal rule over the fraction of pixels, 0 to 1) are in
    [0, 1]: a faithful map makes the probability fall fast on deletion (low AUC) and rise
    fast on insertion (high AUC). All ``2 * N * (steps + 1)`` perturbed images go through one
    compiled function, ``batch_size`` at a time.

    Args:
        model: a Keras classifier taking raw pixels ``(N, H, W, C)`` in [0, 255].
        images: ``(N, H, W, C)`` or ``(H, W, C)`` raw pixels in [0, 255].
        heatmaps: ``(N, H, W)`` or ``(H, W)``, any real values (e.g. an Attribution's
            ``heatmap``); only their order matters. Ties keep the pixels' raster order.
        class_index: the class to track, one int for all images or ``(N,)``; None tracks
            each image's top prediction. Probability: softmax of the logits where the model
            has them (or its softmax output); for a single sigmoid output class 1 is ``p``
            and class 0 is ``1 - p``.
        steps: number of equal chunks of pixels (>= 1).
        baseline: ``"blur"`` (a Gaussian blur of the image, sigma ``blur_sigma`` pixels,
            default ``max(H, W) / 8``) or ``"black"`` (zeros).
        batch_size: perturbed images per model call.
        blur_sigma: the blur's standard deviation in pixels; None for the default.
        preprocess: the model's preprocessing mode (:mod:`explain.models.preprocessing`): pixels
            are removed and inserted in the raw image, then preprocessed for the model.

    Returns:
        A :class:`FaithfulnessScores`. Flat or non-finite heatmaps get ``flat=True``, NaN
        AUCs and NaN curves: they are never silently scored.

    Raises:
        ValueError: shapes that do not match, unknown baseline, ``steps < 1``.
        ExplainError: class index out of range; a model that is not a single-output
            classifier; an unknown preprocessing mode.
    """
    if baseline not in BASELINES:
        raise ValueError(f"Unknown baseline {baseline!r}. Baselines are: {', '.join(BASELINES)}.")
    if int(steps) < 1:
        raise ValueError(f"steps must be at least 1, got {steps}.")
    steps, batch_size = int(steps), max(1, int(batch_size))
    head = score_head(model, preprocess)
    x, idx = head.check_batch(images, class_index)
    safe, flat = checked_maps(heatmaps, x)
    classes = np.where(idx < 0, head.top_classes(x, batch_size), idx) if (idx < 0).any() else idx
    fractions = np.linspace(0.0, 1.0, steps + 1)
    deletion = np.full((len(x), steps + 1), np.nan)
    insertion = np.full((len(x), steps + 1), np.nan)
    scored = np.flatnonzero(~flat)
    if scored.size:
        deletion[scored], insertion[scored] = _curves(
            head, x[scored], safe[scored], classes[scored], fractions, baseline, blur_sigma, batch_size
        )
    return FaithfulnessScores(
        deletion_auc=_trapezoid(deletion, fractions),
        insertion_auc=_trapezoid(insertion, fractions),
        deletion_curve=deletion,
        insertion_curve=insertion,
        fractions=fractions,
        flat=flat,
        class_index=classes,
        baseline=baseline,
    )


