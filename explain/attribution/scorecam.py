"""Score-CAM: Wang et al. 2020, "Score-CAM: Score-Weighted Visual Explanations for
Convolutional Neural Networks", CVPR workshops, https://arxiv.org/abs/1910.01279.

Gradient-free: every feature map, upsampled and scaled to [0, 1], masks the input; the
class's softmax probability on each masked input, softmaxed over the channels, weights the
maps. Costs one forward pass per channel (batched).
"""

from __future__ import annotations

import tensorflow as tf

from explain.attribution.base import AttributionMethod


class ScoreCAM(AttributionMethod):
    """Score-CAM. ``mask_batch`` masked images go through the model per call."""

    name = "scorecam"
    needs_layer = True
    reference = "Wang et al. 2020, https://arxiv.org/abs/1910.01279"
    mask_batch = 64

    def _raw_maps(self, x, class_index):
        a, logits = self.activations_and_scores(x)
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

    def _class_probability(self, xs, cls, pad_to):
        logits = self.scores_from_input(xs)
        if self.binary:
            p1 = tf.sigmoid(logits[:, 0]) if self.score_kind == "logit" else logits[:, 0]
            p = tf.where(tf.equal(cls, 1), p1, 1.0 - p1)
        else:
            probs = tf.nn.softmax(logits, axis=1) if self.score_kind == "logit" else logits
            p = probs[:, cls]
        return tf.pad(p, [[0, pad_to - tf.shape(p)[0]]])
