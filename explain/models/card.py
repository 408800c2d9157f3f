"""The model card ``<name>.json`` beside a model: class names, input size, preprocessing mode, notes; the
training strip it names (:func:`training_strip`), read only from inside the model's folder."""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path, PureWindowsPath

import numpy as np

from explain._quiet import quiet_import
from explain.errors import ExplainError, ImageLoadError
from explain.images import load_image, open_image
from explain.models.layouts import image_input_shape
from explain.models.preprocessing import check_mode, infer_preprocessing

quiet_import()
import keras  # noqa: E402


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
            :data:`explain.models.preprocessing.MODES` (``"raw"``: pixels 0-255 go in).
        preprocessing_from: where the mode comes from: ``"given"`` (the caller),
            ``"card"``, ``"model"`` (a scaling layer at the model's input, or a
            recognised ``keras.applications`` network) or ``"assumed"`` (``raw``, nothing
            says otherwise).
        class_names_from: where the class names come from: ``"given"`` (the caller),
            ``"card"``, ``"imagenet"`` (a 1000-way model without a card) or ``"indices"``
            (``"class 0"``, ...: the classes are not named).
        preprocessing_note, class_names_note: one line each saying what was assumed, or None.
        path: the card file read (its folder is the model's: :func:`training_strip` reads only there), or
            None without one (or for an upload, whose folder is gone).
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
    path: Path | None = field(default=None, compare=False)

    @property
    def channels(self) -> int:
        return int(self.input_shape[-1])

    @property
    def known_class_names(self) -> tuple[str, ...] | None:
        """The class names when they really name the classes (not the ``"class i"`` made up from indices), to
        match a data set's classes against; None otherwise."""
        return None if self.class_names_from == "indices" else tuple(self.class_names)

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
            preprocess: a mode of :data:`explain.models.preprocessing.MODES`, or None to keep.
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
    if given, else the card's, else :func:`explain.models.preprocessing.infer_preprocessing`
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
        path=card_path if raw else None,
    )
    return card.with_overrides(classes=classes)


# -- the training strip ---------------------------------------------------------------------
#: The largest training strip read, in bytes and in pixels: a strip of 8 images over 100 logged epochs at
#: :data:`explain.callbacks.CELL` pixels a cell is 8 MP and a few MB; anything far larger is refused unread.
STRIP_MAX_BYTES = 64 * 1024**2
STRIP_MAX_PIXELS = 32_000_000
#: The epochs a strip's caption lists one by one; more are shortened to the first two and the last.
_EPOCHS_LISTED = 10


@dataclass(frozen=True)
class TrainingStrip:
    """How the explanation evolved during training: the strip :class:`explain.callbacks.ExplainCallback` wrote
    (one row per image: the image, then its map after each logged epoch), as the model card's ``"explain"``
    names it, read by :func:`training_strip`.

    Attributes:
        name: the strip's path as the card gives it (relative to the model's folder).
        method: the attribution method's name (``"gradcam"``), from the card's ``"method"`` or the file name
            ``explain_<method>.png``; None when neither says.
        epochs: the logged epochs (1-based), in order; empty when the card does not list them.
        images: the images (rows), or None when the card does not say.
        every: the epochs between two logged ones, or None.
        pixels: uint8 ``(H, W, 3)``, or None when the strip cannot be shown.
        note: why it cannot be shown, one line; None when ``pixels`` are there.
    """

    name: str
    method: str | None
    epochs: tuple[int, ...]
    images: int | None
    every: int | None
    pixels: np.ndarray | None = field(default=None, compare=False, repr=False)
    note: str | None = None

    @property
    def caption(self) -> str:
        """What the strip shows, for people: the method, the rows and the epochs of the columns."""
        what = f"Maps ({self.method})" if self.method else "Maps"
        rows = f"{self.images} image{'s' if self.images != 1 else ''}" if self.images else "fixed images"
        when = "after each logged epoch"
        if self.epochs:
            e = [str(k) for k in self.epochs]
            listed = ", ".join(e) if len(e) <= _EPOCHS_LISTED else f"{e[0]}, {e[1]}, ..., {e[-1]} ({len(e)} logged)"
            when = f"after epoch{'s' if len(e) > 1 else ''} {listed}"
        every = {None: "", 1: ", logged every epoch"}.get(self.every, f", logged every {self.every} epochs")
        return f"{what} of {rows} during training{every}: one row per image, the image itself, then its map {when}."


def _strip_record(card: ModelCard) -> dict | None:
    """The card's ``"explain"`` entry when it names a strip (``"strip"``), else None."""
    record = card.raw.get("explain") if card.from_file else None
    return record if isinstance(record, dict) and "strip" in record else None


def names_training_strip(card: ModelCard) -> bool:
    """Whether the model card names a training strip (whether :func:`training_strip` returns one); reads no file."""
    return _strip_record(card) is not None


def _strip_fields(record: dict) -> tuple[str, str | None, tuple[int, ...], int | None, int | None]:
    """``(name, method, epochs, images, every)`` of a card's ``"explain"`` entry; what is not of the expected
    type is left out (a method is a plain name: it is shown in pages and captions)."""
    name = record["strip"] if isinstance(record["strip"], str) else repr(record["strip"])
    method = record.get("method")
    if not isinstance(method, str):
        found = re.fullmatch(r"explain_(\w+)\.png", re.split(r"[\\/]", name)[-1], flags=re.ASCII)
        method = found.group(1) if found else None
    method = method if method and re.fullmatch(r"\w{1,40}", method, flags=re.ASCII) else None
    epochs = record.get("epochs")
    ok = isinstance(epochs, list) and all(isinstance(k, int) and not isinstance(k, bool) for k in epochs)
    count = record.get("images")
    every = record.get("every")
    return (
        name,
        method,
        tuple(epochs) if ok else (),
        count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else None,
        every if isinstance(every, int) and not isinstance(every, bool) and every > 0 else None,
    )


def _refused(name: str, why: str) -> ExplainError:
    return ExplainError(
        f"The training strip {name!r} named by the model card was refused: {why}; the card must name a .png file "
        "inside the model's folder."
    )


def resolve_strip_path(card_path: Path | None, name: object) -> Path:
    """The strip file the card names, resolved inside the model's folder (the card's own folder), or an error.

    Refused: a name that is not a relative path (absolute, a drive, ``..`` anywhere), a path (or a symbolic link
    on it) that leads out of the folder once both are resolved, a file that is not a ``.png``, not a regular file.

    Args:
        card_path: the model card file (:attr:`ModelCard.path`), or None (no folder: an upload).
        name: the card's ``"explain"`` ``"strip"``, e.g. ``"model_explain/explain_gradcam.png"``.

    Returns:
        The resolved path of a regular ``.png`` file inside the folder.

    Raises:
        ExplainError: one line saying why the strip cannot be read (no folder, refused, missing).
    """
    if card_path is None:
        raise ExplainError(f"The model card names a training strip ({name!r}), but there is no model folder to read "
                           "it from (an uploaded model).")  # fmt: skip
    if not isinstance(name, str) or not name.strip():
        raise _refused(str(name), "not a file name")
    parts = re.split(r"[\\/]", name)
    if name.startswith(("/", "\\")) or PureWindowsPath(name).drive or Path(name).is_absolute():
        raise _refused(name, "an absolute path")
    if ".." in parts:
        raise _refused(name, "'..' leads out of the model's folder")
    if not name.lower().endswith(".png"):
        raise _refused(name, "not a .png file")
    try:
        folder = card_path.parent.resolve(strict=True)
        target = (folder / name).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, or a loop of links
        raise ExplainError(
            f"The training strip {name!r} named by the model card is missing from the model's folder."
        ) from None
    if not target.is_relative_to(folder):
        raise _refused(name, "a symbolic link leads out of the model's folder")
    if target.suffix.lower() != ".png":
        raise _refused(name, "a link to a file that is not a .png")
    if not target.is_file():
        raise _refused(name, "not a regular file")
    return target


def _read_strip(path: Path, name: str) -> np.ndarray:
    """The strip's pixels, uint8 ``(H, W, 3)``: read once (no link followed at the last step, a regular file of at
    most :data:`STRIP_MAX_BYTES`), its header checked against :data:`STRIP_MAX_PIXELS`, decoded by the one
    decoder (:func:`explain.images.load_image`).

    Raises:
        ExplainError: unreadable, too large, not a PNG, corrupt.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise _refused(name, "not a regular file")
            if info.st_size > STRIP_MAX_BYTES:
                raise _cannot_show(name, f"{info.st_size / 1024**2:.0f} MB, more than {STRIP_MAX_BYTES // 1024**2} MB")
            data = f.read(STRIP_MAX_BYTES + 1)
    except OSError as e:
        raise _cannot_show(name, f"cannot read it ({e.strerror or e})") from None
    try:
        img, _ = open_image(data)
        with img:
            if img.format != "PNG":
                raise _cannot_show(name, f"a {img.format or 'non-PNG'} image, not a PNG")
            w, h = img.size
        if w * h > STRIP_MAX_PIXELS:
            raise _cannot_show(name, f"{w}x{h} pixels, more than {STRIP_MAX_PIXELS:,}")
        return load_image(data, channels=3)
    except ImageLoadError as e:
        raise _cannot_show(name, getattr(e, "reason", None) or str(e)) from None


def _cannot_show(name: str, why: str) -> ExplainError:
    return ExplainError(f"The training strip {name!r} named by the model card cannot be shown: {why}.")


def training_strip(card: ModelCard) -> TrainingStrip | None:
    """The training strip the model card names (``"explain": {"strip": ...}``, written by ``python -m training
    train --explain-every N``), read only from inside the model's folder (:func:`resolve_strip_path`) and decoded
    by the one image decoder; the one place the report and the dashboard read it.

    A served dashboard opens strangers' models and cards: a strip that is missing, outside the folder, a link
    out of it, not a PNG, corrupt or too large comes back as a :class:`TrainingStrip` with a one-line ``note``
    and no pixels, never as an error.

    Args:
        card: the model card (:func:`load_model_card`; its :attr:`~ModelCard.path` gives the folder).

    Returns:
        A :class:`TrainingStrip` (``pixels`` uint8 ``(H, W, 3)``, or None with ``note``), or None when the card
        names no strip.
    """
    record = _strip_record(card)
    if record is None:
        return None
    name, method, epochs, images, every = _strip_fields(record)
    try:
        pixels = _read_strip(resolve_strip_path(card.path, record["strip"]), name)
    except ExplainError as e:
        return TrainingStrip(name, method, epochs, images, every, None, str(e))
    return TrainingStrip(name, method, epochs, images, every, pixels)
