"""Grad-CAM: Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization", ICCV, https://arxiv.org/abs/1610.02391.

Channel weights are the spatially averaged gradients of the class score with respect to the
target layer's activations; the map is ReLU of the weighted sum of the feature maps.
"""

from __future__ import annotations

import tensorflow as tf

from explain.attribution._params import whole_at_least
from explain.attribution.base import LayerAttribution


class GradCAM(LayerAttribution):
    """Grad-CAM (Selvaraju et al. 2017, https://arxiv.org/abs/1610.02391).

    With ``A`` the target layer's activations ``(h, w, K)`` and ``g = dS/dA`` the gradient of
    the class score ``S``, the weights are ``w_k = mean_ij g_ijk`` and the raw map is
    ``ReLU(sum_k w_k A_ijk)``, as in the paper (eq. 1-2). ``S`` is the pre-softmax logit
    where the model has one (see :mod:`explain.attribution.base`), as the paper asks. The
    map is then upsampled bilinearly to the input size and scaled to [0, 1] per image
    (:func:`~explain.attribution.base.normalize_maps`). Call shape: see
    :class:`~explain.attribution.base.AttributionMethod`.

    Args:
        model: a Keras classifier taking raw pixels ``(N, H, W, C)`` in [0, 255].
        layer: target layer (index, name or nested path); None picks the default one.
        batch_size: images per compiled call, a whole number >= 1 (default 32).
        preprocess: the model's preprocessing mode (:mod:`explain.models.preprocessing`).

    Raises:
        ValueError: ``batch_size`` below 1 or not a whole number.
        LayerError, ExplainError: as :class:`~explain.attribution.base.AttributionMethod`.
    """

    name = "gradcam"
    reference = "Selvaraju et al. 2017, https://arxiv.org/abs/1610.02391"

    def __init__(self, model, layer=None, batch_size=32, preprocess: str = "raw"):
        batch_size = whole_at_least(type(self).__name__, "batch_size", batch_size)
        super().__init__(model, layer, batch_size, preprocess)

    def _channel_weights(self, a, grads):
        return tf.reduce_mean(grads, axis=(1, 2))

    def cam(self, a: tf.Tensor, grads: tf.Tensor) -> tf.Tensor:
        """The raw map ``ReLU(sum_k w_k A_k)`` ``(B, h, w)`` from feature maps ``A`` and their gradients
        ``dS/dA``, both ``(B, h, w, K)`` (as :meth:`activations_and_gradients` gives them)."""
        weights = self._channel_weights(a, grads)
        return tf.nn.relu(tf.einsum("bhwk,bk->bhw", a, weights))

    def _raw_maps(self, x, class_index):
        a, grads, cls, score = self.activations_and_gradients(x, class_index)
        return self.cam(a, grads), cls, score
