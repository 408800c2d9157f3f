"""ROAD: RemOve And Debias, with noisy linear imputation.

Rong, Leemann, Borisov, Kasneci & Kasneci 2022, "A Consistent and Efficient Evaluation
Strategy for Attribution Methods", ICML, https://arxiv.org/abs/2202.00449. The imputation is
the paper's reference implementation's ``NoisyLinearImputer``
(https://github.com/tleemann/road_evaluation, ``road/imputations.py``); the summaries follow
pytorch-grad-cam's ``ROADMostRelevantFirstAverage``, ``ROADLeastRelevantFirstAverage`` and
``ROADCombined`` (a mean over the fractions removed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explain._quiet import quiet_import
from explain.metrics._common import PerImageScores, read_maps, refuse_all_flat

quiet_import()
import keras  # noqa: E402

ORDERS = ("both", "morf", "lerf")
IMPUTATIONS = ("linear", "mean")

#: The neighbours of a pixel and their weights in the linear imputation (row, column offset):
#: 1/6 for the 4 direct neighbours, 1/12 for the 4 diagonal ones, as the reference.
NEIGHBOUR_WEIGHTS = (
    ((0, 1), 1 / 6),
    ((0, -1), 1 / 6),
    ((1, 0), 1 / 6),
    ((-1, 0), 1 / 6),
    ((1, 1), 1 / 12),
    ((1, -1), 1 / 12),
    ((-1, 1), 1 / 12),
    ((-1, -1), 1 / 12),
)

#: The default fractions of pixels removed: pytorch-grad-cam's percentiles 10, 20, ..., 90.
DEFAULT_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass(frozen=True)
class RoadScores(PerImageScores):
    """ROAD curves and their means, per image.

    Attributes:
        morf: float64 ``(N,)`` in [0, 1]: the class probability averaged over the fractions,
            most relevant pixels removed first; LOWER is more faithful. NaN where flat or
            where ``order="lerf"``.
        lerf: float64 ``(N,)`` in [0, 1]: the same, least relevant pixels removed first;
            HIGHER is more faithful. NaN where flat or where ``order="morf"``.
        combined: float64 ``(N,)`` in [-0.5, 0.5]: ``(lerf - morf) / 2`` (pytorch-grad-cam's
            ``ROADCombined``); HIGHER is more faithful. NaN unless both orders were run.
        morf_curve: float64 ``(N, F)``: the class probability with the top ``fractions[k]``
            of the pixels imputed (NaN rows where flat or not run).
        lerf_curve: float64 ``(N, F)``: the same with the bottom ``fractions[k]`` imputed.
        original: float64 ``(N,)``: the class probability of the unperturbed image
            (pytorch-grad-cam reports the curves minus this).
        fractions: float64 ``(F,)``: the fractions of pixels removed, in (0, 1).
        flat: bool ``(N,)``: the heatmap was constant or had non-finite values; not scored.
        class_index: int64 ``(N,)``: the class whose probability was tracked.
        imputation: ``"linear"`` or ``"mean"``; ``order``: ``"both"``, ``"morf"`` or ``"lerf"``.
    """

    morf: np.ndarray
    lerf: np.ndarray
    combined: np.ndarray
    morf_curve: np.ndarray
    lerf_curve: np.ndarray
    original: np.ndarray
    fractions: np.ndarray
    flat: np.ndarray
    class_index: np.ndarray
    imputation: str
    order: str

    def _columns(self):
        return {"morf": self.morf, "lerf": self.lerf, "combined": self.combined}

    def figure(self, ax=None):
        """The MoRF and LeRF curves, each image thin, the mean bold
        (:func:`explain.render.figures.score_curves`). Returns a ``matplotlib.figure.Figure``."""
        from explain.render.figures import score_curves

        return score_curves(
            self.fractions, {"MoRF (lower is better)": self.morf_curve, "LeRF (higher is better)": self.lerf_curve},
            title=f"ROAD, {self.imputation} imputation", xlabel="fraction of pixels imputed",
            ylabel="class probability", ax=ax,
        )


def linear_imputation(image: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """Fill the removed pixels of one image by the linear imputation of ROAD, without noise.

    Every removed pixel becomes the weighted mean of its neighbours inside the image
    (:data:`NEIGHBOUR_WEIGHTS`: 1/6 direct, 1/12 diagonal, renormalised by the weights of the
    neighbours that exist at the border), removed neighbours included: one sparse linear
    system over all removed pixels, ``sum_n w_n (v_n - v_i) = 0`` for each removed ``i``,
    solved for every channel at once (``scipy.sparse.linalg.spsolve``). An image that is a
    linear function of the pixel position is reproduced exactly where the removed pixels are
    off the border.

    Args:
        image: ``(H, W, C)`` pixel values.
        removed: bool ``(H, W)``: the pixels to fill; at least one pixel must be kept.

    Returns:
        float64 ``(H, W, C)``: the image with the removed pixels filled.

    Raises:
        ValueError: every pixel removed (nothing to impute from); shapes that do not match.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import spsolve

    img = np.asarray(image, np.float64)
    mask = np.asarray(removed, bool)
    if img.ndim != 3 or mask.shape != img.shape[:2]:
        raise ValueError(f"removed must be (H, W) of an (H, W, C) image, got {mask.shape} for {img.shape}.")
    if mask.all():
        raise ValueError("Every pixel is removed: linear imputation needs at least one pixel to keep.")
    h, w, c = img.shape
    out = img.copy()
    ii, jj = np.nonzero(mask)
    m = len(ii)
    if m == 0:
        return out
    var = np.full((h, w), -1, np.int64)
    var[ii, jj] = np.arange(m)
    rows, cols, vals = [], [], []
    diagonal = np.zeros(m)
    rhs = np.zeros((m, c))
    for (di, dj), weight in NEIGHBOUR_WEIGHTS:
        ni, nj = ii + di, jj + dj
        inside = (ni >= 0) & (ni < h) & (nj >= 0) & (nj < w)
        eq, ni, nj = np.flatnonzero(inside), ni[inside], nj[inside]
        diagonal[eq] += weight
        unknown = mask[ni, nj]
        rows.append(eq[unknown])
        cols.append(var[ni[unknown], nj[unknown]])
        vals.append(np.full(int(unknown.sum()), -weight))
        np.add.at(rhs, eq[~unknown], weight * img[ni[~unknown], nj[~unknown]])
    rows.append(np.arange(m))
    cols.append(np.arange(m))
    vals.append(diagonal)
    a = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(m, m)).tocsc()
    out[ii, jj] = np.asarray(spsolve(a, rhs)).reshape(m, c)
    return out


def _ranks(maps: np.ndarray, seed: int) -> np.ndarray:
    """int64 ``(N, H, W)``: each pixel's place in its map's order, 0 = the highest value.
    Ties are broken by one random key per pixel (from ``seed``), the same for every map."""
    n, h, w = maps.shape
    tie_break = np.broadcast_to(np.random.default_rng(seed).random(h * w), (n, h * w))
    order_of = np.lexsort((tie_break, -maps.reshape(n, -1)), axis=-1)
    rank = np.empty_like(order_of)
    np.put_along_axis(rank, order_of, np.arange(h * w)[None], axis=1)
    return rank.reshape(n, h, w)


def _impute(image: np.ndarray, removed: np.ndarray, imputation: str, noise: float, rng) -> np.ndarray:
    """float32 ``(H, W, C)``: ``image`` with ``removed`` filled (and noise on the filled
    pixels), clipped to [0, 255]."""
    if imputation == "mean":
        filled = np.where(removed[..., None], image.mean(axis=(0, 1), keepdims=True), image).astype(np.float64)
    else:
        filled = linear_imputation(image, removed)
    if noise > 0:
        ii, jj = np.nonzero(removed)
        filled[ii, jj] += rng.normal(0.0, noise, (len(ii), image.shape[-1]))
    return np.clip(filled, 0.0, 255.0).astype(np.float32)


def road(
    model: keras.Model,
    images: np.ndarray,
    heatmaps,
    class_index: int | np.ndarray | None = None,
    *,
    fractions=DEFAULT_FRACTIONS,
    order: str = "both",
    imputation: str = "linear",
    noise: float = 2.55,
    seed: int = 0,
    batch_size: int = 64,
    preprocess: str = "raw",
) -> RoadScores:
    """ROAD, RemOve And Debias (Rong, Leemann, Borisov, Kasneci & Kasneci 2022, "A Consistent
    and Efficient Evaluation Strategy for Attribution Methods", ICML,
    https://arxiv.org/abs/2202.00449), without retraining.

    For each fraction ``f``, the pixels are ranked by heatmap value and ``floor(f * H * W)``
    of them are removed: the most relevant first (MoRF) or the least relevant first (LeRF).
    Removed pixels are not set to a constant (whose shape would tell the model where the map
    was) but imputed: by noisy linear imputation (``imputation="linear"``), each the weighted
    mean of its 8 neighbours (:func:`linear_imputation`), plus Gaussian noise of standard
    deviation ``noise`` on the imputed pixels (the reference's 0.01 on [0, 1] images is 2.55
    on 0-255), clipped to [0, 255]; or by the image's channel means (``"mean"``, the
    reference's ``ChannelMeanImputer``). The class probability of each imputed image is
    recorded; a faithful map makes it fall fast under MoRF (``morf``, the mean over the
    fractions: LOWER is better) and stay high under LeRF (``lerf``: HIGHER is better);
    ``combined = (lerf - morf) / 2``: HIGHER is better.

    Ties in the map are broken at random (seeded), as the reference adds 1e-4 noise to the
    map, so a plateau (a CAM's zeros) is not removed in raster order. The fractions count
    pixels REMOVED in both orders (pytorch-grad-cam's LeRF percentile ``p`` keeps the top
    ``p``%; the means over 10, ..., 90 are the same). The tie-breaking keys and the noise of
    each order and fraction are drawn from ``seed`` alone, the same for every image, so an
    image's numbers do not depend on the batch it is in.

    Cost: ``1 + F`` forward passes per image and order (``F = len(fractions)``), ``batch_size``
    per compiled call; one sparse solve (``H * W * f`` unknowns, all channels at once) per
    imputed image for ``"linear"``, on the CPU: the larger part of the time on big images.

    Args:
        model: a Keras classifier taking raw pixels ``(N, H, W, C)`` in [0, 255].
        images: ``(N, H, W, C)`` or ``(H, W, C)`` raw pixels in [0, 255].
        heatmaps: ``(N, H, W)`` or ``(H, W)``, any real values (only their order matters), or
            an :class:`~explain.attribution.base.Attribution` (its ``heatmap``; its method
            names the error below, its classes are scored where ``class_index`` is None).
        class_index: the class to track, one int or ``(N,)``; None: an Attribution's classes,
            else each image's top prediction. Probability as in
            :func:`~explain.metrics.faithfulness.deletion_insertion`.
        fractions: fractions of pixels removed, each in (0, 1); default 0.1, 0.2, ..., 0.9.
        order: ``"both"``, ``"morf"`` (most relevant first) or ``"lerf"`` (least relevant first).
        imputation: ``"linear"`` (noisy linear, the paper's) or ``"mean"`` (channel means).
        noise: standard deviation of the Gaussian noise added to imputed pixels, raw pixel
            units (default 2.55); 0 for none.
        seed: seeds the tie-breaking and the noise: the same seed gives the same numbers.
        batch_size: imputed images per model call.
        preprocess: the model's preprocessing mode (:mod:`explain.models.preprocessing`): pixels
            are imputed in the raw image, then preprocessed for the model.

    Returns:
        A :class:`RoadScores`. Flat or non-finite maps get ``flat=True`` and NaN: they are
        never silently scored.

    Raises:
        ValueError: maps whose shape does not match the images; EVERY map flat (one line
            naming the method where known); a fraction outside (0, 1) or none; an unknown
            ``order`` or ``imputation``; ``noise < 0``.
        ExplainError: class index out of range; a model that is not a single-output
            classifier; an unknown preprocessing mode.
    """
    if order not in ORDERS:
        raise ValueError(f"Unknown order {order!r}. Orders are: {', '.join(ORDERS)}.")
    if imputation not in IMPUTATIONS:
        raise ValueError(f"Unknown imputation {imputation!r}. Imputations are: {', '.join(IMPUTATIONS)}.")
    fractions = np.asarray(fractions, np.float64).reshape(-1)
    if fractions.size == 0 or not np.all((fractions > 0) & (fractions < 1)):
        raise ValueError(f"fractions must be a non-empty list of numbers in (0, 1), got {fractions.tolist()}.")
    if not float(noise) >= 0:
        raise ValueError(f"noise must be at least 0, got {noise}.")
    noise, batch_size = float(noise), max(1, int(batch_size))
    head, x, idx, maps, flat, method = read_maps(model, images, heatmaps, class_index, preprocess)
    refuse_all_flat("ROAD", flat, method)
    n, h, w = maps.shape
    # one pass over the originals: their probabilities, and their top classes where none is given
    probs0 = head.predict_probabilities(x, batch_size)
    classes = np.where(idx < 0, np.argmax(probs0, axis=1), idx).astype(np.int64)
    original = np.where(flat, np.nan, probs0[np.arange(n), classes])
    counts = np.floor(fractions * h * w).astype(np.int64)
    rank = _ranks(maps, seed)
    orders = ("morf", "lerf") if order == "both" else (order,)
    scored = np.flatnonzero(~flat)
    curves = {o: np.full((n, len(fractions)), np.nan) for o in ("morf", "lerf")}
    jobs = [(o, j, k) for o in orders for j in scored for k in range(len(fractions))]
    for start in range(0, len(jobs), batch_size):
        part = jobs[start : start + batch_size]
        batch = np.empty((len(part), *x.shape[1:]), np.float32)
        for b, (o, j, k) in enumerate(part):
            removed = rank[j] < counts[k] if o == "morf" else rank[j] >= h * w - counts[k]
            job_rng = np.random.default_rng([seed, ("morf", "lerf").index(o), k])
            batch[b] = _impute(x[j], removed, imputation, noise, job_rng)
        cls = np.array([classes[j] for _, j, _ in part], np.int64)
        probs = head.predict_probabilities(batch, batch_size)[np.arange(len(part)), cls]
        for p, (o, j, k) in zip(probs, part, strict=True):
            curves[o][j, k] = p
    morf = curves["morf"].mean(axis=1)
    lerf = curves["lerf"].mean(axis=1)
    return RoadScores(
        morf=morf,
        lerf=lerf,
        combined=(lerf - morf) / 2,
        morf_curve=curves["morf"],
        lerf_curve=curves["lerf"],
        original=original,
        fractions=fractions,
        flat=flat,
        class_index=classes,
        imputation=imputation,
        order=order,
    )
