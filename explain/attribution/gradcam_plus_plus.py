"""Grad-CAM++: Chattopadhyay et al. 2018, "Grad-CAM++: Generalized Gradient-based Visual
Explanations for Deep Convolutional Networks", WACV, https://arxiv.org/abs/1710.11063.

Pixel-wise weights alpha (closed form with the exponential-score trick, eq. 19 of the paper,
as in pytorch-grad-cam) weight the positive gradients, so several instances of a class are
all highlighted.
"""

from __future__ import annotations

import tensorflow as tf

from explain.attribution.gradcam import GradCAM


class GradCAMPlusPlus(GradCAM):
    """Grad-CAM++. See :class:`~explain.attribution.base.AttributionMethod` for the call shape."""

    name = "gradcam++"
    reference = "Chattopadhyay et al. 2018, https://arxiv.org/abs/1710.11063"

    def _channel_weights(self, a, grads):
        g2 = tf.square(grads)
        g3 = g2 * grads
        sum_a = tf.reduce_sum(a, axis=(1, 2), keepdims=True)
        denom = 2.0 * g2 + sum_a * g3
        alpha = tf.where(tf.not_equal(grads, 0.0), g2 / tf.where(tf.abs(denom) > 1e-7, denom, 1e-7), 0.0)
        return tf.reduce_sum(alpha * tf.nn.relu(grads), axis=(1, 2))
