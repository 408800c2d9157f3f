"""GradientSHAP / expected gradients: SHAP values (Lundberg & Lee 2017, "A Unified Approach to
Interpreting Model Predictions", NeurIPS, https://arxiv.org/abs/1705.07874) estimated as expected
gradients (Erion, Janizek, Sturmfels, Lundberg & Lee 2021, "Improving performance of deep learning
models with axiomatic attribution priors and expected gradients", Nature Machine Intelligence,
https://arxiv.org/abs/1906.10670), the estimator of captum's ``GradientShap``.

Integrated Gradients averaged over a distribution of baselines: each sample draws a baseline image
and a point on the straight line from it to the image, and multiplies the gradient there by the
image's difference from the baseline. Costs one gradient pass per sample.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from explain.attribution._params import finite_at_least_zero, whole, whole_at_least
from explain.attribution.saliency import Saliency


class GradientSHAP(Saliency):
    """GradientSHAP (Lundberg & Lee 2017, https://arxiv.org/abs/1705.07874; expected gradients, Erion et
    al. 2021, https://arxiv.org/abs/1906.10670).

    For ``n = samples`` draws ``s``: a baseline ``b_s`` from the baseline distribution, ``alpha_s``
    uniform in [0, 1) and Gaussian noise ``e_s ~ N(0, (noise * 255)^2)`` per pixel and channel, the
    attribution of pixel ``i`` and channel ``c`` is
    ``phi = (1/n) sum_s (x + e_s - b_s) * dS/dx (b_s + alpha_s (x + e_s - b_s))``, with ``S`` the
    class score (the pre-softmax logit where the model has one). This is captum's ``GradientShap``
    (its ``stdevs`` is ``noise * 255`` here, the noise added to the image before the difference is
    taken). Its expectation over the draws is the expected gradients of Erion et al. (eq. 5), so
    the attributions sum, on average, to ``S(x) - E_b S(b)`` (completeness in expectation; exact
    for a linear model: ``sum phi = S(x) - (1/n) sum_s S(b_s)`` when ``noise = 0``). On a linear
    model ``S = x . w + b0`` and one baseline ``b`` it is exactly ``(x - b) * w``.

    The baseline distribution: ``baselines=None`` draws, with equal probability, a black image
    (all 0), a white image (all 255) or an image of uniform noise in [0, 255] (fresh per sample);
    an array of raw-pixel images draws one of them uniformly (SHAP's background data: a few
    dozen images of the data set are typical).

    The map is ``|sum_c phi_ijc|``: the signed attributions summed over the colour channels, in
    absolute value, as :class:`~explain.attribution.gradient_input.GradientInput` (``phi`` with one
    baseline 0 and ``alpha = 1`` is Gradient x Input; note that Integrated Gradients here sums
    the absolute values instead). The signed attributions are :meth:`attributions`. The map is
    scaled to [0, 1] per image.

    Draws: ``tf.random`` stateless ops seeded by ``(seed, 4 * sample + stream)``, one draw per
    sample shared by every image of a batch, so the same seed gives the same map for an image in
    any batch. Call shape: see :class:`~explain.attribution.base.AttributionMethod`.

    Args:
        model, layer, batch_size, preprocess: as :class:`~explain.attribution.saliency.Saliency`.
        samples: draws per image, a whole number >= 1 (default 32, the cost of Integrated
            Gradients' default; captum's default is 5). Costs one gradient pass per sample.
        noise: standard deviation of the noise added to the image, as a fraction of the 0-255
            pixel range, a finite number >= 0 (default 0.0, captum's ``stdevs=0.0``).
        seed: a whole number seeding the draws (default 0).
        baselines: None (black, white and uniform-noise images), or raw-pixel images in
            [0, 255], ``(N_b, H, W, C)`` (one image ``(H, W, C)`` is allowed) at the model's input
            size, finite.

    Raises:
        ValueError: ``samples`` or ``batch_size`` below 1 or not a whole number, ``noise``
            negative or not finite, ``seed`` not a whole number, ``baselines`` not finite numbers or
            not images of the model's input shape; at the call, images of another size than the
            baselines (a model with a free input size).
        ExplainError: as :class:`~explain.attribution.base.AttributionMethod`.
    """

    name = "gradient_shap"
    reference = (
        "Lundberg & Lee 2017, https://arxiv.org/abs/1705.07874; Erion et al. 2021, https://arxiv.org/abs/1906.10670"
    )

    def __init__(
        self,
        model,
        layer=None,
        batch_size=32,
        samples: int = 32,
        noise: float = 0.0,
        seed: int = 0,
        preprocess: str = "raw",
        *,
        baselines: np.ndarray | None = None,
    ):
        name = type(self).__name__
        samples = whole_at_least(name, "samples", samples)
        noise = finite_at_least_zero(name, "noise", noise)
        seed = whole(name, "seed", seed)
        super().__init__(model, layer, batch_size, preprocess)
        self.samples, self.noise, self.seed = samples, noise, seed
        self.baselines = None if baselines is None else self._check_baselines(baselines)
        self._baselines = None if self.baselines is None else tf.constant(self.baselines)

    def _check_baselines(self, baselines) -> np.ndarray:
        name = type(self).__name__
        sizes = [axis if d is None else str(d) for axis, d in zip("HWC", self.input_shape, strict=True)]
        expected = f"(N, {', '.join(sizes)})"
        try:
            b = np.asarray(baselines, dtype=np.float32)
        except (TypeError, ValueError):
            raise ValueError(
                f"{name}: baselines must be an array of raw-pixel images {expected}, got {type(baselines).__name__}."
            ) from None
        if b.ndim == 3:
            b = b[None]
        fits = b.ndim == 4 and len(b) > 0
        fits = fits and all(e is None or e == g for e, g in zip(self.input_shape, b.shape[1:], strict=True))
        if not fits:
            raise ValueError(
                f"{name}: baselines must be raw-pixel images of shape {expected} like the model's input "
                f"(one image (H, W, C) is allowed), got shape {np.shape(baselines)}."
            )
        if not np.isfinite(b).all():
            raise ValueError(f"{name}: baselines must be finite raw pixels in [0, 255], got NaN or infinity.")
        return b

    def _check(self, images, class_index):
        x, idx = super()._check(images, class_index)
        if self.baselines is not None and x.shape[1:] != self.baselines.shape[1:]:
            raise ValueError(
                f"{type(self).__name__}: the images {x.shape[1:]} are not the size of the baselines "
                f"{self.baselines.shape[1:]}; pass baselines of the images' size."
            )
        return x, idx

    def _draw(self, i: tf.Tensor, image_shape: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Sample ``i``'s draws, shared by the batch: ``(baseline (H, W, C), alpha (), noise (H, W, C))``,
        float32, for ``image_shape`` ``(H, W, C)``."""

        def seed(stream):
            return tf.stack([tf.constant(self.seed, tf.int64), tf.cast(4 * i + stream, tf.int64)])

        choices = 3 if self._baselines is None else int(self._baselines.shape[0])
        pick = tf.random.stateless_uniform([], seed(0), minval=0, maxval=choices, dtype=tf.int32)
        alpha = tf.random.stateless_uniform([], seed(1), dtype=tf.float32)
        noise = tf.random.stateless_normal(image_shape, seed(2), stddev=self.noise * 255.0)
        if self._baselines is None:
            zeros = tf.zeros(image_shape, tf.float32)
            uniform = tf.random.stateless_uniform(image_shape, seed(3), minval=0.0, maxval=255.0)
            baseline = tf.gather(tf.stack([zeros, zeros + 255.0, uniform]), pick)
        else:
            baseline = tf.gather(self._baselines, pick)
        return baseline, alpha, noise

    def attributions(self, x: tf.Tensor, class_index: tf.Tensor) -> tf.Tensor:
        """The signed attributions ``phi`` float32 ``(B, H, W, C)`` for raw-pixel images ``x`` and
        resolved classes ``class_index`` (int64 ``(B,)``, >= 0); see the class docstring."""
        image_shape = tf.shape(x)[1:]

        def body(i, total):
            baseline, alpha, noise = self._draw(i, image_shape)
            diff = x + noise[None] - baseline[None]
            grads, _, _ = self._input_gradients(baseline[None] + alpha * diff, class_index)
            return i + 1, total + grads * diff

        _, total = tf.while_loop(lambda i, _: i < self.samples, body, (tf.constant(0), tf.zeros_like(x)))
        return total / self.samples

    def _raw_maps(self, x, class_index):
        cls, score = self.pick(self.scores_from_input(x), class_index)
        return tf.abs(tf.reduce_sum(self.attributions(x, cls), axis=-1)), cls, score
