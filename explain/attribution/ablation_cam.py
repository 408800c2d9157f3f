"""Ablation-CAM: Desai & Ramaswamy 2020, "Ablation-CAM: Visual Explanations for Deep Convolutional
Network via Gradient-free Localization", WACV, https://doi.org/10.1109/WACV45572.2020.9093360
(https://openaccess.thecvf.com/content_WACV_2020/papers/Desai_Ablation-CAM_Visual_Explanations_for_Deep_Convolutional_Network_via_Gradient-free_Localization_WACV_2020_paper.pdf).

Gradient-free: each channel of the target layer is set to zero in turn and the rest of the network
is run again; the class score's relative drop is the channel's weight.

Design: the rest of the network is built once as a Keras model taking the model's own input AND the
target layer's activations, ``[x, A] -> score tensor`` (:func:`rest_of_network`). Giving it the input
too keeps every path that goes around the target layer (a residual connection over it) fed by the
input, as in the full model, while every path through the layer reads the ablated activations; a
target inside a nested model (``"base/inner"``) is handled by composing one such model per level. The
caller's model and its layers are never changed (no layer is swapped or wrapped while tracing).
"""

from __future__ import annotations

from explain._quiet import quiet_import
from explain.attribution._params import whole_at_least
from explain.attribution.base import LayerAttribution
from explain.errors import LayerError
from explain.models.graph import own_node, single
from explain.models.layouts import input_layout
from explain.models.preprocessing import preprocess as apply_preprocessing

quiet_import()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402


def rest_of_network(container: keras.Model, parts: list[str], end) -> keras.Model:
    """The part of ``container`` after a target layer: a model ``[x, A] -> end``.

    ``x`` is ``container``'s input, ``A`` the target layer's output (in its own layout) and ``end`` a
    tensor of ``container``'s graph. Layers after the target read ``A``; anything that reaches
    ``end`` around the target (a skip connection) is computed from ``x``.

    Args:
        container: a functional or Sequential model.
        parts: the target's path inside ``container``, split on ``"/"`` (``["base", "inner"]``).
        end: the symbolic tensor to stop at (the score head's tensor).

    Returns:
        A ``keras.Model`` with inputs ``[x, A]`` and output ``end``.

    Raises:
        LayerError: a path part that is no nested model; a layer called several times in its
            graph; a graph Keras cannot cut at the layer.
    """
    layer = container.get_layer(parts[0])
    node = own_node(container, layer)
    inputs = single(container.inputs)
    out = single(node.output_tensors)
    try:
        if len(parts) == 1:
            if out is inputs:
                raise LayerError(f"{parts[0]!r} is the input layer itself; Ablation-CAM needs a layer after it.")
            if out is end:  # the target is the container's last layer: nothing after it
                x = keras.Input(shape=tuple(inputs.shape[1:]), dtype=inputs.dtype)
                a = keras.Input(shape=tuple(out.shape[1:]), dtype=out.dtype)
                return keras.Model([x, a], keras.layers.Identity()(a))
            return keras.Model([inputs, out], end)
        if not isinstance(layer, keras.Model):
            raise LayerError(f"{parts[0]!r} is not a nested model, so it has no layer {'/'.join(parts[1:])!r}.")
        child = rest_of_network(layer, parts[1:], single(layer.outputs))
        child_in = single(node.input_tensors)
        x = keras.Input(shape=tuple(inputs.shape[1:]), dtype=inputs.dtype)
        a = keras.Input(shape=tuple(child.inputs[1].shape[1:]), dtype=child.inputs[1].dtype)
        t = x if child_in is inputs else keras.Model(inputs, child_in)(x)
        y = child([t, a])
        if out is not end:
            y = keras.Model([inputs, out], end)([x, y])
        return keras.Model([x, a], y)
    except (ValueError, TypeError) as e:
        if isinstance(e, LayerError):
            raise
        raise LayerError(
            f"Ablation-CAM cannot cut the model after layer {'/'.join(parts)!r} ({e}); choose another target "
            "layer, or use Score-CAM, which only needs the layer's activations."
        ) from None


class AblationCAM(LayerAttribution):
    """Ablation-CAM (Desai & Ramaswamy 2020, https://doi.org/10.1109/WACV45572.2020.9093360).

    With ``A`` the target layer's activations ``(h, w, K)``, ``y_c`` the class score (the pre-softmax
    logit where the model has one, else the probability) and ``y_c^k`` the same score with channel
    ``k`` of the layer set to zero at every position (the rest of the network run again on the
    ablated activations, :func:`rest_of_network`), the weights are ``w_k = (y_c - y_c^k) / |y_c|``
    and the raw map is ``ReLU(sum_k w_k A_k)`` (the paper's eq. 3-4). A binary model's class 0 is
    scored ``-logit``, as everywhere in this project.

    ``y_c <= 0``: the paper (and pytorch-grad-cam, which divides anyway) divides by ``y_c``. For
    ``y_c > 0`` that is the same as ``|y_c|``: one positive factor per image, which the per-image
    scaling to [0, 1] removes. For ``y_c < 0`` dividing by ``y_c`` would flip every weight, so the
    map would show the channels whose removal RAISES the score; dividing by ``|y_c|`` keeps
    ``w_k > 0`` meaning "channel k supports the class" for any score. Where ``y_c = 0`` (or a
    quotient overflows) the drops are used undivided, ``w_k = y_c - y_c^k``: the division only sets
    the raw map's scale. Tiny scores (a random-weight network's logits are about 1e-12) are divided.

    Departures from pytorch-grad-cam: an ablated channel is set to zero, as the paper does
    (pytorch-grad-cam sets it to a very negative value when the layer's minimum is not 0), and
    every channel is ablated (its ``ratio_channels_to_ablate`` is 1.0). A channels-first layer's
    channel axis and a Vision Transformer's token features (the class token included) are ablated
    in the layer's own layout. The map is upsampled bilinearly to the input size and scaled to
    [0, 1] per image. Call shape: see :class:`~explain.attribution.base.AttributionMethod`.

    Cost: one forward pass, then ``ceil(K / mask_batch)`` passes of the layers AFTER the target
    through ``min(mask_batch, K)`` ablated copies, per image; no gradient.

    Args:
        model: a Keras classifier taking raw pixels ``(N, H, W, C)`` in [0, 255].
        layer: target layer (index, name or nested path); None picks the default one.
        batch_size: images per compiled call, a whole number >= 1 (default 32).
        preprocess: the model's preprocessing mode (:mod:`explain.models.preprocessing`).
        mask_batch: ablated copies per pass of the rest of the network, a whole number >= 1
            (default 64).

    Raises:
        ValueError: ``mask_batch`` or ``batch_size`` below 1 or not a whole number.
        LayerError: the rest of the network after the layer cannot be built (:func:`rest_of_network`);
            as :class:`~explain.attribution.base.LayerAttribution` otherwise.
        ExplainError: as :class:`~explain.attribution.base.AttributionMethod`.
    """

    name = "ablation_cam"
    reference = "Desai & Ramaswamy 2020, https://doi.org/10.1109/WACV45572.2020.9093360"
    mask_batch = 64

    def __init__(self, model, layer=None, batch_size=32, preprocess: str = "raw", *, mask_batch: int = 64):
        name = type(self).__name__
        mask_batch = whole_at_least(name, "mask_batch", mask_batch)
        batch_size = whole_at_least(name, "batch_size", batch_size)
        super().__init__(model, layer, batch_size, preprocess)
        self.mask_batch = mask_batch
        self._rest = rest_of_network(model, self.layer.name.split("/"), self.head.tensor)
        self._input_layout = input_layout(model)
        self._channel_axis = 1 if self.layer.layout == "channels_first" else -1
        channels = self.layer.grid[-1] if self.layer.grid else None
        if channels is None:
            raise LayerError(f"Layer {self.layer.name!r} has no fixed number of channels; Ablation-CAM needs one.")
        self.channels = int(channels)

    def ablated_scores(self, x: tf.Tensor, a: tf.Tensor, class_index: tf.Tensor) -> tf.Tensor:
        """``y_c^k`` float32 ``(B, K)``: the score of class ``class_index`` (int64 ``(B,)``, >= 0) with
        channel ``k`` of the target layer's output ``a`` (its own layout) set to zero, for raw-pixel
        images ``x``."""
        k = self.channels
        chunk = min(self.mask_batch, k)
        xm = self._input_layout.adapt(apply_preprocessing(x, self.preprocess))  # the model's own input
        rank = len(a.shape)

        def one_image(args):
            xi, ai, ci = args

            def one_chunk(start):
                keep = 1.0 - tf.one_hot(start + tf.range(chunk), k, dtype=ai.dtype)  # past K: keep all
                shape = [chunk] + [1] * (rank - 1)
                shape[self._channel_axis] = k
                ablated = ai[None] * tf.reshape(keep, shape)
                copies = tf.repeat(xi[None], chunk, axis=0)
                scores = self._to_scores(self._rest([copies, ablated], training=False))
                _, picked = self.pick(scores, tf.fill([chunk], ci))
                return tf.cast(picked, tf.float32)

            starts = tf.range(0, k, chunk)
            drops = tf.map_fn(one_chunk, starts, fn_output_signature=tf.TensorSpec([chunk], tf.float32))
            return tf.reshape(drops, [-1])[:k]

        return tf.map_fn(one_image, (xm, a, class_index), fn_output_signature=tf.TensorSpec([k], tf.float32))

    def _raw_maps(self, x, class_index):
        a, h = self._explainer(x, training=False)
        cls, score = self.pick(self._to_scores(h), class_index)
        score = tf.cast(score, tf.float32)
        drop = score[:, None] - self.ablated_scores(x, a, cls)  # (B, K)
        divided = drop / tf.abs(score)[:, None]
        usable = tf.reduce_all(tf.math.is_finite(divided), axis=1) & (score != 0)
        weights = tf.where(usable[:, None], divided, drop)
        grid = tf.cast(self._to_grid(a), tf.float32)
        return tf.nn.relu(tf.einsum("bhwk,bk->bhw", grid, weights)), cls, score
