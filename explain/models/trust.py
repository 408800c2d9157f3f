"""The user's own code, by explicit trust: the Python file that defines their custom layers.

explain never runs code from a model file (docs/architecture.md, contracts). A model built with
custom layers (a Vision Transformer's ``Patches`` and ``PatchEncoder`` from the keras.io
example) cannot be rebuilt without their classes, so the user passes the file that defines them:
``--trust-code my_layers.py`` on every CLI, ``load_model(path, trusted_code="my_layers.py")``
from Python, ``streamlit run app.py -- --trust-code my_layers.py`` for the dashboard (never
from an upload). The file is imported as a module of its own; the classes and functions it
defines become the ``custom_objects`` the model is deserialised with, and, because the user
vouches for the model, ``Lambda`` layers load too (Keras's safe mode off).

:func:`custom_classes` lists the classes a config names that are not Keras's own, so that a
refusal can name them all and show the flag.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path

from explain.errors import ModelLoadError

#: The flag, as messages show it.
FLAG = "--trust-code"
#: Keras's own model library, whose classes load without the flag when it is installed.
KERAS_HUB = "keras_hub"

_LOADED: dict[tuple[str, int, int], dict[str, object]] = {}


def _one_path(path: str | os.PathLike) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise ModelLoadError(f"No such trusted code file: {path}. Give the Python file that defines your layers.")
    if p.suffix != ".py":
        raise ModelLoadError(f"Trusted code must be a Python file (.py), got {path}.")
    return p.resolve()


def _import(path: Path) -> dict[str, object]:
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key in _LOADED:
        return _LOADED[key]
    name = f"explain_trusted_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # classes defined in it can be pickled and inspected
    sys.path.insert(0, str(path.parent))  # its own imports of files beside it
    try:
        spec.loader.exec_module(module)
    except BaseException as e:  # SystemExit and KeyboardInterrupt from the user's file too
        sys.modules.pop(name, None)
        if isinstance(e, KeyboardInterrupt):
            raise
        frames = [f for f in traceback.extract_tb(e.__traceback__) if Path(f.filename).resolve() == path]
        where = f" (line {frames[-1].lineno})" if frames else ""
        text = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ModelLoadError(
            f"The trusted code {path.name} raised {type(e).__name__}{where} when imported"
            + (f": {text[:300]}" if text else "")
            + ". Fix the file, or run it with python to see the whole error."
        ) from None
    finally:
        if sys.path and sys.path[0] == str(path.parent):
            sys.path.pop(0)
    objects = {
        n: obj
        for n, obj in vars(module).items()
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and getattr(obj, "__module__", None) == name
    }
    _LOADED[key] = objects
    return objects


def load_trusted_code(paths: str | os.PathLike | Sequence[str | os.PathLike] | None) -> dict[str, object]:
    """Import the user's own Python files and return the classes and functions they define.

    Each file is imported once per version (path, modification time, size); its folder is on
    ``sys.path`` while it is imported, so it can import files beside it.

    Args:
        paths: one ``.py`` file, several, or None.

    Returns:
        ``{name: class or function}`` defined in the files (later files win), for
        ``custom_objects``. Empty for None.

    Raises:
        ModelLoadError: a missing file, not a ``.py`` file, or one that raises when imported
            (its exception type, line and message, no traceback).
    """
    if paths is None:
        return {}
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    objects: dict[str, object] = {}
    for p in paths:
        objects.update(_import(_one_path(p)))
    return objects


# ---------------------------------------------------------------------------------------------
# Which classes a config names that are not Keras's own
# ---------------------------------------------------------------------------------------------

#: Keras 3's markers for values that are no class: tensors, tuples, arrays, functions by name.
_MARKERS = frozenset(
    {"__keras_tensor__", "__tuple__", "__numpy__", "__tensor__", "__bytes__", "__typespec__", "__ellipsis__"}
    | {"__slice__", "__lambda__", "function", "TensorShape"}
)


def class_entries(value) -> Iterator[dict]:
    """Every dict in a JSON document (a model config) that names a class (has a ``class_name``).

    Args:
        value: parsed JSON: dicts, lists and plain values.

    Returns:
        An iterator over those dicts, outermost first.
    """
    for entry, _ in _entries_in_layers(value, "", False):
        yield entry


#: Keys under which a config holds layers (a model's ``layers``, a wrapper's ``layer``, an RNN's ``cell``).
_LAYER_KEYS = frozenset({"layers", "layer", "cell", "cells", "forward_layer", "backward_layer"})


def _entries_in_layers(value, layer: str, is_layer: bool = True) -> Iterator[tuple[dict, str]]:
    """``(dict naming a class, path of the innermost layer holding it)`` for a whole config; the
    top entry and entries under :data:`_LAYER_KEYS` are layers (or models)."""
    if isinstance(value, dict):
        if isinstance(value.get("class_name"), str):
            cfg = value.get("config")
            name = value.get("name") or (cfg.get("name") if isinstance(cfg, dict) else None)
            if is_layer and isinstance(name, str):
                layer = f"{layer}/{name}" if layer else name
            yield value, layer
        for k, v in value.items():
            yield from _entries_in_layers(v, layer, k in _LAYER_KEYS)
    elif isinstance(value, list):
        for v in value:
            yield from _entries_in_layers(v, layer, is_layer)


def class_label(entry: dict) -> str:
    """How a class is named for the user: its registered name (``"keras_hub>ViTBackbone"``,
    ``"Custom>Patches"``), else its module and class (``"my_package.layers.Dense"``), else its
    class name."""
    registered, module, cls = entry.get("registered_name"), entry.get("module"), str(entry["class_name"])
    if isinstance(registered, str) and registered and registered != cls:
        return registered
    if isinstance(module, str) and module and not is_keras_module(module) and module != "__main__":
        return f"{module}.{cls}"
    return cls


def is_keras_module(module) -> bool:
    """Whether a serialised object's ``module`` is Keras's own (``keras``, ``keras.layers``, ...)."""
    return isinstance(module, str) and module.split(".")[0] in ("keras", "tf_keras")


def custom_classes(config: dict, builtin: frozenset[str]) -> dict[str, str]:
    """The classes a model config names that are neither Keras's own nor one of ``builtin``.

    Args:
        config: a model config (Keras 3 ``config.json``, or an HDF5 file's ``model_config``).
        builtin: the class names that count as Keras's own (layers, initializers, ...): an entry
            without a ``module`` (HDF5 configs) is judged by its name against them.

    Returns:
        ``{label: path of the layer that uses it}`` (labels of :func:`class_label`), in the
        order met; ``keras_hub>...`` classes included.
    """
    found: dict[str, str] = {}
    for entry, layer in _entries_in_layers(config, "", False):  # paths start below the model itself
        cls, module = entry["class_name"], entry.get("module")
        if cls in _MARKERS or module == "builtins":
            continue
        label = class_label(entry)
        custom = (
            (cls not in builtin or label != cls) if module is None else (not is_keras_module(module) or label != cls)
        )
        if custom:
            found.setdefault(label, layer)
    return found


def short_name(label: str) -> str:
    """The bare class name in a label: ``"Custom>Patches"``, ``"pkg.layers.Patches"`` -> ``"Patches"``."""
    return label.split(">")[-1].split(".")[-1]


def missing_classes_error(source: str, missing: dict[str, str], trusted: dict | None) -> ModelLoadError:
    """The one-line refusal for custom classes nobody vouched for, naming them and the flag.

    Args:
        source: how messages name the file.
        missing: ``{class label: layer path}`` (:func:`custom_classes`).
        trusted: the user's objects, or None.
    """
    names = ", ".join(f"{m!r} (layer {where!r})" if where else repr(m) for m, where in missing.items())
    hub = [m for m in missing if m.startswith(KERAS_HUB + ">")]
    if hub and len(hub) == len(missing):
        return ModelLoadError(
            f"{source} is a keras-hub model ({', '.join(map(repr, hub))}); install keras-hub to open it: "
            "pip install 'explain[hub]' (or pip install keras-hub)."
        )
    if trusted:
        defined = ", ".join(sorted(trusted)) or "nothing"
        return ModelLoadError(
            f"{source} uses custom code that the trusted code does not define: {names} (it defines {defined}). "
            f"Add {'them' if len(missing) > 1 else 'it'} to the file you pass with {FLAG}."
        )
    return ModelLoadError(
        f"{source} uses custom code: {names}. explain never runs code from a model file. If this is your own "
        f"code, pass the Python file that defines it: {FLAG} my_layers.py (in Python: "
        "load_model(path, trusted_code='my_layers.py'))."
    )
