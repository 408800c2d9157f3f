"""SmoothGrad: Smilkov et al. 2017, "SmoothGrad: removing noise by adding noise",
https://arxiv.org/abs/1706.03825.

The mean absolute input gradient over ``samples`` copies of the image with Gaussian noise
of standard deviation ``noise`` x 255 (the paper's 10-20% of the input range), seeded. The noise
loop (:meth:`SmoothGrad._noise_moments`, a graph loop: the model is traced once whatever the number of
samples) is shared with SquareGrad and VarGrad (:mod:`explain.attribution.squaregrad`,
:mod:`explain.attribution.vargrad`), which reduce the same noisy gradients' running sums differently
(:meth:`SmoothGrad._reduce`).
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from explain.attribution._params import finite_at_least_zero, whole, whole_at_least
from explain.attribution.base import PARALLEL_SAMPLES
from explain.attribution.saliency import Saliency


class NoiseMoments(NamedTuple):
    """Running sums over the noisy gradients ``g_s`` of :meth:`SmoothGrad._noise_moments`, each
    ``(B, H, W, C)`` float32: ``abs_sum = sum_s |g_s|`` (SmoothGrad), ``square_sum = sum_s g_s^2``
    (SquareGrad), and ``mean = (1/n) sum_s g_s`` with ``m2 = sum_s (g_s - mean)^2`` by Welford's
    one-pass update (VarGrad)."""

    abs_sum: tf.Tensor
    square_sum: tf.Tensor
    mean: tf.Tensor
    m2: tf.Tensor


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
            about 50 enough). Costs one gradient pass per sample, run in a graph loop (``tf.while_loop``):
            the model is traced once whatever the number of samples.
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

    def _noise_moments(self, x: tf.Tensor, cls: tf.Tensor) -> NoiseMoments:
        """The noise loop shared with SquareGrad and VarGrad: for ``s = 0 .. samples - 1``, the input
        gradient ``g_s = dS/dx (x + e_s)`` ``(B, H, W, C)`` of the classes ``cls`` (int64 ``(B,)``, already
        resolved), with ``e_s = tf.random.stateless_normal(shape, seed=[seed, s], stddev=noise * 255)``,
        folded into the running sums of :class:`NoiseMoments` that the three reductions need.

        A graph loop (``tf.while_loop``): the model's forward and backward pass is traced once, whatever
        the number of samples. The sums are taken in sample order, as an unrolled loop would."""
        seed = tf.constant(self.seed, tf.int64)
        stddev = self.noise * 255.0

        def body(i, abs_sum, square_sum, mean, m2):
            noise = tf.random.stateless_normal(tf.shape(x), seed=tf.stack([seed, i]), stddev=stddev)
            grads, _, _ = self._input_gradients(x + noise, cls)
            # Welford's update for the mean and the sum of squared deviations (k = i + 1 samples so far).
            delta = grads - mean
            mean = mean + delta / tf.cast(i + 1, grads.dtype)
            m2 = m2 + delta * (grads - mean)
            return i + 1, abs_sum + tf.abs(grads), square_sum + tf.square(grads), mean, m2

        zeros = tf.zeros_like(x)
        _, *sums = tf.while_loop(
            lambda i, *_: i < self.samples,
            body,
            (tf.constant(0, tf.int64), zeros, zeros, zeros, zeros),
            parallel_iterations=PARALLEL_SAMPLES,
        )
        return NoiseMoments(*sums)

    def _reduce(self, moments: NoiseMoments) -> tf.Tensor:
        """The map ``(B, H, W)`` from the noisy gradients' sums: here ``max_c mean_s |g_s|``."""
        return tf.reduce_max(moments.abs_sum / self.samples, axis=-1)

    def _raw_maps(self, x, class_index):
        cls, score = self.pick(self.scores_from_input(x), class_index)
        return self._reduce(self._noise_moments(x, cls)), cls, score
