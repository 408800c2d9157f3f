"""Explain while training: a Keras callback that computes the maps of fixed images every few epochs and writes
them to TensorBoard and as a PNG strip, to watch what the model learns to look at.

The idea of tf-explain's callbacks (https://github.com/sicara/tf-explain, stopped in 2021, Keras 2 only), on
this project's methods: each method is built once on the model being trained and its compiled function
traced once; every logged epoch then costs only the maps (the function reads the weights as they are).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from explain._quiet import quiet_import
from explain.attribution import get_method
from explain.errors import ExplainError
from explain.images import load_image
from explain.io import atomic_write
from explain.render.pictures import encode_png, enlarge, overlay, side_by_side

quiet_import()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

#: Each strip cell's side in pixels (the overlay enlarged nearest-neighbour to at least this).
CELL = 96
#: The caption under each cell, in pixels: two lines (``image 3`` / ``input``, ``epoch 5`` / the class predicted).
CAPTION = 40
#: A class name in a caption is cut to this many characters, so that it fits one line of a cell.
CAPTION_CHARS = 12


def _check_log_dir(log_dir: str | os.PathLike) -> Path:
    """Create ``log_dir`` and write a probe file there now, not at the first logged epoch.

    Raises:
        ExplainError: the folder cannot be created or written.
    """
    path = Path(log_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".explain_probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ExplainError(
            f"Cannot write the TensorBoard folder {str(path)!r} ({e.strerror or e}); give a folder you can write."
        ) from None
    return path


def _fit_images(images, size: tuple[int, int], channels: int) -> tuple[np.ndarray, list[str]]:
    """``images`` (an array ``(N, H, W, C)`` or paths) as float32 raw pixels at ``size``; notes of resizes.

    Raises:
        ExplainError: no images, or images whose channels differ from the model's.
    """
    if isinstance(images, (str, os.PathLike)) or (
        isinstance(images, Sequence) and images and isinstance(images[0], (str, os.PathLike))
    ):
        paths = [images] if isinstance(images, (str, os.PathLike)) else list(images)
        return np.stack([load_image(p, size, channels) for p in paths]).astype(np.float32), []
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[..., None] if channels == 1 and x.shape[-1] != 1 else x[None]
    if x.ndim != 4 or len(x) == 0:
        raise ExplainError(f"ExplainCallback needs images (N, H, W, C) or image paths; got an array of {x.shape}.")
    if x.shape[-1] != channels:
        raise ExplainError(
            f"The callback's images have {x.shape[-1]} channels and the model takes {channels}; give "
            f"{'grayscale' if channels == 1 else 'RGB'} images."
        )
    notes = []
    if tuple(x.shape[1:3]) != tuple(size):
        h, w = x.shape[1:3]
        notes.append(f"ExplainCallback: images of {h}x{w} resized to the model's {size[0]}x{size[1]}.")
        x = tf.image.resize(x.astype(np.float32), size, method="bilinear", antialias=True).numpy()
    return np.clip(x, 0, 255).astype(np.float32), notes


class ExplainCallback(keras.callbacks.Callback):
    """Maps of fixed images at the end of every ``every``-th epoch, to TensorBoard and as a PNG strip.

    Each method is built once, on the model ``fit`` trains, when training begins; its compiled function is
    traced on the first logged epoch and reused after (the weights are read as they are), so an epoch's cost
    is the maps alone. The maps explain each image's top prediction at that epoch.

    Written:
        - with ``log_dir``: one ``tf.summary.image`` per image and method, tag ``"<method>/image_<i>"``
          (the overlay, uint8 RGB), at step = the epoch number (1-based);
        - with ``out``: ``<out>/explain_<method>.png``, a strip with one row per image and one column per
          logged epoch (the image itself first), rewritten atomically after each logged epoch.

    Attributes:
        maps: ``{method: [(epoch, float32 (N, H, W) heatmaps in [0, 1]), ...]}``, every logged epoch.
        notes: what was assumed (images resized).

    Args:
        images: uint8 or float raw pixels ``(N, H, W, C)`` in [0, 255], or image paths (read at the model's
            input size). An array of another size is resized (with a note); other channels are refused.
        methods: method names of :data:`explain.attribution.METHODS` (default Grad-CAM).
        every: log every this many epochs (>= 1).
        log_dir: a TensorBoard folder (created; checked writable now, not at epoch 1).
        out: a folder for the PNG strips.
        preprocess: the model's preprocessing mode (``"raw"`` when the model rescales itself).
        class_names: names for the strip's captions (default class indices).
        layer: the CAM methods' target layer (default the last spatial layer).

    Raises:
        ExplainError: an unknown method, ``every < 1``, a ``log_dir`` that cannot be written, images of other
            channels (when training begins, for paths).
    """

    def __init__(
        self,
        images,
        methods: Sequence[str] = ("gradcam",),
        every: int = 1,
        log_dir: str | os.PathLike | None = None,
        out: str | os.PathLike | None = None,
        preprocess: str = "raw",
        class_names: Sequence[str] | None = None,
        layer: int | str | None = None,
    ):
        super().__init__()
        if int(every) != every or every < 1:
            raise ExplainError(f"every must be a whole number of epochs, at least 1; got {every}.")
        self.method_names = [m for m in ([methods] if isinstance(methods, str) else methods)]
        for m in self.method_names:
            get_method(m)  # an unknown name fails now, not at epoch 1
        self.images_given, self.every, self.preprocess = images, int(every), preprocess
        self.class_names, self.layer = class_names, layer
        self.log_dir = _check_log_dir(log_dir) if log_dir is not None else None
        self.out = Path(out) if out is not None else None
        self.maps: dict[str, list] = {m: [] for m in self.method_names}
        self._cells: dict[str, list] = {m: [] for m in self.method_names}  # per logged epoch, one overlay per image
        self._captions: dict[str, list] = {m: [] for m in self.method_names}  # per logged epoch, one per image
        self.notes: list[str] = []
        self._explainers: dict = {}
        self._writer = None

    def on_train_begin(self, logs=None):
        shape = tuple(self.model.inputs[0].shape[1:])
        size, channels = (int(shape[0]), int(shape[1])), int(shape[-1])
        self.images, self.notes = _fit_images(self.images_given, size, channels)
        for note in self.notes:
            warnings.warn(note, stacklevel=2)
        self._explainers = {}
        for m in list(self.method_names):
            self._explainers[m] = self._build(m)
        if self.log_dir is not None:
            self._writer = tf.summary.create_file_writer(str(self.log_dir))
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)

    def _build(self, method: str):
        """The method on the model being trained; a CAM on a model without a spatial layer (an MLP) becomes
        saliency, with a note, and its maps stay under the name asked for."""
        from explain.errors import NoSpatialLayerError

        if not _takes_layer(method):
            return get_method(method)(self.model, preprocess=self.preprocess)
        try:
            return get_method(method)(self.model, layer=self.layer, preprocess=self.preprocess)
        except NoSpatialLayerError:
            note = f"ExplainCallback: {method} needs a convolutional layer and the model has none; saliency instead."
            self.notes.append(note)
            warnings.warn(note, stacklevel=3)
            return get_method("saliency")(self.model, preprocess=self.preprocess)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        for name, explainer in self._explainers.items():
            result = explainer(self.images)
            self.maps[name].append((epoch + 1, result.heatmap))
            pictures = [overlay(_u8(img), heat, flat=bool(f), min_size=CELL)
                        for img, heat, f in zip(self.images, result.heatmap, result.flat, strict=True)]
            self._cells[name].append(pictures)  # the strip's new column, drawn once
            self._captions[name].append([f"epoch {epoch + 1}\n{self._class_name(int(c))}" for c in result.class_index])
            if self._writer is not None:
                with self._writer.as_default():
                    for i, picture in enumerate(pictures):
                        tf.summary.image(f"{name}/image_{i}", picture[None], step=epoch + 1)
                self._writer.flush()
            if self.out is not None:
                png = encode_png(self.strip_picture(name))
                atomic_write(self.out / f"explain_{name}.png", lambda p, data=png: p.write_bytes(data))

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()

    def _class_name(self, index: int) -> str:
        """The class's name for a caption (``class k`` without names), cut to :data:`CAPTION_CHARS`."""
        names = list(self.class_names or ())
        name = names[index] if 0 <= index < len(names) else f"class {index}"
        return name if len(name) <= CAPTION_CHARS else name[: CAPTION_CHARS - 1] + "…"

    def strip_picture(self, method: str) -> np.ndarray:
        """The strip picture uint8 ``(rows, columns, 3)``: one row per image, its picture then one overlay per
        logged epoch, cells of :data:`CELL` pixels with a 4-pixel gap, each captioned (:data:`CAPTION` pixels)
        with the image's number, or the epoch and the class the map explains (the top prediction then)."""
        columns, captions = self._cells[method], self._captions[method]
        rows = [
            side_by_side(
                [enlarge(_u8(img), CELL), *(column[i] for column in columns)],
                [f"image {i + 1}\ninput", *(epoch[i] for epoch in captions)],
                gap=4,
            )
            for i, img in enumerate(self.images)
        ]
        return _join(rows, axis=0)


def _takes_layer(method: str) -> bool:
    from explain.attribution.base import LayerAttribution

    return issubclass(get_method(method), LayerAttribution)


def _u8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _join(pictures: list[np.ndarray], axis: int, gap: int = 4) -> np.ndarray:
    """Pictures side by side (``axis=1``) or stacked (``axis=0``), white gaps between, padded to one size."""
    other = 1 - axis
    extent = max(p.shape[other] for p in pictures)
    padded = []
    for k, p in enumerate(pictures):
        pad = [(0, 0), (0, 0), (0, 0)]
        pad[other] = (0, extent - p.shape[other])
        if k < len(pictures) - 1:
            pad[axis] = (0, gap)
        padded.append(np.pad(p, pad, constant_values=255))
    return np.concatenate(padded, axis=axis)
