"""Grad-CAM: Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization", ICCV, https://arxiv.org/abs/1610.02391.

Channel weights are the spatially averaged gradients of the class score with respect to the
target layer's activations; the map is ReLU of the weighted sum of the feature maps.
"""

from __future__ import annotations

import tensorflow as tf

from explain.attribution.base import AttributionMethod


class GradCAM(AttributionMethod):
    """Grad-CAM. See :class:`~explain.attribution.base.AttributionMethod` for the call shape."""

    name = "gradcam"
    needs_layer = True
    reference = "Selvaraju et al. 2017, https://arxiv.org/abs/1610.02391"

    def _gradients(self, x, class_index):
        with tf.GradientTape() as tape:
            tape.watch(x)  # records every op, frozen (non-trainable) bases included
            a, logits = self.activations_and_scores(x)
            cls, score = self.pick(logits, class_index)
        return a, tape.gradient(score, a), cls, score

    def _channel_weights(self, a, grads):
        return tf.reduce_mean(grads, axis=(1, 2))

    def _raw_maps(self, x, class_index):
        a, grads, cls, score = self._gradients(x, class_index)
        weights = self._channel_weights(a, grads)
        cam = tf.nn.relu(tf.einsum("bhwk,bk->bhw", a, weights))
        return cam, cls, score
