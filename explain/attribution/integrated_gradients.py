"""Integrated Gradients: Sundararajan et al. 2017, "Axiomatic Attribution for Deep Networks",
ICML, https://arxiv.org/abs/1703.01365.

Attributions are (x - baseline) times the average gradient along the straight path from a
black baseline to the image (Riemann midpoint sum over ``steps``); the map is the absolute
attribution summed over the colour channels.
"""

from __future__ import annotations

import tensorflow as tf

from explain.attribution.saliency import Saliency


class IntegratedGradients(Saliency):
    """Integrated Gradients with a black baseline and ``steps`` path points (default 32)."""

    name = "integrated_gradients"
    reference = "Sundararajan et al. 2017, https://arxiv.org/abs/1703.01365"

    def __init__(self, model, layer=None, batch_size=32, steps: int = 32, preprocess: str = "raw"):
        super().__init__(model, layer, batch_size, preprocess)
        self.steps = int(steps)

    def _raw_maps(self, x, class_index):
        cls, score = self.pick(self.scores_from_input(x), class_index)
        baseline = tf.zeros_like(x)
        total = tf.zeros_like(x)
        for i in range(self.steps):
            alpha = (i + 0.5) / self.steps
            grads, _, _ = self._input_gradients(baseline + alpha * (x - baseline), cls)
            total += grads
        attributions = (x - baseline) * total / self.steps
        return tf.reduce_sum(tf.abs(attributions), axis=-1), cls, score
