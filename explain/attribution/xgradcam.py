"""XGrad-CAM: Fu, Hu, Dong, Hu, Jiang & Wu 2020, "Axiom-based Grad-CAM: Towards Accurate Visualization
and Explanation of CNNs", BMVC, https://arxiv.org/abs/2008.02312.

Each channel's weight is its gradient averaged with the channel's own activations as the weights, the
choice that satisfies the paper's sensitivity and conservation axioms best.
"""

from __future__ import annotations

import tensorflow as tf

from explain.attribution.gradcam import GradCAM


class XGradCAM(GradCAM):
    """XGrad-CAM (Fu et al. 2020, https://arxiv.org/abs/2008.02312).

    With ``A`` the target layer's activations ``(h, w, K)`` and ``g = dS/dA``, the channel weights are
    ``w_k = sum_ij (A_ijk / sum_ab A_abk) g_ijk`` (the paper's eq. 12; a channel with no activation gets
    weight 0, as pytorch-grad-cam's 1e-7 in the denominator gives) and the raw map is
    ``ReLU(sum_k w_k A_ijk)``. Parameters and errors: as :class:`GradCAM`.
    """

    name = "xgradcam"
    reference = "Fu et al. 2020, https://arxiv.org/abs/2008.02312"

    def _channel_weights(self, a, grads):
        total = tf.reduce_sum(a, axis=(1, 2))
        weighted = tf.reduce_sum(a * grads, axis=(1, 2))
        return tf.where(tf.abs(total) > 1e-7, weighted / tf.where(tf.abs(total) > 1e-7, total, 1.0), 0.0)
