"""The architecture check that runs before any model file is built: no code from the file runs.

A model config (the JSON of a ``.h5`` file's ``model_config``, a SavedModel's
``keras_metadata.pb``, a ``.keras`` file's ``config.json``) names classes. Before anything is
deserialised, :func:`scan_config` checks that every layer, also inside nested models, is a
built-in Keras layer with built-in activations, initializers, regularizers and constraints.
``Lambda`` layers (Python bytecode), custom classes and Keras 2 ``TFOpLambda`` layers other than
scalar arithmetic are refused by name, unless the user vouches for them with their own code
(:mod:`explain.models.trust`): then the classes their code defines pass, and ``Lambda`` layers too.

Two flavours of "built-in": ``keras2`` (the layers of ``tf_keras``, for Keras 2 files) and
``keras3`` (those of Keras 3, its ops included, for HDF5 files written by Keras 3).
"""

from __future__ import annotations

import functools
import inspect
import json
from dataclasses import dataclass, field

from explain._quiet import _stderr_silenced, quiet_import
from explain.errors import ModelLoadError
from explain.models.trust import (
    FLAG,
    KERAS_HUB,
    class_entries,
    class_label,
    custom_classes,
    is_keras_module,
    missing_classes_error,
    short_name,
)

quiet_import()
import keras  # noqa: E402

MODEL_CLASSES = frozenset({"Functional", "Sequential", "Model"})
#: TensorFlow functions a Keras 2 ``TFOpLambda`` layer may call: scalar arithmetic only.
_AFFINE_FUNCTIONS = frozenset({"math.truediv", "math.multiply", "math.add", "math.subtract", "__operators__.add"})
#: Built-in layers that are refused all the same: they read files named in their config
#: (vocabularies, SavedModels), hold feature columns, or are abstract base classes.
REFUSED_LAYERS = frozenset(
    {"DenseFeatures", "StringLookup", "IntegerLookup", "TextVectorization", "Hashing", "HashedCrossing"}
    | {"DynamicEmbedding", "DynamicLookup", "TFSMLayer", "Layer", "Wrapper", "PreprocessingLayer", "AbstractRNNCell"}
)


@dataclass(frozen=True)
class Scan:
    """What a scan needs besides the config: how messages name the file, which Keras its names are
    built-in for (``"keras2"`` or ``"keras3"``), the user's trusted objects (None: no trust), and
    whether ``Lambda`` layers (code stored in the file) may load."""

    source: str
    flavor: str = "keras2"
    trusted: dict | None = field(default=None, compare=False)
    lambdas: bool = False

    def allows(self, label: str) -> bool:
        """Whether a non-built-in class is vouched for: by the user's code, or registered by keras-hub."""
        if self.trusted is not None and (label in self.trusted or short_name(label) in self.trusted):
            return True
        return label.startswith(KERAS_HUB + ">") and hub_class(label) is not None


def hub_class(label: str):
    """The keras-hub class registered as ``label`` (``"keras_hub>ViTBackbone"``), or None when keras-hub
    is not installed or has no such class. keras-hub is Keras's own model library: importing it
    registers its classes, and it runs no code from a model file."""
    try:
        with _stderr_silenced():
            import keras_hub  # noqa: F401
    except Exception:  # not installed, or broken: its classes are then unknown
        return None
    return keras.saving.get_registered_object(label)


def _public(module) -> set[str]:
    return {n for n in dir(module) if not n.startswith("_")} - {"get", "serialize", "deserialize"}


def _keras2_names() -> dict[str, set[str]]:
    with _stderr_silenced():
        import tf_keras as tfk

    layer_modules = (tfk.layers, tfk.layers.experimental, tfk.layers.experimental.preprocessing)
    layers = {
        n
        for m in layer_modules
        for n, obj in vars(m).items()
        if inspect.isclass(obj) and issubclass(obj, tfk.layers.Layer)
    }
    return {
        "layer": layers | {"TFOpLambda", "SlicingOpLambda"},
        "activation": _public(tfk.activations),
        "initializer": _public(tfk.initializers),
        "regularizer": _public(tfk.regularizers),
        "constraint": _public(tfk.constraints),
    }


def _keras3_names() -> dict[str, set[str]]:
    from keras.src import ops
    from keras.src.ops.operation import Operation

    layers = {
        n for n, obj in vars(keras.layers).items() if inspect.isclass(obj) and issubclass(obj, keras.layers.Layer)
    }
    op_modules = (ops.numpy, ops.nn, ops.core, ops.math, ops.image, ops.linalg)
    operations = {
        n for m in op_modules for n, obj in vars(m).items() if inspect.isclass(obj) and issubclass(obj, Operation)
    }
    return {
        "layer": layers | operations,
        "activation": _public(keras.activations),
        "initializer": _public(keras.initializers),
        "regularizer": _public(keras.regularizers),
        "constraint": _public(keras.constraints),
    }


@functools.cache
def builtin_names(flavor: str) -> dict[str, frozenset[str]]:
    """Class and function names of the built-in layers, activations, initializers, regularizers,
    constraints and dtype policies of Keras 2 (``flavor="keras2"``: ``tf_keras``) or Keras 3
    (``"keras3"``, whose functional models also serialise ops such as ``Add`` or ``Reshape``)."""
    names = _keras2_names() if flavor == "keras2" else _keras3_names()
    names["layer"] |= MODEL_CLASSES | {"InputLayer"}
    names["dtype policy"] = {"Policy", "DTypePolicy", "FloatDTypePolicy"}
    return {k: frozenset(v) for k, v in names.items()}


def all_builtin(flavor: str) -> frozenset[str]:
    """Every built-in class name of one flavour, of any kind (for :func:`explain.models.trust.custom_classes`)."""
    return frozenset().union(*builtin_names(flavor).values())


def _option_kind(key: str) -> str | None:
    """What a layer option holds, judged by its name: ``"initializer"``, ``"layer"``, ..., or None."""
    for ending in ("initializer", "regularizer", "constraint"):
        if key.endswith(ending):
            return ending
    if key in ("activation", "recurrent_activation"):
        return "activation"
    if key in ("layer", "cell", "forward_layer", "backward_layer", "cells"):
        return "layer"
    return "dtype policy" if key == "dtype" else None


def _describe(entry: dict) -> str:
    cls, module, registered = entry.get("class_name"), entry.get("module"), entry.get("registered_name")
    if registered and registered != cls:
        return str(registered)
    return f"{module}.{cls}" if module and not is_keras_module(module) else str(cls)


def _is_builtin(entry: dict, kind: str, scan: Scan) -> bool:
    cls, module, registered = entry.get("class_name"), entry.get("module"), entry.get("registered_name")
    if isinstance(cls, str) and scan.allows(registered if isinstance(registered, str) and registered else cls):
        return True
    return (
        isinstance(cls, str)
        and cls in builtin_names(scan.flavor)[kind]
        and (module is None or is_keras_module(module))
        and registered in (None, cls)
    )


def _refuse_code(scan: Scan, path: str, what: str) -> ModelLoadError:
    return ModelLoadError(
        f"{scan.source}: layer '{path}' {what}; explain never runs code from a model file. If it is your own code, "
        f"pass the Python file that defines it with {FLAG}; otherwise replace it with built-in Keras layers and "
        "re-save the model."
    )


def scan_config(
    config: dict, source: str, flavor: str = "keras2", trusted: dict | None = None, lambdas: bool = False
) -> None:
    """Check a model config before anything in it is deserialised.

    Every layer, also inside nested models, must be a built-in Keras layer of ``flavor``; its
    activation, initializers, regularizers, constraints and dtype policy must be built-in too.
    Custom classes (a non-Keras ``module``, a ``registered_name`` with a package prefix, a name
    Keras does not have) are refused all at once, by name, with the ``--trust-code`` flag in the
    message, unless ``trusted`` defines them (or keras-hub, installed, registers them). ``Lambda``
    layers are refused unless ``lambdas`` (the user vouches for the file's own code, with safe
    mode off); ``TFOpLambda`` layers other than scalar arithmetic always.

    Args:
        config: ``{"class_name": ..., "config": ...}`` from :func:`explain.models.legacy.read_h5_config`
            or :func:`explain.models.legacy.read_savedmodel_config`.
        source: how messages name the file.
        flavor: ``"keras2"`` (a Keras 2 file) or ``"keras3"`` (an HDF5 file written by Keras 3).
        trusted: the user's own classes and functions (:func:`explain.models.trust.load_trusted_code`
            plus ``custom_objects``), or None when the user vouches for nothing.
        lambdas: whether ``Lambda`` layers and lambda activations may load.

    Raises:
        ModelLoadError: every unknown class at once, else the first offending layer, by path
            (``"base/my_layer"``) and class.
    """
    scan = Scan(source, flavor, trusted, lambdas)
    check_custom_classes(config, scan, all_builtin(flavor))
    if not _is_builtin(config, "layer", scan):
        raise ModelLoadError(
            f"{source}: the model is a custom class '{_describe(config)}', not a Keras Sequential or functional "
            "model; explain never runs code from a model file. Rebuild it from built-in Keras layers and re-save it."
        )
    if config.get("class_name") not in MODEL_CLASSES and not scan.allows(str(config.get("class_name"))):
        raise ModelLoadError(
            f"{source} holds a {config.get('class_name')} layer, not a Sequential or functional model."
        )
    if config.get("class_name") in MODEL_CLASSES:
        _scan_model(config, scan, "")


def check_custom_classes(config: dict, scan: Scan, builtin: frozenset[str]) -> None:
    """Refuse, all at once and by name, the classes a config names that are not Keras's own and that
    nobody vouched for (:meth:`Scan.allows`): the first check of every model file, whatever reads it.

    Args:
        config: the model config.
        scan: the file's name for messages and the user's trusted objects.
        builtin: the class names that count as Keras's own for entries without a ``module``.

    Raises:
        ModelLoadError: :func:`explain.models.trust.missing_classes_error`.
    """
    missing = {c: where for c, where in custom_classes(config, builtin).items() if not scan.allows(c)}
    if missing:
        raise missing_classes_error(scan.source, missing, scan.trusted)


def refused_layer_error(source: str, cls: str, path: str | None = None) -> ModelLoadError:
    """The refusal of a :data:`REFUSED_LAYERS` layer (by its path where known)."""
    what = f"layer '{path}' is a {cls} layer" if path else f"it holds a {cls} layer"
    return ModelLoadError(
        f"{source}: {what}, which explain does not open: it may read files named in the model or call functions. "
        "Remove it from the model and re-save."
    )


def model_layers(entry: dict, source: str, path: str) -> list:
    """The layer entries of a model config (a Sequential written by Keras <= 2.2 is a bare list).

    Raises:
        ModelLoadError: no list of layers.
    """
    cfg = entry.get("config")
    layers = cfg.get("layers") if isinstance(cfg, dict) else cfg  # Keras <= 2.2 wrote a Sequential as a list
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        raise ModelLoadError(f"{source}: the config of model '{path or entry.get('class_name')}' lists no layers.")
    return layers


def _scan_model(entry: dict, scan: Scan, prefix: str) -> None:
    for layer in model_layers(entry, scan.source, prefix.rstrip("/")):
        _scan_layer(layer, scan, prefix)


def _scan_layer(entry: dict, scan: Scan, prefix: str) -> None:
    cfg = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    path = prefix + str(entry.get("name") or cfg.get("name") or "?")
    cls = entry.get("class_name")
    if cls == "Lambda" and not scan.lambdas:
        raise _refuse_code(scan, path, "is a Lambda layer (Python code)")
    if cls in REFUSED_LAYERS:
        raise refused_layer_error(scan.source, cls, path)
    if cls == "Lambda" or (scan.allows(str(cls)) and cls not in builtin_names(scan.flavor)["layer"]):
        return  # the user's own code (or keras-hub's) reads its own options
    if not _is_builtin(entry, "layer", scan):
        raise _refuse_code(scan, path, f"is a custom class '{_describe(entry)}', not a built-in Keras layer")
    if cls in MODEL_CLASSES:
        _scan_model(entry, scan, path + "/")
    elif cls == "TFOpLambda":
        nodes = entry.get("inbound_nodes")
        if not isinstance(nodes, list) or len(nodes) != 1:
            raise _tf_op_error(scan.source, path, cfg.get("function"), "it is called more than once")
        affine(cfg.get("function"), nodes[0], scan.source, path)
    elif cls == "SlicingOpLambda":
        raise _tf_op_error(scan.source, path, cfg.get("function"), "it slices a tensor")
    else:
        _scan_options(cfg, scan, path)


def _scan_options(cfg: dict, scan: Scan, path: str) -> None:
    names = builtin_names(scan.flavor)
    for key, value in cfg.items():
        kind = _option_kind(key)
        if kind == "layer":
            for inner in value if isinstance(value, list) else [value]:
                if isinstance(inner, dict):
                    _scan_layer(inner, scan, path + "/")
        elif kind is None:
            if "class_name" in json.dumps(value) and not _trusted_inside(value, scan):
                raise _refuse_code(scan, path, f"has an object in its option '{key}' that explain does not know")
        elif isinstance(value, str) and kind != "dtype policy" and value not in names[kind]:
            if not scan.allows(value):
                raise _refuse_code(scan, path, f"uses {key} '{value}', which is not a built-in Keras {kind}")
        elif isinstance(value, dict) and not _is_builtin(value, kind, scan):
            if not (scan.lambdas and "class_name" not in value):  # a lambda, with safe mode off
                raise _refuse_code(scan, path, f"uses {key} '{_describe(value)}', not a built-in Keras {kind}")
        elif value is not None and not isinstance(value, str | dict):
            raise _refuse_code(scan, path, f"has an unreadable {key} {value!r}")


def _trusted_inside(value, scan: Scan) -> bool:
    """Whether every class named inside an option value is vouched for (built-in ones never are
    expected there: an option holding objects is a custom layer's own)."""
    entries = list(class_entries(value))
    return bool(entries) and all(scan.allows(class_label(e)) for e in entries)


def _tf_op_error(source: str, path: str, function, why: str) -> ModelLoadError:
    return ModelLoadError(
        f"{source}: layer '{path}' is a TensorFlow operation (tf.{function}) and {why}; explain converts only "
        "scalar arithmetic such as x / 127.5 - 1. Replace it with built-in Keras layers (e.g. Rescaling) and re-save."
    )


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def affine(function, node, source: str, path: str) -> tuple[float, float, list]:
    """Read a ``TFOpLambda`` node as ``x * scale + offset``.

    Args:
        function: the layer's ``function`` option, e.g. ``"math.truediv"``.
        node: its one inbound node as serialised by Keras 2: ``[layer, node, tensor, kwargs]``
            with the constant either as ``kwargs["y"]`` or (for ``1 - x``) in place of the
            first tensor, marked ``"_CONSTANT_VALUE"``.
        source: how messages name the file.
        path: the layer's path, for messages.

    Returns:
        ``(scale, offset, [layer_name, node_index, tensor_index])`` of the tensor operand.

    Raises:
        ModelLoadError: any other function, or not one tensor and one number.
    """
    if function not in _AFFINE_FUNCTIONS:
        raise _tf_op_error(source, path, function, "explain cannot convert it")
    if isinstance(node, list) and len(node) == 1 and isinstance(node[0], list):
        node = node[0]
    if not (isinstance(node, list) and len(node) == 4 and isinstance(node[3], dict)):
        raise _tf_op_error(source, path, function, "its inputs cannot be read")
    kwargs = node[3]
    y = kwargs.get("y")
    if set(kwargs) - {"y", "name"} or not isinstance(node[0], str):
        raise _tf_op_error(source, path, function, "it has arguments other than a tensor and a number")
    if node[0] != "_CONSTANT_VALUE" and _is_number(y):
        tensor, constant, tensor_first = node[:3], float(y), True
    elif node[0] == "_CONSTANT_VALUE" and _is_number(node[2]) and isinstance(y, list) and len(y) == 3:
        tensor, constant, tensor_first = y, float(node[2]), False
    else:
        raise _tf_op_error(source, path, function, "it does not combine one tensor with one number")
    if function == "math.truediv":
        if not tensor_first or constant == 0:
            raise _tf_op_error(source, path, function, "it is not a division by a non-zero number")
        return 1.0 / constant, 0.0, tensor
    if function == "math.multiply":
        return constant, 0.0, tensor
    if function == "math.subtract":
        return (1.0, -constant, tensor) if tensor_first else (-1.0, constant, tensor)
    return 1.0, constant, tensor
