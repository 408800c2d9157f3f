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
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from explain._quiet import _stderr_silenced, quiet_import
from explain.archives import extract_members, member_path, open_zip
from explain.errors import ModelLoadError
from explain.models.budget import (
    allocation_guard,
    check_declared,
    checkpoint_weight_bytes,
    declared_weights,
    deep_copy,
    default_max_model_mb,
    h5_weight_bytes,
)
from explain.models.config_scan import MODEL_CLASSES, _option_kind, affine, all_builtin, model_layers, scan_config
from explain.models.trust import class_entries, custom_classes

quiet_import()
import keras  # noqa: E402

#: The first 8 bytes of every HDF5 file.
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
#: File name endings of legacy HDF5 model files.
HDF5_SUFFIXES = (".h5", ".hdf5")

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


def load_legacy_model(
    path: str | os.PathLike,
    source: str | None = None,
    *,
    trusted: dict | None = None,
    safe_mode: bool = True,
    max_model_mb: float | None = None,
) -> keras.Model:
    """Open a legacy model file safely and return it as an uncompiled Keras 3 model.

    A Keras 2 file is scanned (:func:`explain.models.config_scan.scan_config`), built with ``tf_keras``
    under the memory guard (:func:`explain.models.budget.allocation_guard`) and converted
    (:func:`convert_to_keras3`). An HDF5 file written by Keras 3 (``model.save("x.h5")``, still
    HDF5 in Keras 3.0-3.14) is scanned against Keras 3's built-ins, its declared weights are
    checked against the file (:func:`explain.models.budget.declared_weights`), and it is read by
    Keras 3's own legacy HDF5 reader in safe mode. A Keras 2 HDF5 file with the user's trusted
    custom layers or ``Lambda`` layers goes the same way, as their code is Keras 3 code.

    Args:
        path: a legacy HDF5 file, a Keras 2 SavedModel folder, or a ``.zip`` of one.
        source: how messages name the file; defaults to ``str(path)``.
        trusted: the user's own classes and functions (``--trust-code``), or None.
        safe_mode: False lets ``Lambda`` layers (code stored in the file) load: only when the
            user vouches for the file.
        max_model_mb: the memory budget for the weights, in MB; None for
            :func:`explain.models.budget.default_max_model_mb`.

    Returns:
        The Keras 3 ``keras.Model`` (``keras.Sequential`` when the file holds one).

    Raises:
        ModelLoadError: the file is damaged, holds weights only, is not a Keras model, uses a
            Lambda layer or a custom class nobody vouched for, or another option explain cannot
            convert; its config declares more weights than the file holds or than the budget;
            its weights do not match its architecture. The message names ``source``.
    """
    path = Path(path)
    source = str(path) if source is None else source
    max_mb = default_max_model_mb() if max_model_mb is None else float(max_model_mb)
    if not path.exists():
        raise ModelLoadError(f"No such model file: {source}. Check the path.")
    kind = legacy_kind(path)
    if kind == "hdf5":
        return _load_h5(path, source, trusted, safe_mode, max_mb)
    if kind == "savedmodel":
        return convert_to_keras3(_load_tf_keras_savedmodel(path, source, trusted, max_mb), source)
    if kind == "savedmodel_zip":
        with _extracted_savedmodel(path, source) as folder:
            return convert_to_keras3(_load_tf_keras_savedmodel(folder, source, trusted, max_mb), source)
    raise ModelLoadError(f"{source} is not a Keras 2 model (an HDF5 file or a SavedModel folder).")


def _load_h5(path: Path, source: str, trusted: dict | None, safe: bool, max_mb: float) -> keras.Model:
    """An HDF5 model file: Keras 3's reader for files written by Keras 3 or holding the user's own
    code, else ``tf_keras`` and the conversion."""
    config, version = read_h5(path, source)
    if version.startswith("3."):
        return _load_keras3_h5(path, source, config, "keras3", trusted, safe, max_mb)
    if (trusted is not None or not safe) and _needs_users_code(config):
        return _load_keras3_h5(path, source, config, "keras2", trusted, safe, max_mb)
    return convert_to_keras3(_load_tf_keras_h5(path, source, config, max_mb), source)


def _needs_users_code(config: dict) -> bool:
    """Whether a Keras 2 config names classes that are not Keras 2's, or holds a Lambda layer."""
    return bool(custom_classes(config, all_builtin("keras2"))) or any(
        e["class_name"] == "Lambda" for e in class_entries(config)
    )


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

    Nothing is deserialised: the result is plain JSON data. :func:`read_h5` also gives the
    Keras version that wrote it.

    Returns:
        The model config ``{"class_name": ..., "config": {...}}``.

    Raises:
        ModelLoadError: as :func:`read_h5`.
    """
    return read_h5(path, source)[0]


def read_h5(path: Path, source: str | None = None) -> tuple[dict, str]:
    """Read a legacy HDF5 model's architecture and the Keras version that wrote it, with h5py.

    Args:
        path: the HDF5 file.
        source: how messages name the file; defaults to ``str(path)``.

    Returns:
        ``(model config {"class_name": ..., "config": {...}}, keras_version)``, the version
        as the file says it (``"2.4.0"``, ``"3.8.0"``; ``""`` when it does not).

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
    return _decode_json(raw, source, "model_config"), version


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
# Building the Keras 2 model (after the scan) and loading its weights
# ---------------------------------------------------------------------------------------------


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:300]


def _build_tf_keras(config: dict, source: str, holds: int, max_mb: float):
    """Build the scanned config as an uncompiled ``tf_keras`` model (no weights yet), refusing
    each weight past what the weights file holds (``holds`` bytes) or the budget before it is
    allocated."""
    tfk = _tf_keras()
    from tf_keras.src.saving.serialization_lib import SafeModeScope

    try:
        with SafeModeScope(True), allocation_guard(holds, max_mb, source):  # Keras 2 refuses lambdas too
            model = tfk.models.model_from_config(config)
    except ModelLoadError:
        raise
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
    for layer_entry in model_layers(entry, "", tf_model.name):
        layer_cfg = layer_entry.get("config")
        if layer_entry.get("class_name") == "InputLayer" or not isinstance(layer_cfg, dict):
            continue
        layer = tf_model.get_layer(layer_entry.get("name") or layer_cfg.get("name"))
        if layer_entry.get("class_name") in MODEL_CLASSES:
            _restore_trainable(layer, layer_entry)
        elif isinstance(layer_cfg.get("trainable"), bool):
            layer.trainable = layer_cfg["trainable"]


def _h5_holds(path: Path, source: str) -> int:
    """Bytes of weights an HDF5 model file holds (its ``model_weights`` group; no data read)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            group = f.get("model_weights")
            return 0 if group is None else h5_weight_bytes(group, source)
    except OSError as e:
        raise ModelLoadError(
            f"{source}: its weights could not be read ({_first_line(e)}); the file is damaged."
        ) from None


def _load_tf_keras_h5(path: Path, source: str, config: dict, max_mb: float):
    """Scan and build a Keras 2 HDF5 model with ``tf_keras``, weights included."""
    import h5py

    scan_config(config, source)
    model = _build_tf_keras(config, source, _h5_holds(path, source), max_mb)
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


def _load_keras3_h5(
    path: Path, source: str, config: dict, flavor: str, trusted: dict | None, safe: bool, max_mb: float
) -> keras.Model:
    """Scan, budget-check and read an HDF5 model with Keras 3's own legacy reader.

    For files written by Keras 3 (``flavor="keras3"``), and Keras 2 files that need the user's own
    (Keras 3) classes. Safe mode stays on unless the user vouched with their code."""
    from keras.src.legacy.saving import legacy_h5_format, saving_utils
    from keras.src.saving.serialization_lib import SafeModeScope

    scan_config(config, source, flavor, trusted, lambdas=not safe)
    custom = dict(trusted or {})
    holds = _h5_holds(path, source)
    try:
        with SafeModeScope(safe):
            declared = declared_weights(lambda: saving_utils.model_from_config(deep_copy(config), custom))
        check_declared(declared, holds, max_mb, source)
        return legacy_h5_format.load_model_from_hdf5(str(path), custom_objects=custom, compile=False, safe_mode=safe)
    except ModelLoadError:
        raise
    except Exception as e:  # Keras raises many types for files it cannot read
        raise ModelLoadError(f"{source}: Keras 3 could not read this HDF5 model: {_first_line(e)}") from None


def _load_tf_keras_savedmodel(folder: Path, source: str, trusted: dict | None, max_mb: float):
    """Read, scan and build a Keras 2 SavedModel with ``tf_keras``; weights from ``variables/``.

    The SavedModel's graph (``saved_model.pb``) is never loaded: no function from the file runs.
    """
    import tensorflow as tf

    config = read_savedmodel_config(folder, source)
    if trusted is not None and _needs_users_code(config):
        raise ModelLoadError(
            f"{source}: a Keras 2 SavedModel with custom or Lambda layers cannot be rebuilt from your code: only "
            "its TensorFlow graph could run them. Load it where it was made and save it as .keras or .h5."
        )
    scan_config(config, source)
    prefix = folder / "variables" / "variables"
    if not prefix.with_name("variables.index").is_file():
        raise ModelLoadError(
            f"{source}: the SavedModel's weights are missing (no variables/variables.index). "
            "Copy the whole SavedModel folder, including its variables/ folder."
        )
    model = _build_tf_keras(config, source, checkpoint_weight_bytes(str(prefix), source), max_mb)
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


#: How to zip a SavedModel folder, for a refused member.
_ZIP_HINT = "Zip the SavedModel folder itself (e.g. zip -r model.zip my_model)."


def _savedmodel_member_folder(infos: list[zipfile.ZipInfo], source: str) -> PurePosixPath:
    paths = [member_path(i) for i in infos]
    folders = [p.parent for p in paths if p.name == "saved_model.pb" and len(p.parts) <= 2]
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
    """Check a zip file like a ``.keras`` archive (``explain.archives``), unpack it into a temporary
    folder and yield the SavedModel folder inside; the temporary folder is removed afterwards."""
    with open_zip(path, source, ModelLoadError, hint=_ZIP_HINT) as (zf, infos):
        folder = _savedmodel_member_folder(infos, source)
        root = Path(tempfile.mkdtemp(prefix="explain-savedmodel-")).resolve()
        try:
            extract_members(zf, infos, root, source, ModelLoadError)
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
        return [affine(entry["config"].get("function"), node, source, prefix + entry["name"])[2]], {}
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
    if cls in MODEL_CLASSES:
        return _convert_model(tf_layer, source, prefix)
    if cls == "TFOpLambda":
        scale, offset, _ = affine(entry["config"].get("function"), entry["inbound_nodes"][0], source, path)
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
