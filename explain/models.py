"""Load a ``.keras`` model safely, read its model card, and name its layers.

Layers are addressed by ``int | str`` (docs/architecture.md): an index counts ``model.layers``; a
name may be a path into a nested model, e.g. ``"mobilenetv2_1.00_224/block_16_project"``.
"""

from __future__ import annotations

import json
import math
import os
import weakref
import zipfile
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from explain._quiet import quiet_import
from explain.errors import ExplainError, LayerError, ModelLoadError
from explain.preprocessing import check_mode, infer_preprocessing

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


def load_model(path: str | os.PathLike) -> keras.Model:
    """Load a Keras model for inference without running code from the file.

    A Keras 3 ``.keras`` file is loaded with Keras safe mode on, which refuses ``Lambda``
    layers and any other deserialised Python code. Keras 2 files (a legacy HDF5 ``.h5`` file,
    also under another name, a SavedModel folder written by Keras, or a ``.zip`` of one) are
    checked and converted in memory by :func:`explain.legacy.load_legacy_model`. The model
    is not compiled.

    Args:
        path: a ``.keras`` or ``.h5`` file, a Keras 2 SavedModel folder or a ``.zip`` of one.

    Returns:
        The ``keras.Model``.

    Raises:
        ModelLoadError: missing file, a directory that is no SavedModel, not a model file, a
            damaged or oversized archive, a Lambda layer or custom class, or any other Keras
            loading failure.
    """
    from explain import legacy  # imported here: explain.legacy imports this module

    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"No such model file: {path}. Check the path.")
    if legacy.legacy_kind(path) is not None:
        return legacy.load_legacy_model(path)
    _check_archive(path)
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as e:  # Keras raises many types; the user gets one line
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "lambda" in str(e).lower() or "safe_mode" in str(e):
            raise ModelLoadError(
                f"{path} contains a Lambda layer (Python code), which safe mode refuses to load. "
                "Replace the Lambda with a built-in or registered custom layer and re-save."
            ) from None
        raise ModelLoadError(f"Could not load {path} as a Keras model: {msg[:300]}") from None
    if not isinstance(model, keras.Model):
        raise ModelLoadError(f"{path} holds a {type(model).__name__}, not a keras.Model.")
    return model


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
    inputs = model.inputs
    if inputs is None or len(inputs) != 1:
        n = 0 if inputs is None else len(inputs)
        raise ModelLoadError(f"The model has {n} inputs; explain supports image classifiers with one image input.")
    shape = tuple(inputs[0].shape)
    if len(shape) != 4 or shape[-1] not in (1, 3):
        raise ModelLoadError(
            f"The model's input shape is {shape}; explain expects images (batch, height, width, 1 or 3 channels)."
        )
    return shape[1], shape[2], int(shape[3])


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
        output_shape: the output shape with ``None`` for the batch dimension.
        params: number of weights (trainable and not).
        depth: 0 for top-level layers, 1 inside a nested model, and so on.
    """

    index: int | None
    name: str
    type: str
    output_shape: tuple[int | None, ...]
    params: int
    depth: int = 0

    @property
    def is_spatial(self) -> bool:
        """Whether the output is ``(batch, H, W, C)``: feature maps that can be drawn as a grid."""
        return len(self.output_shape) == 4

    @property
    def label(self) -> str:
        """A short label such as ``"1 · conv2d (Conv2D) (None, 28, 28, 32)"``."""
        idx = f"{self.index}" if self.index is not None else "  " * self.depth + "↳"
        return f"{idx} · {self.name} ({self.type}) {self.output_shape}"


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


def _rows(model: keras.Model, prefix: str, depth: int) -> list[LayerInfo]:
    rows = []
    for i, layer in enumerate(model.layers):
        name = prefix + layer.name
        rows.append(
            LayerInfo(
                index=i if depth == 0 else None,
                name=name,
                type=type(layer).__name__,
                output_shape=_output_shape(layer),
                params=_params(layer),
                depth=depth,
            )
        )
        if isinstance(layer, keras.Model):
            rows.extend(_rows(layer, name + "/", depth + 1))
    return rows


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
        cached = (fingerprint, tuple(_rows(model, "", 0)))
        _TABLES[model] = cached
    return list(cached[1])


def format_layer_table(rows: list[LayerInfo]) -> str:
    """Render the layer table as fixed-width text for a terminal.

    Args:
        rows: :func:`layer_table`'s rows.

    Returns:
        One line per layer (index, name indented by nesting depth, type, output shape,
        parameter count) under a header, joined by newlines.
    """
    header = ("index", "name", "type", "output shape", "params")
    lines = [
        (
            str(r.index) if r.index is not None else "",
            "  " * r.depth + r.name,
            r.type,
            str(r.output_shape),
            f"{r.params:,}",
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(line[k]) for line in lines)) for k, h in enumerate(header)]
    fmt = "  ".join(f"{{:{'>' if k in (0, 4) else '<'}{w}}}" for k, w in enumerate(widths))
    out = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*line) for line in lines]
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
