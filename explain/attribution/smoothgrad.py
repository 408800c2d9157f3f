"""SmoothGrad: Smilkov et al. 2017, "SmoothGrad: removing noise by adding noise",
https://arxiv.org/abs/1706.03825.

The mean absolute input gradient over ``samples`` copies of the image with Gaussian noise
of standard deviation ``noise`` x 255 (the paper's 10-20% of the input range), seeded. The noise
loop (:meth:`SmoothGrad._noisy_gradients`) is shared with SquareGrad and VarGrad
(:mod:`explain.attribution.squaregrad`, :mod:`explain.attribution.vargrad`), which reduce the same
noisy gradients differently (:meth:`SmoothGrad._reduce`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import tensorflow as tf

from explain.attribution._params import finite_at_least_zero, whole, whole_at_least
from explain.attribution.saliency import Saliency


class SmoothGrad(Saliency):
    """SmoothGrad (Smilkov et al. 2017, https://arxiv.org/abs/1706.03825).

    The raw map is ``max_c (1/n) sum_{s=1..n} |dS/dx (x + e_s)|_c`` with
    ``e_s ~ N(0, (noise * 255)^2)`` drawn independently per pixel and channel, ``n = samples``
    and ``S`` the pre-softmax logit where the model has one. With ``samples=1`` and
    ``noise=0`` it is exactly :class:`~explain.attribution.saliency.Saliency`.

    Departure from the paper: the paper averages the signed gradients (eq. 3) and takes the
    absolute value to draw them; here the ABSOLUTE gradients are averaged (so opposite signs
    under noise do not cancel), then reduced by the maximum over the colour channels like
    Saliency. The map is scaled to [0, 1] per image. The noise is drawn with
    ``tf.random.stateless_normal`` seeded by ``(seed, sample index)``: the same seed gives the
    same map. Call shape: see :class:`~explain.attribution.base.AttributionMethod`.

    Args:
        model, layer, batch_size, preprocess: as :class:`~explain.attribution.saliency.Saliency`.
        samples: noisy copies per image, a whole number >= 1 (default 25; the paper finds
            about 50 enough). Costs one gradient pass per sample.
        noise: standard deviation of the noise as a fraction of the 0-255 pixel range, a finite
            number >= 0 (default 0.15; the paper recommends 0.10 to 0.20).
        seed: a whole number seeding the noise (default 0).

    Raises:
        ValueError: ``samples`` or ``batch_size`` below 1 or not a whole number, ``noise``
            negative or not finite, ``seed`` not a whole number.
        ExplainError: as :class:`~explain.attribution.base.AttributionMethod`.
    """

    name = "smoothgrad"
    reference = "Smilkov et al. 2017, https://arxiv.org/abs/1706.03825"

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
        name = type(self).__name__
        samples = whole_at_least(name, "samples", samples)
        noise = finite_at_least_zero(name, "noise", noise)
        seed = whole(name, "seed", seed)
        super().__init__(model, layer, batch_size, preprocess)
        self.samples, self.noise, self.seed = samples, noise, seed

    def _noisy_gradients(self, x: tf.Tensor, cls: tf.Tensor) -> Iterator[tf.Tensor]:
        """The noise loop shared with SquareGrad and VarGrad: for ``s = 0 .. samples - 1``, the input
        gradient ``dS/dx (x + e_s)`` ``(B, H, W, C)`` of the classes ``cls`` (int64 ``(B,)``, already
        resolved), with ``e_s = tf.random.stateless_normal(shape, seed=[seed, s], stddev=noise * 255)``.
        Unrolled when traced: one gradient pass per sample."""
        for i in range(self.samples):
            noise = tf.random.stateless_normal(tf.shape(x), seed=[self.seed, i], stddev=self.noise * 255.0)
            grads, _, _ = self._input_gradients(x + noise, cls)
            yield grads

    def _reduce(self, gradients: Iterable[tf.Tensor], x: tf.Tensor) -> tf.Tensor:
        """The map ``(B, H, W)`` from the noisy gradients: here ``max_c mean_s |g_s|``."""
        total = tf.zeros_like(x)
        for grads in gradients:
            total += tf.abs(grads)
        return tf.reduce_max(total / self.samples, axis=-1)

    def _raw_maps(self, x, class_index):
        cls, score = self.pick(self.scores_from_input(x), class_index)
        return self._reduce(self._noisy_gradients(x, cls), x), cls, score
