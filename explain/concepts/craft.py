"""CRAFT: concepts found automatically, and ranked by how much the class's score depends on them.

Fel, Picard, Bethune, Boissin, Vigouroux, Colin, Cadène & Serre 2023, "CRAFT: Concept Recursive
Activation FacTorization for Explainability", CVPR, https://arxiv.org/abs/2211.10154. Reference
implementation: xplique's ``xplique.concepts.craft`` (https://github.com/deel-ai/xplique).

For one class, at a layer after a ReLU (activations >= 0):

1. **Crops.** Random square crops of the class's images (seeded; ``crop_fraction`` of the side), each
   resized back to the model's input size (bilinear), are passed through the model up to the layer; each
   crop's activations are averaged over height and width: ``A`` of shape ``(crops, K)``.
2. **NMF.** ``A ~ U W`` by scikit-learn's non-negative matrix factorisation into ``k`` concepts: the
   rows of ``W`` ``(k, K)`` are the concepts (directions in the layer's channels), ``U`` ``(crops, k)``
   how much each crop expresses each.
3. **Importance**, by total Sobol indices (the paper's section 3.2): for an image, its activations at
   every position are written on the concept basis (``U`` with ``W`` fixed); the coefficients are
   multiplied by quasi-random masks ``m in [0, 1]^k`` (a scrambled Sobol sequence, ``n_design``
   points and Saltelli's ``(k + 2) n_design`` design), the activations rebuilt as ``(U * m) W`` and
   the rest of the network run on them; Jansen's estimator gives each concept's total index
   ``ST_i = E[(f(A) - f(A_B^i))^2] / (2 Var f)``. Indices are averaged over the class's images.
   ``importance="gradient"`` uses gradient x concept instead: the mean over images of
   ``sum_positions U_i (dS/dA . W_i)``, one backward pass per image.
4. For each concept: the crops that express it most (largest ``U``), and a concept attribution map
   over a whole image (its coefficient at each position, upsampled).

Memory: crops are generated and passed through the model one batch at a time, and only their averaged
activations ``(crops, K)`` are kept; ``max_crops`` caps their number (the result says how many were
used). The class's images (``max_images`` at most) are held as uint8.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from explain._quiet import quiet_import
from explain.attribution.base import TRACE_LOCK
from explain.concepts._latent import LatentModel, class_images, class_index_of
from explain.data import DataSource, open_data
from explain.errors import ExplainError, LayerError
from explain.models.layouts import to_grid
from explain.render.display import Displayable

quiet_import()
import tensorflow as tf  # noqa: E402

IMPORTANCE = ("sobol", "gradient")


@dataclass(frozen=True)
class Concept:
    """One concept found by CRAFT.

    Attributes:
        id: the concept's row in :attr:`CraftResult.basis` (stable, whatever the order of importance).
        importance: its total Sobol index (>= 0; or gradient x concept, any sign), averaged over images.
        top_crops: ``(image_id, x0, y0, x1, y1)`` of the crops expressing it most, most first: the id the
            data source gives the image (its file path for a folder) and the box in the image's
            model-input pixels (``x1``, ``y1`` exclusive).
        crops: uint8 ``(n, H, W, C)``, those crops at the model's input size.
        example: uint8 ``(H, W, C)``, the whole image of the top crop (None when not computed).
        example_map: float32 ``(H, W)`` in [0, 1], the concept's attribution map over ``example``
            (:func:`concept_maps`), or None.
    """

    id: int
    importance: float
    top_crops: tuple[tuple[str, int, int, int, int], ...]
    crops: np.ndarray = field(repr=False)
    example: np.ndarray | None = field(default=None, repr=False)
    example_map: np.ndarray | None = field(default=None, repr=False)

    def as_dict(self) -> dict:
        return {"id": self.id, "importance": self.importance, "top_crops": [list(c) for c in self.top_crops]}


@dataclass(frozen=True)
class CraftResult(Displayable):
    """What :func:`craft` returns. In a notebook it shows its gallery
    (:func:`explain.render.figures.craft_gallery`): a row per concept, most important first.

    Attributes:
        class_name, class_index: the class explained. layer: the layer's name (nested path).
        concepts: one :class:`Concept` per concept, most important first.
        basis: float32 ``(k, K)``, the concepts as non-negative directions in the layer's channels.
        importance_method: ``"sobol"`` (total Sobol indices) or ``"gradient"`` (gradient x concept).
        images: class images cropped. crops: crops factorised. crops_requested: before the ``max_crops``
            cap. importance_images: images the importance was averaged over.
        crop_size: the crops' side in model-input pixels.
        timings: seconds per phase: ``{"read": .., "crops": .., "nmf": .., "importance": ..}``.
        seed: the seed used.
    """

    class_name: str
    class_index: int
    layer: str
    concepts: tuple[Concept, ...]
    basis: np.ndarray = field(repr=False)
    importance_method: str
    images: int
    crops: int
    crops_requested: int
    importance_images: int
    crop_size: int
    timings: dict
    seed: int

    def figure(self, ax=None, *, crops: int = 6):
        """A row per concept, most important first: its top crops and its map over its image
        (:func:`explain.render.figures.craft_gallery`). Returns a ``matplotlib.figure.Figure``."""
        from explain.render.figures import craft_gallery

        return craft_gallery(self, ax=ax, crops=crops)

    def as_dict(self) -> dict:
        """``{"class", "layer", "concepts": [{"id", "importance", "top_crops": [[image_id, x0, y0, x1, y1]]}],
        "importance_method", "images", "crops", "crops_requested", "importance_images", "crop_size", "timings",
        "seed"}``."""
        return {
            "class": self.class_name,
            "layer": self.layer,
            "concepts": [c.as_dict() for c in self.concepts],
            "importance_method": self.importance_method,
            "images": self.images,
            "crops": self.crops,
            "crops_requested": self.crops_requested,
            "importance_images": self.importance_images,
            "crop_size": self.crop_size,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "seed": self.seed,
        }


def crop_boxes(n_images: int, size: tuple[int, int], per_image: int, fraction: float, seed: int) -> np.ndarray:
    """Seeded random square crops: int64 ``(n_images, per_image, 4)`` boxes ``(x0, y0, x1, y1)`` (ends
    exclusive) of side ``round(fraction * min(size))`` (at least 2) inside an image of ``size`` ``(H, W)``."""
    h, w = size
    side = max(2, min(h, w, round(fraction * min(h, w))))
    rng = np.random.default_rng(seed)
    x0 = rng.integers(0, w - side + 1, (n_images, per_image))
    y0 = rng.integers(0, h - side + 1, (n_images, per_image))
    return np.stack([x0, y0, x0 + side, y0 + side], axis=-1).astype(np.int64)


def cut_crops(images: np.ndarray, boxes: np.ndarray, size: tuple[int, int]) -> tf.Tensor:
    """Crops float32 ``(M, H, W, C)`` at ``size``: ``images`` ``(N, H0, W0, C)`` cut at ``boxes`` int
    ``(M, 5)`` rows ``(image index, x0, y0, x1, y1)`` and resized bilinearly (pixel centres to pixel
    centres: the corner pixels of the box are the corner pixels of the crop)."""
    h0, w0 = images.shape[1:3]
    b = np.asarray(boxes, np.float32)
    hs, ws = max(h0 - 1, 1), max(w0 - 1, 1)
    normalised = np.stack([b[:, 2] / hs, b[:, 1] / ws, (b[:, 4] - 1) / hs, (b[:, 3] - 1) / ws], axis=1)
    return tf.image.crop_and_resize(
        tf.convert_to_tensor(images, tf.float32), normalised, tf.convert_to_tensor(b[:, 0], tf.int32), size
    )


def _grid(latent: LatentModel, a: np.ndarray) -> np.ndarray:
    return np.asarray(to_grid(tf.convert_to_tensor(a), latent.layer.layout, latent.layer.grid))


def _check_layer(latent: LatentModel) -> None:
    info = latent.layer
    if info.layout not in ("channels_last", "channels_first") or not info.grid or None in info.grid:
        raise LayerError(
            f"CRAFT needs a convolutional layer with height, width and channels; layer {info.name!r} ({info.type}) "
            f"has output shape {info.output_shape}. Choose a spatial layer after a ReLU, such as the last "
            "convolution block's activation."
        )


def _check_non_negative(latent: LatentModel, grid: np.ndarray) -> None:
    low = float(grid.min())
    if low < -1e-6 * max(float(np.abs(grid).max()), 1e-12):
        raise LayerError(
            f"Layer {latent.layer.name!r} has negative activations (down to {low:.3g}); CRAFT factorises them "
            "with non-negative matrix factorisation, which needs a layer after a ReLU (or ReLU6): choose the "
            "activation layer that follows it, or a pooling layer after one."
        )


def crop_activations(
    latent: LatentModel, images: np.ndarray, boxes: np.ndarray, progress: Callable[[float], None] | None = None
) -> np.ndarray:
    """The crops' activations averaged over height and width: float32 ``(M, K)`` for boxes ``(M, 5)``
    (``(image index, x0, y0, x1, y1)``), computed ``latent.batch_size`` crops at a time.

    Raises:
        LayerError: negative activations (NMF needs a layer after a ReLU)."""
    pooled = []
    for start in range(0, len(boxes), latent.batch_size):
        chunk = boxes[start : start + latent.batch_size]
        grid = _grid(latent, latent.activations(cut_crops(images, chunk, latent.image_size).numpy()))
        _check_non_negative(latent, grid)
        pooled.append(grid.mean(axis=(1, 2)))
        if progress is not None:
            progress(min(1.0, (start + len(chunk)) / len(boxes)))
    return np.concatenate(pooled).astype(np.float32)


def factorise(activations: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``A ~ U W``: scikit-learn's NMF (``init="nndsvda"``, seeded) of float ``(M, K)`` non-negative
    activations into ``(U float32 (M, k), W float32 (k, K))``."""
    from sklearn.decomposition import NMF
    from sklearn.exceptions import ConvergenceWarning

    nmf = NMF(n_components=k, init="nndsvda", max_iter=500, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        u = nmf.fit_transform(activations.astype(np.float64))
    return u.astype(np.float32), nmf.components_.astype(np.float32)


def coefficients(grid: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Activations float ``(..., K)`` written on the concept basis ``W`` ``(k, K)`` with ``W`` fixed: the
    non-negative ``U`` ``(..., k)`` minimising ``||A - U W||`` (scikit-learn's
    ``non_negative_factorization`` with ``update_H=False``, as NMF's own ``transform``)."""
    from sklearn.decomposition import non_negative_factorization
    from sklearn.exceptions import ConvergenceWarning

    flat = grid.reshape(-1, grid.shape[-1]).astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        u, _, _ = non_negative_factorization(
            flat, H=basis.astype(np.float64), n_components=len(basis), init="custom", update_H=False, max_iter=500
        )
    return u.reshape(*grid.shape[:-1], len(basis)).astype(np.float32)


def sobol_design(k: int, n_design: int, seed: int) -> np.ndarray:
    """Saltelli's design for total Sobol indices: float32 ``((k + 2) n_design, k)`` masks in [0, 1]: the
    rows of ``A``, of ``B``, then of each ``A_B^i`` (``A`` with column ``i`` from ``B``); ``A`` and ``B`` are
    the two halves of a scrambled, seeded Sobol sequence in ``2k`` dimensions (``scipy.stats.qmc``)."""
    from scipy.stats import qmc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # n_design not a power of 2: balance properties
        base = qmc.Sobol(d=2 * k, scramble=True, seed=seed).random(n_design)
    a, b = base[:, :k], base[:, k:]
    mixed = []
    for i in range(k):
        abi = a.copy()
        abi[:, i] = b[:, i]
        mixed.append(abi)
    return np.concatenate([a, b, *mixed]).astype(np.float32)


def jansen_total_indices(f: np.ndarray, k: int, n_design: int) -> np.ndarray:
    """Total Sobol indices float64 ``(k,)`` from outputs ``f`` ``((k + 2) n_design,)`` on
    :func:`sobol_design`'s rows, by Jansen's estimator ``mean((f_A - f_ABi)^2) / (2 Var[f_A, f_B])``
    (Jansen 1999; zero where the output does not vary)."""
    f = np.asarray(f, np.float64)
    fa, fb = f[:n_design], f[n_design : 2 * n_design]
    var = np.var(np.concatenate([fa, fb]), ddof=1)
    if not var > 0:
        return np.zeros(k)
    fab = f[2 * n_design :].reshape(k, n_design)
    return np.mean((fa[None] - fab) ** 2, axis=1) / (2 * var)


def _masked_scores(latent: LatentModel, class_index: int, basis: np.ndarray) -> Callable:
    """Compiled ``(image (1, H, W, C), U (h, w, k), masks (R, k)) -> scores (R,)``: the class score with the
    layer's activations rebuilt as ``(U * mask) W``, traced once."""
    w = tf.constant(basis, tf.float32)
    h, wd, _ = latent.layer.grid
    k = len(basis)
    first = latent.layer.layout == "channels_first"

    def fn(x, u, masks):
        a = tf.einsum("hwk,rk,kc->rhwc", u, masks, w)
        if first:
            a = tf.transpose(a, (0, 3, 1, 2))
        return latent.scores_from_activations(tf.repeat(x, tf.shape(masks)[0], axis=0), a, class_index)

    signature = [
        tf.TensorSpec((1, *latent.input_shape), tf.float32),
        tf.TensorSpec((h, wd, k), tf.float32),
        tf.TensorSpec((None, k), tf.float32),
    ]
    with TRACE_LOCK:
        return tf.function(fn, input_signature=signature).get_concrete_function(*signature)


def sobol_importance(
    latent: LatentModel,
    images: np.ndarray,
    class_index: int,
    basis: np.ndarray,
    n_design: int = 32,
    seed: int = 0,
    chunk: int = 128,
    progress: Callable[[float], None] | None = None,
) -> np.ndarray:
    """Each concept's total Sobol index for the class's score, averaged over ``images`` (raw pixels
    ``(N, H, W, C)``): float64 ``(k,)`` (the paper's section 3.2; see the module's docstring)."""
    k = len(basis)
    masks = sobol_design(k, n_design, seed)
    fn = _masked_scores(latent, class_index, basis)
    total = np.zeros(k)
    for i in range(len(images)):
        u = coefficients(_grid(latent, latent.activations(images[i : i + 1]))[0], basis)
        x = tf.convert_to_tensor(images[i : i + 1], tf.float32)
        f = np.concatenate(
            [fn(x, tf.constant(u), tf.constant(masks[s : s + chunk])).numpy() for s in range(0, len(masks), chunk)]
        )
        total += jansen_total_indices(f, k, n_design)
        if progress is not None:
            progress((i + 1) / len(images))
    return total / len(images)


def gradient_importance(
    latent: LatentModel, images: np.ndarray, class_index: int, basis: np.ndarray, progress=None
) -> np.ndarray:
    """Gradient x concept, float64 ``(k,)``: the mean over ``images`` of ``sum_positions U_i (dS/dA . W_i)``,
    the first-order change of the class score ``S`` along each concept's share of the activations."""
    total = np.zeros(len(basis))
    for start in range(0, len(images), latent.batch_size):
        a, g = latent.activations_and_gradients(images[start : start + latent.batch_size], class_index)
        a, g = _grid(latent, a), _grid(latent, g)
        u = coefficients(a, basis)  # (B, h, w, k)
        total += np.einsum("bhwk,bhwc,kc->k", u, g, basis, dtype=np.float64)
        if progress is not None:
            progress(min(1.0, (start + len(a)) / len(images)))
    return total / len(images)


def concept_maps(latent: LatentModel, basis: np.ndarray, images: np.ndarray) -> np.ndarray:
    """Concept attribution maps: float32 ``(N, k, H, W)`` in [0, 1], each concept's coefficient at every
    position of the layer (activations written on the basis, :func:`coefficients`), upsampled bilinearly
    to the input size and divided by its largest value over the image (a concept absent from an image is
    all zeros)."""
    grid = _grid(latent, latent.activations(images))
    u = coefficients(grid, basis)  # (N, h, w, k)
    up = tf.image.resize(tf.constant(u), latent.image_size, method="bilinear").numpy()
    up = np.moveaxis(np.maximum(up, 0), -1, 1)
    peak = up.max(axis=(2, 3), keepdims=True)
    return np.where(peak > 0, up / np.where(peak > 0, peak, 1), 0).astype(np.float32)


def _check_options(concepts, crop_fraction, crops_per_image, importance, n_design, top) -> None:
    if int(concepts) != concepts or concepts < 1:
        raise ExplainError(f"CRAFT needs a whole number of concepts of at least 1, got {concepts}.")
    if not 0 < crop_fraction <= 1:
        raise ExplainError(f"crop_fraction is the crops' share of the image side, in (0, 1], got {crop_fraction}.")
    if int(crops_per_image) != crops_per_image or crops_per_image < 1:
        raise ExplainError(f"crops_per_image must be a whole number of at least 1, got {crops_per_image}.")
    if importance not in IMPORTANCE:
        raise ExplainError(f"Unknown importance {importance!r}; use 'sobol' (the paper) or 'gradient'.")
    if int(n_design) != n_design or n_design < 2 or int(top) != top or top < 1:
        raise ExplainError(f"n_design must be at least 2 and top at least 1, got {n_design} and {top}.")


def _sample_boxes(n_images, latent, crops_per_image, crop_fraction, max_crops, seed) -> tuple[np.ndarray, int]:
    """``(boxes (M, 5) rows (image index, x0, y0, x1, y1), crops before the cap)``."""
    boxes = crop_boxes(n_images, latent.image_size, crops_per_image, crop_fraction, seed)
    index = np.repeat(np.arange(n_images), crops_per_image)[:, None]
    rows = np.concatenate([index, boxes.reshape(-1, 4)], axis=1)
    if len(rows) > max_crops:
        rows = rows[np.sort(np.random.default_rng(seed + 1).choice(len(rows), max_crops, replace=False))]
    return rows, n_images * crops_per_image


def craft(
    model,
    data: str | os.PathLike | DataSource,
    class_name: str | int,
    layer: int | str | None = None,
    *,
    concepts: int = 10,
    crop_fraction: float = 0.4,
    crops_per_image: int = 8,
    max_images: int = 500,
    max_crops: int = 4000,
    importance: str = "sobol",
    importance_images: int = 32,
    n_design: int = 32,
    top: int = 8,
    preprocess: str = "raw",
    class_names: Sequence[str] | None = None,
    batch_size: int = 64,
    seed: int = 0,
    progress: Callable[[str, float], None] | None = None,
) -> CraftResult:
    """Find a class's concepts and rank them: CRAFT (Fel et al. 2023, https://arxiv.org/abs/2211.10154).

    Args:
        model: a Keras classifier taking raw pixels ``(N, H, W, C)`` in [0, 255].
        data: a folder of class folders, ``"name:split"`` or a :class:`~explain.data.DataSource`; its images
            of the class (true labels) are cropped.
        class_name: the class (a name of the model's, or an index).
        layer: a spatial layer after a ReLU (index, name or nested path); None: the last spatial layer
            larger than 1x1 (:func:`~explain.attribution.base.default_target_layer`).
        concepts: ``k``, the number of concepts. crop_fraction: the crops' side as a share of the image's.
        crops_per_image: random crops per image. max_images: at most this many class images (a seeded
            sample). max_crops: at most this many crops in all (a seeded sample; the result says how many).
        importance: ``"sobol"`` (total Sobol indices, the paper) or ``"gradient"`` (gradient x concept).
        importance_images: the importance is averaged over this many of the class's images (the first ones).
        n_design: Sobol design points per image (``(k + 2) n_design`` passes of the rest of the network).
        top: crops kept per concept. preprocess: the model's preprocessing mode. class_names: the model's
            class names (default: the data's). batch_size: crops per compiled call. seed: seeds everything.
        progress: called as ``progress(stage, fraction done in [0, 1])``.

    Returns:
        A frozen :class:`CraftResult`, concepts most important first.

    Raises:
        LayerError: a layer without height, width and channels, or with negative activations; no such layer.
        ExplainError: a class the model does not have; an option out of range.
        DataError: data without images of the class, or with classes the model does not know.
    """
    _check_options(concepts, crop_fraction, crops_per_image, importance, n_design, top)
    report = _stages(progress)
    clock = {"start": time.perf_counter()}
    source = data if isinstance(data, DataSource) else open_data(data)
    names = tuple(class_names or source.class_names)
    target = class_index_of(class_name, names)
    from explain.attribution.base import default_target_layer

    chosen = default_target_layer(model, "CRAFT").name if layer is None else layer
    latent = LatentModel(model, chosen, batch_size, preprocess)
    _check_layer(latent)
    images, ids = class_images(source, target, names, latent.image_size, latent.channels, max_images, seed)
    timings = {"read": _lap(clock)}
    rows, requested = _sample_boxes(len(images), latent, crops_per_image, crop_fraction, max_crops, seed)
    pooled = crop_activations(latent, images, rows, lambda f: report("crops", f))
    timings["crops"] = _lap(clock)
    u, basis = factorise(pooled, int(min(concepts, *pooled.shape)), seed)
    timings["nmf"] = _lap(clock)
    chosen_images = images[: max(1, int(importance_images))]
    if importance == "sobol":
        scores = sobol_importance(latent, chosen_images, target, basis, int(n_design), seed,
                                  progress=lambda f: report("importance", f))
    else:
        scores = gradient_importance(latent, chosen_images, target, basis, lambda f: report("importance", f))
    timings["importance"] = _lap(clock)
    found = _concepts(u, scores, rows, ids, images, latent, basis, int(top))
    report("done", 1.0)
    return CraftResult(
        str(names[target]), target, latent.layer.name, found, basis, importance, len(images), len(rows), requested,
        len(chosen_images), int(rows[0, 3] - rows[0, 1]), timings, seed,
    )


def _concepts(u, scores, rows, ids, images, latent, basis, top) -> tuple[Concept, ...]:
    """The concepts, most important first: each one's top crops (boxes and pixels) and its map over the
    image of its top crop."""
    order = np.argsort(-scores, kind="stable")
    best = {int(c): np.argsort(-u[:, c], kind="stable")[:top] for c in order}
    examples = sorted({int(rows[best[c][0], 0]) for c in best})
    maps = concept_maps(latent, basis, images[examples])  # (E, k, H, W)
    found = []
    for c in order:
        chosen = best[int(c)]
        boxes = tuple((ids[int(rows[j, 0])], *(int(v) for v in rows[j, 1:])) for j in chosen)
        pixels = np.clip(np.round(cut_crops(images, rows[chosen], latent.image_size).numpy()), 0, 255)
        e = examples.index(int(rows[chosen[0], 0]))
        found.append(Concept(int(c), float(scores[c]), boxes, pixels.astype(np.uint8), images[examples[e]],
                             maps[e, int(c)]))
    return tuple(found)


def _lap(clock: dict) -> float:
    now = time.perf_counter()
    elapsed, clock["start"] = now - clock["start"], now
    return elapsed


def _stages(progress) -> Callable[[str, float], None]:
    """Crops take the first half of the bar, NMF nothing, the importance the second half."""
    share = {"crops": (0.0, 0.5), "importance": (0.5, 0.5), "done": (1.0, 0.0)}

    def report(stage: str, fraction: float) -> None:
        if progress is not None:
            start, width = share[stage]
            progress(stage, min(1.0, start + width * fraction))

    return report


def craft_concept_maps(
    model, result: CraftResult, images: np.ndarray, preprocess: str = "raw", batch_size: int = 64
) -> np.ndarray:
    """Where each of ``result``'s concepts is in whole images: float32 ``(N, k, H, W)`` in [0, 1], concepts
    in the result's order (most important first); see :func:`concept_maps`.

    Args:
        model: the model ``result`` was computed on. images: raw pixels ``(N, H, W, C)`` at its input size.
        preprocess: its preprocessing mode. batch_size: images per compiled call.

    Returns:
        float32 ``(N, k, H, W)`` in [0, 1].

    Raises:
        ValueError: images that do not fit the model.
    """
    latent = LatentModel(model, result.layer, batch_size, preprocess)
    maps = concept_maps(latent, result.basis, np.asarray(images))
    return maps[:, [c.id for c in result.concepts]]
