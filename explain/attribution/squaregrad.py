"""SquareGrad (SmoothGrad-Squared): Hooker et al. 2019, "A Benchmark for Interpretability Methods in
Deep Neural Networks", NeurIPS, https://arxiv.org/abs/1806.10758.

The mean SQUARED input gradient over ``samples`` copies of the image with Gaussian noise: SmoothGrad's
noise loop (:class:`~explain.attribution.smoothgrad.SmoothGrad`, the same seeded draws) with the
squares averaged instead of the absolute values.
"""

from __future__ import annotations

import tensorflow as tf

from explain.attribution.smoothgrad import NoiseMoments, SmoothGrad


class SquareGrad(SmoothGrad):
    """SquareGrad, "SmoothGrad-Squared" (Hooker et al. 2019, https://arxiv.org/abs/1806.10758).

    The raw map is ``mean_c (1/n) sum_{s=1..n} (dS/dx (x + e_s))_c^2``: float32 ``(B, H, W)`` at the input
    resolution, >= 0, with ``e_s ~ N(0, (noise * 255)^2)`` drawn per pixel and channel exactly as
    :class:`~explain.attribution.smoothgrad.SmoothGrad` draws it (``tf.random.stateless_normal``
    seeded by ``(seed, s)``), ``n = samples`` and ``S`` the pre-softmax logit where the model has one.
    The paper (section 3, "SmoothGrad-Squared") squares each noisy estimate before averaging. Then it
    is scaled to [0, 1] per image.

    Channel reduction: the MEAN over the colour channels, as xplique's ``plot_attributions`` draws its
    ``SquareGrad`` (xplique's method itself returns one map per channel, ``(B, H, W, C)``).
    SmoothGrad and Saliency take the maximum over channels instead.

    Args:
        model, layer, batch_size, preprocess, samples, noise, seed: as
            :class:`~explain.attribution.smoothgrad.SmoothGrad` (``samples`` a whole number >= 1,
            default 25; ``noise`` a finite number >= 0, default 0.15; ``seed`` a whole number,
            default 0).

    Raises:
        ValueError: ``samples`` or ``batch_size`` below 1 or not a whole number, ``noise`` negative
            or not finite, ``seed`` not a whole number.
        ExplainError: as :class:`~explain.attribution.base.AttributionMethod`.
    """

    name = "squaregrad"
    reference = "Hooker et al. 2019, https://arxiv.org/abs/1806.10758"

    def _reduce(self, moments: NoiseMoments) -> tf.Tensor:
        """``mean_c mean_s g_s^2`` ``(B, H, W)``."""
        return tf.reduce_mean(moments.square_sum / self.samples, axis=-1)
