"""SmoothGrad: Smilkov et al. 2017, "SmoothGrad: removing noise by adding noise",
https://arxiv.org/abs/1706.03825.

The mean absolute input gradient over ``samples`` copies of the image with Gaussian noise
of standard deviation ``noise`` x 255 (the paper's 10-20% of the input range), seeded.
"""

from __future__ import annotations

import tensorflow as tf

from explain.attribution.saliency import Saliency


class SmoothGrad(Saliency):
    """SmoothGrad over ``samples`` noisy copies (default 25, noise 0.15, seed 0)."""

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
        super().__init__(model, layer, batch_size, preprocess)
        self.samples, self.noise, self.seed = int(samples), float(noise), int(seed)

    def _raw_maps(self, x, class_index):
        cls, score = self.pick(self.scores_from_input(x), class_index)
        total = tf.zeros_like(x)
        for i in range(self.samples):
            noise = tf.random.stateless_normal(tf.shape(x), seed=[self.seed, i], stddev=self.noise * 255.0)
            grads, _, _ = self._input_gradients(x + noise, cls)
            total += tf.abs(grads)
        return tf.reduce_max(total / self.samples, axis=-1), cls, score
