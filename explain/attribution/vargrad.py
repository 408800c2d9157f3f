"""VarGrad: Adebayo et al. 2018, "Local Explanation Methods for Deep Neural Networks Lack Sensitivity
to Parameter Values", ICLR workshop, https://arxiv.org/abs/1810.03307 (also in their "Sanity Checks
for Saliency Maps", NeurIPS 2018, https://arxiv.org/abs/1810.03292).

The VARIANCE of the input gradient over ``samples`` copies of the image with Gaussian noise:
SmoothGrad's noise loop (:class:`~explain.attribution.smoothgrad.SmoothGrad`, the same seeded draws)
with the variance taken instead of the mean of the absolute values.
"""

from __future__ import annotations

import tensorflow as tf

from explain.attribution._params import whole_at_least
from explain.attribution.smoothgrad import NoiseMoments, SmoothGrad


class VarGrad(SmoothGrad):
    """VarGrad (Adebayo et al. 2018, https://arxiv.org/abs/1810.03307).

    With ``g_s = dS/dx (x + e_s)`` the input gradient at the ``s``-th noisy copy (``e_s ~ N(0, (noise *
    255)^2)`` per pixel and channel, drawn exactly as :class:`~explain.attribution.smoothgrad.SmoothGrad`
    draws it: ``tf.random.stateless_normal`` seeded by ``(seed, s)``) and ``n = samples``, the raw map
    is ``mean_c (1/n) sum_s (g_s - m)_c^2`` with ``m = (1/n) sum_s g_s``: the per-pixel, per-channel
    variance of the gradient over the samples, float32 ``(B, H, W)`` at the input resolution, >= 0,
    then scaled to [0, 1] per image. ``S`` is the pre-softmax logit where the model has one.

    The variance is the population one (``1/n``, as xplique's ``tf.math.reduce_variance``), accumulated
    in one pass (Welford's update, so no cancellation between two large sums); the unbiased
    ``1/(n - 1)`` would only scale each map, which the [0, 1] scaling removes. Channel reduction: the
    MEAN over the colour channels, as xplique's ``plot_attributions`` draws its ``VarGrad`` (xplique's
    method itself returns one map per channel, ``(B, H, W, C)``).

    Args:
        model, layer, batch_size, preprocess, noise, seed: as
            :class:`~explain.attribution.smoothgrad.SmoothGrad`.
        samples: noisy copies per image, a whole number >= 2 (default 25): the variance of one
            sample is 0 everywhere, a flat map, so ``samples=1`` is refused.

    Raises:
        ValueError: ``samples`` below 2 or not a whole number, ``batch_size`` below 1 or not a whole
            number, ``noise`` negative or not finite, ``seed`` not a whole number.
        ExplainError: as :class:`~explain.attribution.base.AttributionMethod`.
    """

    name = "vargrad"
    reference = "Adebayo et al. 2018, https://arxiv.org/abs/1810.03307"

    def __init__(
        self,
        model,
        layer=None,
        batch_size=32,
        samples: int = 25,
        noise: float = 0.15,
        seed: int = 0,
        preprocess: str = "raw",
    ):
        samples = whole_at_least(type(self).__name__, "samples", samples)
        if samples < 2:
            raise ValueError(
                f"{type(self).__name__}: samples must be at least 2 (the variance of a single noisy gradient is 0 "
                f"everywhere, a flat map), got {samples!r}."
            )
        super().__init__(model, layer, batch_size, samples, noise, seed, preprocess)

    def _reduce(self, moments: NoiseMoments) -> tf.Tensor:
        """``mean_c var_s g_s`` ``(B, H, W)``, the population variance by Welford's one-pass update."""
        return tf.reduce_mean(moments.m2 / self.samples, axis=-1)
