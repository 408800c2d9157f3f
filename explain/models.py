"""Load a ``.keras`` model safely, read its model card, and name its layers.

Layers are addressed by ``int | str`` (docs/architecture.md): an index counts ``model.layers``; a
name may be a path into a nested model, e.g. ``"mobilenetv2_1.00_224/block_16_project"``.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import weakref
import zipfile
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from explain._quiet import quiet_import
from explain.budget import check_declared, declared_weights, deep_copy, default_max_model_mb, h5_weight_bytes
from explain.config_scan import REFUSED_LAYERS, Scan, check_custom_classes, hub_class, refused_layer_error
from explain.errors import ExplainError, LayerError, ModelLoadError
from explain.layouts import image_input_shape, input_layout, layout_note, output_layout
from explain.preprocessing import check_mode, infer_preprocessing
from explain.trust import FLAG, KERAS_HUB, class_entries, load_trusted_code

quiet_import()
import keras  # noqa: E402

#: Largest total uncompressed size accepted inside a ``.keras`` archive, in bytes.
MAX_UNCOMPRESSED_BYTES = 4 * 1024**3
#: Largest compression ratio accepted for one archive member (zip-bomb guard).
MAX_COMPRESSION_RATIO = 200


def check_zip_sizes(path: str | os.PathLike, infos: list[zipfile.ZipInfo]) -> None:
    """Zip-bomb guards for an archive about to be read or unpacked.

    Args:
        path: the archive, as messages name it.
        infos: its members (``ZipFile.infolist()``).

    Raises:
        ModelLoadError: it would unpack to more than :data:`MAX_UNCOMPRESSED_BYTES`, or a member
            over 16 MiB is compressed more than :data:`MAX_COMPRESSION_RATIO`:1.
    """
    total = sum(i.file_size for i in infos)
    if total > MAX_UNCOMPRESSED_BYTES:
        raise ModelLoadError(
            f"{path} would unpack to {total / 1024**3:.1f} GiB, more than the "
            f"{MAX_UNCOMPRESSED_BYTES / 1024**3:.0f} GiB allowed; refusing it as a possible zip bomb."
        )
    for i in infos:
        if i.compress_size and i.file_size / i.compress_size > MAX_COMPRESSION_RATIO and i.file_size > 2**24:
            raise ModelLoadError(
                f"{path}: member {i.filename} is compressed {i.file_size / i.compress_size:.0f}:1; "
                "refusing it as a possible zip bomb."
            )


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
    (:mod:`explain.budget`). A Keras 3 ``.keras`` file is then loaded with Keras safe mode on.
    Legacy files (HDF5 written by Keras 2 or 3, also under another name, a Keras 2 SavedModel
    folder, or a ``.zip`` of one) go through :func:`explain.legacy.load_legacy_model`. The model
    is not compiled.

    Args:
        path: a ``.keras`` or ``.h5`` file, a Keras 2 SavedModel folder or a ``.zip`` of one.
        trusted_code: the user's own Python file(s) defining the model's custom layers
            (:func:`explain.trust.load_trusted_code`). They are imported, their classes used to
            deserialise, and ``Lambda`` layers load (safe mode off). Never a file from an upload.
        custom_objects: ``{name: class or function}``, as for ``keras.saving.load_model``; like
            ``trusted_code``, it turns safe mode off.
        safe_mode: Keras's safe mode (``Lambda`` layers and other code stored in the file refused).
            None: on, unless ``trusted_code`` or ``custom_objects`` is given. True keeps it on with
            them: the dashboard opens uploads with its start-up classes but never their lambdas.
        max_model_mb: the memory budget for the model's weights, in MB; None for
            :func:`explain.budget.default_max_model_mb`.

    Returns:
        The ``keras.Model``.

    Raises:
        ModelLoadError: missing file, a Git LFS pointer, a directory that is no SavedModel, not a
            model file, a damaged or oversized archive, a Lambda layer or custom class nobody
            vouched for, trusted code that fails to import or lacks a class, a config bomb, or any
            other Keras loading failure. One line each.
    """
    from explain import legacy  # imported here: explain.legacy imports this module

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
    its ``build_config`` when deserialising does not build it), for :func:`explain.budget.declared_weights`.

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


@dataclass(frozen=True)
class ModelCard:
    """What the model card ``<name>.json`` beside a model file says about the model, with
    the caller's overrides and the fallbacks for a model without a card.

    Attributes:
        class_names: one name per output index (two for a single sigmoid output).
        input_shape: ``(H, W, C)`` the model expects (pixels, channels).
        color_mode: ``"grayscale"`` or ``"rgb"``.
        dataset: the training data set's name, or None.
        test_accuracy: accuracy on the test split in [0, 1], or None.
        raw: the whole JSON document (empty when there is no card).
        from_file: whether a card file was found.
        preprocessing: the preprocessing mode, one of
            :data:`explain.preprocessing.MODES` (``"raw"``: pixels 0-255 go in).
        preprocessing_from: where the mode comes from: ``"given"`` (the caller),
            ``"card"``, ``"model"`` (a scaling layer at the model's input, or a
            recognised ``keras.applications`` network) or ``"assumed"`` (``raw``, nothing
            says otherwise).
        class_names_from: where the class names come from: ``"given"`` (the caller),
            ``"card"``, ``"imagenet"`` (a 1000-way model without a card) or ``"indices"``
            (``"class 0"``, ...: the classes are not named).
        preprocessing_note, class_names_note: one line each saying what was assumed, or None.
    """

    class_names: tuple[str, ...]
    input_shape: tuple[int | None, int | None, int]
    color_mode: str
    dataset: str | None = None
    test_accuracy: float | None = None
    raw: dict = field(default_factory=dict, compare=False)
    from_file: bool = False
    preprocessing: str = "raw"
    preprocessing_from: str = "assumed"
    class_names_from: str = "indices"
    preprocessing_note: str | None = None
    class_names_note: str | None = None

    @property
    def channels(self) -> int:
        return int(self.input_shape[-1])

    @property
    def notes(self) -> tuple[str, ...]:
        """The lines to show the user about what was assumed (possibly none)."""
        return tuple(n for n in (self.preprocessing_note, self.class_names_note) if n)

    def with_overrides(
        self,
        preprocess: str | None = None,
        classes: str | os.PathLike | list[str] | tuple[str, ...] | None = None,
    ) -> ModelCard:
        """This card with the user's preprocessing mode and / or class names.

        Args:
            preprocess: a mode of :data:`explain.preprocessing.MODES`, or None to keep.
            classes: class names (see :func:`read_class_names`), or None to keep.

        Returns:
            A new :class:`ModelCard`.

        Raises:
            ExplainError: an unknown mode (or ``caffe`` / ``torch`` for a grayscale
                model); a number of class names other than the model's classes.
        """
        card = self
        if preprocess is not None:
            mode = check_mode(preprocess, self.channels)
            card = replace(card, preprocessing=mode, preprocessing_from="given", preprocessing_note=None)
        if classes is not None:
            names = read_class_names(classes)
            n = len(self.class_names)
            if len(names) != n:
                raise ExplainError(
                    f"{len(names)} class names given, but the model has {n} classes"
                    + (" (a single sigmoid output has two: negative, then positive)" if n == 2 else "")
                    + ". Give exactly one name per class."
                )
            card = replace(card, class_names=names, class_names_from="given", class_names_note=None)
        return card


def _model_image_shape(model: keras.Model) -> tuple[int | None, int | None, int]:
    return image_input_shape(model)


def _num_classes(model: keras.Model) -> int:
    """Number of classes; a single sigmoid output counts as two (negative, positive)."""
    shape = tuple(model.outputs[0].shape)
    n = int(shape[-1]) if len(shape) == 2 and shape[-1] else 1
    return 2 if n == 1 else n


def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet class names in Keras's class-index order (``keras.applications``
    ``decode_predictions``), one short name per class, shipped with the package.

    Taken from the ``timm`` wheel's ``data/_info`` tables (the sorted ILSVRC-2012 synsets
    and the first lemma of each); the two duplicated lemmas are told apart as
    ``"crane (bird)"`` / ``"crane (machine)"`` and ``"maillot"`` / ``"maillot (tank suit)"``.

    Returns:
        1000 strings.
    """
    text = resources.files("explain").joinpath("resources/imagenet_classes.txt").read_text(encoding="utf-8")
    return tuple(line for line in text.splitlines() if line.strip())


def read_class_names(spec: str | os.PathLike | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Class names from ``--classes``: a text file (one name per line) or ``"a,b,c"``.

    Args:
        spec: a path to an existing file, a comma-separated string, or a list of names.

    Returns:
        The names, stripped, in order; blank lines and blank items are skipped.

    Raises:
        ExplainError: no names, duplicated names, or an unreadable file.
    """
    if isinstance(spec, list | tuple):
        names = [str(n).strip() for n in spec]
    elif Path(spec).is_file():
        try:
            names = Path(spec).read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise ExplainError(f"Cannot read the class names file {spec}: {e}.") from None
    elif str(spec).lower().endswith(".txt") or os.sep in str(spec):
        raise ExplainError(f"No such class names file: {spec}. Give a text file with one name per line, or 'a,b,c'.")
    else:
        names = str(spec).split(",")
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise ExplainError(f"No class names in {str(spec)!r}: give a file with one name per line, or 'a,b,c'.")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ExplainError(f"Class names must be unique; repeated: {', '.join(map(repr, dupes))}.")
    return tuple(names)


def _preprocessing(model: keras.Model, raw: dict, card_path: Path | None) -> tuple[str, str, str | None]:
    """``(mode, where from, note)``: the card's mode, else what the model says, else raw."""
    channels = _model_image_shape(model)[-1]
    value = raw.get("preprocessing")
    if isinstance(value, str) and value.startswith("Inside the model"):  # cards written before the mode names
        return "raw", "card", None
    if value is not None:
        try:
            return check_mode(str(value), channels), "card", None
        except ExplainError as e:
            raise ExplainError(f"The model card {card_path} says preprocessing {value!r}: {e}") from None
    mode, note = infer_preprocessing(model)
    return mode, "model" if mode != "raw" or note is None else "assumed", note


def _class_names(model: keras.Model, raw: dict) -> tuple[tuple[str, ...], str, str | None]:
    """``(names, where from, note)``: the card's names (if they fit the model), ImageNet's for
    a 1000-way output, else ``"class i"``."""
    n = _num_classes(model)
    note = None
    card_names = raw.get("class_names")
    if isinstance(card_names, list) and all(isinstance(c, str | int) for c in card_names):
        if len(card_names) == n:
            return tuple(str(c) for c in card_names), "card", None
        note = f"The model card lists {len(card_names)} class names for {n} classes; they are not used."
    if n == 1000:
        return imagenet_class_names(), "imagenet", note
    return tuple(f"class {i}" for i in range(n)), "indices", note


def _read_card(card_path: Path) -> dict:
    if not card_path.is_file():
        return {}
    try:
        raw = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def load_model_card(
    model_path: str | os.PathLike | None,
    model: keras.Model,
    *,
    preprocess: str | None = None,
    classes: str | os.PathLike | list[str] | tuple[str, ...] | None = None,
) -> ModelCard:
    """Read ``<name>.json`` beside the model file; fall back to the model itself.

    Class names: ``classes`` if given, else the card's, else the 1000 ImageNet names for a
    1000-way output, else ``"class 0"``, ``"class 1"``, ... Preprocessing: ``preprocess``
    if given, else the card's, else :func:`explain.preprocessing.infer_preprocessing`
    (which adds a note when it assumes). The input shape and colour mode come from the
    model's input.

    Args:
        model_path: the model file (``.keras``, ``.h5``, a SavedModel folder, ...), or None
            (e.g. an upload without its card).
        model: the loaded model.
        preprocess: a preprocessing mode name overriding the card's.
        classes: class names overriding the card's: a list, a text file with one name per
            line, or ``"a,b,c"``.

    Returns:
        The :class:`ModelCard`.

    Raises:
        ModelLoadError: the model does not take one image input.
        ExplainError: an unknown preprocessing mode (given or in the card); ``classes``
            whose count does not match the model's classes.
    """
    shape = _model_image_shape(model)
    card_path = Path(model_path).with_suffix(".json") if model_path is not None else None
    raw = _read_card(card_path) if card_path is not None else {}
    names, names_from, names_note = _class_names(model, raw)
    if preprocess is None:
        mode, mode_from, mode_note = _preprocessing(model, raw, card_path)
    else:  # the user's choice wins, even over a card that names no valid mode
        mode, mode_from, mode_note = check_mode(preprocess, shape[-1]), "given", None
    metrics = raw.get("test_metrics")
    acc = metrics.get("accuracy") if isinstance(metrics, dict) else None
    card = ModelCard(
        class_names=names,
        input_shape=shape,
        color_mode="grayscale" if shape[-1] == 1 else "rgb",
        dataset=raw.get("dataset") if isinstance(raw.get("dataset"), str) else None,
        test_accuracy=float(acc) if isinstance(acc, int | float) else None,
        raw=raw,
        from_file=bool(raw),
        preprocessing=mode,
        preprocessing_from=mode_from,
        class_names_from=names_from,
        preprocessing_note=mode_note,
        class_names_note=names_note,
    )
    return card.with_overrides(classes=classes)


@dataclass(frozen=True)
class LayerInfo:
    """One row of the layer table.

    Attributes:
        index: position in ``model.layers`` for top-level layers; None for layers inside
            a nested model (address those by ``name``).
        name: the layer's name; for nested layers a path ``"outer/inner"``.
        type: the layer's class name, e.g. ``"Conv2D"``.
        output_shape: the output shape with ``None`` for the batch dimension, in the
            layer's own layout.
        params: number of weights (trainable and not).
        depth: 0 for top-level layers, 1 inside a nested model, and so on.
        layout: how the output reads as feature maps (:func:`explain.layouts.output_layout`):
            ``"channels_last"``, ``"channels_first"``, ``"tokens"``, ``"tokens+class"``, or
            ``""`` (no grid: a vector, a sequence).
        grid: ``(h, w, C)`` of the feature maps in channels-last order, or None.
    """

    index: int | None
    name: str
    type: str
    output_shape: tuple[int | None, ...]
    params: int
    depth: int = 0
    layout: str = ""
    grid: tuple[int | None, int | None, int | None] | None = None

    @property
    def is_spatial(self) -> bool:
        """Whether the output reads as feature maps ``(h, w, C)`` that can be drawn as a grid
        (channels last or first, or a Vision Transformer's patch tokens)."""
        return self.grid is not None

    @property
    def feature_shape(self) -> tuple:
        """The output without the batch axis as explain reads it: the grid ``(h, w, C)`` where there is
        one (channels first transposed, tokens on their grid), else ``output_shape[1:]``."""
        return tuple(self.grid) if self.grid is not None else tuple(self.output_shape[1:])

    @property
    def channels(self) -> int | None:
        """Feature maps (channels) of a grid layer, else the last axis's size."""
        return self.feature_shape[-1] if self.feature_shape else None

    @property
    def note(self) -> str:
        """``""``, ``"channels first"`` or ``"tokens, 7x7 grid + class token"``."""
        return layout_note(self.layout, self.grid)

    @property
    def shape_text(self) -> str:
        """The output shape and how it reads as feature maps: ``"(None, 50, 64), tokens, 7x7 grid + class token"``."""
        return f"{self.output_shape}, {self.note}" if self.note else str(self.output_shape)

    @property
    def label(self) -> str:
        """A short label such as ``"1 · conv2d (Conv2D) (None, 28, 28, 32)"``."""
        idx = f"{self.index}" if self.index is not None else "  " * self.depth + "↳"
        return f"{idx} · {self.name} ({self.type}) {self.shape_text}"


#: model -> (ids of its top-level layers, its layer table); the rows hold no reference to the model.
_TABLES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _output_shape(layer: keras.layers.Layer) -> tuple:
    try:
        out = layer.output
    except (AttributeError, ValueError):
        return ()
    if isinstance(out, list | tuple):
        out = out[0]
    return tuple(out.shape)


def _params(layer: keras.layers.Layer) -> int:
    return int(sum(math.prod(w.shape) for w in layer.weights))


def _rows(model: keras.Model, prefix: str, depth: int, data_format: str, image_hw: tuple) -> list[LayerInfo]:
    """The table rows of ``model``'s layers; ``data_format`` is that of the tensors entering it.

    A layer without a ``data_format`` of its own (``Add``, ``BatchNormalization``, ...) passes
    on the one of the layers before it (in table order, which is the graph's order)."""
    rows = []
    for i, layer in enumerate(model.layers):
        name = prefix + layer.name
        own = getattr(layer, "data_format", None)
        if isinstance(own, str) and type(layer).__name__ != "Flatten":
            data_format = own
        shape = _output_shape(layer)
        layout, grid = output_layout(shape, data_format, image_hw)
        rows.append(
            LayerInfo(
                index=i if depth == 0 else None,
                name=name,
                type=type(layer).__name__,
                output_shape=shape,
                params=_params(layer),
                depth=depth,
                layout=layout,
                grid=grid,
            )
        )
        if isinstance(layer, keras.Model):
            rows.extend(_rows(layer, name + "/", depth + 1, data_format, image_hw))
    return rows


def _input_format(model: keras.Model) -> tuple[str, tuple]:
    """The data format of the model's input tensor and its image ``(H, W)``."""
    try:
        layout = input_layout(model)
    except ExplainError:  # not an image model: the table is still listed
        return "channels_last", (None, None)
    return ("channels_first" if layout.kind == "channels_first" else "channels_last"), layout.image_shape[:2]


def layer_table(model: keras.Model) -> list[LayerInfo]:
    """List every layer: the top-level ones in ``model.layers`` order, each nested
    model's layers right after it (with a path name and no index).

    Args:
        model: a Keras model; nested models are walked.

    Returns:
        One :class:`LayerInfo` per layer (a new list each call). The table is built once per
        model (cached weakly, rebuilt when its top-level layers change): for MobileNetV2's 155
        layers it takes about 5 ms, and :func:`resolve_layer` reads it for every layer asked for.
    """
    fingerprint = tuple(id(layer) for layer in model.layers)
    cached = _TABLES.get(model)
    if cached is None or cached[0] != fingerprint:
        cached = (fingerprint, tuple(_rows(model, "", 0, *_input_format(model))))
        _TABLES[model] = cached
    return list(cached[1])


def format_layer_table(rows: list[LayerInfo]) -> str:
    """Render the layer table as fixed-width text for a terminal.

    Args:
        rows: :func:`layer_table`'s rows.

    Returns:
        One line per layer (index, name indented by nesting depth, type, output shape,
        parameter count, and, when some layer needs it, how its output reads as feature
        maps: "channels first", "tokens, 7x7 grid + class token") under a header, joined by
        newlines.
    """
    header = ("index", "name", "type", "output shape", "params", "feature maps")
    lines = [
        (
            str(r.index) if r.index is not None else "",
            "  " * r.depth + r.name,
            r.type,
            str(r.output_shape),
            f"{r.params:,}",
            r.note,
        )
        for r in rows
    ]
    if not any(line[-1] for line in lines):
        header, lines = header[:-1], [line[:-1] for line in lines]
    widths = [max(len(h), *(len(line[k]) for line in lines)) for k, h in enumerate(header)]
    fmt = "  ".join(f"{{:{'>' if k in (0, 4) else '<'}{w}}}" for k, w in enumerate(widths))
    out = [fmt.format(*header).rstrip(), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*line).rstrip() for line in lines]
    return "\n".join(out)


def resolve_layer(model: keras.Model, layer: int | str) -> LayerInfo:
    """Find a layer by index, by name, or by a ``"nested/inner"`` path.

    Args:
        model: the model.
        layer: an index into ``model.layers`` (negative counts from the end; a string of
            digits counts as an index), a layer name, or a path into a nested model.

    Returns:
        The layer's :class:`LayerInfo`.

    Raises:
        LayerError: index out of range or unknown name; the message lists the valid choices.
    """
    rows = layer_table(model)
    top = [r for r in rows if r.index is not None]
    if isinstance(layer, str) and layer.strip().lstrip("-").isdigit():
        layer = int(layer.strip())
    if isinstance(layer, bool) or not isinstance(layer, int | str):
        raise LayerError(f"A layer is named by an index or a name, got {type(layer).__name__} {layer!r}.")
    if isinstance(layer, int):
        if -len(top) <= layer < len(top):
            return top[layer]
        raise LayerError(
            f"Layer index {layer} is out of range: this model has {len(top)} layers, indices 0 to {len(top) - 1}."
        )
    for r in rows:
        if r.name == layer:
            return r
    matches = [r for r in rows if r.name.split("/")[-1] == layer]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise LayerError(f"Layer name {layer!r} is ambiguous; use one of: {', '.join(r.name for r in matches)}.")
    raise LayerError(f"No such layer: {layer!r}. Use an index from 0 to {len(top) - 1} or a name from the layer table.")


def get_layer(model: keras.Model, name: str) -> keras.layers.Layer:
    """Return the layer object for a (possibly nested) path from :func:`layer_table`.

    Args:
        model: a Keras model.
        name: a layer name, or a path ``outer/inner`` into nested models.

    Returns:
        The ``keras.layers.Layer``.

    Raises:
        ValueError: no layer of that name (Keras's own message); use :func:`resolve_layer`
            for a message that lists the layers.
    """
    obj = model
    for part in name.split("/"):
        obj = obj.get_layer(part)
    return obj
