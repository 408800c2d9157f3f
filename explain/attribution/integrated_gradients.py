"""Integrated Gradients: Sundararajan et al. 2017, "Axiomatic Attribution for Deep Networks",
ICML, https://arxiv.org/abs/1703.01365.

Attributions are (x - baseline) times the average gradient along the straight path from a
black baseline to the image (Riemann midpoint sum over ``steps``); the map is the absolute
attribution summed over the colour channels.
"""

from __future__ import annotations

import tensorflow as tf

from explain.attribution._params import whole_at_least
from explain.attribution.base import PARALLEL_SAMPLES
from explain.attribution.saliency import Saliency


class IntegratedGradients(Saliency):
    """Integrated Gradients (Sundararajan et al. 2017, https://arxiv.org/abs/1703.01365).

    With a black baseline ``b = 0`` (raw pixels), the attribution of pixel ``i`` and channel
    ``c`` is ``(x - b) * (1/m) sum_{s=1..m} dS/dx (b + (s - 1/2)/m (x - b))``: the paper's
    path integral (eq. 1) as a Riemann midpoint sum over ``m = steps`` points, so the
    attributions sum to about ``S(x) - S(b)`` (completeness). ``S`` is the pre-softmax logit
    where the model has one.

    Departure from the paper: the map is ``sum_c |attribution|``, the absolute attributions
    summed over the colour channels (signed attributions are not returned), scaled to [0, 1]
    per image. Call shape: see :class:`~explain.attribution.base.AttributionMethod`.

    Args:
        model, layer, batch_size, preprocess: as :class:`~explain.attribution.saliency.Saliency`.
        steps: path points, a whole number >= 1 (default 32; the paper suggests 20 to 300).
            Costs one gradient pass per step, run in a graph loop (``tf.while_loop``): the model is
            traced once whatever the number of steps.

    Raises:
        ValueError: ``steps`` or ``batch_size`` below 1 or not a whole number.
        ExplainError: as :class:`~explain.attribution.base.AttributionMethod`.
    """

    name = "integrated_gradients"
    reference = "Sundararajan et al. 2017, https://arxiv.org/abs/1703.01365"

    def __init__(self, model, layer=None, batch_size=32, steps: int = 32, preprocess: str = "raw"):
        steps = whole_at_least(type(self).__name__, "steps", steps)
        super().__init__(model, layer, batch_size, preprocess)
        self.steps = steps

    def _raw_maps(self, x, class_index):
        cls, score = self.pick(self.scores_from_input(x), class_index)
        baseline = tf.zeros_like(x)

        def body(i, total):
            # alpha = (i + 1/2) / steps, in double precision then rounded to float32 as a Python float is.
            alpha = tf.cast((tf.cast(i, tf.float64) + 0.5) / self.steps, x.dtype)
            grads, _, _ = self._input_gradients(baseline + alpha * (x - baseline), cls)
            return i + 1, total + grads

        # A graph loop: the model's forward and backward pass is traced once, whatever the number of steps.
        _, total = tf.while_loop(
            lambda i, _: i < self.steps,
            body,
            (tf.constant(0, tf.int64), tf.zeros_like(x)),
            parallel_iterations=PARALLEL_SAMPLES,
        )
        attributions = (x - baseline) * total / self.steps
        return tf.reduce_sum(tf.abs(attributions), axis=-1), cls, score
