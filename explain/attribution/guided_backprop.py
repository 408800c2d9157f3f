"""Guided backpropagation: Springenberg et al. 2015, "Striving for Simplicity: The All Convolutional
Net", ICLR workshop, https://arxiv.org/abs/1412.6806.

The input gradient of the class score with every ReLU's backward pass "guided": the gradient passes a
ReLU only where the ReLU's input is positive (the ordinary derivative) AND the gradient arriving from
above is positive (the deconvnet rule); negative gradients are zeroed at every ReLU on the way down.

The guided ReLUs are the model's own: :func:`guided_relus` swaps, for the length of one trace, each
ReLU of the model (fused into a layer, an ``Activation`` layer, a ``ReLU`` or ``LeakyReLU`` layer, in
nested models too) for a version whose forward pass is the same and whose backward pass is guided,
then puts every original back. The compiled function keeps the guided version; the model is left as
it was.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from explain._quiet import quiet_import
from explain.attribution.base import TRACE_LOCK, AttributionMethod
from explain.attribution.saliency import Saliency

quiet_import()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

#: Activation functions guided when a layer's ``activation`` attribute IS one of them (identity, not
#: name): ``"relu"`` given to a Keras layer becomes ``keras.activations.relu``.
RELU_ACTIVATIONS = (
    keras.activations.relu,
    keras.activations.relu6,
    keras.activations.leaky_relu,
    keras.ops.relu,
    keras.ops.relu6,
    keras.ops.leaky_relu,
    tf.nn.relu,
    tf.nn.relu6,
    tf.nn.leaky_relu,
)

#: Layer types whose ``call`` is a ReLU (its ``max_value``, ``negative_slope`` and ``threshold`` kept).
RELU_LAYERS = (keras.layers.ReLU, keras.layers.LeakyReLU)

_GUIDED = "_explain_guided"  # marks a function made by _guided, so a layer is never guided twice


def _guided(fn: Callable) -> Callable:
    """``fn`` (an element-wise activation) with a guided backward pass.

    Forward: ``fn(x)`` unchanged. Backward: ``fn'(x) * ReLU(upstream gradient)``, the vector-Jacobian
    product of ``fn`` with the positive part of the upstream gradient, so each activation keeps its
    own local derivative: ``x > 0`` for ReLU, ``0 < x < max_value`` for ReLU6, ``negative_slope``
    below the threshold for a leaky ReLU. Symbolic (Keras) tensors go through ``fn`` untouched.
    """

    def guided(x, *args, **kwargs):
        if isinstance(x, keras.KerasTensor):
            return fn(x, *args, **kwargs)

        @tf.custom_gradient
        def forward(t):
            def backward(upstream):
                with tf.GradientTape() as tape:
                    tape.watch(t)
                    y = fn(t, *args, **kwargs)
                return tape.gradient(y, t, output_gradients=tf.nn.relu(upstream))

            return fn(t, *args, **kwargs), backward

        return forward(tf.convert_to_tensor(x))

    setattr(guided, _GUIDED, True)
    return guided


def _is_relu(fn) -> bool:
    return any(fn is f for f in RELU_ACTIVATIONS)


def _all_layers(models) -> list:
    """Every layer of ``models`` and of the models and layers nested in them, each once."""
    seen: set[int] = set()
    out = []
    for model in models:
        for layer in model._flatten_layers(include_self=True, recursive=True):
            if id(layer) not in seen:
                seen.add(id(layer))
                out.append(layer)
    return out


@contextlib.contextmanager
def guided_relus(*models: keras.Model) -> Iterator[int]:
    """While inside, every ReLU of ``models`` (nested models and sub-layers included) back-propagates
    guided (:func:`_guided`); on leaving, every layer is exactly as it was (the same objects).

    Swapped, for each layer found by ``layer._flatten_layers()``:

    * ``layer.activation`` when it is one of :data:`RELU_ACTIVATIONS` (``Conv2D``, ``Dense``,
      ``DepthwiseConv2D``, ``SeparableConv2D``, ... with ``activation="relu"``, and
      ``Activation("relu")`` layers);
    * ``layer.call`` of :data:`RELU_LAYERS` (``ReLU`` with any ``max_value``, ``negative_slope`` or
      ``threshold``, e.g. MobileNetV2's ``ReLU(6.0)``; ``LeakyReLU``).

    Only the Python attributes are swapped (bypassing Keras's attribute tracking), so only code TRACED
    inside sees the guided ReLUs: a compiled function keeps them, a model compiled before or after
    does not, and the forward pass is the same either way. :data:`~explain.attribution.base.TRACE_LOCK`
    is held throughout, so no other method traces the same layers meanwhile. Not found: a ReLU
    called as a plain function inside a custom layer's ``call`` (``tf.nn.relu(x)``), and ``PReLU``.

    Args:
        models: the Keras models (or layers) whose ReLUs are guided.

    Returns:
        A context manager; ``with guided_relus(model) as n:`` gives the number of ReLUs swapped.
    """
    with TRACE_LOCK:
        undo: list[tuple[object, str, bool, object]] = []  # (layer, attribute, was its own, old value)
        try:
            for layer in _all_layers(models):
                own = vars(layer)
                if "activation" in own and _is_relu(own["activation"]):
                    undo.append((layer, "activation", True, own["activation"]))
                    object.__setattr__(layer, "activation", _guided(own["activation"]))
                elif isinstance(layer, RELU_LAYERS) and not getattr(layer.call, _GUIDED, False):
                    undo.append((layer, "call", "call" in own, own.get("call")))
                    object.__setattr__(layer, "call", _guided(layer.call))
            yield len(undo)
        finally:
            for layer, attribute, was_own, old in reversed(undo):
                if was_own:
                    object.__setattr__(layer, attribute, old)
                else:
                    vars(layer).pop(attribute, None)


def guided_input_gradients(
    method: AttributionMethod, x: tf.Tensor, class_index: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """The guided-backpropagation gradient of ``method``'s class score with respect to the raw pixels.

    Args:
        method: an attribution method (its ``model``, score head and ``pick``).
        x: float32 raw-pixel images ``(B, H, W, C)``.
        class_index: int64 ``(B,)``, ``-1`` for the top prediction.

    Returns:
        ``(guided gradient float32 (B, H, W, C), class_index int64 (B,), score float32 (B,))``; the
        score is the ordinary forward value (the guided ReLUs change only the backward pass).
    """
    with guided_relus(method.model):
        with tf.GradientTape() as tape:
            tape.watch(x)
            cls, score = method.pick(method.scores_from_input(x), class_index)
        return tape.gradient(score, x), cls, score


class GuidedBackprop(Saliency):
    """Guided backpropagation (Springenberg et al. 2015, https://arxiv.org/abs/1412.6806).

    At every ReLU ``y = max(x, 0)`` of the model the backward pass is
    ``dS/dx = [x > 0] * ReLU(dS/dy)`` instead of ``[x > 0] * dS/dy``: the gradient flows only where the
    ReLU's input is positive AND the incoming gradient is positive (the paper's rule for "guided
    backpropagation", between plain backpropagation and the deconvnet's). Other ReLU forms keep their
    own local derivative times the positive part of the incoming gradient: ``[0 < x < 6]`` for ReLU6
    (MobileNetV2), ``negative_slope`` below 0 for a leaky ReLU. Every other layer back-propagates as
    usual. ``S`` is the pre-softmax logit where the model has one.

    The raw map is ``max_c |g_ijc|``, the largest absolute guided gradient ``g`` over the colour
    channels ``(B, H, W)``, >= 0, at the input resolution, as for
    :class:`~explain.attribution.saliency.Saliency` (and as tf-keras-vis draws it); it is then scaled
    to [0, 1] per image. xplique's ``GuidedBackprop`` returns the signed gradient per channel
    ``(B, H, W, C)`` instead (and its ``plot_attributions`` averages the channels, signed): a
    different picture wherever the channels' signs differ.

    Which ReLUs: the model's own (:func:`guided_relus`): an ``activation="relu"`` fused into
    ``Conv2D``, ``Dense``, ``DepthwiseConv2D``, ``SeparableConv2D`` and other layers,
    ``Activation("relu")``, ``ReLU`` layers (``max_value=6``, ``negative_slope``) and ``LeakyReLU``
    layers, in nested models too. They are swapped only while the method's compiled function is traced,
    so the user's model is left unchanged (xplique clones the model instead). A model without any ReLU
    (swish, GELU: EfficientNet, ConvNeXt, ViT) gets exactly :class:`Saliency`'s map.

    Args:
        model, layer, batch_size, preprocess: as :class:`~explain.attribution.saliency.Saliency`
            (``layer`` ignored; ``batch_size`` a whole number >= 1).

    Raises:
        ValueError: ``batch_size`` below 1 or not a whole number.
        ExplainError: as :class:`~explain.attribution.base.AttributionMethod`.
    """

    name = "guided_backprop"
    reference = "Springenberg et al. 2015, https://arxiv.org/abs/1412.6806"

    def _raw_maps(self, x, class_index):
        grads, cls, score = guided_input_gradients(self, x, class_index)
        return tf.reduce_max(tf.abs(grads), axis=-1), cls, score
