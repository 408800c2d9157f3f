"""Kernel SHAP for images: Lundberg & Lee 2017, "A Unified Approach to Interpreting Model
Predictions", NeurIPS, https://arxiv.org/abs/1705.07874.

The image is cut into the same superpixels as LIME (:mod:`explain.attribution.lime`); a coalition
``z`` keeps some superpixels and paints the others with ``hide_color``. A weighted linear regression
from the coalitions to the class score, with the Shapley kernel as weights and the efficiency
constraint enforced exactly, gives each superpixel its Shapley value; with every coalition
enumerated (few superpixels, or ``num_samples >= 2^M - 2``) the values are the exact Shapley values
of the superpixel game.

Written here in NumPy (about 100 lines) rather than with the ``shap`` package, which would add
numba, llvmlite, pandas, slicer and cloudpickle to the dependencies; the coalitions are chosen the
way ``shap.KernelExplainer`` chooses them (whole coalition sizes enumerated while the budget allows,
the rest sampled by kernel weight, each sample paired with its complement).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from explain.attribution._params import whole, whole_at_least
from explain.attribution.base import AttributionMethod, normalize_maps
from explain.attribution.lime import SEGMENTATIONS, LimeAttribution, _segmentation_params, _Segmenter
from explain.attribution.occlusion import pixel_value
from explain.errors import ExplainError


def shapley_kernel(m: int, size: np.ndarray) -> np.ndarray:
    """The Shapley kernel ``pi(z) = (M - 1) / (C(M, |z|) |z| (M - |z|))`` (Lundberg & Lee 2017, theorem 2).

    Args:
        m: the number of players (superpixels) ``M``.
        size: coalition sizes ``|z|``, each in 1..M-1 (the empty and full coalitions have infinite
            weight; they are constraints here).

    Returns:
        float64 weights, the shape of ``size``.
    """
    s = np.asarray(size, dtype=np.float64)
    comb = np.vectorize(math.comb, otypes=[np.float64])(m, np.asarray(size, dtype=np.int64))
    return (m - 1) / (comb * s * (m - s))


def kernel_coalitions(m: int, budget: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Coalitions of ``m`` players and their regression weights, as ``shap.KernelExplainer`` picks them.

    Sizes ``s`` and ``m - s`` are taken together, from ``s = 1`` up: a pair of sizes whose share of the
    kernel's weight (of what is left), times the budget left, covers all its coalitions is enumerated,
    each coalition weighted by :func:`shapley_kernel`; the first pair that does not fit stops that, and
    the budget left is drawn at random: a size with probability proportional to its kernel weight, a
    coalition of that size uniformly, then its complement (not for size ``m / 2``, its own partner).
    Drawn coalitions share the kernel weight of the sizes not enumerated equally (a coalition drawn
    twice counts twice). With ``budget >= 2^m - 2`` every coalition is enumerated and nothing is drawn.

    Args:
        m: the number of players, >= 1.
        budget: the number of coalitions to evaluate (draws counted with repeats), >= 1.
        rng: the generator for the drawn part.

    Returns:
        ``(z bool (K, m), weights float64 (K,))``, ``K <= budget`` distinct coalitions, none empty or
        full (``K = 0`` for ``m = 1``).
    """
    if m < 2:
        return np.zeros((0, m), bool), np.zeros(0)
    n_sizes, n_paired = math.ceil((m - 1) / 2), (m - 1) // 2
    sizes = np.arange(1, n_sizes + 1)
    mass = (m - 1) / (sizes * (m - sizes)) * np.where(sizes <= n_paired, 2.0, 1.0)  # both sizes of a pair
    rows: list[np.ndarray] = []
    weights: list[float] = []
    left = budget
    enumerated = 0
    for s in sizes:
        count = math.comb(m, int(s)) * (2 if s <= n_paired else 1)
        share = mass[s - 1] / mass[s - 1 :].sum()
        if left * share / count < 1 - 1e-8:
            break
        w = float(shapley_kernel(m, s))
        for combo in itertools.combinations(range(m), int(s)):
            z = np.zeros(m, bool)
            z[list(combo)] = True
            rows.append(z)
            weights.append(w)
            if s <= n_paired:
                rows.append(~z)
                weights.append(w)
        left -= count
        enumerated = int(s)
    if enumerated < n_sizes and left > 0:
        rest = sizes[enumerated:]
        p = mass[enumerated:] / mass[enumerated:].sum()
        drawn: dict[bytes, list] = {}
        each = mass[enumerated:].sum() / left
        done = 0
        while done < left:
            s = int(rng.choice(rest, p=p))
            z = np.zeros(m, bool)
            z[rng.choice(m, size=s, replace=False)] = True
            for zz in (z, ~z) if s <= n_paired else (z,):
                if done < left:
                    drawn.setdefault(zz.tobytes(), [zz, 0.0])[1] += each
                    done += 1
        for zz, w in drawn.values():
            rows.append(zz)
            weights.append(w)
    return np.asarray(rows, bool).reshape(-1, m), np.asarray(weights, np.float64)


def shapley_regression(z: np.ndarray, weights: np.ndarray, values: np.ndarray, empty: float, full: float) -> np.ndarray:
    """Kernel SHAP's weighted least squares, the efficiency constraint enforced exactly.

    Finds ``phi`` minimising ``sum_k weights_k (empty + z_k . phi - values_k)^2`` subject to
    ``sum(phi) = full - empty``, by eliminating the last player as ``shap`` does:
    ``phi_M = (full - empty) - sum_{j<M} phi_j``, then an ordinary least squares on the others
    (NumPy's ``lstsq``; the minimum-norm solution when the coalitions do not determine them).

    Args:
        z: bool ``(K, M)`` coalitions (True: the player is present).
        weights: ``(K,)`` non-negative regression weights.
        values: ``(K,)`` the game's value of each coalition.
        empty: the value of the empty coalition (every player absent).
        full: the value of the full coalition.

    Returns:
        float64 ``(M,)`` values summing to ``full - empty`` (up to rounding).
    """
    z = np.asarray(z, np.float64)
    m = z.shape[1]
    total = float(full) - float(empty)
    if m == 1 or len(z) == 0:
        return np.full(m, total / m)
    a = z[:, :-1] - z[:, -1:]
    b = np.asarray(values, np.float64) - float(empty) - z[:, -1] * total
    root = np.sqrt(np.asarray(weights, np.float64))
    head = np.linalg.lstsq(a * root[:, None], b * root, rcond=None)[0]
    return np.append(head, total - head.sum())


@dataclass(frozen=True)
class KernelShapAttribution(LimeAttribution):
    """Kernel SHAP's result: a :class:`~explain.attribution.lime.LimeAttribution` (so the superpixel
    pictures work the same) whose ``weights`` are each superpixel's Shapley value.

    Attributes:
        segments: one int64 ``(H, W)`` array of superpixel labels ``0..M-1`` per image.
        weights: one float32 ``(M,)`` array per image: the Shapley values, in score units; they sum
            to ``score - base_value``.
        num_features: the largest ``M`` of the batch (every superpixel is kept).
        base_value: float32 ``(N,)``: the score with every superpixel hidden.
    """

    base_value: np.ndarray | None = None


class KernelSHAP(AttributionMethod):
    """Kernel SHAP on superpixels (Lundberg & Lee 2017, https://arxiv.org/abs/1705.07874).

    The players are the image's ``M`` superpixels (LIME's segmentation, same parameters and seed);
    a coalition ``z`` keeps its superpixels and paints the others with ``hide_color``; the game's
    value ``f(z)`` is the class score, the pre-softmax logit where the model has one (a binary sigmoid
    model's class 0 scores ``-logit``), the same score as the other methods report. Decided so because
    a model linear in the pixels then makes a game additive in the superpixels, whose Shapley values
    are exactly each superpixel's contribution ``sum over its pixels and channels of (x - hide) * w``;
    LIME, by contrast, fits the probability.

    The values ``phi`` minimise ``sum_z pi(z) (f(empty) + z . phi - f(z))^2`` over the coalitions
    (:func:`kernel_coalitions`), with the Shapley kernel ``pi(z) = (M - 1) / (C(M, |z|) |z| (M - |z|))``
    and the efficiency constraint ``sum(phi) = f(x) - f(empty)`` enforced exactly
    (:func:`shapley_regression`). When ``num_samples >= 2^M - 2`` every coalition is enumerated and the
    values are the exact Shapley values; otherwise whole coalition sizes are enumerated as far as the
    budget allows and the rest is sampled from ``numpy.random.default_rng(seed)``, fresh for each
    image (an image's values do not depend on its batch).

    The raw map paints each superpixel with its value: float32 ``(N, H, W)`` in score units; the
    heatmap scales it to [0, 1] per image by its min and max, so a value of 0 is not drawn as 0.

    Args:
        model: a Keras classifier taking raw pixels ``(N, H, W, C)`` in [0, 255], with ``C`` 1
            (grayscale) or 3 (RGB) for the built-in segmentations.
        layer: ignored (Kernel SHAP is model-agnostic); accepted for the shared call shape.
        batch_size: coalition images per compiled model call, a whole number >= 1 (default 256).
        num_samples: coalitions evaluated per image, a whole number >= 1 (default 500). Costs at most
            ``num_samples + 2`` forward passes per image (the coalitions, every superpixel hidden, the
            image itself); ``2^M`` when ``num_samples >= 2^M - 2``, where every coalition is enumerated
            and the values are exact.
        segmentation: ``"quickshift"`` (default, lime's), ``"slic"`` or ``"felzenszwalb"``, with
            LIME's parameters for the image size; or a function ``image (H, W, C) float32 raw pixels
            -> int labels (H, W)`` (relabelled ``0..M-1``).
        hide_color: the raw pixel value in [0, 255] painted over hidden superpixels (default 0,
            black, as LIME here); None paints each superpixel with its own mean colour (lime's
            convention).
        seed: a whole number seeding the segmentation (quickshift) and the sampled coalitions: the
            same seed gives the same map.
        progress: optional ``(done, total) -> None`` called after each model batch, counting
            coalition images over the whole call.
        segmentation_params: overrides for the scikit-image segmentation function's parameters
            (with a named ``segmentation``), as :class:`~explain.attribution.lime.LIME`.
        preprocess: the model's preprocessing mode (:mod:`explain.models.preprocessing`): superpixels
            are hidden in raw pixels, then preprocessed for the model.

    A call returns a :class:`KernelShapAttribution` (segments, Shapley values and the score with
    every superpixel hidden); the explainer keeps no per-call state.

    Raises:
        ValueError: ``num_samples`` or ``batch_size`` not a whole number of at least 1, ``seed`` not a
            whole number, ``hide_color`` neither None nor a pixel value in [0, 255], an unknown
            ``segmentation`` (each message names the parameter). A call raises as
            :meth:`AttributionMethod.__call__ <explain.attribution.base.AttributionMethod.__call__>`.
        ExplainError: a model with neither 1 nor 3 input channels (named segmentations); as
            :class:`~explain.attribution.base.AttributionMethod`.
    """

    name = "kernel_shap"
    reference = "Lundberg & Lee 2017, https://arxiv.org/abs/1705.07874"

    def __init__(
        self,
        model,
        layer: int | str | None = None,
        batch_size: int = 256,
        num_samples: int = 500,
        segmentation: str | Callable[[np.ndarray], np.ndarray] = "quickshift",
        hide_color: float | None = 0,
        seed: int = 0,
        progress: Callable[[int, int], None] | None = None,
        segmentation_params: dict | None = None,
        preprocess: str = "raw",
    ):
        name = type(self).__name__
        batch_size = whole_at_least(name, "batch_size", batch_size)
        self.num_samples = whole_at_least(name, "num_samples", num_samples)
        self.seed = whole(name, "seed", seed)
        self.hide_color = None if hide_color is None else pixel_value(name, "hide_color", hide_color)
        if not (callable(segmentation) or segmentation in SEGMENTATIONS):
            raise ValueError(
                f"{name}: segmentation must be one of {', '.join(SEGMENTATIONS)} or a function "
                f"(image -> labels), got {segmentation!r}."
            )
        super().__init__(model, None, batch_size, preprocess)
        channels = self.input_shape[-1]
        if isinstance(segmentation, str) and channels not in (1, 3):
            raise ExplainError(
                f"{name} segments grayscale (1 channel) or RGB (3 channels) images; this model takes {channels} "
                "channels. Pass segmentation=a function (image -> labels) instead."
            )
        self.segmentation = segmentation
        self.segmentation_params = dict(segmentation_params or {})
        self.progress = progress

    # -- pieces -----------------------------------------------------------------------------
    def segments(self, image: np.ndarray) -> np.ndarray:
        """The superpixels of one image, as every call cuts it.

        Args:
            image: ``(H, W, C)`` raw pixels in [0, 255].

        Returns:
            int64 ``(H, W)`` labels ``0..M-1``.

        Raises:
            ValueError: a ``segmentation`` function returned labels of another shape than ``(H, W)``.
        """
        image = np.asarray(image, np.float32)
        if callable(self.segmentation):
            seg = np.asarray(self.segmentation(image))
            if seg.shape != image.shape[:2]:
                raise ValueError(
                    f"{type(self).__name__}: segmentation returned labels of shape {seg.shape} for an image of "
                    f"{image.shape[0]}x{image.shape[1]} pixels; it must return one label per pixel, {image.shape[:2]}."
                )
        else:
            h, w = image.shape[:2]
            params = _segmentation_params(self.segmentation, h, w, self.seed)
            params.update(self.segmentation_params)
            rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
            seg = _Segmenter(self.segmentation, params)(rgb)
        return np.unique(seg, return_inverse=True)[1].reshape(image.shape[:2]).astype(np.int64)

    def _fill(self, image: np.ndarray, seg: np.ndarray) -> np.ndarray:
        """What hidden pixels show: ``hide_color``, or each superpixel's mean colour."""
        if self.hide_color is not None:
            return np.full_like(image, self.hide_color)
        counts = np.bincount(seg.ravel())
        means = np.stack(
            [np.bincount(seg.ravel(), weights=image[..., c].ravel()) / counts for c in range(image.shape[-1])], -1
        )
        return means[seg].astype(np.float32)

    def _picked(self, x, class_index):
        """Compiled: ``(class int64 (B,), score (B,))``; a class ``>= 0`` is scored as given."""
        return self.pick(self.scores_from_input(x), class_index)

    def _scores(self, images: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cls, score = self._batched("_compiled_pick", self._picked, images, classes)
        return cls.astype(np.int64), score.astype(np.float64)

    # -- the call ---------------------------------------------------------------------------
    def _explain_all(self, images, class_index):
        """``(classes int64 (N,), scores float32 (N,), segments [(H, W)], values [(M,) float32],
        base values float32 (N,))``."""
        x, idx = self._check(images, class_index)
        classes, scores = self._scores(x, idx)
        segments = [self.segments(image) for image in x]
        plans = []
        for seg in segments:
            z, weights = kernel_coalitions(int(seg.max()) + 1, self.num_samples, np.random.default_rng(self.seed))
            plans.append((np.concatenate([np.zeros((1, z.shape[1]), bool), z]), weights))  # row 0: all hidden
        total, done = sum(len(z) for z, _ in plans), 0
        values, bases = [], []
        for image, seg, cls, full, (z, weights) in zip(x, segments, classes, scores, plans, strict=True):
            fill = self._fill(image, seg)
            out = np.empty(len(z))
            for start in range(0, len(z), self.batch_size):
                on = z[start : start + self.batch_size][:, seg]  # (k, H, W)
                batch = np.where(on[..., None], image, fill).astype(np.float32)
                _, out[start : start + len(batch)] = self._scores(batch, np.full(len(batch), cls, np.int64))
                done += len(batch)
                if self.progress is not None:
                    self.progress(done, total)
            phi = shapley_regression(z[1:], weights, out[1:], out[0], full)
            values.append(phi.astype(np.float32))
            bases.append(out[0])
        return classes, scores.astype(np.float32), segments, values, np.asarray(bases, np.float32)

    def raw_maps(
        self, images: np.ndarray, class_index: int | np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each image's Shapley values painted on its superpixels, in score units.

        Args:
            images: ``(N, H, W, C)`` or ``(H, W, C)``, raw pixels in [0, 255].
            class_index: as :meth:`__call__` (None: each image's top prediction).

        Returns:
            ``(maps float32 (N, H, W), class_index int64 (N,), score float32 (N,))``, as
            :meth:`AttributionMethod.raw_maps <explain.attribution.base.AttributionMethod.raw_maps>`.

        Raises:
            ValueError, ExplainError: as :meth:`__call__`.
        """
        classes, scores, segments, values, _ = self._explain_all(images, class_index)
        maps = np.stack([v[seg] for seg, v in zip(segments, values, strict=True)]).astype(np.float32)
        return maps, classes, scores

    def __call__(self, images: np.ndarray, class_index: int | np.ndarray | None = None) -> KernelShapAttribution:
        """Explain a batch, one image at a time.

        Args:
            images: ``(N, H, W, C)`` or ``(H, W, C)``, raw pixels in [0, 255].
            class_index: the class to explain, one int for all images or ``(N,)``; None means each
                image's top prediction.

        Returns:
            A :class:`KernelShapAttribution` (heatmap float32 ``(N, H, W)`` in [0, 1], with each
            image's superpixels, Shapley values and base value).

        Raises:
            ValueError: images of the wrong shape, or no images.
            ExplainError: class index out of range.
        """
        classes, scores, segments, values, bases = self._explain_all(images, class_index)
        heat, flat = normalize_maps(np.stack([v[seg] for seg, v in zip(segments, values, strict=True)]))
        return KernelShapAttribution(
            heatmap=heat,
            class_index=classes,
            score=scores,
            method=self.name,
            layer=None,
            score_kind=self.score_kind,
            flat=flat,
            segments=tuple(segments),
            weights=tuple(values),
            num_features=max(len(v) for v in values),
            base_value=bases,
            images=self.head.check_batch(images)[0],
        )
