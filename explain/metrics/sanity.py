"""The sanity check (model-parameter randomisation).

Adebayo et al. 2018, "Sanity Checks for Saliency Maps", NeurIPS, https://arxiv.org/abs/1810.03292.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explain._quiet import quiet_import
from explain.attribution.base import AttributionMethod, normalize_maps
from explain.render.display import Displayable

quiet_import()
import keras  # noqa: E402

#: A sanity check fails when the mean Spearman correlation between the maps of the trained
#: and the randomised model is above this.
SANITY_THRESHOLD = 0.5


# -- sanity check ------------------------------------------------------------------------
@dataclass(frozen=True)
class SanityCheck(Displayable):
    """A method's maps on the trained model and on a copy with random weights.

    Attributes:
        method: the method's registry name.
        spearman: float64 ``(N,)`` in [-1, 1]: Spearman rank correlation between the two
            maps of each image; NaN where either map is flat.
        ssim: float64 ``(N,)`` in [-1, 1]: structural similarity of the two maps
            (``data_range=1``); NaN where either map is flat.
        heatmap: float32 ``(N, H, W)`` in [0, 1]: the maps of the trained model.
        random_heatmap: float32 ``(N, H, W)`` in [0, 1]: the maps of the randomised model,
            for the same classes.
        class_index: int64 ``(N,)``: the classes explained.
        passed: the map depends on the weights (mean Spearman <= ``SANITY_THRESHOLD``);
            False when it fails or when every map was flat (inconclusive).
        verdict: one sentence saying which, with the numbers.
    """

    method: str
    spearman: np.ndarray
    ssim: np.ndarray
    heatmap: np.ndarray
    random_heatmap: np.ndarray
    class_index: np.ndarray
    passed: bool
    verdict: str

    def figure(self, ax=None, *, max_images: int = 4):
        """Each image's map on the trained model beside its map on the randomised one, the verdict as
        the title (:func:`explain.render.figures.overlay_grid`). Returns a ``matplotlib.figure.Figure``."""
        from explain.render.figures import overlay_grid

        n = min(len(self.heatmap), max(1, int(max_images)))
        maps = np.stack([m for i in range(n) for m in (self.heatmap[i], self.random_heatmap[i])])
        captions = [
            c for i in range(n) for c in (f"image {i}: trained", f"random weights\nSpearman {self.spearman[i]:.2f}")
        ]
        return overlay_grid(None, maps, captions, title=self.verdict.replace(": ", ":\n", 1), cols=4, ax=ax)

    def table(self):
        """``(headers, rows)``: per image, its class, Spearman and SSIM between the two maps."""
        return ["image", "class_index", "spearman", "ssim"], [
            [i, int(c), float(r), float(q)]
            for i, (c, r, q) in enumerate(zip(self.class_index, self.spearman, self.ssim, strict=True))
        ]


def _glorot_fans(shape: tuple[int, ...]) -> tuple[float, float]:
    receptive = float(np.prod(shape[:-2])) if len(shape) > 2 else 1.0
    return shape[-2] * receptive, shape[-1] * receptive


def _unfreeze(layer: keras.layers.Layer) -> None:
    # Setting ``trainable`` on a Sequential does not reach a nested model's layers: walk them.
    layer.trainable = True
    for sub in getattr(layer, "layers", None) or []:
        _unfreeze(sub)


def randomized_copy(model: keras.Model, seed: int = 0) -> keras.Model:
    """A copy of ``model`` with every learned weight re-drawn at random; ``model`` is unchanged.

    The copy (``keras.models.clone_model``, nested models included) first gets the model's
    weights, so non-learned state (Normalization mean, BatchNorm moving statistics: variables
    that are non-trainable by construction) stays as it was; then every learned float
    variable is re-drawn from a seeded distribution of the same shape: Glorot-uniform for
    kernels (2-D and up), N(0, 0.05^2) for vectors (biases, BatchNorm beta), N(1, 0.05^2) for
    scales (BatchNorm / LayerNorm gamma). Layers frozen with ``trainable = False`` (a
    pretrained base) are randomised too: the copy is unfrozen first.

    Args:
        model: a Keras model.
        seed: seeds the new weights: the same seed gives the same copy.

    Returns:
        A new ``keras.Model`` with the same architecture.
    """
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    # Unfreeze the copy (not the caller's model): in Keras 3 ``layer.trainable = False`` marks
    # its variables non-trainable, while statistics (BatchNorm moving mean / variance,
    # Normalization mean) stay non-trainable even in a trainable layer.
    _unfreeze(copy)
    rng = np.random.default_rng(seed)
    for var in copy.weights:
        if not getattr(var, "trainable", False) or not np.issubdtype(np.dtype(var.dtype), np.floating):
            continue
        shape = tuple(int(d) for d in var.shape)
        if len(shape) >= 2:
            fan_in, fan_out = _glorot_fans(shape)
            limit = np.sqrt(6.0 / max(fan_in + fan_out, 1.0))
            value = rng.uniform(-limit, limit, shape)
        else:  # a scale (BatchNorm / LayerNorm gamma) near 1 keeps the signal alive
            value = rng.normal(1.0 if var.name in ("gamma", "scale") else 0.0, 0.05, shape)
        var.assign(value.astype(np.dtype(var.dtype)))
    return copy


def _is_flat(a: np.ndarray) -> bool:
    return bool(normalize_maps(np.asarray(a)[None])[1][0])


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if _is_flat(a) or _is_flat(b):
        return float("nan")
    return float(spearmanr(a.ravel(), b.ravel()).statistic)


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    if _is_flat(a) or _is_flat(b):
        return float("nan")
    win = min(7, *a.shape)
    win -= 1 - win % 2  # odd
    if win < 3:
        return float("nan")
    return float(structural_similarity(a.astype(np.float64), b.astype(np.float64), data_range=1.0, win_size=win))


def _sanity_verdict(name: str, spearman: np.ndarray, ssim: np.ndarray) -> tuple[bool, str]:
    """``(passed, one sentence with the numbers)`` from the per-image correlations."""
    if np.isnan(spearman).all():
        return False, (
            f"{name}: inconclusive: the heatmaps are flat on the trained or the randomised model, so they cannot "
            "be compared."
        )
    rho = float(np.nanmean(spearman))
    s = float(np.nanmean(ssim)) if not np.isnan(ssim).all() else float("nan")
    numbers = f"mean Spearman {rho:.2f}, mean SSIM {s:.2f} between the maps of the trained and a randomised model"
    if rho <= SANITY_THRESHOLD:
        return True, f"{name} passes the sanity check: the map changes when the weights are random ({numbers})."
    return False, f"{name} fails the sanity check: the map does not depend on what the model learned ({numbers})."


def sanity_check(
    method_cls: type[AttributionMethod],
    model: keras.Model,
    images: np.ndarray,
    class_index: int | np.ndarray | None = None,
    seed: int = 0,
    random_model: keras.Model | None = None,
    **method_kwargs,
) -> SanityCheck:
    """Model-parameter randomisation test (Adebayo et al. 2018, "Sanity Checks for Saliency
    Maps", https://arxiv.org/abs/1810.03292).

    Runs the method on the model and on :func:`randomized_copy` of it, for the same classes
    (those explained on the trained model), and compares the two heatmaps of each image by
    Spearman rank correlation and SSIM. A method whose map barely changes when the weights
    are random (mean Spearman above ``SANITY_THRESHOLD`` = 0.5) fails: its map does not
    depend on what the model learned (it is an edge detector, or shows the input).

    Args:
        method_cls: an attribution method class, e.g. ``GradCAM`` or ``METHODS["lime"]``.
        model: a Keras classifier taking raw pixels in [0, 255]; never changed.
        images: ``(N, H, W, C)`` or ``(H, W, C)`` raw pixels in [0, 255].
        class_index: the class to explain, one int or ``(N,)``; None: the trained model's
            top prediction for each image.
        seed: seeds the random weights.
        random_model: the randomised copy to use (:func:`randomized_copy` of ``model``), when several methods
            are checked against the same one; default a new copy, seeded by ``seed``.
        **method_kwargs: passed to ``method_cls`` for both models (e.g. ``layer=...``,
            ``preprocess="unit"``).

    Returns:
        A :class:`SanityCheck`.

    Raises:
        ExplainError, LayerError, ValueError: as the method raises them (bad class index,
            layer, images).
    """
    trained = method_cls(model, **method_kwargs)(images, class_index)
    random_model = random_model if random_model is not None else randomized_copy(model, seed=seed)
    randomized = method_cls(random_model, **method_kwargs)(images, trained.class_index)
    a, b = trained.heatmap, randomized.heatmap
    flat = trained.flat | randomized.flat
    spearman = np.array([np.nan if f else _spearman(x, y) for x, y, f in zip(a, b, flat, strict=True)])
    ssim = np.array([np.nan if f else _ssim(x, y) for x, y, f in zip(a, b, flat, strict=True)])
    name = getattr(method_cls, "name", method_cls.__name__)
    passed, verdict = _sanity_verdict(name, spearman, ssim)
    return SanityCheck(
        method=name,
        spearman=spearman,
        ssim=ssim,
        heatmap=a,
        random_heatmap=b,
        class_index=np.asarray(trained.class_index, np.int64),
        passed=bool(passed),
        verdict=verdict,
    )
