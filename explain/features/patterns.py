"""Filter and class patterns: the input each channel (or class) responds to most.

Activation maximisation by gradient ascent in input space:

* Erhan et al. 2009, "Visualizing Higher-Layer Features of a Deep Network", Université de
  Montréal technical report 1341;
* Simonyan et al. 2013, "Deep Inside Convolutional Networks: Visualising Image Classification
  Models and Saliency Maps", https://arxiv.org/abs/1312.6034 (class models: the image that
  maximises one class's logit);
* Chollet, *Deep Learning with Python*, 5.4.2 "Visualizing convnet filters";
* Olah et al. 2017, "Feature Visualization", Distill, https://distill.pub/2017/feature-visualization/,
  for the regularisation that makes the patterns readable.

How it works here (after Olah 2017 and the lucid library):

* **One batch, one compiled loop.** All requested channels of a layer are optimised together:
  image ``k`` of the batch maximises the mean activation of channel ``k``. The steps run inside
  one ``tf.function`` (``tf.while_loop``), in chunks so that ``progress`` can be told how far it
  got; no Python loop over channels or steps.
* **Decorrelated Fourier parametrisation.** Each image is a spectrum scaled by ``1 / frequency``
  (natural images' power law), turned into pixels by an inverse real FFT, mixed by the square
  root of ImageNet's colour correlation (RGB models), and squashed by a sigmoid into [0, 255]:
  raw pixels, the space the model's preprocessing starts from.
* **Transformation robustness.** At every step each image is translated (up to 1/16 of its
  side), scaled (0.9-1.1) and rotated (up to 10 degrees) at random, with reflected borders,
  before the model sees it; so only patterns that survive small shifts grow.
* **Adam** (learning rate 0.05) on the spectrum, as in lucid, from low-frequency noise (pixels
  about 127 +- 30) rather than lucid's near-flat grey, so that a first-layer ReLU that is 0 on a
  flat image cannot stall every channel.
* **Seeded**: the initial spectrum and every step's transformations come from stateless random
  ops seeded by ``seed``, so the same call gives the same images.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from explain._quiet import quiet_import
from explain.errors import ExplainError, LayerError
from explain.features.activations import feature_model
from explain.models.graph import own_node, single
from explain.models.layers import resolve_layer
from explain.models.layouts import image_input_shape, to_grid
from explain.models.preprocessing import check_mode, from_raw_pixels
from explain.models.scores import score_head
from explain.render.display import Displayable

quiet_import()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

#: lucid's square root of ImageNet's colour correlation matrix (rows: R, G, B), normalised so its
#: largest column has norm 1.
_COLOR_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float32)
_COLOR_SQRT /= np.max(np.linalg.norm(_COLOR_SQRT, axis=0))

#: Side of the patterns for a model whose input size is free.
DEFAULT_FREE_SIZE = 128
LEARNING_RATE = 0.05
#: Standard deviation of the starting image before the sigmoid (0.5: pixels about 127 +- 30).
INITIAL_STD = 0.5
#: Most progress updates per batch of channels.
_PROGRESS_UPDATES = 20
#: Compiled targets (layer, size, preprocessing) kept per model.
_MAX_TARGETS = 8
_TARGETS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class FeaturePatterns(Displayable):
    """Patterns found by activation maximisation. In a notebook they show themselves as a grid.

    Attributes:
        images: float32 ``(K, H, W, C)`` in [0, 255], raw pixels (the model's preprocessing is
            applied in front of it, as everywhere in explain).
        activation: float32 ``(K,)``: each pattern's objective on its own image, without the
            random transformations: the channel's mean activation (filter patterns) or the
            class's logit (class patterns; the probability for a model without logits).
        channels: int64 ``(K,)``: the channel (filter patterns) or class (class patterns) each
            image maximises.
        layer: the layer's name (nested path), or ``"logits"`` for class patterns.
        kind: ``"filter"`` or ``"class"``.
        steps: optimisation steps.
        seed: the seed used.
    """

    images: np.ndarray
    activation: np.ndarray
    channels: np.ndarray
    layer: str
    kind: str
    steps: int
    seed: int

    def labels(self, class_names: list[str] | tuple[str, ...] | None = None) -> list[str]:
        """One tile label per pattern: its channel (or class name) and activation, e.g. ``"12: 0.83"``,
        ``"Trouser: 9.1"``."""
        names = list(class_names or ()) if self.kind == "class" else []
        return [
            f"{names[c] if 0 <= c < len(names) else (f'class {c}' if self.kind == 'class' else c)}: {a:.3g}"
            for c, a in zip(self.channels.tolist(), self.activation.tolist(), strict=True)
        ]

    def figure(self, ax=None, *, class_names=None, title: str | None = None, cols: int | None = None):
        """The patterns as a labelled grid (:func:`explain.render.figures.pattern_grid`).

        Args:
            ax: axes to draw into; None makes a new figure.
            class_names: names for class patterns' tiles (None: ``class k``).
            title: None for one naming the layer, the count, the steps and the seed.
            cols: tiles per row.

        Returns:
            A ``matplotlib.figure.Figure``.
        """
        from explain.render.figures import pattern_grid

        if title is None:
            what = "class patterns" if self.kind == "class" else f"filter patterns of {self.layer}"
            title = f"{len(self.channels)} {what}, {self.steps} steps, seed {self.seed}"
        return pattern_grid(self.images, self.labels(class_names), title=title, cols=cols, ax=ax)


# -- parametrisation and transformations ------------------------------------------------------
def _frequency_scale(h: int, w: int) -> np.ndarray:
    """``(h, w // 2 + 1)`` spectrum scale ``1 / max(f, 1 / max(h, w))``, times ``sqrt(h w)``."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    freqs = np.sqrt(fx * fx + fy * fy)
    return (np.sqrt(h * w) / np.maximum(freqs, 1.0 / max(h, w))).astype(np.float32)


def _to_logits(spectrum: tf.Tensor, scale: tf.Tensor, h: int, w: int, channels: int) -> tf.Tensor:
    """``(K, C, h, w//2+1, 2)`` real/imaginary spectrum -> float32 ``(K, h, w, C)`` before the sigmoid."""
    z = tf.complex(spectrum[..., 0] * scale, spectrum[..., 1] * scale)
    x = tf.signal.irfft2d(z, fft_length=[h, w]) / 4.0  # (K, C, h, w)
    x = tf.transpose(x, (0, 2, 3, 1))
    if channels == 3:
        x = tf.einsum("khwc,dc->khwd", x, tf.constant(_COLOR_SQRT))
    return x


def _to_pixels(spectrum: tf.Tensor, scale: tf.Tensor, h: int, w: int, channels: int) -> tf.Tensor:
    """``(K, C, h, w//2+1, 2)`` real/imaginary spectrum -> float32 ``(K, h, w, C)`` in [0, 255]."""
    return tf.sigmoid(_to_logits(spectrum, scale, h, w, channels)) * 255.0


def _random_transforms(k: int, h: int, w: int, seed: tf.Tensor) -> tf.Tensor:
    """``(k, 8)`` projective transforms (output -> input pixel): a random shift of up to 1/16
    of the side, scale 0.9-1.1 and rotation up to 10 degrees about the centre."""
    u = tf.random.stateless_uniform([k, 4], seed=seed, minval=-1.0, maxval=1.0)
    angle = u[:, 0] * (10.0 * math.pi / 180.0)
    inv_scale = 1.0 / (1.0 + 0.1 * u[:, 1])
    dy, dx = u[:, 2] * (h / 16.0), u[:, 3] * (w / 16.0)
    cos, sin = tf.cos(angle) * inv_scale, tf.sin(angle) * inv_scale
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    a0, a1, b0, b1 = cos, -sin, sin, cos
    a2 = cx - a0 * (cx + dx) - a1 * (cy + dy)
    b2 = cy - b0 * (cx + dx) - b1 * (cy + dy)
    zeros = tf.zeros_like(angle)
    return tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)


def _transform(images: tf.Tensor, transforms: tf.Tensor) -> tf.Tensor:
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.shape(images)[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="REFLECT",
    )


# -- the optimiser ------------------------------------------------------------------------------
def _ascent_loop(objective_for: Callable, h: int, w: int, channels: int) -> Callable:
    """The compiled loop ``(start, stop, spectrum, m, v, indices, seed) -> (spectrum, m, v)``: Adam
    ascent of ``objective_for(indices)`` from step ``start`` to ``stop``. Built once per target, so
    a second run on the same layer (the dashboard, a CLI call per batch) is not traced again."""
    scale = tf.constant(_frequency_scale(h, w))

    def step(i, spectrum, m, v, objective, seed):
        step_seed = tf.stack([seed, i + 1])
        with tf.GradientTape() as tape:
            tape.watch(spectrum)
            x = _to_pixels(spectrum, scale, h, w, channels)
            x = _transform(x, _random_transforms(tf.shape(spectrum)[0], h, w, step_seed))
            loss = tf.reduce_sum(objective(x))
        g = tape.gradient(loss, spectrum)
        t = tf.cast(i + 1, tf.float32)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        update = LEARNING_RATE * (m / (1 - 0.9**t)) / (tf.sqrt(v / (1 - 0.999**t)) + 1e-8)
        return i + 1, spectrum + update, m, v  # ascent

    def loop(start, stop, spectrum, m, v, indices, seed):
        objective = objective_for(indices)
        _, spectrum, m, v = tf.while_loop(
            lambda i, *_: i < stop,
            lambda i, sp, m_, v_: step(i, sp, m_, v_, objective, seed),
            (start, spectrum, m, v),
            parallel_iterations=1,
        )
        return spectrum, m, v

    return tf.function(loop, reduce_retracing=True)


class _Ascent:
    """One batch's state: a Fourier-parametrised image per index, and Adam's moments."""

    def __init__(self, loop: Callable, indices: np.ndarray, h: int, w: int, channels: int, seed: int):
        self.loop, self.h, self.w, self.channels = loop, h, w, channels
        self.indices = tf.constant(np.asarray(indices, np.int64))
        self.scale = tf.constant(_frequency_scale(h, w))
        shape = [len(indices), channels, h, w // 2 + 1, 2]
        spectrum = tf.random.stateless_normal(shape, seed=[seed, 0])
        # start from visible low-frequency noise (pixels about 127 +- 30), not flat grey: on a flat
        # image a first-layer ReLU can be 0 everywhere, and nothing would ever get a gradient
        std = tf.math.reduce_std(_to_logits(spectrum, self.scale, h, w, channels))
        self.spectrum = spectrum * (INITIAL_STD / std)
        self.m, self.v = tf.zeros(shape), tf.zeros(shape)
        self.seed = tf.constant(int(seed), tf.int32)

    def run(self, steps: int, progress: Callable[[int], None] | None) -> np.ndarray:
        """Run ``steps`` steps (in at most 20 compiled chunks when ``progress`` is given, telling
        it the steps done after each); return float32 ``(K, h, w, C)`` images."""
        chunk = steps if progress is None else max(1, math.ceil(steps / _PROGRESS_UPDATES))
        done = 0
        while done < steps:
            stop = min(steps, done + chunk)
            self.spectrum, self.m, self.v = self.loop(
                tf.constant(done, tf.int32),
                tf.constant(stop, tf.int32),
                self.spectrum,
                self.m,
                self.v,
                self.indices,
                self.seed,
            )
            done = stop
            if progress is not None:
                progress(done)
        return _to_pixels(self.spectrum, self.scale, self.h, self.w, self.channels).numpy()


# -- checks ---------------------------------------------------------------------------------------
def _check_steps(steps: int, batch_size: int) -> tuple[int, int]:
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}.")
    return int(steps), int(batch_size)


def _pattern_size(model: keras.Model, size: Sequence[int] | None) -> tuple[int, int]:
    """The patterns' ``(H, W)``: the model's input size, or ``size`` for a free-size model."""
    in_h, in_w = image_input_shape(model)[:2]
    if size is None:
        return int(in_h or DEFAULT_FREE_SIZE), int(in_w or DEFAULT_FREE_SIZE)
    if len(size) != 2 or any(int(s) < 1 for s in size):
        raise ValueError(f"size must be (height, width) in pixels, got {tuple(size)}.")
    h, w = int(size[0]), int(size[1])
    if in_h is not None and in_w is not None and (h, w) != (in_h, in_w):
        raise ValueError(
            f"This model takes {in_h}x{in_w} images only, not {h}x{w}: leave size out (or pass {in_h} {in_w})."
        )
    return h, w


def _check_fits(run: Callable, h: int, w: int, c: int, graph: keras.Model) -> None:
    """Shapes through ``graph`` and one forward pass of ``run`` at the pattern size: a ValueError
    when the model cannot take it. The symbolic pass is the check that counts: oneDNN's CPU
    convolution returns a map of the input's size, not an error, for an input smaller than its kernel."""
    try:
        graph.compute_output_spec(keras.KerasTensor((1, h, w, c)))
        out = run(tf.zeros([1, h, w, c]))
    except (ValueError, tf.errors.InvalidArgumentError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"A {h}x{w} image is smaller than this model accepts ({first}); pass a larger size.") from e
    if 0 in out.shape:
        raise ValueError(f"A {h}x{w} image is smaller than this model accepts (an empty map); pass a larger size.")


def _check_channels(channels: Sequence[int] | None, available: int, what: str) -> np.ndarray:
    if channels is None:
        return np.arange(available, dtype=np.int64)
    idx = np.asarray(list(channels), dtype=np.int64).reshape(-1)
    if idx.size == 0:
        raise ValueError(f"No {what}s asked for: give at least one, or None for all {available}.")
    bad = idx[(idx < 0) | (idx >= available)]
    if bad.size:
        raise ValueError(
            f"{what.capitalize()} {int(bad[0])} is out of range: there are {available}, 0 to {available - 1}."
        )
    return idx


def _gradient_breaker(model: keras.Model, target: str, preprocess: str) -> str:
    """The first layer on the way to ``target`` whose output has no gradient w.r.t. the input."""
    from explain.models.layers import layer_table

    shape = [1, *[d or DEFAULT_FREE_SIZE for d in image_input_shape(model)]]
    for row in layer_table(model):
        if row.type == "InputLayer" or "/" in row.name:
            continue
        x = tf.random.uniform(shape, 0, 255)
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = feature_model(model, [row.name], preprocess)(x, training=False)
            out = out[0] if isinstance(out, list | tuple) else out
            total = tf.reduce_sum(tf.cast(out, tf.float32))
        if tape.gradient(total, x) is None:
            return f"{row.name!r} ({row.type})"
        if row.name == target:
            break
    return "a layer before it"


def _check_differentiable(objective: Callable, k: int, h: int, w: int, c: int, what: str, breaker: Callable) -> None:
    x = tf.random.uniform([k, h, w, c], 0, 255)
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(objective(x))
    if tape.gradient(total, x) is None:
        raise ExplainError(
            f"No gradient flows from {what} back to the input image: {breaker()} is not differentiable, so "
            "activation maximisation cannot work on this model."
        )


# -- the objective ---------------------------------------------------------------------------------
def _pre_activation_model(model: keras.Model, name: str, preprocess: str) -> keras.Model | None:
    """Raw pixels -> the layer's output before its built-in activation (a copy of the layer with
    a linear activation and the same weights, on the layer's own input), or None when the layer
    has no activation to take off or sits inside a nested model.

    A ReLU that is 0 everywhere on the starting image has no gradient, so its channel would never
    grow ("dead" from the first step); tf-keras-vis takes activations off for the same reason.
    """
    if "/" in name:
        return None
    layer = model.get_layer(name)
    if getattr(getattr(layer, "activation", None), "__name__", "linear") == "linear":
        return None
    config = {**layer.get_config(), "activation": "linear", "name": f"{layer.name}_pre_activation"}
    linear = type(layer).from_config(config)
    inp = single(own_node(model, layer).input_tensors)
    info = resolve_layer(model, name)
    out = to_grid(linear(inp), info.layout, info.grid)
    linear.set_weights(layer.get_weights())
    return from_raw_pixels(keras.Model(single(model.inputs), out), preprocess)


#: Weight of the pre-activation mean in the objective of a layer with a built-in activation.
PRE_ACTIVATION_WEIGHT = 0.05


def _layer_output(model: keras.Model, name: str, preprocess: str) -> Callable:
    """``x -> float32 (B, h, w, C)``: what filter patterns maximise, per channel: the layer's output
    plus :data:`PRE_ACTIVATION_WEIGHT` times its output before the built-in activation, when the
    layer has one (so a ReLU channel that is 0 on the starting image still gets a gradient)."""
    pre = _pre_activation_model(model, name, preprocess)
    if pre is None:
        fm = feature_model(model, [name], preprocess)

        def acts(x):
            out = fm(x, training=False)
            return out[0] if isinstance(out, list | tuple) else out

        return acts
    activation = model.get_layer(name).activation

    def mixed(x):
        z = pre(x, training=False)
        return activation(z) + PRE_ACTIVATION_WEIGHT * z

    return mixed


# -- the public functions -------------------------------------------------------------------------
def _optimise(target, indices, steps, seed, batch_size, progress, finals=True) -> tuple[np.ndarray, np.ndarray | None]:
    """Images (and, with ``finals``, their objectives) for ``indices``, ``batch_size`` at a time."""
    images, values = [], []
    total, done = steps * math.ceil(len(indices) / batch_size), 0
    for start in range(0, len(indices), batch_size):
        part = indices[start : start + batch_size]
        ascent = _Ascent(target.loop, part, target.h, target.w, target.c, seed + start)
        report = None if progress is None else (lambda n, base=done: progress(base + n, total))
        imgs = ascent.run(steps, report)
        done += steps
        images.append(imgs)
        if finals:
            values.append(target.final(tf.constant(imgs), tf.constant(part)).numpy())
    images = np.concatenate(images).astype(np.float32)
    return images, (np.concatenate(values).astype(np.float32) if finals else None)


@dataclass
class _Target:
    """What a run maximises: ``objective_for(indices)(x) -> (B,)``, how many channels or classes
    there are, the pattern size, and the layer's name (``"logits"`` for classes); with the compiled
    ascent loop and final objective, built once and cached per (model, layer, size, preprocessing)."""

    objective_for: Callable
    available: int
    h: int
    w: int
    c: int
    layer: str
    breaker: Callable

    def __post_init__(self):
        what = "the output" if self.layer == "logits" else f"layer {self.layer!r}"
        probe = self.objective_for(tf.constant([0], tf.int64))
        _check_differentiable(probe, 1, self.h, self.w, self.c, what, self.breaker)  # once per target
        self.loop = _ascent_loop(self.objective_for, self.h, self.w, self.c)
        self.final = tf.function(lambda x, idx: self.objective_for(idx)(x), reduce_retracing=True)


def _filter_target(model: keras.Model, layer: int | str, size, preprocess: str) -> _Target:
    info = resolve_layer(model, layer)
    if not info.is_spatial:
        raise LayerError(
            f"Layer {info.name!r} ({info.type}) has output shape {info.output_shape}, without height, width and "
            "channels, so it has no filters to visualise. Choose a convolutional layer, or draw class patterns "
            "for the output."
        )
    h, w = _pattern_size(model, size)
    c = int(image_input_shape(model)[-1])
    acts = _layer_output(model, info.name, preprocess)
    _check_fits(acts, h, w, c, feature_model(model, [info.name], preprocess))

    def objective_for(idx):
        return lambda x: tf.gather(tf.reduce_mean(acts(x), axis=(1, 2)), idx, axis=1, batch_dims=1)

    ref, name = weakref.ref(model), info.name  # cached per model: no strong reference back to it
    breaker = lambda: _gradient_breaker(ref(), name, preprocess)  # noqa: E731
    return _Target(objective_for, int(info.channels), h, w, c, info.name, breaker)


def _class_target(model: keras.Model, size, preprocess: str) -> _Target:
    head = score_head(model, preprocess)
    h, w = _pattern_size(model, size)
    c = int(image_input_shape(model)[-1])
    _check_fits(head.scores, h, w, c, model)

    def objective_for(idx):
        return lambda x: head.pick(head.scores(x), idx)[1]

    ref, last = weakref.ref(model), model.layers[-1].name  # cached per model: no strong reference back to it
    breaker = lambda: _gradient_breaker(ref(), last, head.preprocess)  # noqa: E731
    return _Target(objective_for, head.num_classes, h, w, c, "logits", breaker)


def _target(model: keras.Model, layer, size, preprocess: str) -> _Target:
    """The filter target of ``layer``, or the class target when ``layer`` is None; cached."""
    preprocess = check_mode(preprocess)
    name = None if layer is None else resolve_layer(model, layer).name
    key = (name, None if size is None else tuple(int(v) for v in size), preprocess)
    per_model = _TARGETS.setdefault(model, {})
    if key not in per_model:
        if len(per_model) >= _MAX_TARGETS:
            per_model.pop(next(iter(per_model)))
        per_model[key] = (
            _class_target(model, size, preprocess) if name is None else _filter_target(model, name, size, preprocess)
        )
    return per_model[key]


def filter_patterns(
    model: keras.Model,
    layer: int | str,
    channels: Sequence[int] | None = None,
    *,
    steps: int = 128,
    size: Sequence[int] | None = None,
    seed: int = 0,
    preprocess: str = "raw",
    progress: Callable[[int, int], None] | None = None,
    batch_size: int = 64,
) -> FeaturePatterns:
    """The input pattern each filter of a layer responds to most (activation maximisation,
    Erhan et al. 2009; regularised after Olah et al. 2017, https://distill.pub/2017/feature-visualization/;
    see the module docstring for the method).

    Args:
        model: a Keras model taking raw pixels (its preprocessing given by ``preprocess``).
        layer: index, name or nested path of a layer with a spatial, channels-last output
            ``(batch, h, w, channels)``.
        channels: the channels to show; None for all of them.
        steps: optimisation steps, at least 1 (128 reads well; 32 gives a quick sketch).
        size: ``(H, W)`` of the patterns for a model with a free input size (default 128x128);
            a fixed-size model only takes its own size.
        seed: seeds the initial images and every step's random transformations.
        preprocess: the model's preprocessing mode (:mod:`explain.models.preprocessing`).
        progress: optional ``(steps done, steps in all) -> None``, called up to 20 times per
            batch of channels.
        batch_size: channels optimised together in one batch (memory: one image per channel).

    Returns:
        A :class:`FeaturePatterns` with ``kind="filter"``.

    Raises:
        LayerError: an unknown layer, or one without channels (a ``Dense`` layer: use
            :func:`class_patterns` for the output).
        ValueError: a channel out of range; ``steps`` or ``batch_size`` below 1; a size the
            model does not take.
        ExplainError: no gradient from the layer back to the input (names the layer that breaks it);
            an unknown preprocessing mode.
    """
    steps, batch_size = _check_steps(steps, batch_size)
    target = _target(model, layer, size, preprocess)
    indices = _check_channels(channels, target.available, "channel")
    images, _ = _optimise(target, indices, steps, int(seed), batch_size, progress, finals=False)
    finals = np.diagonal(channel_responses(model, target.layer, images, indices, check_mode(preprocess)))
    return FeaturePatterns(images, finals.astype(np.float32), indices, target.layer, "filter", steps, int(seed))


def class_patterns(
    model: keras.Model,
    classes: Sequence[int] | None = None,
    *,
    steps: int = 128,
    size: Sequence[int] | None = None,
    seed: int = 0,
    preprocess: str = "raw",
    progress: Callable[[int, int], None] | None = None,
    batch_size: int = 64,
) -> FeaturePatterns:
    """Class models (Simonyan et al. 2013, https://arxiv.org/abs/1312.6034): the image that
    maximises each class's logit, regularised as :func:`filter_patterns`.

    The score is the pre-softmax logit (:mod:`explain.models.scores`; a binary model's class 0 maximises
    the negative logit), so the pattern grows the class's own evidence instead of suppressing
    the others; a model without accessible logits maximises the probability.

    Args:
        model: a Keras classifier taking raw pixels.
        classes: the classes to show; None for all of them.
        steps, size, seed, preprocess, progress, batch_size: as :func:`filter_patterns`.

    Returns:
        A :class:`FeaturePatterns` with ``kind="class"`` and ``layer="logits"``.

    Raises:
        ValueError: a class out of range; ``steps`` or ``batch_size`` below 1; a size the model
            does not take.
        ExplainError: a model that is not a single-output classifier; no gradient from the
            output back to the input; an unknown preprocessing mode.
    """
    steps, batch_size = _check_steps(steps, batch_size)
    target = _target(model, None, size, preprocess)
    indices = _check_channels(classes, target.available, "class")
    images, finals = _optimise(target, indices, steps, int(seed), batch_size, progress)
    return FeaturePatterns(images, finals, indices, "logits", "class", steps, int(seed))


def channel_responses(
    model: keras.Model, layer: int | str, images: np.ndarray, channels: Sequence[int], preprocess: str = "raw"
) -> np.ndarray:
    """Mean activation of each channel on each image: the check that a pattern excites its own
    channel (the diagonal of ``channel_responses(model, layer, patterns.images, patterns.channels)``
    should dominate its row).

    Args:
        model: the model.
        layer: index, name or nested path of a spatial layer.
        images: float ``(N, H, W, C)`` raw pixels in [0, 255] at a size the model takes.
        channels: ``K`` channel indices.
        preprocess: the model's preprocessing mode.

    Returns:
        float32 ``(N, K)``: entry ``[i, j]`` is channel ``channels[j]``'s mean activation on image ``i``.

    Raises:
        LayerError: an unknown or non-spatial layer.
    """
    info = resolve_layer(model, layer)
    if not info.is_spatial:
        raise LayerError(f"Layer {info.name!r} ({info.type}) has no spatial output to average.")
    out = feature_model(model, [info.name], preprocess)(tf.constant(np.asarray(images, np.float32)), training=False)
    out = out[0] if isinstance(out, list | tuple) else out
    means = tf.reduce_mean(out, axis=(1, 2)).numpy()
    return means[:, np.asarray(channels, np.int64)].astype(np.float32)


@dataclass(frozen=True)
class StepCost:
    """The measured cost of one optimisation step of :func:`filter_patterns` /
    :func:`class_patterns` on one layer, for :func:`estimate_seconds`.

    Attributes:
        setup: seconds to build and compile a run (its first call), once per batch of channels.
        fixed: seconds per step whatever the batch size.
        per_image: seconds per step per image (channel) in the batch.
    """

    setup: float
    fixed: float
    per_image: float


#: Steps per timed call, and the two batch sizes :func:`step_cost` times.
_TIMED_STEPS, _TIMED_BATCHES = 4, (2, 16)


def step_cost(
    model: keras.Model, layer: int | str | None = None, *, size: Sequence[int] | None = None, preprocess: str = "raw"
) -> StepCost:
    """Time the real optimisation loop (the same compiled code as a run) for a few steps on
    batches of 2 and 16 images, so that :func:`estimate_seconds` can say how long a run takes
    before it starts. Costs about as much as 3 steps on 16 images plus one compilation.

    Args:
        model: the model.
        layer: as :func:`filter_patterns`; None times class patterns.
        size: as :func:`filter_patterns`.
        preprocess: the model's preprocessing mode.

    Returns:
        A :class:`StepCost`.

    Raises:
        LayerError, ValueError, ExplainError: as :func:`filter_patterns` for a bad layer or size.
    """
    import time

    target = _target(model, layer, size, preprocess)
    timings, setup = [], 0.0
    for b in _TIMED_BATCHES:
        ascent = _Ascent(target.loop, np.zeros(b, np.int64), target.h, target.w, target.c, 0)
        start = time.perf_counter()
        ascent.run(1, None)
        setup = max(setup, time.perf_counter() - start)
        start = time.perf_counter()
        ascent.run(_TIMED_STEPS, None)
        timings.append((time.perf_counter() - start) / _TIMED_STEPS)
    per_image = max((timings[1] - timings[0]) / (_TIMED_BATCHES[1] - _TIMED_BATCHES[0]), 0.0)
    return StepCost(setup, max(timings[0] - _TIMED_BATCHES[0] * per_image, 0.0), per_image)


def estimate_seconds(cost: StepCost, count: int, steps: int, batch_size: int = 64) -> float:
    """Seconds a run of ``count`` channels (or classes) and ``steps`` steps should take, from
    :func:`step_cost`: per batch of ``batch_size`` channels, its set-up and its steps.

    Args:
        cost: the layer's :class:`StepCost`.
        count: channels or classes asked for, at least 1.
        steps: optimisation steps, at least 1.
        batch_size: as :func:`filter_patterns`.

    Returns:
        Seconds (float).
    """
    batches = [min(batch_size, count - s) for s in range(0, count, batch_size)]
    return sum(cost.setup + steps * (cost.fixed + k * cost.per_image) for k in batches)


__all__ = [
    "DEFAULT_FREE_SIZE",
    "FeaturePatterns",
    "StepCost",
    "channel_responses",
    "class_patterns",
    "estimate_seconds",
    "filter_patterns",
    "step_cost",
]
