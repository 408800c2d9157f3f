"""Faster Score-CAM: Score-CAM (Wang et al. 2020, "Score-CAM: Score-Weighted Visual Explanations for
Convolutional Neural Networks", CVPR workshops, https://arxiv.org/abs/1910.01279) on the few channels
whose activation maps vary most, the speed-up devised by tabayashi0117
(https://github.com/tabayashi0117/Score-CAM#faster-score-cam) and offered by tf-keras-vis
(``Scorecam(..., max_N=...)``, https://github.com/keisen/tf-keras-vis).

Only ``max_n`` channels mask the input instead of all K, so it costs ``max_n`` masked forward passes
per image instead of K (2048 at the end of a ResNet50).
"""

from __future__ import annotations

import tensorflow as tf

from explain.attribution._params import whole_at_least
from explain.attribution.scorecam import ScoreCAM


class FasterScoreCAM(ScoreCAM):
    """Faster Score-CAM (Wang et al. 2020, https://arxiv.org/abs/1910.01279, with tf-keras-vis's ``max_N``).

    With ``A`` the target layer's activations ``(h, w, K)``, the ``n = min(max_n, K)`` channels whose
    activation maps have the largest standard deviation over the positions, ``std_ij A_ijk`` (as
    tf-keras-vis ranks them with ``tf.math.reduce_std``), are kept, each image its own; ties go to the
    lower channel index. On those channels only it is :class:`~explain.attribution.scorecam.ScoreCAM`:
    each kept map, upsampled and scaled to [0, 1], masks the input, the class probabilities ``p_k`` of
    the masked images are softmaxed over the kept channels, ``w = softmax_k(p_k)``, and the raw map is
    ``ReLU(sum_{k kept} w_k A_k)``. With ``max_n >= K`` it is exactly Score-CAM; with ``max_n = 1`` it
    is ``ReLU(A_k)`` of the most varying channel.

    Departures from tf-keras-vis: the channels are chosen per image (tf-keras-vis takes the union of
    every image's top channels, so an image's map depends on its batch); a ``max_n`` above K means all
    channels (tf-keras-vis refuses it); the weights are Score-CAM's softmax over channels, as the rest
    of this project's Score-CAM (tf-keras-vis uses the class probabilities themselves). The map is
    scaled to [0, 1] per image. Call shape: see :class:`~explain.attribution.base.AttributionMethod`.

    Cost: one forward pass, then ``ceil(n / mask_batch)`` forward passes of up to ``mask_batch``
    masked images, per image.

    Args:
        model, layer, batch_size, preprocess: as :class:`~explain.attribution.gradcam.GradCAM`.
        mask_batch: masked images per forward pass, a whole number >= 1 (default 64).
        max_n: channels kept, a whole number >= 1 (default 10, the value tabayashi0117's Faster
            Score-CAM uses); ``max_n >= K`` keeps every channel.

    Raises:
        ValueError: ``max_n``, ``mask_batch`` or ``batch_size`` below 1 or not a whole number.
        LayerError, ExplainError: as :class:`~explain.attribution.base.AttributionMethod`.
    """

    name = "faster_scorecam"
    reference = (
        "Wang et al. 2020, https://arxiv.org/abs/1910.01279; Faster Score-CAM as in tf-keras-vis, "
        "https://github.com/tabayashi0117/Score-CAM#faster-score-cam"
    )
    max_n = 10

    def __init__(
        self, model, layer=None, batch_size=32, preprocess: str = "raw", *, mask_batch: int = 64, max_n: int = 10
    ):
        max_n = whole_at_least(type(self).__name__, "max_n", max_n)
        super().__init__(model, layer, batch_size, preprocess, mask_batch=mask_batch)
        self.max_n = max_n

    def _channels(self, a: tf.Tensor) -> tf.Tensor:
        """The ``min(max_n, K)`` channels of ``a`` ``(B, h, w, K)`` with the largest standard deviation
        over the positions, per image, in decreasing order: ``(B, h, w, n)``."""
        k = a.shape[-1]
        if k is not None and self.max_n >= k:
            return a
        n = self.max_n if k is not None else tf.minimum(self.max_n, tf.shape(a)[-1])
        spread = tf.math.reduce_std(tf.cast(a, tf.float32), axis=(1, 2))  # (B, K)
        top = tf.math.top_k(spread, k=n, sorted=True).indices  # (B, n)
        return tf.gather(a, top, axis=3, batch_dims=1)
