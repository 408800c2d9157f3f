"""Activations of many layers from one forward pass, through a cached feature model.

The feature model is a separate ``keras.Model`` that shares the caller's weights and
returns the requested layers' outputs; the caller's model is never changed. Layers inside
a nested model (a pretrained base inside a Sequential) are reached by running the outer
graph up to the nested model's input and then a sub-model of the nested model that
returns its inner layers, all inside one graph.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import numpy as np

from explain._quiet import quiet_import
from explain.models.graph import own_node, single
from explain.models.layers import layer_table, resolve_layer
from explain.models.layouts import image_input_shape, to_grid
from explain.models.preprocessing import from_raw_pixels
from explain.render.display import Displayable

quiet_import()
import keras  # noqa: E402

_FEATURE_MODELS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_MAX_CACHED_PER_MODEL = 8
#: The compiled forward pass of each feature model (a ``tf.function``), built on first use.
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _symbolic_outputs(container: keras.Model, names: list[str], x=None) -> dict[str, object]:
    """Symbolic outputs of the named layers (paths relative to ``container``).

    With ``x`` None the tensors belong to ``container``'s own graph; otherwise they are
    built by calling a sub-model of ``container`` (sharing its weights) on ``x``, a tensor
    of an outer graph that stands for ``container``'s input there.
    """
    result: dict[str, object] = {}
    nested: dict[str, list[str]] = {}
    for name in names:
        head, _, rest = name.partition("/")
        if rest:
            nested.setdefault(head, []).append(rest)
        else:
            result[name] = single(own_node(container, container.get_layer(name)).output_tensors)
    for head, rest in nested.items():
        child = container.get_layer(head)
        child_input = single(own_node(container, child).input_tensors)
        inner = _symbolic_outputs(child, rest, x=child_input)
        result.update({f"{head}/{k}": v for k, v in inner.items()})
    if x is None:
        return result
    keys = list(result)
    sub = keras.Model(single(container.inputs), [result[k] for k in keys])
    outs = sub(x)
    outs = outs if isinstance(outs, list | tuple) else [outs]
    return dict(zip(keys, outs, strict=True))


def feature_model(model: keras.Model, names: Sequence[str], preprocess: str = "raw") -> keras.Model:
    """A model that maps raw pixels to the outputs of the named layers.

    Built once per ``(model, names, preprocess)`` and cached (weakly keyed on the model).
    Outputs that read as feature maps come as grids ``(N, h, w, C)``
    (:func:`explain.models.layouts.to_grid`): a channels-first layer transposed, a Vision
    Transformer's tokens reshaped (the class token dropped); others as the layer gives them.

    Args:
        model: the classifier.
        names: layer names or nested paths, as in :func:`explain.models.layer_table`.
        preprocess: the model's preprocessing mode (:mod:`explain.models.preprocessing`), applied
            in front of it.

    Returns:
        A ``keras.Model`` sharing ``model``'s weights, taking raw pixels ``(N, H, W, C)`` in
        [0, 255] (whatever the model's own input layout), with one output per name, in order.

    Raises:
        ExplainError: an unknown preprocessing mode.
    """
    key = (tuple(names), preprocess)
    per_model = _FEATURE_MODELS.setdefault(model, {})
    if key in per_model:
        return per_model[key]
    outputs = _symbolic_outputs(model, list(names))
    rows = {r.name: r for r in layer_table(model)}
    grids = [to_grid(outputs[n], rows[n].layout, rows[n].grid) for n in names]
    fm = keras.Model(single(model.inputs), grids, name=f"{model.name}_features")
    fm = from_raw_pixels(fm, preprocess)
    if len(per_model) >= _MAX_CACHED_PER_MODEL:
        per_model.pop(next(iter(per_model)))
    per_model[key] = fm
    return fm


def _compiled(fm: keras.Model):
    """``fm``'s forward pass as a ``tf.function``, traced once (per batch size).

    Eager execution costs about 1 ms per layer per call: 750 ms for MobileNetV2's 155 layers,
    against 30-50 ms compiled (docs/architecture.md, known traps)."""
    if fm not in _COMPILED:
        import tensorflow as tf

        ref = weakref.ref(fm)  # the cache must not keep its own key alive
        _COMPILED[fm] = tf.function(lambda x: ref()(x, training=False), reduce_retracing=True, autograph=False)
    return _COMPILED[fm]


class Activations(dict, Displayable):
    """``{layer name: float32 activations}``, as :func:`compute_activations` returns them: a plain
    ``dict`` that also shows itself in a notebook, one image's feature maps per layer (:meth:`figure`)."""

    def figure(self, ax=None, *, image: int = 0, layers=None, max_layers: int = 6, max_maps: int = 16):
        """One image's activations, a panel per layer: a layer with feature maps as a grid of them
        (:func:`explain.render.figures.feature_map_grid`), any other as bars
        (:func:`explain.render.figures.activation_bars`).

        Args:
            ax: axes for one panel (the first layer drawn); None makes a new figure.
            image: which image of the batch.
            layers: the layer names to draw (keys of this dict); None: the first ``max_layers``.
            max_layers: most panels when ``layers`` is None; the title says when layers were left out.
            max_maps: most feature maps per layer.

        Returns:
            A ``matplotlib.figure.Figure``.

        Raises:
            KeyError: a layer that was not computed (the message lists those that were).
        """
        from explain.render.figures import activation_bars, feature_map_grid, panel_figure

        names = list(self) if layers is None else list(layers)
        missing = [n for n in names if n not in self]
        if missing:
            raise KeyError(f"No activations for {missing}; computed: {', '.join(self)}.")
        shown = names[: max(1, max_layers)] if layers is None else names
        if ax is not None:
            shown = shown[:1]
        title = f"Activations of image {image}" + (
            f" (the first {len(shown)} of {len(names)} layers)" if len(shown) < len(names) else ""
        )
        fig, axes = (ax.figure, [ax]) if ax is not None else panel_figure(len(shown), title=title)
        for name, panel in zip(shown, axes, strict=True):
            a = self[name][image]
            if a.ndim == 3:
                feature_map_grid(a, title=name, max_maps=max_maps, ax=panel)
            else:
                activation_bars(a.ravel(), title=name, ax=panel)
        return fig

    def table(self):
        """``(headers, rows)``: each layer's name and activation shape."""
        return ["layer", "shape"], [[name, str(tuple(a.shape))] for name, a in self.items()]

    def as_dict(self) -> dict:
        """A plain ``dict`` of the same arrays."""
        return dict(self)


def compute_activations(
    model: keras.Model,
    images: np.ndarray,
    layers: Sequence[int | str] | None = None,
    batch_size: int = 32,
    preprocess: str = "raw",
) -> Activations:
    """Run the images once through the model and return the chosen layers' activations.

    Args:
        model: the classifier.
        images: ``(N, H, W, C)`` or one ``(H, W, C)`` image, raw pixels in [0, 255] (any
            numeric dtype; cast to float32), at the model's input size, channels last
            whatever the model's own input layout.
        layers: indices, names or nested paths; None means every top-level layer.
        batch_size: images per forward pass.
        preprocess: the model's preprocessing mode (:mod:`explain.models.preprocessing`), applied
            to the raw pixels in front of the model; ``"raw"`` feeds them unchanged.

    Returns:
        :class:`Activations`, a ``dict`` ``{layer name: float32 array}`` in the order asked (it shows
        itself in a notebook): ``(N, h, w, C)`` for a layer with
        feature maps (:attr:`explain.models.LayerInfo.grid`: channels-first layers and Vision
        Transformer tokens as grids too), else ``(N, *output_shape[1:])``.

    Raises:
        LayerError: a layer does not exist.
        ExplainError: an unknown preprocessing mode.
        ValueError: the images do not match the model's input shape.
    """
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 3:
        x = x[None]
    expected = image_input_shape(model)
    if x.ndim != 4 or any(e is not None and e != a for e, a in zip(expected, x.shape[1:], strict=True)):
        raise ValueError(
            f"Images of shape {x.shape[1:]} do not fit the model input {expected}; "
            "load them with explain.load_image(path, target_size=(H, W), channels=C)."
        )
    if layers is None:
        names = [r.name for r in layer_table(model) if r.index is not None]
    else:
        names = list(dict.fromkeys(resolve_layer(model, layer).name for layer in layers))
    forward = _compiled(feature_model(model, names, preprocess))
    chunks: list[list[np.ndarray]] = [[] for _ in names]
    for start in range(0, len(x), batch_size):
        outs = forward(x[start : start + batch_size])
        outs = outs if isinstance(outs, list | tuple) else [outs]
        for store, out in zip(chunks, outs, strict=True):
            store.append(keras.ops.convert_to_numpy(out).astype(np.float32, copy=False))
    return Activations(
        (n, c[0] if len(c) == 1 else np.concatenate(c, axis=0)) for n, c in zip(names, chunks, strict=True)
    )


def channel_heatmap(activations: np.ndarray, channel: int, size: tuple[int, int]) -> np.ndarray:
    """One feature map, upsampled (bilinear) to ``size`` and scaled to [0, 1] by its min-max.

    Args:
        activations: float ``(h, w, C)``, one image's activations of one layer.
        channel: the channel to take, in ``[0, C)``.
        size: ``(H, W)``, usually the input image's size.

    Returns:
        float32 ``(H, W)`` in [0, 1]; all zeros for a constant (flat) map.

    Raises:
        ValueError: activations not 3-D, or channel out of range.
    """
    from PIL import Image

    acts = np.asarray(activations, dtype=np.float32)
    if acts.ndim != 3:
        raise ValueError(f"channel_heatmap needs (h, w, C) activations, got shape {acts.shape}.")
    if not 0 <= channel < acts.shape[-1]:
        raise ValueError(f"Channel {channel} is out of range: the layer has {acts.shape[-1]} channels.")
    m = np.nan_to_num(acts[..., channel])
    span = float(m.max() - m.min())
    m = (m - m.min()) / span if span > 0 else np.zeros_like(m)
    up = Image.fromarray(m.astype(np.float32), "F").resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(up, dtype=np.float32), 0.0, 1.0)
