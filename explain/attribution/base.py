"""The shared base of every attribution method: one call shape, one result type.

Modelled on pytorch-grad-cam (https://github.com/jacobgil/pytorch-grad-cam): the base class
owns batching, class selection, the score to explain, upsampling and normalisation; each
method is a small subclass overriding :meth:`AttributionMethod._raw_maps`.

The score explained comes from the model's :class:`~explain.models.scores.ScoreHead`: the
pre-softmax (or pre-sigmoid) logit wherever the model has one (recomputed from the last
layer's input and weights, so the caller's model is never changed). Otherwise the model's
output itself is used and :attr:`Attribution.score_kind` says ``"probability"`` (softmax
saturation can then flatten gradients).

A single sigmoid output is a binary classifier with two classes: class 1 is the positive
class (score = logit), class 0 the negative one (score = -logit).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from explain._quiet import quiet_import
from explain.errors import LayerError, NoSpatialLayerError
from explain.models.graph import own_node, single
from explain.models.layers import LayerInfo, layer_table, resolve_layer
from explain.models.layouts import image_input_shape, to_grid
from explain.models.preprocessing import check_mode, from_raw_pixels
from explain.models.scores import score_head
from explain.render.display import Displayable

quiet_import()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

#: A map whose range is at most this fraction of its largest magnitude (or exactly zero) is
#: "flat": constant up to rounding, drawn as zeros and reported as such. Relative, so tiny but
#: informative maps (random-weight networks give activations around 1e-12) are kept.
FLAT_RTOL = 1e-5

#: Held while an attribution method's compiled function is traced (:meth:`AttributionMethod._batched`),
#: and by anything that changes a model's layers for the length of one trace (guided backpropagation's
#: :func:`~explain.attribution.guided_backprop.guided_relus`). A model may be shared between threads
#: (the dashboard): while one method traces with guided ReLUs swapped in, no other method may trace the
#: same layers, or its compiled function would capture them. Re-entrant, so a trace may take it again.
TRACE_LOCK = threading.RLock()

#: ``parallel_iterations`` of the graph loops (``tf.while_loop``) over samples or steps of SmoothGrad,
#: SquareGrad, VarGrad and Integrated Gradients: how many gradient passes may be in flight at once. 1 keeps
#: the memory that of one pass (each holds a batch's activations for its backward pass).
PARALLEL_SAMPLES = 1


@dataclass(frozen=True)
class Attribution(Displayable):
    """An attribution method's result for a batch of images.

    In a notebook it shows itself as the heatmaps over their images, each titled with its class and
    score (:meth:`figure`; :func:`explain.show` gives the same Figure).

    Attributes:
        heatmap: float32 ``(N, H, W)`` in [0, 1] at the model's input resolution; all zeros
            where the raw map was flat or not finite (see ``flat``).
        class_index: int ``(N,)``, the class explained for each image.
        score: float32 ``(N,)``, the explained score (a logit when ``score_kind == "logit"``).
        method: the method's registry name, e.g. ``"gradcam"``.
        layer: the target layer's name (path for nested layers), or None for input-gradient
            methods.
        score_kind: ``"logit"`` or ``"probability"``.
        flat: bool ``(N,)``: the raw map was constant or non-finite, so it carries no
            information ("flat heatmap"); never drawn as NaN.
        images: float32 ``(N, H, W, C)``, the raw pixels explained, kept for drawing (the caller's
            array itself when it was float32, else its float32 copy), or None.
    """

    heatmap: np.ndarray
    class_index: np.ndarray
    score: np.ndarray
    method: str
    layer: str | None
    score_kind: str
    flat: np.ndarray
    images: np.ndarray | None = field(default=None, kw_only=True, repr=False, compare=False)

    def captions(self, class_names: list[str] | tuple[str, ...] | None = None) -> list[str]:
        """One caption per image: its class (name where given, else ``class k``) and score, e.g.
        ``"Trouser\nlogit 7.21"``."""
        names = list(class_names or ())
        return [
            f"{names[c] if 0 <= c < len(names) else f'class {c}'}\n{self.score_kind} {s:.2f}"
            + (" (flat)" if f else "")
            for c, s, f in zip(self.class_index.tolist(), self.score.tolist(), self.flat.tolist(), strict=True)
        ]

    def figure(self, ax=None, *, class_names=None, max_images: int = 16, cols: int = 4, cmap: str = "jet"):
        """The heatmaps over their images (:func:`explain.render.figures.overlay_grid`), titled with
        the method and layer, each captioned with its class and score.

        Args:
            ax: axes to draw into; None makes a new figure.
            class_names: the model's class names (None: ``class k``).
            max_images: draw at most the first this many images (the title says so).
            cols: images per row.
            cmap: the heatmap's colormap.

        Returns:
            A ``matplotlib.figure.Figure``.
        """
        from explain.render.figures import overlay_grid

        n = min(len(self.heatmap), max(1, int(max_images)))
        images = None if self.images is None else np.clip(self.images[:n], 0, 255).astype(np.uint8)
        title = self.method + (f" @ {self.layer}" if self.layer else "")
        if n < len(self.heatmap):
            title += f" (the first {n} of {len(self.heatmap)} images)"
        return overlay_grid(
            images, self.heatmap[:n], self.captions(class_names)[:n], flat=self.flat[:n], title=title,
            cols=cols, cmap=cmap, ax=ax,
        )


def normalize_maps(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale each map of ``(N, H, W)`` to [0, 1] by its min and max.

    Non-finite values are treated as 0; a map whose range is at most ``FLAT_RTOL`` times its
    largest magnitude (or that had non-finite values only) becomes all zeros and is flagged
    flat.

    Returns:
        ``(maps float32 (N, H, W) in [0, 1], flat bool (N,))``.
    """
    raw = np.asarray(raw, dtype=np.float64)
    finite = np.isfinite(raw)
    x = np.where(finite, raw, 0.0)
    # Scale each map by its largest magnitude first, so that hi - lo cannot overflow to inf.
    mag = np.abs(x).max(axis=(1, 2), keepdims=True)
    x = x / np.where(mag > 0, mag, 1.0)
    lo = x.min(axis=(1, 2), keepdims=True)
    hi = x.max(axis=(1, 2), keepdims=True)
    span = hi - lo
    informative = span > FLAT_RTOL * np.maximum(np.abs(lo), np.abs(hi))
    flat = ~informative[:, 0, 0] | ~finite.any(axis=(1, 2))
    out = np.where(informative, (x - lo) / np.where(informative, span, 1.0), 0.0)
    out[flat] = 0.0
    return np.clip(out, 0.0, 1.0).astype(np.float32), flat


def normalize_maps_tf(raw: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """:func:`normalize_maps` in TensorFlow, for compiled code: ``(B, H, W)`` ->
    ``(maps float32 in [0, 1], flat bool (B,))``."""
    raw = tf.cast(raw, tf.float32)
    finite = tf.math.is_finite(raw)
    x = tf.where(finite, raw, 0.0)
    mag = tf.reduce_max(tf.abs(x), axis=(1, 2), keepdims=True)  # scale first: hi - lo cannot overflow
    x = x / tf.where(mag > 0, mag, 1.0)
    lo = tf.reduce_min(x, axis=(1, 2), keepdims=True)
    hi = tf.reduce_max(x, axis=(1, 2), keepdims=True)
    span = hi - lo
    informative = span > FLAT_RTOL * tf.maximum(tf.abs(lo), tf.abs(hi))
    flat = ~informative[:, 0, 0] | ~tf.reduce_any(finite, axis=(1, 2))
    out = tf.where(informative, (x - lo) / tf.where(informative, span, 1.0), 0.0)
    out = tf.where(flat[:, None, None], 0.0, out)
    return tf.clip_by_value(out, 0.0, 1.0), flat


#: Layer types never chosen as the default target layer: the input-side ones only carry the image;
#: padding and cropping shift the map against the image (MobileNetV2 at 32x32 pads its 2x2 map to 3x3
#: before a strided convolution; ResNet50V2 pads a 1x1 map to 3x3), so their upsampled heatmap would
#: not line up with it.
_NOT_DEFAULT_TARGETS = ("InputLayer", "Rescaling", "Normalization", "Resizing", "ZeroPadding2D", "Cropping2D")


def _larger_than_1x1(row: LayerInfo) -> bool:
    """Whether a spatial output has more than one pixel; a free (None) height or width counts as larger."""
    h, w = row.grid[:2]
    return h is None or w is None or h * w > 1


def _on_every_path_in(container: keras.Model) -> set[str]:
    """Names of the layers of ``container``'s own graph that every path from its input to its output
    goes through (not one branch of an Inception block, nor the residual branch of a block).

    Keras gives each call (node) of the graph a depth, larger than that of every node consuming its
    output; a node is on every path iff it is alone at its depth and no edge jumps over that depth.
    A model without a graph of its own (subclassed) has no such layer here.
    """
    graph = container._functional if isinstance(container, keras.Sequential) else container
    by_depth = getattr(graph, "_nodes_by_depth", None)
    if not by_depth:
        return set()
    depth_of = {id(n): depth for depth, nodes in by_depth.items() for n in nodes}
    jumped: set[int] = set()
    for depth, nodes in by_depth.items():
        for node in nodes:
            for parent in node.parent_nodes:
                jumped.update(range(depth + 1, depth_of.get(id(parent), depth + 1)))
    return {nodes[0].operation.name for depth, nodes in by_depth.items() if len(nodes) == 1 and depth not in jumped}


def _on_every_path(model: keras.Model, name: str, cache: dict) -> bool:
    """Whether every path from ``model``'s input to its output goes through layer ``name`` (a nested
    path: through each model on the way, and through the layer inside the last one)."""
    container = model
    for part in name.split("/"):
        if id(container) not in cache:
            cache[id(container)] = _on_every_path_in(container)
        if part not in cache[id(container)]:
            return False
        container = container.get_layer(part)
    return True


def default_target_layer(model: keras.Model, method: str = "Grad-CAM") -> LayerInfo:
    """The last layer whose output is spatial ``(batch, H, W, C)`` AND larger than 1x1, searching nested models.

    "Last" is the order of :func:`explain.models.layer_table` (each nested model's layers right
    after it), so the layer may be a path ``"base/inner"``. Channels-first layers count, read as
    feature maps on their channel axis. A Vision Transformer (the last such layer holds patch
    tokens ``(batch, h*w [+ 1], D)``) gets the last encoder block's output
    (:func:`_default_token_layer`). The rules:

    * maps of 1x1 are skipped (docs/architecture.md, known traps): a class activation map there is one
      number, upsampled to a flat heatmap. They come after global pooling in classifier tops
      built of 1x1 convolutions (MobileNet, MobileNetV3) and at the end of most networks on
      small inputs (ResNet50 on 32x32 images ends in 1x1x2048). A free (None) height or width
      counts as larger than 1x1;
    * input-side layers (``InputLayer``, ``Rescaling``, ``Normalization``, ``Resizing``) and
      padding or cropping (``ZeroPadding2D``, ``Cropping2D``: the map is shifted against the
      image) are skipped; any layer can still be asked for explicitly;
    * of the rest, the last layer that every path from the input to the output goes through is
      taken, else the last one. The last layer is often on one branch only and sees part of the
      signal: InceptionV3 at 75x75 ends its 3x3 maps inside a branch of ``mixed8``, so ``mixed7``
      is taken; NASNet's last 2x2 layer at 32x32 reaches the output through a strided 1x1
      pooling, at 2 of its 4 pixels (a flat map for every class). On 224x224 images the
      ``keras.applications`` networks get their last stage's output; ConvNeXt the input of its
      last stage (``downsampling_conv_2``), as its blocks add their residual with ``+``, no layer.

    Args:
        model: a Keras classifier.
        method: the class activation map asking, named in the error (default ``"Grad-CAM"``).

    Returns:
        The target layer's :class:`~explain.models.LayerInfo`.

    Raises:
        NoSpatialLayerError: (a :class:`~explain.errors.LayerError`) the model has no layer with a
            spatial output (``reason == NO_SPATIAL``); or every spatial layer is 1x1 (images too
            small for the network; ``reason == ONLY_1X1``), where the message and ``last_layer``
            name the last of them, which can still be asked for explicitly (``layer=...``; its
            heatmap is then flat). The report, the CLI and the dashboard catch this type to fall
            back to a gradient method.
    """
    spatial = [row for row in layer_table(model) if row.is_spatial and row.type not in _NOT_DEFAULT_TARGETS]
    larger = [row for row in spatial if _larger_than_1x1(row)]
    cache: dict = {}
    if larger and larger[-1].layout.startswith("tokens"):
        return _default_token_layer(model, [r for r in larger if r.layout.startswith("tokens")], cache)
    for row in reversed(larger):
        if _on_every_path(model, row.name, cache):
            return row
    if larger:
        return larger[-1]
    if spatial:
        last = spatial[-1]
        raise NoSpatialLayerError(
            f"{method} needs a convolutional layer with feature maps larger than 1x1, and every spatial layer of "
            f"model {model.name!r} is 1x1 (the last: {last.name!r}, {last.output_shape}), so a class activation "
            "map would be flat. Use larger images, or a gradient method (saliency, smoothgrad, "
            "integrated_gradients) or LIME instead.",
            NoSpatialLayerError.ONLY_1X1,
            last.name,
        )
    raise NoSpatialLayerError(
        f"{method} needs a convolutional layer, and model {model.name!r} has no layer with a spatial "
        "(height x width x channels) output. Use a gradient method (saliency, smoothgrad, "
        "integrated_gradients) or LIME instead.",
        NoSpatialLayerError.NO_SPATIAL,
    )


#: Token layers never chosen as a Vision Transformer's default target: a normalisation only rescales each
#: token, and the default is a transformer block's output (the residual ``Add``).
_NOT_DEFAULT_TOKEN_TARGETS = ("LayerNormalization", "Dropout", "Activation")


def _default_token_layer(model: keras.Model, rows: list[LayerInfo], cache: dict) -> LayerInfo:
    """A Vision Transformer's default target layer: the last encoder block's output.

    Of the token layers (``rows``, in table order) that are no normalisation and that every path
    goes through (the blocks' residual ``Add``), the last. With a class token, only the class
    token reaches the head after the last attention layer: the patch tokens of the last block's
    output get no gradient (a flat Grad-CAM), so the block before the last attention layer is
    taken, the output that the last block attends over (pytorch-grad-cam's advice for ViTs, whose
    target is the last block's first normalisation, ``blocks[-1].norm1``).
    """
    blocks = [r for r in rows if r.type not in _NOT_DEFAULT_TOKEN_TARGETS and _on_every_path(model, r.name, cache)]
    blocks = blocks or rows
    if any(r.layout == "tokens+class" for r in blocks):
        table = layer_table(model)
        attention = [k for k, r in enumerate(table) if r.type == "MultiHeadAttention"]
        if attention:
            position = {r.name: k for k, r in enumerate(table)}
            before = [r for r in blocks if position[r.name] < attention[-1]]
            blocks = before or blocks
    return blocks[-1]


def _with_target(container: keras.Model, parts: list[str], end) -> keras.Model:
    """A model from ``container``'s input to ``[target activations, end]`` in ONE forward pass.

    ``end`` is a tensor of ``container``'s graph. Gradients of ``end`` with respect to the
    activations are then real (docs/architecture.md, known traps): for a layer inside a nested model the
    nested model is run as a sub-model returning both its inner layer and its own output, so
    the head consumes the very tensor the gradient is taken against. Skip connections inside
    the nested model (ResNet blocks) are fine; a skip connection in the outer graph that
    bypasses the nested model is not supported and says so.
    """
    layer = container.get_layer(parts[0])
    node = own_node(container, layer)
    inputs = single(container.inputs)
    out = single(node.output_tensors)
    if len(parts) == 1:
        return keras.Model(inputs, [out, end])
    if not isinstance(layer, keras.Model):
        raise LayerError(f"{parts[0]!r} is not a nested model, so it has no layer {'/'.join(parts[1:])!r}.")
    child = _with_target(layer, parts[1:], single(layer.outputs))
    child_in = single(node.input_tensors)
    x = keras.Input(shape=tuple(inputs.shape[1:]), dtype=inputs.dtype)
    t = x if child_in is inputs else keras.Model(inputs, child_in)(x)
    activations, child_out = child(t)
    try:
        y = child_out if out is end else keras.Model(out, end)(child_out)
    except ValueError:
        raise LayerError(
            f"The layers after {parts[0]!r} also use tensors from before it (a skip connection around the "
            "nested model); choose a top-level target layer instead."
        ) from None
    return keras.Model(x, [activations, y])


class AttributionMethod:
    """Base class: ``method(images, class_index=None) -> Attribution``.

    Subclasses set ``name`` and ``reference``, and override :meth:`_raw_maps`, which gets
    float32 images ``(B, H, W, C)`` and int class indices ``(B,)`` and returns raw maps
    ``(B, h, w)`` (any resolution; upsampled here). A method explaining at a target layer
    subclasses :class:`LayerAttribution` instead.

    Args:
        model: a Keras classifier taking raw pixels ``(N, H, W, C)`` in [0, 255].
        layer: ignored here (input-gradient and perturbation methods); see :class:`LayerAttribution`.
        batch_size: images per compiled call.
        preprocess: the model's preprocessing mode (:mod:`explain.models.preprocessing`), applied
            in front of the model: images stay raw pixels, and input gradients are taken
            with respect to them.

    Raises:
        ExplainError: the model has several outputs or a non-classifier output; an unknown
            preprocessing mode.
    """

    name = "base"
    reference = ""
    #: Whether :meth:`_batched` converts Python control flow on tensors (autograph); a method whose compiled
    #: function has none may turn it off and trace faster.
    autograph = True

    @classmethod
    def applies_to(cls, model: keras.Model) -> bool:
        """Whether the method can explain ``model`` at all (most can; attention rollout needs
        attention layers). The CLIs and the dashboard offer only these methods."""
        return True

    def __init__(
        self, model: keras.Model, layer: int | str | None = None, batch_size: int = 32, preprocess: str = "raw"
    ):
        self.model = model
        self.batch_size = int(batch_size)
        self.preprocess = check_mode(preprocess)
        self.head = score_head(model, self.preprocess)
        self._to_scores = self.head.to_scores
        self.score_kind, self.binary, self.num_classes = self.head.score_kind, self.head.binary, self.head.num_classes
        self.input_shape = image_input_shape(model)
        self.layer: LayerInfo | None = None
        self._compiled: Callable | None = None
        self._compiled_raw: Callable | None = None

    # -- scores -------------------------------------------------------------
    def pick(self, scores: tf.Tensor, class_index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """The score head's :meth:`~explain.models.scores.ScoreHead.pick`: ``(class_index int64 (B,),
        score float32 (B,))`` for scores ``(B, classes)`` and int64 classes (``-1``: top)."""
        return self.head.pick(scores, class_index)

    def scores_from_input(self, x: tf.Tensor) -> tf.Tensor:
        """Scores ``(B, classes)`` (logits where available) for raw-pixel images."""
        return self.head.scores(x)

    # -- the call -------------------------------------------------------------
    def _raw_maps(self, x: tf.Tensor, class_index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Override: ``(raw maps (B, h, w), class_index (B,), score (B,))`` for float32
        images ``(B, H, W, C)`` and int64 classes (``-1``: top prediction)."""
        raise NotImplementedError

    def _maps_at_input_size(self, x, class_index):
        """Compiled: raw maps, upsampled (bilinear) to the input size and normalised."""
        raw, cls, score = self._raw_maps(x, class_index)
        if raw.shape[1:3] != x.shape[1:3]:
            raw = tf.image.resize(raw[..., None], tf.shape(x)[1:3], method="bilinear")[..., 0]
        heat, flat = normalize_maps_tf(raw)
        return heat, flat, cls, score

    def _check(self, images, class_index) -> tuple[np.ndarray, np.ndarray]:
        return self.head.check_batch(images, class_index)

    def _raw_float32(self, x, class_index):
        """Compiled: :meth:`_raw_maps` as float32, the maps left as they are."""
        raw, cls, score = self._raw_maps(x, class_index)
        return tf.cast(raw, tf.float32), cls, score

    def _batched(self, name: str, fn: Callable, x: np.ndarray, idx: np.ndarray) -> list[np.ndarray]:
        """``fn`` compiled once (kept as ``self.<name>``), run ``batch_size`` images at a time; its
        outputs concatenated along the batch axis.

        Traced once for any batch size (the batch dimension left unknown), so an image's map does not
        depend on the batch it came in: a trace per batch shape can round differently, and a ReLU on the
        edge then flips (the Ray engine's batches are not the local engine's).

        The trace happens here, once, under :data:`TRACE_LOCK` (``get_concrete_function``), and the
        concrete function is kept: a method that changes the model's layers while it traces (guided
        backpropagation) does so only inside the lock, and later calls never trace again."""
        if getattr(self, name, None) is None:
            signature = [
                tf.TensorSpec((None, *np.shape(x)[1:]), tf.as_dtype(np.asarray(x).dtype)),
                tf.TensorSpec((None,), tf.as_dtype(np.asarray(idx).dtype)),
            ]
            with TRACE_LOCK:
                if getattr(self, name, None) is None:
                    traced = tf.function(fn, input_signature=signature, autograph=self.autograph)
                    traced = traced.get_concrete_function(*signature)
                    setattr(self, name, traced)
        compiled = getattr(self, name)
        parts = []
        for start in range(0, len(x), self.batch_size):
            stop = start + self.batch_size
            out = compiled(tf.convert_to_tensor(x[start:stop]), tf.convert_to_tensor(idx[start:stop]))
            parts.append([t.numpy() for t in out])
        return [np.concatenate(column) for column in zip(*parts, strict=True)]

    def raw_maps(
        self, images: np.ndarray, class_index: int | np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The method's raw maps, before upsampling and normalisation: data rather than pictures.

        The same compiled, batched pass as :meth:`__call__`, stopped before the maps are upsampled
        to the input and scaled to [0, 1]: a class activation map comes at its target layer's
        resolution ``(h, w)`` (Grad-CAM: ``ReLU(sum_k w_k A_k)``), an input-gradient map at the
        input's ``(H, W)``, attention rollout at its token grid, LIME as its superpixel weights
        painted on the superpixels.

        Args:
            images: ``(N, H, W, C)`` or ``(H, W, C)``, raw pixels in [0, 255].
            class_index: as for :meth:`__call__` (None: each image's top prediction).

        Returns:
            ``(maps float32 (N, h, w), class_index int64 (N,), score float32 (N,))``; the maps are
            in the method's own units (unbounded; non-finite values are left as they are).

        Raises:
            ValueError, ExplainError: as :meth:`__call__`.
        """
        x, idx = self._check(images, class_index)
        raw, cls, score = self._batched("_compiled_raw", self._raw_float32, x, idx)
        return raw, cls.astype(np.int64), score.astype(np.float32)

    def __call__(self, images: np.ndarray, class_index: int | np.ndarray | None = None) -> Attribution:
        """Explain a batch.

        Args:
            images: ``(N, H, W, C)`` or ``(H, W, C)``, raw pixels in [0, 255] at the model's
                input size.
            class_index: the class to explain, one int for all images or ``(N,)``; None
                means each image's top prediction.

        Returns:
            An :class:`Attribution`.

        Raises:
            ValueError: images of the wrong shape, or no images.
            ExplainError: class index out of range.
        """
        x, idx = self._check(images, class_index)
        heat, flat, cls, score = self._batched("_compiled", self._maps_at_input_size, x, idx)
        return Attribution(
            heatmap=heat,
            flat=flat,
            class_index=cls.astype(np.int64),
            score=score.astype(np.float32),
            method=self.name,
            layer=self.layer.name if self.layer else None,
            score_kind=self.score_kind,
            images=x,
        )


class LayerAttribution(AttributionMethod):
    """Base of the methods that explain at a target layer: the class activation maps (Grad-CAM,
    Grad-CAM++, Score-CAM).

    The layer's activations, and their gradients, come as feature maps ``(B, h, w, K)``
    (:meth:`activations_and_scores`, :meth:`activations_and_gradients`): a channels-first layer
    transposed, a Vision Transformer's tokens on their grid. The result's ``layer`` is the target
    layer's name. (Attention rollout is not one: it uses every attention layer and ignores ``layer``.)

    Args:
        model: a Keras classifier taking raw pixels ``(N, H, W, C)`` in [0, 255].
        layer: target layer (index, name or nested path); None picks :func:`default_target_layer`.
        batch_size: images per compiled call.
        preprocess: the model's preprocessing mode (:mod:`explain.models.preprocessing`).

    Raises:
        NoSpatialLayerError: ``layer=None`` and the model has no spatial layer larger than 1x1
            (:func:`default_target_layer`).
        LayerError: no such layer; a layer without a spatial output.
        ExplainError: as :class:`AttributionMethod`.
    """

    def __init__(
        self, model: keras.Model, layer: int | str | None = None, batch_size: int = 32, preprocess: str = "raw"
    ):
        super().__init__(model, layer, batch_size, preprocess)
        info = default_target_layer(model, self.name) if layer is None else resolve_layer(model, layer)
        if not info.is_spatial:
            raise LayerError(
                f"Layer {info.name!r} ({info.type}) has output shape {info.output_shape}, without height "
                f"and width; {self.name} needs a layer with a spatial output, such as "
                f"{default_target_layer(model).name!r}."
            )
        self.layer: LayerInfo = info
        self._explainer = from_raw_pixels(_with_target(model, info.name.split("/"), self.head.tensor), self.preprocess)

    def activations_and_scores(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Target-layer activations as feature maps ``(B, h, w, K)`` and scores ``(B, classes)``
        from one forward pass (gradient-free CAM methods). A channels-first layer comes
        transposed, a Vision Transformer's tokens reshaped to their grid without the class token
        (:func:`explain.models.layouts.to_grid`)."""
        a, h = self._explainer(x, training=False)
        return self._to_grid(a), self._to_scores(h)

    def activations_and_gradients(
        self, x: tf.Tensor, class_index: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        """Target-layer feature maps ``A`` ``(B, h, w, K)``, the gradient ``dS/dA`` of the
        explained score (same shape), the class ``(B,)`` and the score ``(B,)``, from one forward
        and one backward pass (gradient CAM methods).

        The gradient is taken with respect to the layer's own output, then read as a grid like
        the activations; a reshape or transpose moves each value without changing it, so this is
        the gradient with respect to the grid (a dropped class token's gradient is dropped too).
        """
        with tf.GradientTape() as tape:
            tape.watch(x)  # records every op, frozen (non-trainable) bases included
            a, h = self._explainer(x, training=False)
            cls, score = self.pick(self._to_scores(h), class_index)
        grads = tape.gradient(score, a)
        return self._to_grid(a), self._to_grid(grads), cls, score

    def _to_grid(self, t: tf.Tensor) -> tf.Tensor:
        return to_grid(t, self.layer.layout, self.layer.grid)
