"""Open Keras 2 model files safely and convert them, in memory, to Keras 3 models.

Keras 2 (standalone ``keras`` 2.x or ``tf.keras`` up to TensorFlow 2.15) saved models as
legacy HDF5 files (``.h5``) or as TensorFlow SavedModel folders; dashboards receive the
folders as ``.zip`` files. :func:`load_legacy_model` opens all three:

1. it reads the architecture JSON without deserialising anything (:func:`read_h5_config`,
   :func:`read_savedmodel_config`) and checks it (:func:`scan_config`): every layer, also
   inside nested models, must be a built-in Keras layer with built-in activations,
   initializers, regularizers and constraints. ``Lambda`` layers and custom classes are
   refused, so no code from the file ever runs;
2. only then it builds the model with ``tf_keras`` (Keras 2) and loads its weights; a
   SavedModel's graph functions are never loaded or called: the model is rebuilt from its
   config and the weights are restored from the checkpoint in ``variables/``;
3. :func:`convert_to_keras3` rebuilds it layer by layer as a Keras 3 model with the same
   layer names, topology (nested models stay nested), weights and ``trainable`` flags.

``tf_keras`` is imported on first use only.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import re
import shutil
import stat
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from explain._quiet import _stderr_silenced, quiet_import
from explain.errors import ModelLoadError
from explain.models import check_zip_sizes

quiet_import()
import keras  # noqa: E402

#: The first 8 bytes of every HDF5 file.
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
#: File name endings of legacy HDF5 model files.
HDF5_SUFFIXES = (".h5", ".hdf5")

_MODEL_CLASSES = frozenset({"Functional", "Sequential", "Model"})
#: TensorFlow functions a Keras 2 ``TFOpLambda`` layer may call: scalar arithmetic only.
_AFFINE_FUNCTIONS = frozenset({"math.truediv", "math.multiply", "math.add", "math.subtract", "__operators__.add"})
#: Keras 2 layer options that Keras 3 lacks, dropped when they hold this value (_ANY: any value).
_ANY = object()
_INERT_OPTIONS = {
    "batch_input_shape": _ANY,  # the model's Input carries the shape
    "rng_type": _ANY,  # random augmentation layers: the generator kind; inert at inference
    "fused": _ANY,  # BatchNormalization: an implementation choice
    "shared_object_id": _ANY,
    "trainable": _ANY,  # copied afterwards for every layer
    "kernel_initializer": _ANY,  # SeparableConv2D inherits unused kernel_* options in Keras 2
    "kernel_regularizer": _ANY,
    "kernel_constraint": _ANY,
    "groups": 1,
    "virtual_batch_size": None,
    "adjustment": None,
    "noise_shape": None,
    "time_major": False,  # recurrent layers: Keras 3 is always batch-major
    "implementation": _ANY,  # recurrent layers: how Keras 2 batched the gate products
}
#: Built-in Keras 2 layers that are refused all the same: they read files named in their config
#: (vocabularies, SavedModels), hold feature columns, or are abstract base classes.
_REFUSED_LAYERS = frozenset(
    {"DenseFeatures", "StringLookup", "IntegerLookup", "TextVectorization", "Hashing", "HashedCrossing"}
    | {"DynamicEmbedding", "DynamicLookup", "TFSMLayer", "Layer", "Wrapper", "PreprocessingLayer", "AbstractRNNCell"}
)
_RENAMED_OPTIONS = {"LeakyReLU": {"alpha": "negative_slope"}}
_RENAMED_CLASSES = {"SyncBatchNormalization": "BatchNormalization"}


def _tf_keras():
    with _stderr_silenced():
        import tf_keras
    return tf_keras


# ---------------------------------------------------------------------------------------------
# Which format a path holds
# ---------------------------------------------------------------------------------------------


def legacy_kind(path: Path) -> str | None:
    """Tell whether ``path`` holds a Keras 2 model format that :func:`load_legacy_model` opens.

    Args:
        path: an existing file or folder.

    Returns:
        ``"hdf5"`` (an ``.h5`` / ``.hdf5`` name, or HDF5 magic bytes under any name),
        ``"savedmodel"`` (a folder holding ``saved_model.pb``), ``"savedmodel_zip"`` (a zip
        file with a ``saved_model.pb`` member, or any ``.zip`` file, even a damaged one, but
        one holding Keras 3's ``config.json``), or None for anything else (e.g. a ``.keras``
        archive).
    """
    if path.is_dir():
        return "savedmodel" if (path / "saved_model.pb").is_file() else None
    if path.suffix.lower() in HDF5_SUFFIXES:
        return "hdf5"
    with open(path, "rb") as f:
        if f.read(8) == HDF5_MAGIC:
            return "hdf5"
    is_zip_name = path.suffix.lower() == ".zip"
    if not zipfile.is_zipfile(path):
        return "savedmodel_zip" if is_zip_name else None  # a damaged upload: told so when it is opened
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return "savedmodel_zip" if is_zip_name else None
    if "config.json" in names:
        return None
    if any(PurePosixPath(n).name == "saved_model.pb" for n in names) or is_zip_name:
        return "savedmodel_zip"
    return None


def load_legacy_model(path: str | os.PathLike, source: str | None = None) -> keras.Model:
    """Open a Keras 2 model file safely and return it as an uncompiled Keras 3 model.

    Args:
        path: a legacy HDF5 file, a Keras 2 SavedModel folder, or a ``.zip`` of one.
        source: how messages name the file; defaults to ``str(path)``.

    Returns:
        The Keras 3 ``keras.Model`` (``keras.Sequential`` when the file holds one).

    Raises:
        ModelLoadError: the file is damaged, holds weights only, is not a Keras 2 model,
            uses a Lambda layer, a custom class or another option explain cannot convert, or
            its weights do not match its architecture. The message names ``source``.
    """
    path = Path(path)
    source = str(path) if source is None else source
    if not path.exists():
        raise ModelLoadError(f"No such model file: {source}. Check the path.")
    kind = legacy_kind(path)
    if kind == "hdf5":
        return convert_to_keras3(_load_tf_keras_h5(path, source), source)
    if kind == "savedmodel":
        return convert_to_keras3(_load_tf_keras_savedmodel(path, source), source)
    if kind == "savedmodel_zip":
        with _extracted_savedmodel(path, source) as folder:
            return convert_to_keras3(_load_tf_keras_savedmodel(folder, source), source)
    raise ModelLoadError(f"{source} is not a Keras 2 model (an HDF5 file or a SavedModel folder).")


# ---------------------------------------------------------------------------------------------
# Reading the architecture without deserialising it
# ---------------------------------------------------------------------------------------------


def _decode_json(text: str | bytes, source: str, what: str) -> dict:
    def hook(d: dict):
        if d.get("class_name") in ("__tuple__", "TensorShape") and "items" in d:
            return d["items"]  # Keras 2's JSON encoding of tuples and shapes
        return d

    try:
        config = json.loads(text.decode("utf-8") if isinstance(text, bytes) else text, object_hook=hook)
    except (UnicodeDecodeError, ValueError, TypeError) as e:
        raise ModelLoadError(f"{source}: its {what} is not valid JSON ({e}); the file is damaged.") from None
    if not isinstance(config, dict) or "class_name" not in config:
        raise ModelLoadError(f"{source}: its {what} does not describe a Keras model; the file is damaged.")
    return config


def read_h5_config(path: Path, source: str | None = None) -> dict:
    """Read a legacy HDF5 model's architecture (the root attribute ``model_config``) with h5py.

    Nothing is deserialised: the result is plain JSON data.

    Args:
        path: the HDF5 file.
        source: how messages name the file; defaults to ``str(path)``.

    Returns:
        The model config ``{"class_name": ..., "config": {...}}``.

    Raises:
        ModelLoadError: empty, truncated or damaged file; an HDF5 file holding weights only
            (``save_weights``) or no Keras model at all; unreadable JSON.
    """
    import h5py

    source = str(path) if source is None else source
    if path.stat().st_size == 0:
        raise ModelLoadError(f"{source} is empty (0 bytes); it is not a Keras model. Copy or download it again.")
    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
            version = f.attrs.get("keras_version", b"")
            weights_only = "layer_names" in f.attrs or ("vars" in f and "layers" in f)
    except OSError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelLoadError(
            f"{source} is not a readable HDF5 file: it is truncated or damaged ({first[:200]}). "
            "Copy or download it again."
        ) from None
    if raw is None and weights_only:
        raise ModelLoadError(
            f"{source} holds model weights only (written by save_weights), not the architecture. explain needs "
            "a whole model: build the model with the code that made it, load these weights, and save it with "
            "model.save('model.keras'), or supply the full model file."
        )
    if raw is None:
        raise ModelLoadError(f"{source} is an HDF5 file but not a Keras model: it has no 'model_config' attribute.")
    version = version.decode("utf-8", "replace") if isinstance(version, bytes) else str(version)
    if version.startswith("3."):
        raise ModelLoadError(
            f"{source} is a legacy HDF5 model written by Keras {version}; explain opens Keras 2 HDF5 files, and "
            "Keras 3 models as '.keras' files. Re-save it with model.save('model.keras') where you trust it."
        )
    return _decode_json(raw, source, "model_config")


def read_savedmodel_config(folder: Path, source: str | None = None) -> dict:
    """Read a Keras 2 SavedModel's architecture from ``keras_metadata.pb``.

    The file is parsed as a ``SavedMetadata`` protobuf; the node with ``node_path == "root"``
    carries the model's config as JSON. Nothing is deserialised or run.

    Args:
        folder: the SavedModel folder (holding ``saved_model.pb``).
        source: how messages name the model; defaults to ``str(folder)``.

    Returns:
        The model config ``{"class_name": ..., "config": {...}}``.

    Raises:
        ModelLoadError: no ``keras_metadata.pb`` (a SavedModel not written by Keras), or a
            damaged one, or one without a root model config (a subclassed model).
    """
    source = str(folder) if source is None else source
    meta = folder / "keras_metadata.pb"
    if not meta.is_file():
        raise ModelLoadError(
            f"{source}: this TensorFlow SavedModel directory has no keras_metadata.pb: it was not written by "
            "Keras 2's model.save (but e.g. by tf.saved_model.save or Keras 3's model.export), so explain cannot "
            "read its layers safely. Save the Keras model with model.save('model.keras') instead."
        )
    with _stderr_silenced():
        from tf_keras.protobuf import saved_metadata_pb2
    from google.protobuf.message import DecodeError

    saved = saved_metadata_pb2.SavedMetadata()
    try:
        saved.ParseFromString(meta.read_bytes())
    except DecodeError:
        raise ModelLoadError(f"{source}: keras_metadata.pb is damaged. Copy the SavedModel folder again.") from None
    roots = [n for n in saved.nodes if n.node_path == "root"]
    if not roots:
        raise ModelLoadError(f"{source}: keras_metadata.pb describes no root model; the SavedModel is damaged.")
    meta_json = _decode_json(roots[0].metadata, source, "keras_metadata.pb root entry")
    if not isinstance(meta_json.get("config"), dict | list):
        raise ModelLoadError(
            f"{source} holds a subclassed Keras model ({meta_json['class_name']}) without a layer config; "
            "explain reads Sequential and functional models only. Rebuild it as one and re-save."
        )
    return {"class_name": meta_json["class_name"], "config": meta_json["config"]}


# ---------------------------------------------------------------------------------------------
# Checking the architecture before anything is built
# ---------------------------------------------------------------------------------------------


@functools.cache
def _builtin_names() -> dict[str, frozenset[str]]:
    """Class and function names of Keras 2's built-in layers, activations, initializers, ..."""
    tfk = _tf_keras()

    def public(module) -> set[str]:
        return {n for n in dir(module) if not n.startswith("_")} - {"get", "serialize", "deserialize"}

    layer_modules = (tfk.layers, tfk.layers.experimental, tfk.layers.experimental.preprocessing)
    layers = {
        n
        for m in layer_modules
        for n, obj in vars(m).items()
        if inspect.isclass(obj) and issubclass(obj, tfk.layers.Layer)
    }
    return {
        "layer": frozenset(layers | _MODEL_CLASSES | {"InputLayer", "TFOpLambda", "SlicingOpLambda"}),
        "activation": frozenset(public(tfk.activations)),
        "initializer": frozenset(public(tfk.initializers)),
        "regularizer": frozenset(public(tfk.regularizers)),
        "constraint": frozenset(public(tfk.constraints)),
        "dtype policy": frozenset({"Policy", "DTypePolicy"}),
    }


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
    return f"{module}.{cls}" if module and not _is_keras_module(module) else str(cls)


def _is_keras_module(module: str) -> bool:
    return module.split(".")[0] in ("keras", "tf_keras")


def _is_builtin(entry: dict, kind: str) -> bool:
    cls, module, registered = entry.get("class_name"), entry.get("module"), entry.get("registered_name")
    return (
        isinstance(cls, str)
        and cls in _builtin_names()[kind]
        and (module is None or (isinstance(module, str) and _is_keras_module(module)))
        and registered in (None, cls)
    )


def _refuse_code(source: str, path: str, what: str) -> ModelLoadError:
    return ModelLoadError(
        f"{source}: layer '{path}' {what}; explain never runs code from a model file. "
        "Replace it with built-in Keras layers and re-save the model."
    )


def scan_config(config: dict, source: str) -> None:
    """Check a Keras 2 model config before anything in it is deserialised.

    Every layer, also inside nested models, must be a built-in Keras layer; its activation,
    initializers, regularizers, constraints and dtype policy must be built-in too.
    ``Lambda`` layers, custom classes (a non-Keras ``module`` or a ``registered_name`` with a
    package prefix) and ``TFOpLambda`` layers other than scalar arithmetic are refused.

    Args:
        config: ``{"class_name": ..., "config": ...}`` from :func:`read_h5_config` or
            :func:`read_savedmodel_config`.
        source: how messages name the file.

    Raises:
        ModelLoadError: the first offending layer, by path (``"base/my_layer"``) and class.
    """
    if not _is_builtin(config, "layer"):
        raise ModelLoadError(
            f"{source}: the model is a custom class '{_describe(config)}', not a Keras Sequential or functional "
            "model; explain never runs code from a model file. Rebuild it from built-in Keras layers and re-save it."
        )
    if config.get("class_name") not in _MODEL_CLASSES:
        raise ModelLoadError(
            f"{source} holds a {config.get('class_name')} layer, not a Sequential or functional model."
        )
    _scan_model(config, source, "")


def _model_layers(entry: dict, source: str, path: str) -> list:
    cfg = entry.get("config")
    layers = cfg.get("layers") if isinstance(cfg, dict) else cfg  # Keras <= 2.2 wrote a Sequential as a list
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        raise ModelLoadError(f"{source}: the config of model '{path or entry.get('class_name')}' lists no layers.")
    return layers


def _scan_model(entry: dict, source: str, prefix: str) -> None:
    for layer in _model_layers(entry, source, prefix.rstrip("/")):
        _scan_layer(layer, source, prefix)


def _scan_layer(entry: dict, source: str, prefix: str) -> None:
    cfg = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    path = prefix + str(entry.get("name") or cfg.get("name") or "?")
    cls = entry.get("class_name")
    if cls == "Lambda":
        raise _refuse_code(source, path, "is a Lambda layer (Python code)")
    if cls in _REFUSED_LAYERS:
        raise ModelLoadError(
            f"{source}: layer '{path}' is a {cls} layer, which explain does not open: it may read files named in "
            "the model or call functions. Remove it from the model and re-save."
        )
    if not _is_builtin(entry, "layer"):
        raise _refuse_code(source, path, f"is a custom class '{_describe(entry)}', not a built-in Keras layer")
    if cls in _MODEL_CLASSES:
        _scan_model(entry, source, path + "/")
    elif cls == "TFOpLambda":
        nodes = entry.get("inbound_nodes")
        if not isinstance(nodes, list) or len(nodes) != 1:
            raise _tf_op_error(source, path, cfg.get("function"), "it is called more than once")
        _affine(cfg.get("function"), nodes[0], source, path)
    elif cls == "SlicingOpLambda":
        raise _tf_op_error(source, path, cfg.get("function"), "it slices a tensor")
    else:
        _scan_options(cfg, source, path)


def _scan_options(cfg: dict, source: str, path: str) -> None:
    names = _builtin_names()
    for key, value in cfg.items():
        kind = _option_kind(key)
        if kind == "layer":
            for inner in value if isinstance(value, list) else [value]:
                if isinstance(inner, dict):
                    _scan_layer(inner, source, path + "/")
        elif kind is None:
            if "class_name" in json.dumps(value):
                raise _refuse_code(source, path, f"has an object in its option '{key}' that explain does not know")
        elif isinstance(value, str) and kind != "dtype policy" and value not in names[kind]:
            raise _refuse_code(source, path, f"uses {key} '{value}', which is not a built-in Keras {kind}")
        elif isinstance(value, dict) and not _is_builtin(value, kind):
            raise _refuse_code(source, path, f"uses {key} '{_describe(value)}', not a built-in Keras {kind}")
        elif value is not None and not isinstance(value, str | dict):
            raise _refuse_code(source, path, f"has an unreadable {key} {value!r}")


def _tf_op_error(source: str, path: str, function, why: str) -> ModelLoadError:
    return ModelLoadError(
        f"{source}: layer '{path}' is a TensorFlow operation (tf.{function}) and {why}; explain converts only "
        "scalar arithmetic such as x / 127.5 - 1. Replace it with built-in Keras layers (e.g. Rescaling) and re-save."
    )


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _affine(function, node, source: str, path: str) -> tuple[float, float, list]:
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


# ---------------------------------------------------------------------------------------------
# Building the Keras 2 model (after the scan) and loading its weights
# ---------------------------------------------------------------------------------------------


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:300]


def _build_tf_keras(config: dict, source: str):
    """Build the scanned config as an uncompiled ``tf_keras`` model (no weights yet)."""
    tfk = _tf_keras()
    from tf_keras.src.saving.serialization_lib import SafeModeScope

    try:
        with SafeModeScope(True):  # a second guard: Keras 2 itself refuses lambdas the scan let through
            model = tfk.models.model_from_config(config)
    except Exception as e:  # Keras 2 raises many types for configs it cannot build
        raise ModelLoadError(
            f"{source}: Keras 2 could not rebuild the model from its config: {_first_line(e)}"
        ) from None
    _restore_trainable(model, config)
    return model


def _restore_trainable(tf_model, entry: dict) -> None:
    """Set ``trainable`` as the config says; Keras 2 drops it for nested models (a frozen base)."""
    cfg = entry.get("config")
    if isinstance(cfg, dict) and isinstance(cfg.get("trainable"), bool):
        tf_model.trainable = cfg["trainable"]  # also sets every sublayer, as Keras did when it was saved
    for layer_entry in _model_layers(entry, "", tf_model.name):
        layer_cfg = layer_entry.get("config")
        if layer_entry.get("class_name") == "InputLayer" or not isinstance(layer_cfg, dict):
            continue
        layer = tf_model.get_layer(layer_entry.get("name") or layer_cfg.get("name"))
        if layer_entry.get("class_name") in _MODEL_CLASSES:
            _restore_trainable(layer, layer_entry)
        elif isinstance(layer_cfg.get("trainable"), bool):
            layer.trainable = layer_cfg["trainable"]


def _load_tf_keras_h5(path: Path, source: str):
    """Read, scan and build a legacy HDF5 model with ``tf_keras``, weights included."""
    import h5py

    config = read_h5_config(path, source)
    scan_config(config, source)
    model = _build_tf_keras(config, source)
    _tf_keras()
    from tf_keras.src.saving.legacy.hdf5_format import load_weights_from_hdf5_group

    try:
        with h5py.File(path, "r") as f:
            load_weights_from_hdf5_group(f["model_weights"], model)
    except (OSError, ValueError, KeyError, RuntimeError) as e:  # KeyError: no weights group at all
        raise ModelLoadError(
            f"{source}: its weights could not be read ({_first_line(e)}); the file is damaged or does not match "
            "its architecture. Copy it again, or re-save the model."
        ) from None
    return model


def _load_tf_keras_savedmodel(folder: Path, source: str):
    """Read, scan and build a Keras 2 SavedModel with ``tf_keras``; weights from ``variables/``.

    The SavedModel's graph (``saved_model.pb``) is never loaded: no function from the file runs.
    """
    import tensorflow as tf

    config = read_savedmodel_config(folder, source)
    scan_config(config, source)
    prefix = folder / "variables" / "variables"
    if not prefix.with_name("variables.index").is_file():
        raise ModelLoadError(
            f"{source}: the SavedModel's weights are missing (no variables/variables.index). "
            "Copy the whole SavedModel folder, including its variables/ folder."
        )
    model = _build_tf_keras(config, source)
    try:
        status = tf.train.Checkpoint(root=model).read(str(prefix))
        status.expect_partial()  # the checkpoint also holds the optimizer and the saved functions
        status.assert_existing_objects_matched()  # ... but every weight of the model must be there
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise ModelLoadError(
            f"{source}: the weights in variables/ do not fit the model ({_first_line(e)}). "
            "Copy the SavedModel folder again, without mixing files of different models."
        ) from None
    return model


# ---------------------------------------------------------------------------------------------
# A SavedModel folder uploaded as a .zip file
# ---------------------------------------------------------------------------------------------


def _check_member(info: zipfile.ZipInfo, source: str) -> None:
    name = info.filename
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name) or ".." in parts:
        raise ModelLoadError(
            f"{source}: member {name!r} points outside the zip file's folder; refusing the archive. "
            "Zip the SavedModel folder itself (e.g. zip -r model.zip my_model)."
        )
    if stat.S_ISLNK(info.external_attr >> 16):
        raise ModelLoadError(f"{source}: member {name!r} is a symbolic link; refusing the archive. Zip real files.")


def _savedmodel_member_folder(infos: list[zipfile.ZipInfo], source: str) -> PurePosixPath:
    folders = [
        PurePosixPath(i.filename).parent
        for i in infos
        if PurePosixPath(i.filename).name == "saved_model.pb" and len(PurePosixPath(i.filename).parts) <= 2
    ]
    if not folders:
        raise ModelLoadError(
            f"{source} is a zip file but holds no SavedModel (saved_model.pb at its top or in one folder) and no "
            "Keras 3 model (config.json). Zip a SavedModel folder, or upload a '.keras' or '.h5' file."
        )
    if len(folders) > 1:
        raise ModelLoadError(f"{source} holds {len(folders)} SavedModel folders; zip one model only.")
    return folders[0]


@contextmanager
def _extracted_savedmodel(path: Path, source: str):
    """Check a zip file like a ``.keras`` archive, unpack it into a temporary folder and yield
    the SavedModel folder inside; the temporary folder is removed afterwards."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise ModelLoadError(f"{source} is a damaged zip file ({e}). Copy or download it again.") from None
    with zf:
        infos = zf.infolist()
        check_zip_sizes(source, infos)
        for info in infos:
            _check_member(info, source)
        folder = _savedmodel_member_folder(infos, source)
        root = Path(tempfile.mkdtemp(prefix="explain-savedmodel-")).resolve()
        try:
            for info in infos:
                if not (root / info.filename).resolve().is_relative_to(root):
                    raise ModelLoadError(f"{source}: member {info.filename!r} points outside the zip file's folder.")
                try:
                    zf.extract(info, root)
                except (zipfile.BadZipFile, OSError, EOFError) as e:
                    raise ModelLoadError(f"{source} is a damaged zip file ({e}). Copy or download it again.") from None
            yield root / folder
        finally:
            shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Converting a tf_keras model to Keras 3
# ---------------------------------------------------------------------------------------------


def convert_to_keras3(tf_model, source: str | None = None) -> keras.Model:
    """Rebuild a Keras 2 (``tf_keras``) Sequential or functional model as a Keras 3 model.

    Every layer is rebuilt from its ``get_config()`` (translated to Keras 3's options) with
    the same name; a Sequential model stays ``keras.Sequential``, a functional one is wired
    like the original, a nested model stays a nested model of the same name (so layer paths
    such as ``"base/conv_1"`` still work). Weights are copied with shape checks, and every
    layer's ``trainable`` flag is copied. ``TFOpLambda`` scalar arithmetic becomes a
    ``Rescaling`` layer of the same name. Nothing is compiled.

    Args:
        tf_model: a ``tf_keras.Model`` (Sequential or functional), e.g. built from a file.
        source: how messages name the model's file; defaults to the model's name.

    Returns:
        The Keras 3 model.

    Raises:
        ModelLoadError: what :func:`scan_config` refuses (a Lambda layer, a custom class, ...),
            a layer that has no Keras 3 equivalent or uses an option Keras 3 lacks (named with
            its path and class), a subclassed model, or mismatched weights.
    """
    source = tf_model.name if source is None else source
    tfk = _tf_keras()
    if isinstance(tf_model, tfk.Sequential):
        cls = "Sequential"
    else:
        cls = "Functional" if getattr(tf_model, "_is_graph_network", False) else type(tf_model).__name__
    scan_config({"class_name": cls, "config": tf_model.get_config()}, source)  # also for models built in memory
    model = _convert_model(tf_model, source, None)
    _copy_weights(tf_model, model, source, "")
    _copy_trainable(tf_model, model)
    return model


def _convert_model(tf_model, source: str, prefix: str | None) -> keras.Model:
    """Convert a (possibly nested) model; ``prefix`` is the path of its parent ("a/"), None at the top."""
    tfk = _tf_keras()
    if isinstance(tf_model, tfk.Sequential):
        return _convert_sequential(tf_model, source, prefix)
    if isinstance(tf_model, tfk.Model) and getattr(tf_model, "_is_graph_network", False):
        return _convert_functional(tf_model, source, prefix)
    raise ModelLoadError(
        f"{source}: model '{prefix or ''}{tf_model.name}' is a subclassed Keras model ({type(tf_model).__name__}); "
        "explain converts Sequential and functional models only."
    )


def _model_paths(tf_model, prefix: str | None) -> tuple[str, str]:
    """A model's path for messages and the prefix of its layers' paths (none for the outer model)."""
    if prefix is None:
        return tf_model.name, ""
    return prefix + tf_model.name, prefix + tf_model.name + "/"


def _input(cfg: dict, source: str, path: str):
    shape = cfg.get("batch_input_shape") or cfg.get("batch_shape")
    if not isinstance(shape, list | tuple) or cfg.get("sparse") or cfg.get("ragged"):
        raise ModelLoadError(f"{source}: input '{path}' is not a dense tensor of known rank; explain cannot read it.")
    return keras.Input(batch_shape=tuple(shape), dtype=cfg.get("dtype") or "float32", name=cfg["name"])


def _convert_sequential(tf_model, source: str, prefix: str | None) -> keras.Sequential:
    entries = tf_model.get_config()["layers"]
    path, inner = _model_paths(tf_model, prefix)
    if entries and entries[0]["class_name"] == "InputLayer":
        inp = _input(entries[0]["config"], source, inner + entries[0]["config"]["name"])
        entries = entries[1:]
    elif tf_model.inputs:
        inp = keras.Input(batch_shape=tuple(tf_model.inputs[0].shape), dtype=tf_model.inputs[0].dtype.name)
    else:
        raise ModelLoadError(f"{source}: Sequential model '{path}' has no input shape; explain cannot convert it.")
    if [e["config"]["name"] for e in entries] != [layer.name for layer in tf_model.layers]:
        raise ModelLoadError(f"{source}: the config of Sequential model '{path}' does not list its layers.")
    layers = [_convert_layer(t, e, source, inner) for t, e in zip(tf_model.layers, entries, strict=True)]
    try:
        return keras.Sequential([inp, *layers], name=tf_model.name)
    except Exception as e:  # a layer that Keras 3 cannot call on this input
        raise ModelLoadError(f"{source}: Keras 3 could not rebuild model '{path}': {_first_line(e)}") from None


def _convert_functional(tf_model, source: str, prefix: str | None) -> keras.Model:
    from tf_keras.src.engine.functional import _should_skip_first_node

    cfg = tf_model.get_config()
    path, inner = _model_paths(tf_model, prefix)
    outputs: dict[tuple[str, int], list] = {}  # (layer name, node index in the config) -> output tensors
    pending = []
    for entry in cfg["layers"]:
        name = entry["name"]
        if entry["class_name"] == "InputLayer":
            outputs[(name, 0)] = [_input(entry["config"], source, inner + name)]
            continue
        tf_layer = tf_model.get_layer(name)
        layer = _convert_layer(tf_layer, entry, source, inner)
        skip = int(_should_skip_first_node(tf_layer))  # a nested model's own first node is not listed
        for i, node in enumerate(entry["inbound_nodes"]):
            pending.append((name, layer, skip + i, *_node_inputs(entry, node, source, inner)))
    while pending:
        ready = [p for p in pending if all((r[0], r[1]) in outputs for r in p[3])]
        if not ready:
            raise ModelLoadError(f"{source}: the layers of model '{path}' cannot be connected; the file is damaged.")
        for name, layer, index, refs, kwargs in ready:
            tensors = [outputs[(r[0], r[1])][r[2]] for r in refs]
            outputs[(name, index)] = _call(layer, tensors, kwargs, source, inner + name)
        pending = [p for p in pending if all(p is not r for r in ready)]
    ins = [outputs[(n, i)][t] for n, i, t in _coordinates(cfg["input_layers"], source, path)]
    outs = [outputs[(n, i)][t] for n, i, t in _coordinates(cfg["output_layers"], source, path)]
    try:
        return keras.Model(ins[0] if len(ins) == 1 else ins, outs[0] if len(outs) == 1 else outs, name=tf_model.name)
    except Exception as e:
        raise ModelLoadError(f"{source}: Keras 3 could not rebuild model '{path}': {_first_line(e)}") from None


def _coordinates(value, source: str, path: str) -> list:
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, list) and len(v) == 3 for v in value):
        raise ModelLoadError(f"{source}: model '{path}' has inputs or outputs that are not a list of tensors.")
    return value


def _node_inputs(entry: dict, node, source: str, prefix: str) -> tuple[list, dict]:
    """The ``[layer, node, tensor]`` references one Keras 2 inbound node reads, and its call arguments."""
    if entry["class_name"] == "TFOpLambda":  # becomes Rescaling: its one tensor operand, no arguments
        return [_affine(entry["config"].get("function"), node, source, prefix + entry["name"])[2]], {}
    refs = [node] if isinstance(node[0], str) else node
    kwargs = dict(refs[0][3]) if len(refs[0]) > 3 and isinstance(refs[0][3], dict) else {}
    if kwargs.get("mask", 0) is None:
        del kwargs["mask"]
    if set(kwargs) - {"training"} or not isinstance(kwargs.get("training", False), bool | None):
        raise ModelLoadError(
            f"{source}: layer '{prefix}{entry['name']}' is called with arguments {sorted(kwargs)}, "
            "which explain cannot convert."
        )
    return [r[:3] for r in refs], kwargs


def _call(layer, tensors: list, kwargs: dict, source: str, path: str) -> list:
    try:
        out = layer(tensors[0] if len(tensors) == 1 else tensors, **kwargs)
    except Exception as e:  # the layer does not accept this input in Keras 3
        raise ModelLoadError(f"{source}: Keras 3 could not rebuild layer '{path}': {_first_line(e)}") from None
    return list(keras.tree.flatten(out))


def _convert_layer(tf_layer, entry: dict, source: str, prefix: str):
    """One Keras 2 layer as a Keras 3 layer of the same name (weights are copied later)."""
    cls = entry["class_name"]
    path = prefix + tf_layer.name
    if cls in _MODEL_CLASSES:
        return _convert_model(tf_layer, source, prefix)
    if cls == "TFOpLambda":
        scale, offset, _ = _affine(entry["config"].get("function"), entry["inbound_nodes"][0], source, path)
        return keras.layers.Rescaling(scale, offset, name=tf_layer.name, dtype=tf_layer.dtype)
    k3_cls = getattr(keras.layers, _RENAMED_CLASSES.get(cls, cls), None)
    if not (inspect.isclass(k3_cls) and issubclass(k3_cls, keras.layers.Layer)):
        raise ModelLoadError(
            f"{source}: layer '{path}' is a {cls} layer, which Keras 3 does not have; explain cannot convert it. "
            "Replace it with other built-in layers and re-save."
        )
    config = _keras3_config(cls, tf_layer.get_config(), k3_cls, source, path)
    try:
        return k3_cls.from_config(config)
    except Exception as e:  # Keras 3 refuses an option value
        raise ModelLoadError(
            f"{source}: layer '{path}' ({cls}) cannot be rebuilt in Keras 3: {_first_line(e)}"
        ) from None


@functools.cache
def _accepted_options(k3_cls) -> frozenset[str]:
    """The options a Keras 3 layer class takes (its own and, through ``**kwargs``, the base Layer's)."""
    params = inspect.signature(k3_cls.__init__).parameters
    names = set(params) - {"self", "kwargs"}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        names |= set(inspect.signature(keras.layers.Layer.__init__).parameters) - {"self", "kwargs"}
    return frozenset(names)


def _keras3_config(cls: str, cfg: dict, k3_cls, source: str, path: str) -> dict:
    """Translate a Keras 2 layer config to the options of the Keras 3 class ``k3_cls``."""
    cfg = dict(cfg)
    if isinstance(cfg.get("dtype"), dict):  # a dtype policy, e.g. mixed_float16
        cfg["dtype"] = cfg["dtype"].get("config", {}).get("name", "float32")
    for old, new in _RENAMED_OPTIONS.get(cls, {}).items():
        if old in cfg:
            cfg[new] = cfg.pop(old)
    if isinstance(cfg.get("axis"), list) and len(cfg["axis"]) == 1 and "Batch" in cls:
        cfg["axis"] = cfg["axis"][0]
    if cfg.get("activation") == "hard_sigmoid":
        raise ModelLoadError(
            f"{source}: layer '{path}' uses the hard_sigmoid activation, which Keras 3 computes differently "
            "(x / 6 + 0.5 instead of 0.2 * x + 0.5); explain cannot convert it exactly."
        )
    accepted = _accepted_options(k3_cls)
    for key in list(cfg):
        if key in accepted:
            if _option_kind(key) in ("initializer", "regularizer", "constraint"):
                _keras3_object(cfg, key)
            continue
        inert = _INERT_OPTIONS.get(key, _MISSING)
        if inert is _ANY or (inert is not _MISSING and cfg[key] == inert):
            del cfg[key]
            continue
        raise ModelLoadError(
            f"{source}: layer '{path}' ({cls}) sets {key}={cfg[key]!r}, which Keras 3 does not support; "
            "explain cannot convert it."
        )
    return cfg


_MISSING = object()


def _keras3_object(cfg: dict, key: str) -> None:
    """Turn a (scanned, built-in) initializer/regularizer/constraint into its Keras 3 object.

    They only matter for training; one that Keras 3 cannot read falls back to the class default.
    """
    module = {"initializer": keras.initializers, "regularizer": keras.regularizers, "constraint": keras.constraints}
    value = cfg[key]
    if value is None:
        return
    if isinstance(value, dict):
        value = {"class_name": value.get("class_name"), "config": value.get("config", {})}
    try:
        cfg[key] = module[_option_kind(key)].get(value)
    except Exception:  # e.g. an option name that Keras 3 renamed
        del cfg[key]


def _sublayer_pairs(tf_model, model: keras.Model):
    """Pairs ``(tf_keras layer, Keras 3 layer)`` of a model's direct layers, inputs left out."""
    for tf_layer in tf_model.layers:
        if type(tf_layer).__name__ != "InputLayer":
            yield tf_layer, model.get_layer(tf_layer.name)


def _copy_weights(tf_model, model: keras.Model, source: str, prefix: str) -> None:
    tfk = _tf_keras()
    for tf_layer, layer in _sublayer_pairs(tf_model, model):
        if isinstance(tf_layer, tfk.Model):
            _copy_weights(tf_layer, layer, source, prefix + tf_layer.name + "/")
        else:
            _copy_layer_weights(tf_layer, layer, source, prefix + tf_layer.name)


def _copy_layer_weights(tf_layer, layer, source: str, path: str) -> None:
    values = tf_layer.get_weights()
    names = [w.name.split("/")[-1].split(":")[0] for w in tf_layer.weights]
    targets = layer.weights
    if len(values) != len(targets):
        raise ModelLoadError(
            f"{source}: layer '{path}' has {len(values)} weights in Keras 2 but {len(targets)} in Keras 3; "
            "explain cannot convert it."
        )
    target_names = [v.name for v in targets]
    if sorted(names) == sorted(target_names) and len(set(names)) == len(names):
        values = [values[names.index(n)] for n in target_names]  # match by name where the names agree
    for value, target in zip(values, targets, strict=True):
        if tuple(value.shape) != tuple(target.shape):
            raise ModelLoadError(
                f"{source}: layer '{path}': weight {target.name} has shape {tuple(value.shape)} in Keras 2 but "
                f"{tuple(target.shape)} in Keras 3; explain cannot convert it."
            )
    layer.set_weights(values)
    if callable(getattr(layer, "finalize_state", None)):
        layer.finalize_state()  # e.g. an adapted Normalization caches its mean and variance


def _copy_trainable(tf_model, model: keras.Model) -> None:
    """Copy ``trainable`` flags: the model's first (Keras sets it on all sublayers), then each layer's."""
    model.trainable = tf_model.trainable
    tfk = _tf_keras()
    for tf_layer, layer in _sublayer_pairs(tf_model, model):
        if isinstance(tf_layer, tfk.Model):
            _copy_trainable(tf_layer, layer)
        else:
            layer.trainable = tf_layer.trainable
