"""Attention rollout: Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers", ACL,
https://arxiv.org/abs/2005.00928.

For Vision Transformers: each ``MultiHeadAttention`` layer's attention, averaged over heads,
mixed with the identity for the residual connection and re-normalised, is multiplied through the
layers; the rolled-out attention of the output tokens to the patch tokens is the map.
"""

from __future__ import annotations

from explain._quiet import quiet_import
from explain.attribution._params import whole_at_least
from explain.attribution.base import AttributionMethod
from explain.errors import LayerError
from explain.features.activations import _symbolic_outputs
from explain.models.graph import own_node
from explain.models.layers import LayerInfo, get_layer, layer_table
from explain.models.preprocessing import from_raw_pixels

quiet_import()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

#: How the heads of one layer are fused: the paper averages them; max and min as in
#: https://github.com/jacobgil/vit-explain.
HEAD_FUSIONS = ("mean", "max", "min")


def attention_layers(model: keras.Model) -> list[LayerInfo]:
    """The ``MultiHeadAttention`` layers of the model's graph (nested models searched), in graph
    order; attention inside a custom layer's own code is not reachable and not listed."""
    return [r for r in layer_table(model) if isinstance(get_layer(model, r.name), keras.layers.MultiHeadAttention)]


def _producer_path(tensor, prefix: str, what: str) -> str:
    history = getattr(tensor, "_keras_history", None)
    op = history[0] if history else None
    if not isinstance(op, keras.layers.Layer):
        raise LayerError(f"The {what} comes from {op!r}, not a layer; attention rollout cannot read it.")
    return prefix + op.name


class AttentionRollout(AttributionMethod):
    """Attention rollout (Abnar & Zuidema 2020, https://arxiv.org/abs/2005.00928).

    For each self-attention layer ``l`` (``MultiHeadAttention``, in graph order), ``A_l`` is its
    attention ``(T, T)`` fused over heads (``head_fusion``: the mean, as in the paper), and
    ``Ã_l = 0.5 A_l + 0.5 I`` re-normalised so that each row sums to 1 (the residual
    connection, paper section 3). The rollout is ``R = Ã_L ... Ã_2 Ã_1``. The map is the row of
    the class token over the patch tokens, ``R[0, 1:]``, for a model with a class token (the
    last attention layer's tokens read as ``h*w + 1``); without one (keras.io's ViT, which
    flattens all tokens) the mean of all rows, ``mean_i R[i, :]``: how much each patch flows into
    the output tokens on average. The ``h x w`` map is upsampled bilinearly and scaled to [0, 1].

    The map does not depend on the class: ``class_index`` only chooses the class and score
    reported. Each layer is run again on its own inputs to return its attention (no dropout);
    the model is not changed. Call shape: see
    :class:`~explain.attribution.base.AttributionMethod`.

    Args:
        model: a Keras classifier with ``MultiHeadAttention`` layers in its graph, taking raw
            pixels ``(N, H, W, C)`` in [0, 255].
        layer: ignored (every attention layer is used).
        batch_size: images per compiled call, a whole number >= 1 (default 32).
        preprocess: the model's preprocessing mode (:mod:`explain.models.preprocessing`).
        head_fusion: ``"mean"`` (default), ``"max"`` or ``"min"`` over the heads.

    Raises:
        LayerError: no ``MultiHeadAttention`` layer in the model's graph; a cross-attention or
            masked layer; tokens that are not an image grid.
        ValueError: ``batch_size`` below 1 or not a whole number; an unknown ``head_fusion``.
        ExplainError: as :class:`~explain.attribution.base.AttributionMethod`.
    """

    name = "attention_rollout"
    reference = "Abnar & Zuidema 2020, https://arxiv.org/abs/2005.00928"

    @classmethod
    def applies_to(cls, model: keras.Model) -> bool:
        """Only models with ``MultiHeadAttention`` layers in their graph."""
        return bool(attention_layers(model))

    def __init__(self, model, layer=None, batch_size=32, preprocess: str = "raw", *, head_fusion: str = "mean"):
        batch_size = whole_at_least(type(self).__name__, "batch_size", batch_size)
        if head_fusion not in HEAD_FUSIONS:
            raise ValueError(f"Unknown head_fusion {head_fusion!r}; use one of {', '.join(HEAD_FUSIONS)}.")
        super().__init__(model, None, batch_size, preprocess)
        self.head_fusion = head_fusion
        rows = attention_layers(model)
        if not rows:
            raise LayerError(
                f"Attention rollout needs MultiHeadAttention layers in the model's graph, and {model.name!r} has "
                "none. Use Grad-CAM or a gradient method instead."
            )
        last = rows[-1]
        if last.layout not in ("tokens", "tokens+class"):
            raise LayerError(
                f"The attention layer {last.name!r} outputs {last.output_shape}, tokens that are not an h x w grid "
                "of patches (or one more, a class token); attention rollout cannot draw them over the image."
            )
        self.layer = last
        self._layers, self._calls, self._inputs = self._attention_inputs(model, rows)

    def _attention_inputs(self, model, rows):
        """Each attention layer, how it is called, and a model from raw pixels to all their inputs and the scores."""
        layers, calls, names = [], [], []
        for row in rows:
            layer = get_layer(model, row.name)
            prefix = row.name[: -len(layer.name)]
            container = model if not prefix else get_layer(model, prefix.rstrip("/"))
            node = own_node(container, layer)
            args, kwargs = list(node.arguments.args), dict(node.arguments.kwargs)
            if "key" in kwargs:
                args.append(kwargs.pop("key"))
            masks = [k for k, v in kwargs.items() if k.endswith("mask") and v is not None and k != "use_causal_mask"]
            if masks or len(args) < 2 or any(a is not args[0] for a in args[1:]):
                raise LayerError(
                    f"Layer {row.name!r} is cross-attention or masked; attention rollout needs self-attention layers."
                )
            layers.append(layer)
            calls.append(bool(kwargs.get("use_causal_mask", False)))
            names.append(_producer_path(args[0], prefix, f"input of {row.name!r}"))
        outputs = _symbolic_outputs(model, list(dict.fromkeys(names)))
        inputs = keras.Model(model.inputs, [*(outputs[n] for n in names), self.head.tensor])
        return layers, calls, from_raw_pixels(inputs, self.preprocess)

    def _fuse(self, scores):
        if self.head_fusion == "max":
            return tf.reduce_max(scores, axis=1)
        if self.head_fusion == "min":
            return tf.reduce_min(scores, axis=1)
        return tf.reduce_mean(scores, axis=1)

    def _raw_maps(self, x, class_index):
        *tokens, h = self._inputs(x, training=False)
        cls, score = self.pick(self._to_scores(h), class_index)
        rollout = None
        for layer, causal, t in zip(self._layers, self._calls, tokens, strict=True):
            _, scores = layer(t, t, return_attention_scores=True, training=False, use_causal_mask=causal)
            a = self._fuse(tf.cast(scores, tf.float32))  # (B, T, T)
            a = 0.5 * a + 0.5 * tf.eye(tf.shape(a)[-1], batch_shape=tf.shape(a)[:1])
            a = a / tf.reduce_sum(a, axis=-1, keepdims=True)
            rollout = a if rollout is None else tf.matmul(a, rollout)
        if self.layer.layout == "tokens+class":
            flow = rollout[:, 0, 1:]
        else:
            flow = tf.reduce_mean(rollout, axis=1)
        gh, gw = self.layer.grid[:2]
        return tf.reshape(flow, (-1, gh, gw)), cls, score
