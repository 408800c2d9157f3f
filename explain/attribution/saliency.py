"""Vanilla gradient saliency: Simonyan et al. 2013, "Deep Inside Convolutional Networks:
Visualising Image Classification Models and Saliency Maps", https://arxiv.org/abs/1312.6034.

The map is the largest absolute gradient of the class score over the colour channels.
"""

from __future__ import annotations

import tensorflow as tf

from explain.attribution.base import AttributionMethod


class Saliency(AttributionMethod):
    """Gradient saliency. See :class:`~explain.attribution.base.AttributionMethod`."""

    name = "saliency"
    reference = "Simonyan et al. 2013, https://arxiv.org/abs/1312.6034"

    def _input_gradients(self, x, class_index):
        with tf.GradientTape() as tape:
            tape.watch(x)
            cls, score = self.pick(self.scores_from_input(x), class_index)
        return tape.gradient(score, x), cls, score

    def _raw_maps(self, x, class_index):
        grads, cls, score = self._input_gradients(x, class_index)
        return tf.reduce_max(tf.abs(grads), axis=-1), cls, score
