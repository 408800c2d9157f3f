"""RISE: Petsiuk, Das & Saenko 2018, "RISE: Randomized Input Sampling for Explanation of Black-box
Models", BMVC, https://arxiv.org/abs/1806.07421.

The image is multiplied by ``N`` random smooth masks; the class probability of each masked image
weights its mask, and the weighted masks are summed. Gradient-free; costs one forward pass per mask
(batched), the masks drawn once per image size from a seeded generator.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from explain._quiet import quiet_import
from explain.attribution._params import whole, whole_at_least
from explain.attribution.base import AttributionMethod

quiet_import()
import tensorflow as tf  # noqa: E402


def _probability(method: str, name: str, value) -> float:
    """``value`` as a float in (0, 1]."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not 0 < value <= 1:
        raise ValueError(f"{method}: {name} must be a number above 0 and at most 1, got {value!r}.")
    return float(value)


def rise_masks(
    count: int, height: int, width: int, grid: int = 7, probability: float = 0.5, seed: int = 0
) -> np.ndarray:
    """RISE's random masks, as the paper's reference code draws them (Petsiuk et al. 2018, section 3.2).

    From ``rng = numpy.random.default_rng(seed)``: binary grids ``rng.random((count, grid, grid)) <
    probability``, then shifts ``rng.integers(0, cell, (count, 2))`` with ``cell = (ceil(height / grid),
    ceil(width / grid))``. Each grid is upsampled bilinearly to ``(grid + 1) * cell`` (scikit-image's
    ``resize(order=1, mode="reflect", anti_aliasing=False)``, as the reference code; computed here as
    the separable product ``A_h @ grid @ A_w.T``, the same numbers) and cropped to ``height x width`` at
    its shift.

    Args:
        count: the number of masks ``N``, >= 1.
        height, width: the image size.
        grid: cells per side of the small binary grid ``s``.
        probability: the chance ``p`` that a cell is kept (1).
        seed: the generator's seed.

    Returns:
        float32 ``(N, height, width)`` in [0, 1].
    """
    from skimage.transform import resize

    rng = np.random.default_rng(seed)
    cells = (rng.random((count, grid, grid)) < probability).astype(np.float64)
    cell_h, cell_w = math.ceil(height / grid), math.ceil(width / grid)
    shifts = rng.integers(0, (cell_h, cell_w), (count, 2))
    # Bilinear upsampling is separable: up = A_h @ cells @ A_w.T, where column j of A is the upsampled
    # unit vector e_j (resizing the identity along one axis; a factor of 1 on the other leaves it as is).
    a_h = resize(np.eye(grid), ((grid + 1) * cell_h, grid), order=1, mode="reflect", anti_aliasing=False)
    a_w = resize(np.eye(grid), ((grid + 1) * cell_w, grid), order=1, mode="reflect", anti_aliasing=False)
    rows = a_h[shifts[:, 0, None] + np.arange(height)]  # (N, H, s): the cropped rows of each mask
    cols = a_w[shifts[:, 1, None] + np.arange(width)]  # (N, W, s)
    masks = np.empty((count, height, width), np.float32)
    for i in range(count):  # one small matrix product per mask (NumPy's batched matmul is slow for these)
        masks[i] = np.clip(rows[i] @ cells[i] @ cols[i].T, 0.0, 1.0)
    return masks


class RISE(AttributionMethod):
    """RISE (Petsiuk, Das & Saenko 2018, https://arxiv.org/abs/1806.07421).

    With ``N = masks`` random masks ``M_i`` (float32 ``(H, W)`` in [0, 1], see :func:`rise_masks`:
    binary ``grid x grid`` cells kept with probability ``p = probability``, upsampled bilinearly and
    randomly shifted), the raw map is the paper's Monte Carlo estimate (eq. 6)

        ``map = sum_i P(class | x * M_i) * M_i / (N * p)``

    where ``x * M_i`` multiplies every channel of the raw pixels by the mask (masked-out pixels
    become black, then the model's preprocessing applies), and ``P`` is the class probability as in
    the paper: the softmax of the logits, the sigmoid for a binary model (``1 - p`` for class 0), or
    the model's output when it has no logits. The map is float32 ``(N, H, W)`` in [0, about 1]: at
    each pixel, roughly the mean probability when that pixel is kept. The explained ``score`` is still
    the logit (``score_kind``), as for the other methods.

    The masks are drawn once per image size from ``numpy.random.default_rng(seed)`` and kept
    (:meth:`masks`), so every image of that size, in any batch, gets the same masks: the same seed
    gives the same map. :meth:`set_masks` replaces them (to feed another implementation's masks, or
    hand-made ones in a test).

    Compared with xplique's ``Rise(nb_samples=4000, grid_size=7, preservation_probability=0.5)``:
    xplique divides by each pixel's sum of masks ``sum_i M_i`` instead of ``N p`` (equal on
    average), upsamples to ``H (1 + 1/s)`` with TensorFlow's bilinear resize, and crops each batch of
    masks at one random offset, drawn anew at each call. To compare maps, give it :meth:`masks` (by
    replacing its mask generation: it takes no masks as an argument).

    The map is scaled to [0, 1] per image by :meth:`__call__`. Call shape: see
    :class:`~explain.attribution.base.AttributionMethod`.

    Args:
        model: a Keras classifier taking raw pixels ``(N, H, W, C)`` in [0, 255].
        layer: ignored (RISE is model-agnostic); accepted for the shared call shape.
        batch_size: images per compiled call, a whole number >= 1 (default 32).
        masks: the number of masks ``N``, a whole number >= 1 (default 1000; the paper uses 4000 to
            8000 on ImageNet). Costs one forward pass per mask per image, and ``N x H x W`` float32
            kept per image size (200 MB for 1000 masks of 224x224).
        grid: cells per side of the small binary grid ``s``, a whole number >= 1 (default 7, the
            paper's and xplique's).
        probability: the chance ``p`` that a cell is kept, a number in (0, 1] (default 0.5).
        seed: a whole number seeding the masks (default 0).
        mask_batch: masked images per forward pass, a whole number >= 1 (default 64).
        preprocess: the model's preprocessing mode (:mod:`explain.models.preprocessing`): the raw
            pixels are masked, then preprocessed for the model.

    Raises:
        ValueError: ``masks``, ``grid``, ``mask_batch`` or ``batch_size`` not a whole number of at
            least 1, ``probability`` not in (0, 1], ``seed`` not a whole number (e.g. "RISE: masks
            must be at least 1, got 0."). A call raises as :meth:`AttributionMethod.__call__
            <explain.attribution.base.AttributionMethod.__call__>`.
        ExplainError: as :class:`~explain.attribution.base.AttributionMethod`.
    """

    name = "rise"
    reference = "Petsiuk, Das & Saenko 2018, https://arxiv.org/abs/1806.07421"

    def __init__(
        self,
        model,
        layer: int | str | None = None,
        batch_size: int = 32,
        masks: int = 1000,
        grid: int = 7,
        probability: float = 0.5,
        seed: int = 0,
        mask_batch: int = 64,
        preprocess: str = "raw",
    ):
        name = type(self).__name__
        self.num_masks = whole_at_least(name, "masks", masks)
        self.grid = whole_at_least(name, "grid", grid)
        self.probability = _probability(name, "probability", probability)
        self.seed = whole(name, "seed", seed)
        self.mask_batch = whole_at_least(name, "mask_batch", mask_batch)
        batch_size = whole_at_least(name, "batch_size", batch_size)
        super().__init__(model, None, batch_size, preprocess)
        self._masks: dict[tuple[int, int], tf.Tensor] = {}

    # -- the masks ------------------------------------------------------------------------
    def _mask_tensor(self, height: int, width: int) -> tf.Tensor:
        """The masks for ``height x width`` images as an eager float32 tensor, drawn on first use."""
        key = (int(height), int(width))
        if key not in self._masks:
            with tf.init_scope():  # eager even while tracing: captured by the compiled call, not copied into it
                drawn = rise_masks(self.num_masks, *key, self.grid, self.probability, self.seed)
                self._masks[key] = tf.constant(drawn)
        return self._masks[key]

    def masks(self, height: int, width: int) -> np.ndarray:
        """The masks used on ``height x width`` images: float32 ``(N, height, width)`` in [0, 1].

        Drawn by :func:`rise_masks` (``masks``, ``grid``, ``probability``, ``seed``) on first use, or
        those given to :meth:`set_masks`. A copy: changing it changes nothing here.

        Args:
            height, width: the image size in pixels.

        Returns:
            float32 ``(N, height, width)``.
        """
        return np.array(self._mask_tensor(height, width).numpy(), dtype=np.float32)

    def set_masks(self, masks: np.ndarray) -> None:
        """Use these masks (instead of drawn ones) for images of their size.

        The map stays ``sum_i P_i M_i / (N p)`` with ``N = len(masks)`` and ``p = probability``.

        Args:
            masks: ``(N, H, W)`` values in [0, 1], ``N >= 1``.

        Raises:
            ValueError: not ``(N, H, W)`` with ``N >= 1``, or values outside [0, 1] (NaN included).
        """
        m = np.asarray(masks, dtype=np.float32)
        if m.ndim != 3 or min(m.shape) < 1:
            raise ValueError(f"{type(self).__name__}: masks must have shape (N, H, W), got {m.shape}.")
        if not np.all((m >= 0) & (m <= 1)):
            raise ValueError(f"{type(self).__name__}: masks must be in [0, 1].")
        self._masks[(m.shape[1], m.shape[2])] = tf.constant(m)
        self._compiled = self._compiled_raw = None  # they captured the former masks

    # -- the call -------------------------------------------------------------------------
    def _check(self, images, class_index):
        x, idx = super()._check(images, class_index)
        self._mask_tensor(*x.shape[1:3])  # drawn before the compiled call is traced
        return x, idx

    def _raw_maps(self, x, class_index):
        height, width = x.shape[1], x.shape[2]
        if height is None or width is None:
            raise ValueError(f"{type(self).__name__} needs images of a known height and width.")
        masks = self._mask_tensor(height, width)  # (N, H, W)
        n = int(masks.shape[0])
        batch = self.mask_batch
        starts = tf.range(0, n, batch)
        cls, score = self.pick(self.scores_from_input(x), class_index)

        def one_image(args):
            xi, ci = args  # (H, W, C), ()

            def probabilities(start):
                m = masks[start : start + batch]
                p = self.head.class_probability(xi[None] * m[..., None], tf.fill([tf.shape(m)[0]], ci))
                return tf.pad(p, [[0, batch - tf.shape(p)[0]]])

            p = tf.map_fn(probabilities, starts, fn_output_signature=tf.TensorSpec([batch], tf.float32))
            return tf.tensordot(tf.reshape(p, [-1])[:n], masks, axes=1)

        total = tf.map_fn(one_image, (x, cls), fn_output_signature=tf.TensorSpec([height, width], tf.float32))
        return total / (n * self.probability), cls, score
