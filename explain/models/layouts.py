"""Image layouts: how a model takes its pixels, and how a layer's output becomes a grid.

explain always feeds ``(N, H, W, C)`` raw pixels, channels last (docs/architecture.md,
contracts). Models take other layouts too:

* ``(None, H, W)``: one channel without a channel axis, as TensorFlow's beginner tutorial
  (``Flatten(input_shape=(28, 28))``, https://www.tensorflow.org/tutorials/quickstart/beginner);
* ``(None, C, H, W)`` with C in {1, 3}: channels first (``data_format="channels_first"``);
* ``(None, N)``: flattened pixels, N = s*s (grayscale) or 3*s*s (RGB, flattened from
  ``(s, s, 3)`` in NumPy's row-major order, as ``x.reshape(len(x), -1)`` does).

:class:`InputLayout` says which, and :meth:`InputLayout.adapt` reshapes or transposes the
channels-last pixels for the model; :func:`explain.models.preprocessing.from_raw_pixels` puts it in
front of the model, so the model, its layer indices and names are unchanged.

Layer outputs are drawn and explained as grids ``(N, h, w, C)``. :func:`output_layout` tells
how to read one: ``channels_last`` (as is), ``channels_first`` (the layer's ``data_format``),
``tokens`` (a Vision Transformer's ``(N, T, D)`` with T = h*w patches) or ``tokens+class``
(T = h*w + 1, a class token first, which is dropped for the grid); :func:`to_grid` applies it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from explain._quiet import quiet_import
from explain.errors import ModelLoadError

quiet_import()
import keras  # noqa: E402

#: Layouts of a layer's output that can be drawn as a grid ``(h, w, C)``.
GRID_LAYOUTS = ("channels_last", "channels_first", "tokens", "tokens+class")


@dataclass(frozen=True)
class InputLayout:
    """How a model takes an image.

    Attributes:
        kind: ``"channels_last"`` ``(N, H, W, C)``, ``"plane"`` ``(N, H, W)``,
            ``"channels_first"`` ``(N, C, H, W)`` or ``"flat"`` ``(N, H*W*C)``.
        image_shape: ``(H, W, C)``, what explain feeds (None for a free height or width).
        model_shape: the model's own input shape, without the batch axis.
    """

    kind: str
    image_shape: tuple[int | None, int | None, int]
    model_shape: tuple[int | None, ...]

    @property
    def channels(self) -> int:
        return int(self.image_shape[-1])

    @property
    def description(self) -> str:
        """One phrase for the layer table and the dashboard, e.g. ``"channels first (1, 28, 28)"``."""
        shape = tuple(self.model_shape)
        return {
            "channels_last": f"images {shape}",
            "plane": f"one-channel images without a channel axis {shape}",
            "channels_first": f"channels first {shape}",
            "flat": f"flattened pixels {shape}, read as {self.image_shape[0]}x{self.image_shape[1]}x{self.channels}",
        }[self.kind]

    def adapt(self, x):
        """Turn channels-last pixels ``(N, H, W, C)`` into the model's layout (a Keras op:
        symbolic or eager tensors, differentiable)."""
        ops = keras.ops
        if self.kind == "plane":
            return x[..., 0]
        if self.kind == "channels_first":
            return ops.transpose(x, (0, 3, 1, 2))
        if self.kind == "flat":
            return ops.reshape(x, (-1, int(self.model_shape[0])))
        return x


def _square_side(n: int) -> int | None:
    side = math.isqrt(n)
    return side if side * side == n else None


def _first_data_format(model: keras.Model) -> str | None:
    """The ``data_format`` of the first layer (in ``model.layers`` order, nested models searched) that has one.

    ``Flatten`` does not count: its ``data_format`` only orders the flattened values."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found = _first_data_format(layer)
            if found:
                return found
        elif isinstance(getattr(layer, "data_format", None), str) and type(layer).__name__ != "Flatten":
            return layer.data_format
    return None


def _layout_of_4d(model: keras.Model, shape: tuple) -> InputLayout:
    first, last = shape[0], shape[-1]
    data_format = _first_data_format(model)
    if data_format == "channels_first" or (data_format is None and last not in (1, 3) and first in (1, 2, 3, 4)):
        if first not in (1, 3):
            raise ModelLoadError(
                f"The model takes channels-first images {shape} with {first} channels; explain explains grayscale "
                "(1 channel) and RGB (3 channels) images only."
            )
        return InputLayout("channels_first", (shape[1], shape[2], int(first)), shape)
    if last not in (1, 3):
        raise ModelLoadError(
            f"The model's input shape is {shape}: {last} channels; explain explains grayscale (1 channel) and RGB "
            "(3 channels) images, channels last (height, width, channels) or first (channels, height, width)."
        )
    return InputLayout("channels_last", (shape[0], shape[1], int(last)), shape)


def _layout_of_flat(shape: tuple) -> InputLayout:
    n = shape[0]
    if n is not None:
        side = _square_side(n)
        if side is not None:
            return InputLayout("flat", (side, side, 1), shape)
        side = _square_side(n // 3) if n % 3 == 0 else None
        if side is not None:
            return InputLayout("flat", (side, side, 3), shape)
    raise ModelLoadError(
        f"The model takes flat vectors of {n} values, which are not the pixels of a square image "
        "(s*s values for grayscale, 3*s*s for RGB, e.g. 784 = 28x28); explain cannot tell their height and width. "
        "Save the model with an image input, e.g. keras.Input((28, 28, 1)) followed by Flatten()."
    )


def input_layout(model: keras.Model) -> InputLayout:
    """How ``model`` takes an image, from its one input's shape (and its layers' ``data_format``).

    Args:
        model: a Keras model with one input.

    Returns:
        The :class:`InputLayout`. A 4-D input is channels first when its first layer with a
        ``data_format`` says ``channels_first``, or when its last axis cannot be channels
        (not 1 or 3) and its first can; otherwise channels last.

    Raises:
        ModelLoadError: not one input; a rank other than 2, 3 or 4; channels other than 1 or 3
            (first or last); a flat input whose length is not s*s or 3*s*s.
    """
    inputs = model.inputs
    if inputs is None or len(inputs) != 1:
        n = 0 if inputs is None else len(inputs)
        raise ModelLoadError(f"The model has {n} inputs; explain explains image classifiers with one image input.")
    shape = tuple(inputs[0].shape[1:])
    if len(shape) == 3:
        return _layout_of_4d(model, shape)
    if len(shape) == 2:
        return InputLayout("plane", (shape[0], shape[1], 1), shape)
    if len(shape) == 1:
        return _layout_of_flat(shape)
    raise ModelLoadError(
        f"The model's input shape is {(None, *shape)}; explain explains images: (batch, height, width, channels), "
        "(batch, channels, height, width), (batch, height, width) or flattened pixels (batch, height*width*channels)."
    )


def image_input_shape(model: keras.Model) -> tuple[int | None, int | None, int]:
    """``(H, W, C)``: the images explain feeds ``model`` (see :func:`input_layout`).

    Raises:
        ModelLoadError: as :func:`input_layout`.
    """
    return input_layout(model).image_shape


# ---------------------------------------------------------------------------------------------
# Layer outputs as grids
# ---------------------------------------------------------------------------------------------


def _token_grid(tokens: int, image_hw: tuple) -> tuple[int, int] | None:
    """``(h, w)`` with h*w = tokens and h/w the image's aspect ratio (square when unknown), at least 2x2."""
    ih, iw = image_hw
    if ih and iw and ih != iw:
        h = _square_side(tokens * ih // iw) if (tokens * ih) % iw == 0 else None
        if h and tokens % h == 0 and (tokens // h) * ih == h * iw:
            return (h, tokens // h) if h >= 2 and tokens // h >= 2 else None
        return None
    side = _square_side(tokens)
    return (side, side) if side is not None and side >= 2 else None


def output_layout(shape: tuple, data_format: str | None, image_hw: tuple) -> tuple[str, tuple | None]:
    """How a layer's output can be read as a grid of feature maps.

    Args:
        shape: the output shape with the batch axis, e.g. ``(None, 50, 64)``.
        data_format: ``"channels_first"`` when the tensor is channels first (the layer's own
            ``data_format``, or that of the layers before it), else anything.
        image_hw: the model's input image ``(H, W)`` (None for free), for the aspect of token grids.

    Returns:
        ``(layout, grid)``: ``layout`` one of :data:`GRID_LAYOUTS`, or ``""`` for an output
        that is no grid (a vector, a sequence); ``grid`` ``(h, w, C)`` in the grid's
        channels-last order, or None.
    """
    if len(shape) == 4:
        if data_format == "channels_first":
            return "channels_first", (shape[2], shape[3], shape[1])
        return "channels_last", tuple(shape[1:])
    if len(shape) == 3 and shape[1] is not None and shape[2] is not None:
        grid = _token_grid(shape[1], image_hw)
        if grid is not None:
            return "tokens", (*grid, shape[2])
        grid = _token_grid(shape[1] - 1, image_hw)
        if grid is not None:
            return "tokens+class", (*grid, shape[2])
    return "", None


def layout_note(layout: str, grid: tuple | None) -> str:
    """What the layer table says about a layout, e.g. ``"tokens, 7x7 grid + class token"``; ``""`` for channels last."""
    if layout == "channels_first":
        return "channels first"
    if layout in ("tokens", "tokens+class"):
        return f"tokens, {grid[0]}x{grid[1]} grid" + (" + class token" if layout == "tokens+class" else "")
    return ""


def to_grid(x, layout: str, grid: tuple | None):
    """A layer's output as feature maps ``(N, h, w, C)`` (a Keras op, differentiable).

    Args:
        x: the output, in its own layout.
        layout: from :func:`output_layout`.
        grid: ``(h, w, C)`` from :func:`output_layout`.

    Returns:
        ``x`` itself for ``channels_last`` or a layout without grid; otherwise the transposed
        or reshaped tensor (a class token is dropped).
    """
    ops = keras.ops
    if layout == "channels_first":
        return ops.transpose(x, (0, 2, 3, 1))
    if layout == "tokens+class":
        x = x[:, 1:, :]
    if layout in ("tokens", "tokens+class"):
        return ops.reshape(x, (-1, int(grid[0]), int(grid[1]), int(grid[2])))
    return x
