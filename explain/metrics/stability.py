"""Stability of an explanation under small input noise: average sensitivity and
sensitivity-max.

Yeh, Hsieh, Suggala, Inouye & Ravikumar 2019, "On the (In)fidelity and Sensitivity of
Explanations", NeurIPS, https://arxiv.org/abs/1901.09392 (sensitivity-max, definition 3.1);
Bhatt, Weller & Moura 2020, "Evaluating and Aggregating Feature-based Model Explanations",
IJCAI, https://arxiv.org/abs/2005.00631 (average sensitivity, definition 2). As xplique's
``AverageStability`` and Captum's ``sensitivity_max``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explain.attribution.base import AttributionMethod
from explain.metrics._common import PerImageScores, refuse_all_flat

#: The default noise radius: 5% of the 0-255 pixel range.
DEFAULT_RADIUS = 0.05 * 255.0


@dataclass(frozen=True)
class StabilityScores(PerImageScores):
    """How far a method's heatmap moves when the image gets a little noise, per image.
    LOWER is more stable (0: the map does not move at all).

    Attributes:
        average: float64 ``(N,)`` in [0, 1]: the mean distance over the noisy samples
            (average sensitivity). NaN where the original map was flat.
        maximum: float64 ``(N,)`` in [0, 1]: the largest distance over the samples (a Monte
            Carlo estimate of sensitivity-max). NaN where the original map was flat.
        distances: float64 ``(N, samples)``: each sample's distance (NaN rows where flat).
        perturbed_flat: int64 ``(N,)``: how many noisy samples gave a flat map; those count as
            the all-zero map the method drew (a map that vanished under noise moved a lot).
        flat: bool ``(N,)``: the original map was flat; not scored.
        class_index: int64 ``(N,)``: the class explained, the same for the noisy images.
        method: the method's registry name.
        radius: the noise radius in raw pixel units; ``samples``: noisy images per image.
    """

    average: np.ndarray
    maximum: np.ndarray
    distances: np.ndarray
    perturbed_flat: np.ndarray
    flat: np.ndarray
    class_index: np.ndarray
    method: str
    radius: float
    samples: int

    def _columns(self):
        return {"average": self.average, "maximum": self.maximum}


def stability(
    method: AttributionMethod,
    images: np.ndarray,
    class_index: int | np.ndarray | None = None,
    *,
    radius: float = DEFAULT_RADIUS,
    samples: int = 10,
    seed: int = 0,
    batch_size: int = 64,
) -> StabilityScores:
    """Average sensitivity (Bhatt et al. 2020, https://arxiv.org/abs/2005.00631) and
    sensitivity-max (Yeh et al. 2019, "On the (In)fidelity and Sensitivity of Explanations",
    NeurIPS, https://arxiv.org/abs/1901.09392) of an attribution method.

    Each image ``x`` is explained, then explained again at ``samples`` noisy copies
    ``x + u``, ``u`` uniform in ``[-radius, radius]`` per pixel and channel (raw 0-255 units),
    clipped to [0, 255], for the SAME class as ``x`` (the class the original map explains).
    The distance between two [0, 1] heatmaps ``g`` (``Attribution.heatmap``) is their
    root-mean-square difference::

        d(x, x + u) = ||g(x) - g(x + u)||_2 / sqrt(H * W)      in [0, 1]

    ``average`` is the mean of ``d`` over the samples (xplique's ``AverageStability``, which
    sums squared differences and draws its noise differently), ``maximum`` its largest value
    (Captum's ``sensitivity_max``, whose norm is not divided by ``sqrt(H * W)``). LOWER is
    better for both. The same ``samples`` noise images (drawn from ``seed``) serve every
    image. A method that is random itself (LIME, SmoothGrad) scores above 0 even without
    noise unless it is seeded.

    Cost: ``samples + 1`` calls of the method per image (the noisy images ``batch_size`` per
    call; the method batches its own compiled calls).

    Args:
        method: an :class:`~explain.attribution.base.AttributionMethod` instance, e.g.
            ``Saliency(model)``; it is called as ``method(images, class_index)``.
        images: ``(N, H, W, C)`` or ``(H, W, C)`` raw pixels in [0, 255].
        class_index: the class to explain, one int or ``(N,)``; None: each image's top
            prediction (of the original image; kept for its noisy copies).
        radius: half-width of the uniform noise in raw pixel units (default 12.75, 5% of the
            range); > 0.
        samples: noisy copies per image (>= 1).
        seed: seeds the noise: the same seed gives the same numbers.
        batch_size: noisy images per call of the method (>= 1).

    Returns:
        A :class:`StabilityScores`. Flat original maps get ``flat=True`` and NaN: they are
        never silently scored.

    Raises:
        ValueError: EVERY original map flat (one line naming the method); ``radius <= 0``;
            ``samples < 1``; images the method refuses.
        ExplainError: as the method raises it (a class index out of range).
    """
    if not float(radius) > 0:
        raise ValueError(f"radius must be above 0 (raw pixel units), got {radius}.")
    if int(samples) < 1:
        raise ValueError(f"samples must be at least 1, got {samples}.")
    samples, batch_size, radius = int(samples), max(1, int(batch_size)), float(radius)
    name = getattr(method, "name", type(method).__name__)
    original = method(images, class_index)
    flat = np.asarray(original.flat, bool)
    refuse_all_flat("Stability", flat, name)
    x = np.asarray(images, np.float32)
    x = x[None] if x.ndim == 3 else x
    n, h, w = original.heatmap.shape
    classes = np.asarray(original.class_index, np.int64)
    noise = np.random.default_rng(seed).uniform(-radius, radius, (samples, *x.shape[1:])).astype(np.float32)

    scored = np.flatnonzero(~flat)
    distances = np.full((n, samples), np.nan)
    perturbed_flat = np.zeros(n, np.int64)
    jobs = [(j, s) for j in scored for s in range(samples)]
    for start in range(0, len(jobs), batch_size):
        part = jobs[start : start + batch_size]
        rows = np.array([j for j, _ in part])
        cols = np.array([s for _, s in part])
        noisy = np.clip(x[rows] + noise[cols], 0.0, 255.0)
        again = method(noisy, classes[rows])
        diff = again.heatmap.astype(np.float64) - original.heatmap[rows].astype(np.float64)
        distances[rows, cols] = np.sqrt((diff * diff).sum(axis=(1, 2)) / (h * w))
        np.add.at(perturbed_flat, rows, np.asarray(again.flat, np.int64))
    average = np.full(n, np.nan)
    maximum = np.full(n, np.nan)
    average[scored] = distances[scored].mean(axis=1)
    maximum[scored] = distances[scored].max(axis=1)
    return StabilityScores(
        average=average,
        maximum=maximum,
        distances=distances,
        perturbed_flat=perturbed_flat,
        flat=flat,
        class_index=classes,
        method=name,
        radius=radius,
        samples=samples,
    )
