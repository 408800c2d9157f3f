"""The model's input scaling, as a named preprocessing mode applied in front of the model.

Everything in explain feeds raw pixels, float32 in [0, 255]. A model trained on scaled
inputs (``x / 255``, or a ``keras.applications`` network's own ``preprocess_input``) gets
its scaling from one of these modes, applied by a separate Keras model that wraps the
caller's one and shares its weights; the caller's model is never changed, and heatmaps,
perturbations and pictures stay in the image's raw pixels. Gradients taken through the
wrapper are gradients with respect to the raw pixels.

The modes are Keras's own names (``keras.applications.imagenet_utils.preprocess_input``,
https://keras.io/api/applications/):

* ``raw``: pixels in [0, 255] go in unchanged (the model rescales itself, e.g. with a
  ``Rescaling`` layer; every model ``python -m training`` makes);
* ``unit``: ``x / 255``, to [0, 1] (the most common tutorial convention);
* ``tf``: ``x / 127.5 - 1``, to [-1, 1] (MobileNet, MobileNetV2, Inception, Xception,
  NASNet, ResNetV2);
* ``caffe``: RGB to BGR, then minus the ImageNet mean per channel, no scaling (VGG, ResNet);
* ``torch``: ``x / 255``, then minus the ImageNet mean and divided by its standard
  deviation per channel (DenseNet).
"""

from __future__ import annotations

import numpy as np

from explain._quiet import quiet_import
from explain.errors import ExplainError
from explain.models.layouts import input_layout

quiet_import()
import keras  # noqa: E402

#: The preprocessing modes, in the order the CLI and the dashboard offer them.
MODES = ("raw", "unit", "tf", "caffe", "torch")

#: One line per mode, for help texts and the dashboard.
DESCRIPTIONS = {
    "raw": "raw pixels 0-255 (the model rescales itself)",
    "unit": "x / 255, to [0, 1]",
    "tf": "x / 127.5 - 1, to [-1, 1] (MobileNet, Inception, Xception, ResNetV2)",
    "caffe": "BGR minus the ImageNet mean (VGG, ResNet)",
    "torch": "x / 255, ImageNet mean and std per channel (DenseNet)",
}

_IMAGENET_MEAN_RGB = np.array([0.485, 0.456, 0.406], np.float32)
_IMAGENET_STD_RGB = np.array([0.229, 0.224, 0.225], np.float32)
_CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)

#: A top logit above this suggests the model was fed pixels on the wrong scale.
SATURATED_LOGIT = 50.0

#: Where :func:`from_raw_pixels` keeps its wrappers: in the model's own ``__dict__`` (past Keras's
#: attribute tracking), so model and wrappers form one cycle that is freed with the model. A
#: dictionary keyed weakly on the model would never free it: the wrapper holds the model.
_WRAPPED = "_explain_from_raw_pixels"


def check_mode(mode: str, channels: int | None = None) -> str:
    """Validate a preprocessing mode name.

    Args:
        mode: one of :data:`MODES` (case and surrounding spaces ignored).
        channels: the model's input channels, if known; ``caffe`` and ``torch`` need 3.

    Returns:
        The mode, lower-cased.

    Raises:
        ExplainError: an unknown mode, or ``caffe`` / ``torch`` for a grayscale model.
    """
    name = str(mode).strip().lower()
    if name not in MODES:
        raise ExplainError(
            f"Unknown preprocessing mode {mode!r}. Modes are: "
            + "; ".join(f"{m} ({DESCRIPTIONS[m]})" for m in MODES)
            + "."
        )
    if name in ("caffe", "torch") and channels is not None and channels != 3:
        raise ExplainError(
            f"Preprocessing {name!r} uses the ImageNet RGB means, but this model takes {channels} channel(s). "
            "Use raw, unit or tf."
        )
    return name


def preprocess(x, mode: str):
    """Apply a preprocessing mode to raw pixels.

    Args:
        x: float ``(..., C)`` raw pixels in [0, 255], channels last: a NumPy array, a
            tensor, or a symbolic Keras tensor (then the result is symbolic too).
        mode: one of :data:`MODES`.

    Returns:
        The model's input, same shape: ``x`` itself for ``raw``; float32 otherwise.

    Raises:
        ExplainError: an unknown mode, or ``caffe`` / ``torch`` on other than 3 channels.
    """
    mode = check_mode(mode, channels=int(x.shape[-1]))
    if mode == "raw":
        return x
    ops = keras.ops
    x = ops.cast(x, "float32")
    if mode == "unit":
        return x / 255.0
    if mode == "tf":
        return x / 127.5 - 1.0
    if mode == "torch":
        return (x / 255.0 - _IMAGENET_MEAN_RGB) / _IMAGENET_STD_RGB
    return ops.flip(x, axis=-1) - _CAFFE_MEAN_BGR  # caffe


def from_raw_pixels(model: keras.Model, mode: str) -> keras.Model:
    """A model that takes raw pixels ``(N, H, W, C)`` and runs ``model`` on their preprocessed version.

    For ``raw`` and a model that takes channels-last images this is ``model`` itself.
    Otherwise a new functional model ``raw pixels -> preprocess(mode) -> the model's input
    layout -> model`` that shares ``model``'s weights, built once per ``(model, mode)`` and
    cached on ``model`` (freed with it). The layout step reshapes or transposes for a model
    that takes ``(H, W)``, channels-first or flattened pixels
    (:class:`explain.models.layouts.InputLayout`), so ``model`` and its layers are unchanged.

    Args:
        model: a Keras model with one image input (any layout of
            :func:`explain.models.layouts.input_layout`), expecting preprocessed pixels.
        mode: one of :data:`MODES`.

    Returns:
        A ``keras.Model`` with the same outputs as ``model``, taking float32 raw pixels in
        [0, 255], ``(N, H, W, C)``.

    Raises:
        ExplainError: an unknown mode, or ``caffe`` / ``torch`` for a model without 3
            input channels.
        ModelLoadError: the model's input is no image layout (:func:`explain.models.layouts.input_layout`).
    """
    layout = input_layout(model)
    mode = check_mode(mode, channels=layout.channels)
    if mode == "raw" and layout.kind == "channels_last":
        return model
    per_model = model.__dict__.setdefault(_WRAPPED, {})
    if mode not in per_model:
        x = keras.Input(shape=layout.image_shape, dtype="float32", name="raw_pixels")
        per_model[mode] = keras.Model(x, model(layout.adapt(preprocess(x, mode))), name=f"{model.name}_{mode}")
    return per_model[mode]


#: ``keras.applications`` networks whose ``preprocess_input`` is not inside the model, by the
#: prefix of the name Keras gives the model (checked in order: ``resnet50v2`` before ``resnet``).
APPLICATION_MODES = (
    ("resnet50v2", "tf"),
    ("resnet101v2", "tf"),
    ("resnet152v2", "tf"),
    ("resnet", "caffe"),
    ("vgg", "caffe"),
    ("densenet", "torch"),
    ("mobilenet_", "tf"),
    ("mobilenetv2", "tf"),
    ("mobilenetv3", "tf"),
    ("inception_resnet_v2", "tf"),
    ("inception_v3", "tf"),
    ("xception", "tf"),
    ("nasnet", "tf"),
)

_SCALING_LAYERS = ("Rescaling", "Normalization")
_PASS_THROUGH = ("InputLayer", "Resizing", "Dropout")  # and the Random* augmentation layers


def _leading_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The first non-input layer of ``model``, and of the nested model it is, and so on."""
    chain = []
    layer = model
    while isinstance(layer, keras.Model):
        rest = [
            lyr
            for lyr in layer.layers
            if type(lyr).__name__ not in _PASS_THROUGH and not type(lyr).__name__.startswith("Random")
        ]
        if not rest:
            break
        chain.append(rest[0])
        layer = rest[0]
    return chain


def _hub_converter_mode(model: keras.Model) -> tuple[str, str | None] | None:
    """The mode of a keras-hub task's image converter (``model.preprocessor.image_converter``:
    ``x * scale + offset``, per channel or for all), which ``model.predict`` applies but a direct
    call of the model does not; None for a model without one."""
    converter = getattr(getattr(model, "preprocessor", None), "image_converter", None)
    if converter is None or not hasattr(converter, "scale"):
        return None

    def per_channel(value, default: float) -> np.ndarray:
        arr = np.asarray(default if value is None else value, np.float64).reshape(-1)
        return np.broadcast_to(arr, (3,)) if arr.size in (1, 3) else np.full(3, np.nan)

    scale, offset = per_channel(converter.scale, 1.0), per_channel(converter.offset, 0.0)
    known = {
        "raw": (np.ones(3), np.zeros(3)),
        "unit": (np.full(3, 1 / 255), np.zeros(3)),
        "tf": (np.full(3, 1 / 127.5), np.full(3, -1.0)),
        "torch": (1 / (255 * _IMAGENET_STD_RGB), -_IMAGENET_MEAN_RGB / _IMAGENET_STD_RGB),
    }
    for mode, (s, o) in known.items():
        if np.allclose(scale, s, rtol=1e-3, atol=1e-6) and np.allclose(offset, o, rtol=1e-3, atol=1e-4):
            return mode, None
    return "raw", (
        f"The model's keras-hub image converter computes x * {converter.scale} + {converter.offset}, which is none "
        "of explain's preprocessing modes; assuming raw pixels. Pass --preprocess if one of them fits."
    )


def infer_preprocessing(model: keras.Model) -> tuple[str, str | None]:
    """Guess the preprocessing mode of a model that has no model card.

    A keras-hub task with an image converter gives the converter's mode (its ``scale`` and
    ``offset``; ``model.predict`` applies it, a call of the model does not). ``raw`` when the
    model's first layer (or the first layer of a leading nested model) is ``Rescaling`` or
    ``Normalization``: the model scales its input itself. Otherwise the ``keras.applications``
    network it is (or starts with), recognised by its Keras name, gives its own mode (e.g.
    ``caffe`` for ``resnet50``). Otherwise ``raw`` is assumed.

    Args:
        model: the classifier.

    Returns:
        ``(mode, note)``: ``note`` is None when the model says it itself (a scaling layer),
        else one line saying what was assumed and how to change it.
    """
    hub = _hub_converter_mode(model)
    if hub is not None:
        return hub
    chain = _leading_layers(model)
    if any(type(layer).__name__ in _SCALING_LAYERS for layer in chain):
        return "raw", None
    try:
        rgb = input_layout(model).channels == 3
    except ExplainError:
        rgb = False
    for candidate in [model, *(layer for layer in chain if isinstance(layer, keras.Model))]:
        name = candidate.name.lower()
        for prefix, mode in APPLICATION_MODES:
            if name.startswith(prefix) and (rgb or mode in ("tf", "unit")):
                return mode, (
                    f"No model card: {candidate.name!r} looks like a keras.applications network, which expects "
                    f"preprocessing {mode!r} ({DESCRIPTIONS[mode]}); using it. Change it with --preprocess."
                )
    return "raw", (
        "No model card and no Rescaling layer at the model's input: assuming it takes raw pixels 0-255. "
        "If it was trained on x/255, pass --preprocess unit (modes: " + ", ".join(MODES) + ")."
    )


def saturation_hint(top_score: float, mode: str) -> str | None:
    """A hint when the top logit is so large that the input scale is probably wrong.

    Args:
        top_score: the top class's pre-softmax logit.
        mode: the preprocessing mode used.

    Returns:
        One line suggesting ``--preprocess unit``, or None when ``|top_score|`` is at most
        :data:`SATURATED_LOGIT` or the mode already scales the pixels.
    """
    if mode != "raw" or not np.isfinite(top_score) or abs(top_score) <= SATURATED_LOGIT:
        return None
    return (
        f"hint: the top logit is {top_score:.0f}, far beyond the usual range: the model may expect scaled pixels. "
        "If it was trained on x/255, pass --preprocess unit."
    )
