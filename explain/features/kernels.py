"""Convolution kernels (filters) of a layer, as arrays ready for a grid."""

from __future__ import annotations

import numpy as np

from explain._quiet import quiet_import
from explain.errors import LayerError
from explain.models.layers import get_layer, resolve_layer

quiet_import()
import keras  # noqa: E402


def _kernel(layer: keras.layers.Layer):
    """The layer's 4-D spatial kernel (depthwise for separable convolutions), or None."""
    kernel = getattr(layer, "depthwise_kernel", None)
    if kernel is None:
        kernel = getattr(layer, "kernel", None)
    return kernel if kernel is not None and len(kernel.shape) == 4 else None


def conv_filters(model: keras.Model, layer: int | str, input_channel: int | None = None) -> np.ndarray:
    """A convolution layer's kernels, one 2-D map per output channel.

    Args:
        model: the model.
        layer: index, name or nested path of a ``Conv2D`` (or ``DepthwiseConv2D`` /
            ``SeparableConv2D``: its depthwise kernels) layer.
        input_channel: which input channel's weights to show; None averages over the input
            channels.

    Returns:
        float32 ``(kh, kw, filters)``: kernel height x width, one map per output filter.

    Raises:
        LayerError: unknown layer, a layer without a 2-D convolution kernel, or an input
            channel out of range.
    """
    info = resolve_layer(model, layer)
    kernel = _kernel(get_layer(model, info.name))
    if kernel is None:
        raise LayerError(f"Layer {info.name!r} ({info.type}) has no 2-D convolution kernel; choose a Conv2D layer.")
    k = keras.ops.convert_to_numpy(kernel).astype(np.float32)  # (kh, kw, in, out) or (kh, kw, in, mult)
    if input_channel is None:
        return k.mean(axis=2)
    if not 0 <= input_channel < k.shape[2]:
        raise LayerError(f"Input channel {input_channel} is out of range: layer {info.name!r} has {k.shape[2]}.")
    return k[:, :, input_channel, :]


def conv_layers(model: keras.Model) -> list[str]:
    """Names (nested paths included) of the layers that have a 2-D convolution kernel."""
    from explain.models.layers import layer_table

    return [row.name for row in layer_table(model) if _kernel(get_layer(model, row.name)) is not None]
