"""HiResCAM: Draelos & Carin 2020, "Use HiResCAM instead of Grad-CAM for faithful explanations of
convolutional neural networks", https://arxiv.org/abs/2011.08891.

The gradient multiplies the feature maps element-wise before the sum over channels, instead of being
averaged over the map first: on a head that flattens the feature map (position-specific weights, as in
every CNN of the Keras tutorials) the map is then exactly each position's contribution to the score.
"""

from __future__ import annotations

import tensorflow as tf

from explain.attribution.gradcam import GradCAM


class HiResCAM(GradCAM):
    """HiResCAM (Draelos & Carin 2020, https://arxiv.org/abs/2011.08891).

    With ``A`` the target layer's activations ``(h, w, K)`` and ``g = dS/dA``, the raw map is
    ``ReLU(sum_k g_ijk A_ijk)`` (the paper's eq. 3, with Grad-CAM's ReLU kept as pytorch-grad-cam does).
    It equals Grad-CAM when the gradients are constant over the map (a GlobalAveragePooling head
    followed by a linear layer); with a Flatten head it is the score's first-order contribution of
    each position (exact for a linear head). Parameters and errors: as :class:`GradCAM`.
    """

    name = "hirescam"
    reference = "Draelos & Carin 2020, https://arxiv.org/abs/2011.08891"

    def cam(self, a: tf.Tensor, grads: tf.Tensor) -> tf.Tensor:
        """``ReLU(sum_k g_k * A_k)`` ``(B, h, w)`` from ``A`` and ``dS/dA`` ``(B, h, w, K)``."""
        return tf.nn.relu(tf.reduce_sum(grads * a, axis=-1))
