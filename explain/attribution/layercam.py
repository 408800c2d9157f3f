"""LayerCAM: Jiang, Zhang, Hou, Cheng & Wei 2021, "LayerCAM: Exploring Hierarchical Class Activation
Maps for Localization", IEEE TIP 30, https://doi.org/10.1109/TIP.2021.3089943.

Each position's positive gradient weights its own activation, so the map keeps fine detail at early
layers where Grad-CAM's averaged weights blur it.
"""

from __future__ import annotations

import tensorflow as tf

from explain.attribution.gradcam import GradCAM


class LayerCAM(GradCAM):
    """LayerCAM (Jiang et al. 2021, https://doi.org/10.1109/TIP.2021.3089943).

    With ``A`` the target layer's activations ``(h, w, K)`` and ``g = dS/dA``, the raw map is
    ``ReLU(sum_k ReLU(g_ijk) A_ijk)`` (the paper's eq. 5-6). The paper's optional scaling of shallow
    layers' maps by ``tanh(2 M / max M)`` is not applied: every map is scaled to [0, 1] per image
    instead. Parameters and errors: as :class:`GradCAM`.
    """

    name = "layercam"
    reference = "Jiang et al. 2021, https://doi.org/10.1109/TIP.2021.3089943"

    def cam(self, a: tf.Tensor, grads: tf.Tensor) -> tf.Tensor:
        """``ReLU(sum_k ReLU(g_k) * A_k)`` ``(B, h, w)`` from ``A`` and ``dS/dA`` ``(B, h, w, K)``."""
        return tf.nn.relu(tf.reduce_sum(tf.nn.relu(grads) * a, axis=-1))
