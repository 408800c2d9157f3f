"""Vanilla gradient saliency: Simonyan et al. 2013, "Deep Inside Convolutional Networks:
Visualising Image Classification Models and Saliency Maps", https://arxiv.org/abs/1312.6034.

The map is the largest absolute gradient of the class score over the colour channels.
"""

from __future__ import annotations

import tensorflow as tf

from explain.attribution._params import whole_at_least
from explain.attribution.base import AttributionMethod


class Saliency(AttributionMethod):
    """Gradient saliency (Simonyan et al. 2013, https://arxiv.org/abs/1312.6034).

    The raw map is ``max_c |dS/dx_ijc|``, the largest absolute gradient of the class score
    ``S`` (the pre-softmax logit where the model has one) with respect to the raw input
    pixels over the colour channels, as in the paper (section 3.1). It is scaled to [0, 1]
    per image. Call shape: see :class:`~explain.attribution.base.AttributionMethod`.

    Args:
        model: a Keras classifier taking raw pixels ``(N, H, W, C)`` in [0, 255].
        layer: ignored (input-gradient method).
        batch_size: images per compiled call, a whole number >= 1 (default 32).
        preprocess: the model's preprocessing mode (:mod:`explain.models.preprocessing`); gradients
            are taken with respect to the raw pixels in front of it.

    Raises:
        ValueError: ``batch_size`` below 1 or not a whole number.
        ExplainError: as :class:`~explain.attribution.base.AttributionMethod`.
    """

    name = "saliency"
    reference = "Simonyan et al. 2013, https://arxiv.org/abs/1312.6034"

    def __init__(self, model, layer=None, batch_size=32, preprocess: str = "raw"):
        batch_size = whole_at_least(type(self).__name__, "batch_size", batch_size)
        super().__init__(model, layer, batch_size, preprocess)

    def _input_gradients(self, x, class_index):
        with tf.GradientTape() as tape:
            tape.watch(x)
            cls, score = self.pick(self.scores_from_input(x), class_index)
        return tape.gradient(score, x), cls, score

    def _raw_maps(self, x, class_index):
        grads, cls, score = self._input_gradients(x, class_index)
        return tf.reduce_max(tf.abs(grads), axis=-1), cls, score
