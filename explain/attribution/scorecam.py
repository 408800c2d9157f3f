"""Score-CAM: Wang et al. 2020, "Score-CAM: Score-Weighted Visual Explanations for
Convolutional Neural Networks", CVPR workshops, https://arxiv.org/abs/1910.01279.

Gradient-free: every feature map, upsampled and scaled to [0, 1], masks the input; the
class's softmax probability on each masked input, softmaxed over the channels, weights the
maps. Costs one forward pass per channel (batched).
"""

from __future__ import annotations

import tensorflow as tf

from explain.attribution._params import whole_at_least
from explain.attribution.base import LayerAttribution


class ScoreCAM(LayerAttribution):
    """Score-CAM (Wang et al. 2020, https://arxiv.org/abs/1910.01279).

    With ``A`` the target layer's activations ``(h, w, K)``, each channel is upsampled
    bilinearly to the input size and scaled to [0, 1] by its own min and max, giving a mask
    ``M_k`` (a constant channel gives an all-zero mask). The class probability ``p_k`` of the
    raw-pixel image times ``M_k`` (masked-out pixels become black) is the channel's score;
    the weights are ``w = softmax_k(p_k)`` over the channels and the raw map is
    ``ReLU(sum_k w_k A_k)``, as in the paper (eq. 4-6 and Algorithm 1). The probability is
    the softmax of the logits (the sigmoid for a single-output binary model, ``1 - p`` for
    class 0), or the model's output when it has no logits.

    Departure from the paper: the baseline score ``f(X_b)`` is not subtracted; it is the same
    for every channel, so the softmax over channels is unchanged. The map is scaled to [0, 1]
    per image. Call shape: see :class:`~explain.attribution.base.AttributionMethod`.

    Args:
        model, layer, batch_size, preprocess: as :class:`~explain.attribution.gradcam.GradCAM`.
        mask_batch: masked images per forward pass, a whole number >= 1 (default 64); a layer
            of K channels costs ``ceil(K / mask_batch)`` passes per image.

    Raises:
        ValueError: ``mask_batch`` or ``batch_size`` below 1 or not a whole number.
        LayerError, ExplainError: as :class:`~explain.attribution.base.AttributionMethod`.
    """

    name = "scorecam"
    reference = "Wang et al. 2020, https://arxiv.org/abs/1910.01279"
    mask_batch = 64

    def __init__(self, model, layer=None, batch_size=32, preprocess: str = "raw", *, mask_batch: int = 64):
        name = type(self).__name__
        mask_batch = whole_at_least(name, "mask_batch", mask_batch)
        batch_size = whole_at_least(name, "batch_size", batch_size)
        super().__init__(model, layer, batch_size, preprocess)
        self.mask_batch = mask_batch

    def _raw_maps(self, x, class_index):
        a, logits = self.activations_and_scores(x)
        a = self._channels(a)
        cls, score = self.pick(logits, class_index)
        size = tf.shape(x)[1:3]
        up = tf.image.resize(a, size, method="bilinear")  # (B, H, W, K)
        lo = tf.reduce_min(up, axis=(1, 2), keepdims=True)
        hi = tf.reduce_max(up, axis=(1, 2), keepdims=True)
        masks = tf.math.divide_no_nan(up - lo, hi - lo)
        masks = tf.transpose(masks, (0, 3, 1, 2))  # (B, K, H, W)

        def one_image(args):
            xi, mi, ci = args  # (H, W, C), (K, H, W), ()
            masked = xi[None] * mi[..., None]  # (K, H, W, C)
            probs = []
            k = tf.shape(mi)[0]
            for_starts = tf.range(0, k, self.mask_batch)
            probs = tf.map_fn(
                lambda s: self._class_probability(masked[s : s + self.mask_batch], ci, self.mask_batch),
                for_starts,
                fn_output_signature=tf.TensorSpec([self.mask_batch], tf.float32),
            )
            return tf.reshape(probs, [-1])[:k]

        probs = tf.map_fn(one_image, (x, masks, cls), fn_output_signature=tf.TensorSpec([None], tf.float32))
        weights = tf.nn.softmax(probs, axis=1)
        cam = tf.nn.relu(tf.einsum("bhwk,bk->bhw", a, weights))
        return cam, cls, score

    def _channels(self, a: tf.Tensor) -> tf.Tensor:
        """The feature maps ``(B, h, w, K')`` used as masks and weighted, from all of them ``(B, h, w, K)``:
        every channel here (Faster Score-CAM keeps a few)."""
        return a

    def _class_probability(self, xs, cls, pad_to):
        p = self.head.class_probability(xs, tf.fill([tf.shape(xs)[0]], tf.cast(cls, tf.int64)))
        return tf.pad(p, [[0, pad_to - tf.shape(p)[0]]])
