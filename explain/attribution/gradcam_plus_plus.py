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
    """Grad-CAM++ (Chattopadhyay et al. 2018, https://arxiv.org/abs/1710.11063).

    With ``A`` the target layer's activations ``(h, w, K)`` and ``g = dS/dA`` the gradient of
    the class logit ``S``, the pixel weights are the paper's closed form for the exponential
    score ``Y = exp(S)`` (eq. 19)::

        alpha_ijk = g_ijk^2 / (2 g_ijk^2 + sum_ab A_abk * g_ijk^3)   (0 where g_ijk = 0)
        w_k       = sum_ij alpha_ijk * ReLU(g_ijk)
        map       = ReLU(sum_k w_k A_k)

    Departures from the paper: the positive gradient is that of ``S``, not of ``exp(S)``;
    the two differ by the factor ``exp(S)``, one constant per image, which the per-image
    scaling to [0, 1] removes. A denominator smaller than 1e-7 in magnitude is replaced by
    1e-7 (as in pytorch-grad-cam). Parameters and errors: as :class:`GradCAM`.
    """

    name = "gradcam++"
    reference = "Chattopadhyay et al. 2018, https://arxiv.org/abs/1710.11063"

    def _channel_weights(self, a, grads):
        g2 = tf.square(grads)
        g3 = g2 * grads
        sum_a = tf.reduce_sum(a, axis=(1, 2), keepdims=True)
        denom = 2.0 * g2 + sum_a * g3
        alpha = tf.where(tf.not_equal(grads, 0.0), g2 / tf.where(tf.abs(denom) > 1e-7, denom, 1e-7), 0.0)
        return tf.reduce_sum(alpha * tf.nn.relu(grads), axis=(1, 2))
