"""What TCAV and CRAFT share: a model cut at one layer, and the images they read.

:class:`LatentModel` gives a layer's activations for raw-pixel images, the gradient of a class score
with respect to them, and (for CRAFT) the class score computed from given activations. Each is one
compiled function traced once for any batch size and run batch by batch, so memory holds one batch of
activations at a time. The score is the score head's (:mod:`explain.models.scores`): the pre-softmax
logit where the model has one, as for every attribution method.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from explain._quiet import quiet_import
from explain.attribution.ablation_cam import rest_of_network
from explain.attribution.base import AttributionMethod, _with_target
from explain.data import DataSource, open_data
from explain.data.sources import match_classes, quoted_names
from explain.errors import DataError, ExplainError
from explain.images import ImageLoadError, is_image_file, load_image
from explain.models.layers import resolve_layer
from explain.models.layouts import input_layout
from explain.models.preprocessing import from_raw_pixels
from explain.models.preprocessing import preprocess as apply_preprocessing

quiet_import()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

#: The fewest images a concept folder (and each random set) may have: the paper's sets hold 50-100, and a
#: linear classifier on fewer than 10 examples says little.
MIN_CONCEPT_IMAGES = 10


class LatentModel(AttributionMethod):
    """A model cut at one layer (index, name or nested path), for concept methods.

    Not an attribution method: it reuses the base's score head, input checks and compiled batching.

    Args:
        model: a Keras classifier taking raw pixels ``(N, H, W, C)`` in [0, 255].
        layer: the layer (``int | str``; a nested path such as ``"mobilenetv2_1.00_96/block_13_expand_relu"``).
        batch_size: images per compiled call.
        preprocess: the model's preprocessing mode.

    Raises:
        LayerError: no such layer. ExplainError: as :class:`~explain.attribution.base.AttributionMethod`.
    """

    name = "latent"
    autograph = False  # straight-line functions: tracing skips autograph's source conversion

    def __init__(self, model: keras.Model, layer: int | str, batch_size: int = 32, preprocess: str = "raw"):
        super().__init__(model, None, batch_size, preprocess)
        self.layer = resolve_layer(model, layer)
        self._explainer = from_raw_pixels(
            _with_target(model, self.layer.name.split("/"), self.head.tensor), self.preprocess
        )
        self._rest: keras.Model | None = None

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.input_shape[0]), int(self.input_shape[1])

    @property
    def channels(self) -> int:
        return int(self.input_shape[2])

    def _activations(self, x, class_index):
        a, _ = self._explainer(x, training=False)
        return (tf.cast(a, tf.float32),)

    def _gradients(self, x, class_index):
        with tf.GradientTape() as tape:
            tape.watch(x)  # records every op, frozen (non-trainable) bases included
            a, h = self._explainer(x, training=False)
            _, score = self.pick(self._to_scores(h), class_index)
        return tf.cast(a, tf.float32), tf.cast(tape.gradient(score, a), tf.float32)

    def activations(self, images: np.ndarray) -> np.ndarray:
        """The layer's output float32 ``(N, *output_shape[1:])`` (its own layout) for raw pixels ``(N, H, W, C)``."""
        x, idx = self._check(images, None)
        return self._batched("_compiled_acts", self._activations, x, idx)[0]

    def activations_and_gradients(self, images: np.ndarray, class_index: int | np.ndarray):
        """``(activations, d score / d activations)``, both float32 ``(N, *output_shape[1:])``: the
        gradient of class ``class_index``'s score (logit where the model has one)."""
        x, idx = self._check(images, class_index)
        return self._batched("_compiled_grads", self._gradients, x, idx)

    def scores_from_activations(self, images: np.ndarray, activations: tf.Tensor, class_index: int) -> tf.Tensor:
        """Class ``class_index``'s score float32 ``(M,)`` with the layer's output replaced by ``activations``
        ``(M, *output_shape[1:])``, for ``images`` ``(M, H, W, C)`` (raw pixels; they feed any path that goes
        around the layer). Eager-friendly: call it inside a ``tf.function``."""
        if self._rest is None:
            self._rest = rest_of_network(self.model, self.layer.name.split("/"), self.head.tensor)
        xm = input_layout(self.model).adapt(apply_preprocessing(images, self.preprocess))
        scores = self._to_scores(self._rest([xm, activations], training=False))
        _, picked = self.pick(scores, tf.fill([tf.shape(activations)[0]], tf.constant(class_index, tf.int64)))
        return tf.cast(picked, tf.float32)


def concept_files(folder: str | os.PathLike, label: str) -> list[Path]:
    """The image files under ``folder`` (sub-folders included), sorted.

    Raises:
        DataError: not a folder, or fewer than :data:`MIN_CONCEPT_IMAGES` image files.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"The {label} folder {str(root)!r} does not exist or is not a folder; give a folder of images.")
    files = sorted(p for p in root.rglob("*") if p.is_file() and is_image_file(p.name))
    if len(files) < MIN_CONCEPT_IMAGES:
        raise DataError(
            f"The {label} folder {str(root)!r} has {len(files)} image file{'s' if len(files) != 1 else ''}; "
            f"a concept needs at least {MIN_CONCEPT_IMAGES} (the paper used 50-100): add more images."
        )
    return files


def read_concept_folder(
    folder: str | os.PathLike,
    label: str,
    size: tuple[int, int],
    channels: int,
    progress: Callable | None = None,
    files: Sequence[Path] | None = None,
) -> np.ndarray:
    """Every image of a concept folder at the model's input size, through the one image decoder.

    Args:
        folder: a folder of images of any size and format :func:`explain.images.load_image` reads.
        label: what the folder is, for messages (``"concept 'stripes'"``, ``"random"``).
        size: ``(height, width)`` of the model's input. channels: 1 or 3.
        progress: called with 1 after each file. files: the folder's :func:`concept_files`, when already listed.

    Returns:
        uint8 ``(N, height, width, channels)``, files in sorted order.

    Raises:
        DataError: a missing folder, fewer than :data:`MIN_CONCEPT_IMAGES` images, or unreadable images
            (every one listed, with the reason of the first).
    """
    files = concept_files(folder, label) if files is None else files
    images, bad = [], []
    for f in files:
        try:
            images.append(load_image(f, size, channels))
        except ImageLoadError as e:
            bad.append((f, e.reason))
        if progress is not None:
            progress(1)
    if bad:
        names = quoted_names([str(f.relative_to(folder)) for f, _ in bad])
        raise DataError(
            f"The {label} folder {str(folder)!r} has {len(bad)} unreadable image{'s' if len(bad) > 1 else ''}: "
            f"{names} ({bad[0][1]}); remove or replace {'them' if len(bad) > 1 else 'it'}."
        )
    return np.stack(images)


def class_index_of(name: str | int, class_names: Sequence[str]) -> int:
    """The model's index of class ``name`` (a name, or an index given as int or digits).

    Raises:
        ExplainError: a class the model does not have (its classes listed).
    """
    names = [str(c) for c in class_names]
    if str(name) in names:
        return names.index(str(name))
    if isinstance(name, int) or str(name).isdigit():
        k = int(name)
        if 0 <= k < len(names):
            return k
    raise ExplainError(
        f"The model has no class {str(name)!r}; its classes are {quoted_names(names, limit=20)}. "
        "Give one of them (or its index)."
    )


def class_images(
    data: str | os.PathLike | DataSource,
    class_index: int,
    class_names: Sequence[str],
    size: tuple[int, int],
    channels: int,
    limit: int,
    seed: int,
) -> tuple[np.ndarray, list[str]]:
    """Up to ``limit`` images of one class (true labels), a seeded sample in data order, and their ids.

    Raises:
        DataError: the data have classes the model does not know, or no image of the class.
    """
    source = data if isinstance(data, DataSource) else open_data(data)
    mapping, _, _ = match_classes(source.class_names, class_names)
    members = np.flatnonzero(mapping[source.labels] == class_index)
    if len(members) == 0:
        raise DataError(
            f"The data {source.name!r} have no image of class {class_names[class_index]!r}; give data with "
            "a folder (or label) of that class."
        )
    if len(members) > limit:
        members = np.sort(np.random.default_rng(seed).choice(members, limit, replace=False))
    images, kept, _ = source.load(members, size, channels)
    if len(kept) == 0:
        raise DataError(f"No image of class {class_names[class_index]!r} in {source.name!r} could be read.")
    return images, [source.image_id(int(i)) for i in kept]
