"""Guided Grad-CAM: Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization", ICCV, https://arxiv.org/abs/1610.02391 (section 3, "Guided Grad-CAM").

The Grad-CAM map, upsampled bilinearly to the input size, multiplied pixel by pixel with the
guided-backpropagation map (Springenberg et al. 2015, https://arxiv.org/abs/1412.6806): the coarse,
class-discriminative localisation of Grad-CAM times the fine, pixel-level detail of guided
backpropagation.
"""

from __future__ import annotations

import tensorflow as tf

from explain.attribution.gradcam import GradCAM
from explain.attribution.guided_backprop import guided_input_gradients


def _scaled(maps: tf.Tensor) -> tf.Tensor:
    """Each ``(h, w)`` map of ``(B, h, w)`` divided by its largest magnitude (a map of zeros stays zeros): a
    positive factor per image, which the [0, 1] scaling of the product removes, so that two tiny factors
    (gradients near 1e-20 in a random-weight network's early layers) cannot underflow float32 to 0."""
    top = tf.reduce_max(tf.abs(maps), axis=(1, 2), keepdims=True)
    return tf.math.divide_no_nan(maps, top)


def _to_input_size(maps: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """``(B, h, w)`` maps resized bilinearly to the height and width of images ``x`` ``(B, H, W, C)``
    (static when known, so the result's shape says it is at the input size)."""
    size = x.shape[1:3] if x.shape[1:3].is_fully_defined() else tf.shape(x)[1:3]
    return tf.image.resize(maps[..., None], size, method="bilinear")[..., 0]


class GuidedGradCAM(GradCAM):
    """Guided Grad-CAM (Selvaraju et al. 2017, https://arxiv.org/abs/1610.02391, section 3).

    With ``cam = ReLU(sum_k w_k A_k)`` the Grad-CAM map at the target layer (:class:`GradCAM`, ordinary
    gradients), ``up(cam)`` that map resized bilinearly to the input size (``tf.image.resize``, half-pixel
    centres, as :class:`GradCAM`'s heatmap), and ``g`` the guided-backpropagation gradient of the same
    class score with respect to the input pixels
    (:class:`~explain.attribution.guided_backprop.GuidedBackprop`), the raw map is
    ``up(cam)_ij * max_c |g_ijc|``: float32 ``(B, H, W)`` at the INPUT resolution, >= 0, then scaled to
    [0, 1] per image. Each factor is first divided by its own maximum (so the product of two tiny maps,
    near 1e-20 each in a random-weight network, cannot underflow; the raw map is in [0, 1] already). The
    paper multiplies the upsampled map with the guided-backpropagation image point-wise; here the guided
    part is reduced over the colour channels first (max of absolute values, as
    :class:`~explain.attribution.guided_backprop.GuidedBackprop` draws it), and the Grad-CAM map is
    divided by its maximum, not min-max scaled (pytorch-grad-cam scales it to [0, 1] before
    multiplying, which differs only where the map's minimum is above 0). Both parts come from
    one compiled function: the Grad-CAM part traced with the model's ReLUs as they are, the guided
    gradient with them guided (:func:`~explain.attribution.guided_backprop.guided_relus`); the model
    is left unchanged. Without ReLUs in the model the guided part is the plain input gradient.

    Args:
        model, layer, batch_size, preprocess: as :class:`~explain.attribution.gradcam.GradCAM`
            (``layer``: the Grad-CAM target layer, None for the default one).

    Raises:
        ValueError: ``batch_size`` below 1 or not a whole number.
        NoSpatialLayerError, LayerError, ExplainError: as :class:`~explain.attribution.gradcam.GradCAM`.
    """

    name = "guided_gradcam"
    reference = "Selvaraju et al. 2017, https://arxiv.org/abs/1610.02391"

    def _raw_maps(self, x, class_index):
        a, grads, cls, score = self.activations_and_gradients(x, class_index)  # ordinary ReLUs
        cam = _to_input_size(self.cam(a, grads), x)
        guided, _, _ = guided_input_gradients(self, x, cls)  # the same classes, guided ReLUs
        return _scaled(cam) * _scaled(tf.reduce_max(tf.abs(guided), axis=-1)), cls, score
