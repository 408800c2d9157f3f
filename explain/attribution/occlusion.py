"""Occlusion: Zeiler & Fergus 2014, "Visualizing and Understanding Convolutional Networks", ECCV,
https://arxiv.org/abs/1311.2901.

A window painted with a baseline value slides over the image; the drop of the class score when a
window is hidden is that window's importance, and each pixel gets the mean drop over the windows
covering it. Gradient-free; costs one forward pass per window position (batched).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from explain._quiet import quiet_import
from explain.attribution._params import whole_at_least
from explain.attribution.base import AttributionMethod

quiet_import()
import tensorflow as tf  # noqa: E402


def pixel_value(method: str, name: str, value) -> float:
    """``value`` as a float, checked to be a finite raw pixel value in [0, 255].

    Args:
        method: the method's class name, for the message (e.g. ``"Occlusion"``).
        name: the parameter's name (e.g. ``"baseline"``).
        value: the value given.

    Returns:
        ``float(value)``.

    Raises:
        ValueError: not a real number (``True``/``False`` and strings included), not finite, or
            outside [0, 255]; e.g. "Occlusion: baseline must be a pixel value from 0 to 255, got 300."
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not 0 <= value <= 255:
        raise ValueError(f"{method}: {name} must be a pixel value from 0 to 255, got {value!r}.")
    return float(value)


def _pair(method: str, name: str, value) -> tuple[int, int]:
    """An int or a ``(height, width)`` pair of whole numbers >= 1, as a pair."""
    if isinstance(value, tuple | list) and len(value) == 2:
        return whole_at_least(method, name, value[0]), whole_at_least(method, name, value[1])
    if isinstance(value, tuple | list | str):
        raise ValueError(
            f"{method}: {name} must be a whole number or a pair (height, width) of whole numbers, got {value!r}."
        )
    side = whole_at_least(method, name, value)
    return side, side


def _anchors(size: int, window: int, stride: int) -> np.ndarray:
    """Top (or left) edges of the windows along one axis: ``0, stride, 2 stride, ...`` while the window
    fits, then ``size - window`` if the last one stops short of the edge."""
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    return np.asarray(starts, np.int64)


def _coverage(size: int, window: int, anchors: np.ndarray) -> np.ndarray:
    """float32 ``(len(anchors), size)``: 1 where window ``a`` covers position ``i``."""
    i = np.arange(size)[None, :]
    return ((i >= anchors[:, None]) & (i < anchors[:, None] + window)).astype(np.float32)


class Occlusion(AttributionMethod):
    """Occlusion sensitivity (Zeiler & Fergus 2014, https://arxiv.org/abs/1311.2901).

    A ``window`` of ``h x w`` pixels is set to ``baseline`` (on every channel) at each position of a
    grid with steps ``stride``; ``S`` is the class score, the pre-softmax logit where the model has
    one (``score_kind``; a binary sigmoid model's class 0 is scored ``-logit``), as the other methods.
    Window ``k`` gets ``d_k = S(x) - S(x with window k set to baseline)``, and the raw map is, at
    each pixel ``p``,

        ``map(p) = mean over the windows k covering p of d_k``

    in score units (positive where hiding the pixel lowers the score), float32 ``(N, H, W)``.
    The windows' top edges are ``0, stride, 2 stride, ...`` while the window fits, plus one flush
    with the bottom edge if the last stops short (the same along the width), so every pixel is
    covered when ``stride <= window``; a pixel covered by no window (``stride > window``) gets 0.
    On a linear model ``S = x . w + b`` with ``stride = window`` dividing the image, each window's
    pixels get exactly ``sum over the window and channels of (x - baseline) * w``.

    Compared with other libraries: xplique's ``Occlusion(patch_size, patch_stride,
    occlusion_value)`` uses the same differences of the model's output (its logits if the model
    ends before the softmax) but SUMS them over the windows covering a pixel (pixels near the
    edges, covered by fewer windows, weigh less), has no window flush with the far edges, and
    defaults to a grey value 0.5 for [0, 1] inputs; tf-explain's ``OcclusionSensitivity`` uses
    non-overlapping grey (127.5) patches, maps each to ``1 - p(class)`` (a probability, without
    subtracting the unoccluded one) on a coarse grid and resizes that grid to the image.

    The map is scaled to [0, 1] per image by :meth:`__call__`; :meth:`raw_maps` gives it in score
    units. Call shape: see :class:`~explain.attribution.base.AttributionMethod`.

    Args:
        model: a Keras classifier taking raw pixels ``(N, H, W, C)`` in [0, 255].
        layer: ignored (Occlusion is model-agnostic); accepted for the shared call shape.
        batch_size: images per compiled call, a whole number >= 1 (default 32).
        window: the window's size in pixels, a whole number (square) or a pair ``(height, width)``
            of whole numbers >= 1, at most the image size; None (default) takes
            ``max(2, side // 7)`` of each side (4x4 on 28x28 images, 32x32 on 224x224).
        stride: the step between windows, a whole number or a pair >= 1; None (default) takes
            ``max(1, window // 2)`` on each axis (windows overlapping by half). The defaults give
            13 x 13 = 169 windows from 28x28 to 224x224 images.
        baseline: the raw pixel value in [0, 255] painted over the window (default 0, black), before
            the model's preprocessing.
        mask_batch: occluded images per forward pass, a whole number >= 1 (default 64).
        preprocess: the model's preprocessing mode (:mod:`explain.models.preprocessing`): windows
            are painted on the raw pixels, which are then preprocessed for the model.

    Cost: one forward pass per window, ``ceil(H / stride_h)`` x ``ceil(W / stride_w)`` or so
    (:meth:`patches` gives the exact grid), plus one for the unoccluded image.

    Raises:
        ValueError: ``window``, ``stride``, ``mask_batch`` or ``batch_size`` not a whole number (or
            pair of them) of at least 1; ``baseline`` not a pixel value in [0, 255]; a window larger
            than the image, at construction when the model's input size is fixed, else when called
            (e.g. "Occlusion: window 40x40 is larger than the 28x28 image; use a window of at most
            28."). A call also raises as :meth:`AttributionMethod.__call__
            <explain.attribution.base.AttributionMethod.__call__>`.
        ExplainError: as :class:`~explain.attribution.base.AttributionMethod`.
    """

    name = "occlusion"
    reference = "Zeiler & Fergus 2014, https://arxiv.org/abs/1311.2901"

    def __init__(
        self,
        model,
        layer: int | str | None = None,
        batch_size: int = 32,
        window: int | tuple[int, int] | None = None,
        stride: int | tuple[int, int] | None = None,
        baseline: float = 0.0,
        mask_batch: int = 64,
        preprocess: str = "raw",
    ):
        name = type(self).__name__
        self.window = None if window is None else _pair(name, "window", window)
        self.stride = None if stride is None else _pair(name, "stride", stride)
        self.baseline = pixel_value(name, "baseline", baseline)
        self.mask_batch = whole_at_least(name, "mask_batch", mask_batch)
        batch_size = whole_at_least(name, "batch_size", batch_size)
        super().__init__(model, None, batch_size, preprocess)
        height, width = self.input_shape[:2]
        if height is not None and width is not None:
            self.patches(height, width)  # refuses a window larger than the image now

    def patches(self, height: int, width: int) -> tuple[tuple[int, int], tuple[int, int], np.ndarray, np.ndarray]:
        """The windows used on ``height x width`` images.

        Args:
            height, width: the image size in pixels.

        Returns:
            ``(window (h, w), stride (h, w), tops, lefts)``: the windows are every
            ``[top, top + h) x [left, left + w)`` for ``top`` in ``tops`` and ``left`` in ``lefts``
            (int64 arrays), ``len(tops) * len(lefts)`` of them, one forward pass each.

        Raises:
            ValueError: the window is larger than the image.
        """
        height, width = int(height), int(width)
        window = self.window or (min(height, max(2, height // 7)), min(width, max(2, width // 7)))
        if window[0] > height or window[1] > width:
            most = str(height) if height == width else f"{height}x{width}"
            raise ValueError(
                f"{type(self).__name__}: window {window[0]}x{window[1]} is larger than the {height}x{width} image; "
                f"use a window of at most {most}."
            )
        stride = self.stride or (max(1, window[0] // 2), max(1, window[1] // 2))
        return window, stride, _anchors(height, window[0], stride[0]), _anchors(width, window[1], stride[1])

    def _check(self, images, class_index):
        x, idx = super()._check(images, class_index)
        self.patches(*x.shape[1:3])  # a free-size model: the window is checked against this image
        return x, idx

    def _raw_maps(self, x, class_index):
        height, width = x.shape[1], x.shape[2]
        if height is None or width is None:
            raise ValueError(f"{type(self).__name__} needs images of a known height and width.")
        window, _, tops, lefts = self.patches(height, width)
        rows = tf.constant(_coverage(height, window[0], tops))  # (nr, H)
        cols = tf.constant(_coverage(width, window[1], lefts))  # (nc, W)
        nr, nc = len(tops), len(lefts)
        count = np.outer(_coverage(height, window[0], tops).sum(0), _coverage(width, window[1], lefts).sum(0))
        cls, score = self.pick(self.scores_from_input(x), class_index)
        batch = self.mask_batch
        starts = tf.range(0, nr * nc, batch)

        def one_image(args):
            xi, ci = args  # (H, W, C), ()

            def occluded_scores(start):
                k = tf.range(start, tf.minimum(start + batch, nr * nc))
                m = tf.gather(rows, k // nc)[:, :, None] * tf.gather(cols, k % nc)[:, None, :]  # (k, H, W)
                m = m[..., None]
                xs = xi[None] * (1.0 - m) + self.baseline * m
                _, s = self.pick(self.scores_from_input(xs), tf.fill(tf.shape(k), ci))
                return tf.pad(s, [[0, batch - tf.shape(s)[0]]])

            s = tf.map_fn(occluded_scores, starts, fn_output_signature=tf.TensorSpec([batch], tf.float32))
            return tf.reshape(s, [-1])[: nr * nc]

        occluded = tf.map_fn(one_image, (x, cls), fn_output_signature=tf.TensorSpec([nr * nc], tf.float32))
        drops = tf.reshape(score[:, None] - occluded, (-1, nr, nc))
        total = tf.einsum("ah,nab,bw->nhw", rows, drops, cols)  # each window's drop on its pixels, summed
        return tf.math.divide_no_nan(total, tf.constant(count, tf.float32)), cls, score
