"""Eigen-CAM: Muhammad & Yeasin 2020, "Eigen-CAM: Class Activation Map using Principal Components",
IJCNN, https://arxiv.org/abs/2008.00299.

Gradient-free and class-agnostic: the map is the target layer's feature maps projected on their first
principal component (positions as samples, channels as features). It costs one forward pass per image
and does not depend on the class explained.
"""

from __future__ import annotations

import tensorflow as tf

from explain.attribution._params import whole_at_least
from explain.attribution.base import LayerAttribution


class EigenCAM(LayerAttribution):
    """Eigen-CAM (Muhammad & Yeasin 2020, https://arxiv.org/abs/2008.00299).

    With ``A`` the target layer's activations read as a matrix ``(h*w, K)`` (one row per position),
    ``A_c = A - mean_rows(A)`` centred over the positions and ``A_c = U S V^T`` its singular value
    decomposition (``tf.linalg.svd``), the raw map is ``ReLU(s * A_c v_1)`` reshaped to ``(h, w)``:
    the projection of every position on the first right singular vector ``v_1`` (the first
    principal component), as pytorch-grad-cam's ``get_2d_projection`` computes it, followed by the
    ReLU its CAMs share.

    Sign convention: a singular vector's sign is arbitrary (two SVD routines may disagree), so
    ``s = +1 or -1`` is chosen to make the projection correlate positively with the mean activation
    over the channels, ``m_ij = mean_k A_ijk``: ``s = -1`` exactly when ``sum_ij (A_c v_1)_ij m_ij < 0``
    (ties give ``+1``). The map's hot end is then where the layer is most active. pytorch-grad-cam keeps
    whatever sign its SVD returns.

    Departure from the paper: the paper projects the uncentred activations; centring first (as
    pytorch-grad-cam does) removes the common offset that otherwise dominates the first component.

    Class-agnostic: the map does not depend on ``class_index``; the result's ``class_index`` and
    ``score`` are still the class asked for (or the top prediction) and its score (the logit where
    the model has one), from the same forward pass. A constant layer (a 1x1 map, all-zero
    activations) gives a zero map, reported flat. The map is upsampled bilinearly to the input
    size and scaled to [0, 1] per image. Call shape: see
    :class:`~explain.attribution.base.AttributionMethod`.

    Cost: one forward pass per image (no gradient), plus one SVD of an ``(h*w, K)`` matrix.

    Args:
        model: a Keras classifier taking raw pixels ``(N, H, W, C)`` in [0, 255].
        layer: target layer (index, name or nested path); None picks the default one.
        batch_size: images per compiled call, a whole number >= 1 (default 32).
        preprocess: the model's preprocessing mode (:mod:`explain.models.preprocessing`).

    Raises:
        ValueError: ``batch_size`` below 1 or not a whole number.
        LayerError, ExplainError: as :class:`~explain.attribution.base.LayerAttribution`.
    """

    name = "eigencam"
    reference = "Muhammad & Yeasin 2020, https://arxiv.org/abs/2008.00299"

    def __init__(self, model, layer=None, batch_size=32, preprocess: str = "raw"):
        batch_size = whole_at_least(type(self).__name__, "batch_size", batch_size)
        super().__init__(model, layer, batch_size, preprocess)

    @staticmethod
    def cam(a: tf.Tensor) -> tf.Tensor:
        """The raw map ``ReLU(s * A_c v_1)`` float32 ``(B, h, w)`` from feature maps ``A`` ``(B, h, w, K)``
        (see the class docstring for ``A_c``, ``v_1`` and the sign ``s``)."""
        a = tf.cast(a, tf.float32)  # tf.linalg.svd has no float16
        shape = tf.shape(a)
        rows = tf.reshape(a, [shape[0], shape[1] * shape[2], shape[3]])  # (B, h*w, K)
        centred = rows - tf.reduce_mean(rows, axis=1, keepdims=True)
        _, _, v = tf.linalg.svd(centred, full_matrices=False)  # v: (B, K, min(h*w, K))
        projection = tf.linalg.matvec(centred, v[:, :, 0])  # (B, h*w)
        agreement = tf.reduce_sum(projection * tf.reduce_mean(rows, axis=2), axis=1)  # (B,)
        sign = tf.where(agreement < 0, -1.0, 1.0)
        return tf.nn.relu(tf.reshape(projection * sign[:, None], shape[:3]))

    def _raw_maps(self, x, class_index):
        a, scores = self.activations_and_scores(x)
        cls, score = self.pick(scores, class_index)
        return self.cam(a), cls, score
