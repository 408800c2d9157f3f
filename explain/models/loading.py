"""Load any Keras model file safely: ``.keras``, legacy HDF5 and SavedModel (dispatch), Git LFS pointers,
the activation budget."""

from __future__ import annotations

import json
import math
import os
import re
import sys
import zipfile
from pathlib import Path

from explain._quiet import quiet_import
from explain.archives import check_zip_sizes
from explain.errors import ModelLoadError
from explain.models import legacy
from explain.models.budget import check_declared, declared_weights, deep_copy, default_max_model_mb, h5_weight_bytes
from explain.models.config_scan import REFUSED_LAYERS, Scan, check_custom_classes, hub_class, refused_layer_error
from explain.models.layers import layer_table
from explain.models.trust import FLAG, KERAS_HUB, class_entries, load_trusted_code

quiet_import()
import keras  # noqa: E402


def _check_archive(path: Path) -> None:
    if path.is_dir():
        raise ModelLoadError(
            f"{path} is a directory, not a model file (a SavedModel folder would hold saved_model.pb)."
        )
    if path.stat().st_size == 0:
        raise ModelLoadError(f"{path} is empty (0 bytes); it is not a '.keras' model.")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            head = f.read(8)
        if head.startswith(b"PK\x03\x04"):
            raise ModelLoadError(
                f"{path} is a truncated or damaged '.keras' archive: it starts as a zip file but its end "
                "(the zip directory) is missing. Copy or download the file again."
            )
        raise ModelLoadError(f"{path} is not a '.keras' archive (a '.keras' file is a zip file).")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as e:
        raise ModelLoadError(f"{path} is a damaged '.keras' archive ({e}).") from None
    names = {i.filename for i in infos}
    if "config.json" not in names:
        raise ModelLoadError(f"{path} is a zip file but not a Keras 3 model: it has no config.json.")
    check_zip_sizes(path, infos)


#: The first bytes of a Git LFS pointer file (https://github.com/git-lfs/git-lfs/blob/main/docs/spec.md).
LFS_POINTER = b"version https://git-lfs.github.com/spec/"
#: Largest ``config.json`` read from a ``.keras`` archive, in bytes.
MAX_CONFIG_BYTES = 64 * 1024**2


def check_not_lfs_pointer(path: str | os.PathLike, source: str | None = None) -> None:
    """Refuse a Git LFS pointer: the ~130-byte text file ``git clone`` leaves without Git LFS.

    Args:
        path: a file, or a folder (a SavedModel: its files are checked).
        source: how messages name it; defaults to ``str(path)``.

    Raises:
        ModelLoadError: the file (or a file of the folder) is a pointer; the message says to run
            ``git lfs pull``.
    """
    path = Path(path)
    source = str(path) if source is None else source
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()][:1000] if path.is_dir() else []
    for f in files:
        if f.stat().st_size > 1024:
            continue
        with open(f, "rb") as fh:
            if fh.read(len(LFS_POINTER)) == LFS_POINTER:
                what = source if f == path else f"{source}: {f.relative_to(path)}"
                raise ModelLoadError(
                    f"{what} is a Git LFS pointer ({f.stat().st_size} bytes of text), not the model: the repository "
                    "keeps the real file in Git LFS. Run 'git lfs install' and 'git lfs pull' in the clone, or "
                    "download the file from the repository's web page."
                )


def _trusted_objects(trusted_code, custom_objects) -> dict | None:
    """The user's own objects (files' classes and functions, then ``custom_objects``), or None for no trust."""
    if trusted_code is None and custom_objects is None:
        return None
    objects = load_trusted_code(trusted_code)
    objects.update(custom_objects or {})
    return objects


def load_model(
    path: str | os.PathLike,
    *,
    trusted_code: str | os.PathLike | list | tuple | None = None,
    custom_objects: dict | None = None,
    safe_mode: bool | None = None,
    max_model_mb: float | None = None,
) -> keras.Model:
    """Load a Keras model for inference without running code from the file.

    Before anything is built, the file's config is checked: a Git LFS pointer is named as such;
    custom classes and ``Lambda`` layers are refused by name unless the user vouches for them;
    a config that declares more weights than the file holds, or more than the budget, is refused
    (:mod:`explain.models.budget`). A Keras 3 ``.keras`` file is then loaded with Keras safe mode on.
    Legacy files (HDF5 written by Keras 2 or 3, also under another name, a Keras 2 SavedModel
    folder, or a ``.zip`` of one) go through :func:`explain.models.legacy.load_legacy_model`. The model
    is not compiled.

    Args:
        path: a ``.keras`` or ``.h5`` file, a Keras 2 SavedModel folder or a ``.zip`` of one.
        trusted_code: the user's own Python file(s) defining the model's custom layers
            (:func:`explain.models.trust.load_trusted_code`). They are imported, their classes used to
            deserialise, and ``Lambda`` layers load (safe mode off). Never a file from an upload.
        custom_objects: ``{name: class or function}``, as for ``keras.saving.load_model``; like
            ``trusted_code``, it turns safe mode off.
        safe_mode: Keras's safe mode (``Lambda`` layers and other code stored in the file refused).
            None: on, unless ``trusted_code`` or ``custom_objects`` is given. True keeps it on with
            them: the dashboard opens uploads with its start-up classes but never their lambdas.
        max_model_mb: the memory budget for the model's weights, in MB; None for
            :func:`explain.models.budget.default_max_model_mb`.

    Returns:
        The ``keras.Model``.

    Raises:
        ModelLoadError: missing file, a Git LFS pointer, a directory that is no SavedModel, not a
            model file, a damaged or oversized archive, a Lambda layer or custom class nobody
            vouched for, trusted code that fails to import or lacks a class, a config bomb, or any
            other Keras loading failure. One line each.
    """

    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"No such model file: {path}. Check the path.")
    check_not_lfs_pointer(path)
    trusted = _trusted_objects(trusted_code, custom_objects)
    safe = trusted is None if safe_mode is None else bool(safe_mode)
    max_mb = default_max_model_mb() if max_model_mb is None else float(max_model_mb)
    if max_mb <= 0:
        raise ModelLoadError(f"The memory budget must be positive, got {max_model_mb} MB.")
    if legacy.legacy_kind(path) is not None:
        model = legacy.load_legacy_model(path, trusted=trusted, safe_mode=safe, max_model_mb=max_mb)
    else:
        _check_archive(path)
        model = _load_keras_archive(path, trusted, safe, max_mb)
    _check_activations(model, max_mb, str(path))
    return model


def _check_activations(model: keras.Model, max_mb: float, source: str) -> None:
    """Refuse a model one of whose layers outputs more than the budget for one image (a config that
    declares a 100,000 x 100,000 input, or an ``UpSampling2D`` by 1,000, holds no weights to compare
    with). The largest single output, not the sum: a forward pass keeps few of them at once, and big
    real networks (EfficientNetB7 at 600 x 600: 69 MB at most) stay far below. Outputs of a free size
    are not counted: their size is the image's own."""
    sizes = [
        (r.name, 4 * math.prod(r.output_shape[1:]))
        for r in layer_table(model)
        if r.output_shape and all(isinstance(d, int) for d in r.output_shape[1:])
    ]
    if not sizes:
        return
    name, largest = max(sizes, key=lambda s: s[1])
    if largest > max_mb * 1024**2:
        raise ModelLoadError(
            f"{source}: layer {name!r} outputs {largest / 1e9:.1f} GB of activations for one image, more than "
            f"the {max_mb:g} MB allowed; refusing it. Pass --max-model-mb {math.ceil(largest * 1.5 / 1024**2)} "
            "if this machine has the memory."
        )


def _read_archive(path: Path) -> tuple[dict, int]:
    """A ``.keras`` archive's ``config.json`` and the bytes of weights its ``.h5`` members hold."""
    import h5py

    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("config.json")
        if info.file_size > MAX_CONFIG_BYTES:
            raise ModelLoadError(f"{path}: its config.json is {info.file_size / 1024**2:.0f} MB; refusing it.")
        try:
            config = json.loads(zf.read(info).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise ModelLoadError(f"{path}: its config.json is not valid JSON ({e}); the file is damaged.") from None
        holds = 0
        for member in zf.infolist():
            if member.filename.endswith(".h5"):
                try:
                    with zf.open(member) as fh, h5py.File(fh, "r") as f:
                        holds += h5_weight_bytes(f, str(path))
                except OSError as e:
                    raise ModelLoadError(f"{path}: its {member.filename} is damaged ({e}).") from None
            elif member.filename.endswith((".npz", ".weights.json")):
                holds += member.file_size
    if not isinstance(config, dict) or "class_name" not in config:
        raise ModelLoadError(f"{path}: its config.json does not describe a Keras model; the file is damaged.")
    return config, holds


def _load_keras_archive(path: Path, trusted: dict | None, safe: bool, max_mb: float) -> keras.Model:
    """Check a ``.keras`` archive's config (custom classes, config bomb), then load it with Keras."""
    config, holds = _read_archive(path)
    check_custom_classes(config, Scan(str(path), "keras3", trusted), frozenset())  # every entry names its module
    refused = sorted({e["class_name"] for e in class_entries(config) if e["class_name"] in REFUSED_LAYERS})
    if refused:
        raise refused_layer_error(str(path), refused[0])
    custom = dict(trusted or {})
    try:
        declared = declared_weights(
            lambda: _build_from_config(deep_copy(config), custom, safe),
        )
        check_declared(declared, holds, max_mb, str(path))
        model = keras.saving.load_model(path, custom_objects=custom, compile=False, safe_mode=safe)
    except ModelLoadError:
        raise
    except Exception as e:  # Keras raises many types; the user gets one line
        raise _keras_load_error(path, e, trusted, safe) from None
    if not isinstance(model, keras.Model):
        raise ModelLoadError(f"{path} holds a {type(model).__name__}, not a keras.Model.")
    return model


def _build_from_config(config: dict, custom: dict, safe: bool) -> keras.Model:
    """Deserialise a ``.keras`` config as ``keras.saving.load_model(compile=False)`` does (built from
    its ``build_config`` when deserialising does not build it), for :func:`explain.models.budget.declared_weights`.

    Nothing is compiled: the ``compile_config`` is dropped, and keras-hub tasks (which compile
    themselves in ``__init__``, creating optimizer variables that a ``StatelessScope`` refuses)
    are told not to."""
    config.pop("compile_config", None)
    for entry in class_entries(config):
        label = entry.get("registered_name")
        if isinstance(label, str) and label.startswith(KERAS_HUB + ">") and isinstance(entry.get("config"), dict):
            cls = hub_class(label)
            task = getattr(sys.modules.get("keras_hub"), "models", None)
            if cls is not None and task is not None and issubclass(cls, task.Task):
                entry["config"]["compile"] = False
                entry.pop("compile_config", None)
    build_config = config.get("build_config")
    model = keras.saving.deserialize_keras_object(config, custom_objects=custom, safe_mode=safe)
    if not model.built and build_config:
        model.build_from_config(build_config)
    return model


def _keras_load_error(path: Path, e: BaseException, trusted: dict | None, safe: bool) -> ModelLoadError:
    text = str(e).strip()
    msg = text.splitlines()[0] if text else type(e).__name__
    if safe and trusted is not None and ("lambda" in text.lower() or "safe_mode" in text):
        return ModelLoadError(
            f"{path} contains a Lambda layer (Python code stored in the file), which safe mode refuses even with "
            "trusted classes; only a file you trust may be loaded with safe mode off."
        )
    if safe and ("lambda" in text.lower() or "safe_mode" in text):
        return ModelLoadError(
            f"{path} contains a Lambda layer (Python code), which safe mode refuses to load. If the model is your "
            f"own, pass the Python file that defines what it needs with {FLAG}; otherwise replace the Lambda with "
            "a built-in layer and re-save."
        )
    cause = re.search(
        r"(\w+)\.__init__\(\) (got an unexpected keyword argument '\w+'|missing \d+ required .*?'\w+')", text
    )
    if trusted is not None and cause:
        return ModelLoadError(
            f"{path}: the trusted class {cause.group(1)} cannot be rebuilt from its saved config: {cause.group(0)}. "
            "Its __init__ must accept **kwargs (and pass them to super().__init__), and its get_config() return "
            "every argument of __init__; fix the class (and re-save the model if get_config lacked an argument)."
        )
    return ModelLoadError(f"Could not load {path} as a Keras model: {msg[:300]}")


