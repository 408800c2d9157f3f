"""The score head: where a classifier's logits are, decided once per model.

Every part of explain that needs a class score or a class probability goes through one
:class:`ScoreHead`: :func:`explain.models.predict`, :func:`explain.evaluate_model`, every attribution
method (LIME included), deletion/insertion and the sanity check. So "is this output a logit or a
probability?" has one answer per model, and a binary model with a linear output whose logit is
0.3 is class 1 everywhere, whatever batch it comes in.

How the answer is found, from the model's last layer:

* a ``Dense`` or ``Activation`` layer with a softmax or sigmoid activation, or a ``Softmax``
  layer: the outputs are probabilities, and the logits are recomputed from that layer's input
  (``x @ kernel + bias`` for ``Dense``), so the caller's model is never changed;
* a linear last layer: the outputs are logits;
* any other layer (a nested model, ReLU, ...): a value test, run once per model on eight
  seeded random images: outputs in [0, 1] whose rows sum to 1 (a single column in [0, 1] for a
  binary model) are probabilities, anything else logits.

A single output column is a binary classifier with two classes: class 1 is the positive class
(score = logit), class 0 the negative one (score = -logit); its probabilities are
``(1 - p, p)``.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import numpy as np

from explain._quiet import quiet_import
from explain.errors import ExplainError
from explain.models.graph import own_node, single
from explain.models.layouts import image_input_shape
from explain.models.preprocessing import check_mode, from_raw_pixels

quiet_import()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

_HEADS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_PROBE_IMAGES = 8
_PROBE_SIZE = 32


def _producer(tensor) -> keras.layers.Layer:
    """The layer whose call made the symbolic ``tensor``."""
    history = tensor._keras_history
    return history.operation if hasattr(history, "operation") else history[0]


def _output_layer(model: keras.Model) -> keras.layers.Layer:
    return _producer(model.outputs[0])


def _dense_logits(layer: keras.layers.Dense) -> Callable:
    kernel, bias = layer.kernel, layer.bias

    def logits(t):
        z = tf.matmul(t, kernel)
        return z + bias if bias is not None else z

    return logits


def _from_last_layer(model: keras.Model) -> tuple[object, Callable, str | None, str]:
    """``(tensor, f(tensor) -> scores, score_kind or None when undecided, how it was decided)``."""
    out = model.outputs[0]
    layer = _output_layer(model)
    name = getattr(getattr(layer, "activation", None), "__name__", "")
    if isinstance(layer, keras.layers.Softmax) or (
        name in ("softmax", "sigmoid") and isinstance(layer, keras.layers.Dense | keras.layers.Activation)
    ):
        h = single(own_node(model, layer).input_tensors)
        to_scores = _dense_logits(layer) if isinstance(layer, keras.layers.Dense) else (lambda t: t)
        return h, to_scores, "logit", f"last layer {layer.name!r} ends in {name or 'softmax'}"
    if name == "linear":
        return out, (lambda t: t), "logit", f"last layer {layer.name!r} is linear"
    if name in ("softmax", "sigmoid"):
        return out, (lambda t: t), "probability", f"last layer {layer.name!r} ends in {name}"
    return out, (lambda t: t), None, ""


def looks_like_probabilities(out: np.ndarray) -> bool:
    """The value test: whether ``(N, classes)`` outputs are probabilities.

    True when every value is in [0, 1] and, for two or more columns, every row sums to 1
    (within 1e-3). Used only for a model whose last layer does not say.
    """
    out = np.asarray(out, dtype=np.float64)
    in_unit = bool(np.all((out >= 0) & (out <= 1)))
    if out.shape[-1] == 1:
        return in_unit
    return in_unit and bool(np.allclose(out.sum(axis=-1), 1.0, atol=1e-3))


def _probe(model: keras.Model, preprocess: str) -> np.ndarray:
    """The model's outputs on seeded random raw-pixel images (free sizes: 32)."""
    shape = tuple(d if d is not None else _PROBE_SIZE for d in image_input_shape(model))
    x = np.random.default_rng(0).uniform(0, 255, (_PROBE_IMAGES, *shape)).astype(np.float32)
    return keras.ops.convert_to_numpy(from_raw_pixels(model, preprocess)(x, training=False))


class ScoreHead:
    """One classifier's scores and probabilities, decided once (see the module docstring).

    Args:
        model: a Keras classifier with one output of shape ``(batch, classes)``.
        preprocess: the model's preprocessing mode (:mod:`explain.models.preprocessing`), applied in
            front of it; every method here takes raw pixels in [0, 255].

    Attributes:
        binary: True for a single output column (two classes).
        num_classes: int, the number of classes (2 for a binary model).
        score_kind: ``"logit"`` when :meth:`scores` gives logits, ``"probability"`` when the
            model only exposes probabilities (a softmax inside a nested model, say).
        outputs_logits: True when the model's own outputs are logits (explain applies the
            softmax or sigmoid), False when they are probabilities.
        decided_by: how ``score_kind`` was decided, in words.
        tensor: the symbolic tensor in the model's graph that the scores are computed from
            (the last layer's input when the logits are recomputed); attribution methods stop
            their graphs there.
        to_scores: ``tensor -> scores`` (``x @ kernel + bias`` for a ``Dense`` softmax layer).

    Raises:
        ExplainError: the model has several outputs or a non-classifier output; an unknown
            preprocessing mode; outputs that are not finite on the probe images.
    """

    def __init__(self, model: keras.Model, preprocess: str = "raw"):
        if len(model.outputs) != 1:
            raise ExplainError(f"The model has {len(model.outputs)} outputs; explain needs one classifier output.")
        out = model.outputs[0]
        if len(out.shape) != 2:
            shape = tuple(out.shape)
            raise ExplainError(f"The model's output has shape {shape}; a classifier outputs (batch, classes).")
        self._model = weakref.ref(model)  # the cache is keyed weakly on the model: no cycle back to it
        self.preprocess = check_mode(preprocess)
        self.binary = out.shape[-1] == 1
        self.num_classes = 2 if self.binary else int(out.shape[-1])
        self.tensor, self.to_scores, kind, self.decided_by = _from_last_layer(model)
        self.outputs_logits = kind == "logit" and self.tensor is out
        if kind is None:
            probs = looks_like_probabilities(_probe(model, self.preprocess))
            kind, self.outputs_logits = ("probability", False) if probs else ("logit", True)
            self.decided_by = f"the values of the last layer {_output_layer(model).name!r} on random images"
        self.score_kind = kind
        scores_model = keras.Model(single(model.inputs), self.tensor)
        self._scores_model = from_raw_pixels(scores_model, self.preprocess)
        self._compiled = tf.function(self._scores_and_probabilities, reduce_retracing=True)

    @property
    def model(self) -> keras.Model:
        """The classifier this head belongs to."""
        return self._model()

    def scores(self, x: tf.Tensor) -> tf.Tensor:
        """Float32 scores ``(B, classes)`` (``(B, 1)`` for a binary model) for raw-pixel images
        ``(B, H, W, C)`` in [0, 255]: logits when ``score_kind == "logit"``. Differentiable."""
        return self.to_scores(self._scores_model(x, training=False))

    def to_probabilities(self, scores: tf.Tensor) -> tf.Tensor:
        """Float32 probabilities ``(B, num_classes)`` from :meth:`scores`' output: softmax of
        logits, sigmoid ``(1 - p, p)`` for a binary model, the values themselves when they are
        probabilities already."""
        if self.binary:
            z = scores[:, 0]
            p = tf.sigmoid(z) if self.score_kind == "logit" else tf.clip_by_value(z, 0.0, 1.0)
            return tf.stack([1.0 - p, p], axis=1)
        return tf.nn.softmax(scores, axis=1) if self.score_kind == "logit" else scores

    def probabilities(self, x: tf.Tensor) -> tf.Tensor:
        """Float32 class probabilities ``(B, num_classes)`` for raw-pixel images. Differentiable."""
        return self.to_probabilities(self.scores(x))

    def _scores_and_probabilities(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        scores = self.scores(x)
        return scores, self.to_probabilities(scores)

    def pick(self, scores: tf.Tensor, class_index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Resolve the classes (``-1`` means the top prediction) and their scores.

        Args:
            scores: ``(B, classes)`` from :meth:`scores` (``(B, 1)`` for a binary model).
            class_index: int64 ``(B,)``, ``-1`` for "top prediction".

        Returns:
            ``(class_index int64 (B,), score float32 (B,))``; a binary model's class 1 is
            predicted when its logit is above 0 (its probability above 0.5), class 1 is scored
            with the logit and class 0 with its negative.
        """
        if self.binary:
            z = scores[:, 0]
            top = tf.cast(z > (0.0 if self.score_kind == "logit" else 0.5), tf.int64)
            cls = tf.where(class_index < 0, top, class_index)
            return cls, tf.where(tf.equal(cls, 1), z, -z)
        cls = tf.where(class_index < 0, tf.argmax(scores, axis=1), class_index)
        return cls, tf.gather(scores, cls, axis=1, batch_dims=1)

    def class_probability(self, x: tf.Tensor, class_index: tf.Tensor) -> tf.Tensor:
        """Float32 ``(B,)``: the probability of class ``class_index[i]`` (int64, >= 0) for
        raw-pixel image ``x[i]``. Differentiable."""
        return tf.gather(self.probabilities(x), class_index, axis=1, batch_dims=1)

    def top_classes(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """int64 ``(N,)``: each image's top prediction (the same class :meth:`pick` gives)."""
        return np.argmax(self.predict_probabilities(images, batch_size), axis=1).astype(np.int64)

    def check_batch(self, images: np.ndarray, class_index=None) -> tuple[np.ndarray, np.ndarray]:
        """Validate images and classes for this model.

        Args:
            images: ``(N, H, W, C)`` or ``(H, W, C)`` raw pixels at the model's input size.
            class_index: None (each image's top prediction), one int, or ``(N,)`` ints.

        Returns:
            ``(float32 images (N, H, W, C), int64 classes (N,))``, ``-1`` meaning "top prediction".

        Raises:
            ValueError: images of the wrong shape, or no images.
            ExplainError: a class index out of range.
        """
        x = np.asarray(images, dtype=np.float32)
        if x.ndim == 3:
            x = x[None]
        expected = tuple(self._scores_model.inputs[0].shape[1:])
        if x.ndim != 4 or any(e is not None and e != a for e, a in zip(expected, x.shape[1:], strict=True)):
            raise ValueError(
                f"Images of shape {x.shape[1:]} do not fit the model input {expected}; "
                "load them with explain.load_image(path, target_size=(H, W), channels=C)."
            )
        if len(x) == 0:
            raise ValueError("No images to explain: got an empty batch.")
        if class_index is None:
            return x, np.full(len(x), -1, np.int64)
        idx = np.broadcast_to(np.asarray(class_index, dtype=np.int64).reshape(-1), (len(x),)).copy()
        bad = idx[(idx < 0) | (idx >= self.num_classes)]
        if bad.size:
            raise ExplainError(
                f"Class index {int(bad[0])} is out of range: the model has {self.num_classes} classes, "
                f"indices 0 to {self.num_classes - 1}."
            )
        return x, idx

    def predict_scores(self, images: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Scores and class probabilities of many images from one compiled pass, ``batch_size``
        per call.

        Args:
            images: float ``(N, H, W, C)`` raw pixels in [0, 255] at the model's input size.
            batch_size: images per call, at least 1.

        Returns:
            ``(scores, probabilities)``: float32 ``(N, classes)`` as :meth:`scores` (``(N, 1)``
            for a binary model; logits when ``score_kind == "logit"``), and float64
            ``(N, num_classes)`` rows summing to 1.

        Raises:
            ValueError: ``batch_size < 1``; outputs that are not finite (NaN weights).
        """
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        x = np.asarray(images, dtype=np.float32)
        parts = [
            self._compiled(tf.convert_to_tensor(x[s : s + int(batch_size)])) for s in range(0, len(x), int(batch_size))
        ]
        if not parts:
            return np.zeros((0, 1 if self.binary else self.num_classes), np.float32), np.zeros((0, self.num_classes))
        scores = np.concatenate([p[0].numpy() for p in parts]).astype(np.float32)
        probs = np.concatenate([p[1].numpy() for p in parts]).astype(np.float64)
        if not (np.all(np.isfinite(probs)) and np.all(np.isfinite(scores))):
            raise ValueError("The model's outputs are not finite (NaN or infinity): its weights may be broken.")
        return scores, probs

    def predict_probabilities(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Class probabilities of many images, ``batch_size`` per compiled call.

        Args:
            images: float ``(N, H, W, C)`` raw pixels in [0, 255] at the model's input size.
            batch_size: images per call, at least 1.

        Returns:
            float64 ``(N, num_classes)``, rows summing to 1.

        Raises:
            ValueError: ``batch_size < 1``; outputs that are not finite (NaN weights).
        """
        return self.predict_scores(images, batch_size)[1]


def score_head(model: keras.Model, preprocess: str = "raw") -> ScoreHead:
    """The :class:`ScoreHead` of ``model`` under ``preprocess``, built once and cached
    (weakly keyed on the model, so it goes when the model does).

    Args:
        model: a Keras classifier with one output ``(batch, classes)``.
        preprocess: the model's preprocessing mode (:mod:`explain.models.preprocessing`).

    Returns:
        The cached :class:`ScoreHead`.

    Raises:
        ExplainError: as :class:`ScoreHead`.
    """
    preprocess = check_mode(preprocess)
    per_model = _HEADS.setdefault(model, {})
    if preprocess not in per_model:
        per_model[preprocess] = ScoreHead(model, preprocess)
    return per_model[preprocess]
