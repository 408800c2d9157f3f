"""Predictions over a whole data set: per-class accuracy, confusion matrix, misclassified examples.

The data are a folder of class subfolders (``root/<class>/*.png``, as the Keras tutorials lay
them out) or a built-in split (``fashion_mnist:test``, ``mnist:test``, ``cifar10:test``, and the
``:train`` splits). Both are read in order, never shuffled, and in batches: a folder file by file
with :func:`explain.images.load_image` (resized to the model's input), a built-in split by
slicing its arrays, so memory stays bounded by the batch size whatever the number of images.

Typical use::

    source = open_data("fashion_mnist:test")
    result = evaluate_model(model, source, card.class_names, batch_size=256)
    print(f"{result.accuracy:.1%}")
    for c in top_confusions(result, 5):
        print(c)            # "Shirt predicted as T-shirt/top: 117 images"

Every problem with the data is raised as :class:`~explain.errors.DataError` with one line that
says what was wrong and how to fix it.
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
import re
import struct
import sys
import unicodedata
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from explain._quiet import quiet_import
from explain.errors import DataError, ImageLoadError
from explain.images import IMAGE_SUFFIXES, load_image
from explain.models import load_model_card
from explain.predict import _as_probabilities
from explain.preprocessing import from_raw_pixels

quiet_import()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

#: Class names of the built-in data sets, in label order.
BUILTIN_CLASSES: dict[str, tuple[str, ...]] = {
    "fashion_mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    "mnist": tuple(str(i) for i in range(10)),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
}
#: Splits a built-in data set has.
SPLITS = ("test", "train")
#: The two gzipped IDX files (images, labels) of each split of Fashion-MNIST and MNIST.
IDX_FILES = {
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
}
#: Local folders searched for Fashion-MNIST's IDX files before Keras is asked to download them
#: (the Keras cache, ``~/.keras/datasets/fashion-mnist``, is searched first).
FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)
#: CIFAR-10's python batch files of each split (``cifar-10-batches-py/``).
CIFAR10_FILES = {"test": ("test_batch",), "train": tuple(f"data_batch_{i}" for i in range(1, 6))}

_IMAGE_SUFFIXES = tuple("." + s for s in IMAGE_SUFFIXES)
_BUILTIN_SPEC = re.compile(r"(?P<name>[A-Za-z0-9_\-]+):(?P<split>[A-Za-z]+)")
_LOAD_WORKERS = 4


def _nfc(name: str) -> str:
    # macOS hands back decomposed folder names ("cafe\u0301"); model cards hold composed ones.
    return unicodedata.normalize("NFC", name)


def _quoted(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


# -- data sources ------------------------------------------------------------------------
class DataSource:
    """A labelled image data set, read in order and in batches. Subclasses implement :meth:`load`.

    Attributes:
        name: what the data are, for reports: a folder path or ``"fashion_mnist:test"``.
        class_names: the data's own class names, in label order (folder names, or the
            built-in data set's names).
        labels: int64 ``(N,)``, each image's label, an index into ``class_names``.
        image_size: ``(height, width)`` shared by every image, or None when unknown (folders).
        channels: channels shared by every image (1 or 3), or None when unknown (folders).
        notes: things a user should know about the data (empty class folders, files skipped).
    """

    name: str
    class_names: tuple[str, ...]
    labels: np.ndarray
    image_size: tuple[int, int] | None = None
    channels: int | None = None
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.labels)

    def image_id(self, index: int) -> str:
        """A short label for image ``index``: its file path, or ``"fashion_mnist:test #17"``."""
        raise NotImplementedError

    def load(
        self, indices: Sequence[int], target_size: tuple[int, int], channels: int
    ) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str]]]:
        """Read some images at the model's input size.

        Args:
            indices: which images, as indices in ``[0, len(self))``.
            target_size: ``(height, width)`` in pixels; images of another size are resized
                (bilinear, as :func:`explain.images.load_image` does).
            channels: 1 (grayscale) or 3 (RGB); other images are converted.

        Returns:
            ``(images uint8 (B, H, W, channels) in [0, 255], kept int64 (B,), failures)``:
            ``kept`` are the indices that could be read, in order; ``failures`` are
            ``(index, reason)`` for those that could not (corrupt files are skipped, not fatal).
        """
        raise NotImplementedError

    def batches(
        self, batch_size: int, target_size: tuple[int, int], channels: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray, list[tuple[int, str]]]]:
        """Yield :meth:`load` results for consecutive batches of ``batch_size`` images, in
        order (never shuffled). Only one batch is in memory at a time."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        for start in range(0, len(self), batch_size):
            yield self.load(range(start, min(start + batch_size, len(self))), target_size, channels)


def _fit_array(images: np.ndarray, target_size: tuple[int, int], channels: int) -> np.ndarray:
    """Convert uint8 ``(B, h, w, c)`` to ``(B, H, W, channels)`` with Pillow, as load_image would."""
    th, tw = int(target_size[0]), int(target_size[1])
    if images.shape[1:] == (th, tw, channels):
        return images
    mode = "L" if channels == 1 else "RGB"
    out = np.empty((len(images), th, tw, channels), np.uint8)
    for i, img in enumerate(images):
        pil = Image.fromarray(img[..., 0], "L") if img.shape[-1] == 1 else Image.fromarray(img[..., :3], "RGB")
        if pil.mode != mode:
            pil = pil.convert(mode)
        if pil.size != (tw, th):
            pil = pil.resize((tw, th), Image.Resampling.BILINEAR)
        out[i] = np.asarray(pil, dtype=np.uint8).reshape(th, tw, channels)
    return out


class ArraySource(DataSource):
    """Images held in one uint8 array (a built-in split), read by slicing.

    Args:
        name: e.g. ``"fashion_mnist:test"``.
        images: uint8 ``(N, H, W, C)``, C = 1 or 3, raw pixels in [0, 255] (``(N, H, W)`` is
            taken as grayscale).
        labels: int ``(N,)`` in ``[0, len(class_names))``.
        class_names: one name per label.

    Raises:
        DataError: shapes that do not match, labels out of range, or no images.
    """

    def __init__(self, name: str, images: np.ndarray, labels: np.ndarray, class_names: Sequence[str]):
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[..., None]
        labels = np.asarray(labels).reshape(-1).astype(np.int64)
        if images.ndim != 4 or images.shape[-1] not in (1, 3) or len(images) != len(labels):
            raise DataError(
                f"{name}: expected images (N, H, W, 1 or 3) and N labels, got {images.shape} and {labels.shape}."
            )
        if len(labels) == 0:
            raise DataError(f"{name} holds no images.")
        if labels.min() < 0 or labels.max() >= len(class_names):
            raise DataError(f"{name}: labels must be in [0, {len(class_names)}), found {labels.min()}..{labels.max()}.")
        self.name = name
        self.images = images.astype(np.uint8, copy=False)
        self.labels = labels
        self.class_names = tuple(str(c) for c in class_names)
        self.image_size = (int(images.shape[1]), int(images.shape[2]))
        self.channels = int(images.shape[-1])
        self.notes = ()

    def image_id(self, index: int) -> str:
        return f"{self.name} #{int(index)}"

    def load(self, indices, target_size, channels):
        idx = np.asarray(list(indices), dtype=np.int64)
        return _fit_array(self.images[idx], target_size, channels), idx, []


class FolderSource(DataSource):
    """A folder of class subfolders (``root/<class>/**/*.png``), read file by file.

    Class folders are the immediate, non-hidden subfolders of ``root``, sorted by name as
    ``keras.utils.image_dataset_from_directory`` numbers them; images may lie deeper inside a
    class folder. Files with an image suffix (``explain.images.IMAGE_SUFFIXES``, any case) are
    listed up front but only decoded batch by batch, so a folder of any size is read in bounded
    memory; a file that turns out unreadable is skipped and reported, not fatal. Empty class
    folders are kept (the class has no images: it is reported, and its row of the confusion
    matrix is empty).

    Args:
        root: the folder.

    Raises:
        DataError: ``root`` missing or a file; no class subfolders; split folders
            (``train/``, ``test/``) instead of classes; no image file at all.
    """

    def __init__(self, root: str | os.PathLike):
        root = Path(root)
        if not root.exists():
            raise DataError(f"No such folder: {root}. Pass a folder of class subfolders (root/cats/*.jpg).")
        if not root.is_dir():
            raise DataError(f"{root} is a file, not a folder. Pass the folder that holds one subfolder per class.")
        try:
            entries = sorted(os.scandir(root), key=lambda e: e.name)
        except OSError as e:
            raise DataError(f"Cannot list {root}: {e.strerror or e}.") from None
        class_dirs = [e for e in entries if not e.name.startswith(".") and e.is_dir()]
        loose = [e for e in entries if not e.name.startswith(".") and e.is_file()]
        if not class_dirs:
            n = sum(1 for e in loose if e.name.lower().endswith(_IMAGE_SUFFIXES))
            found = f" (it holds {n} images directly)" if n else ""
            raise DataError(
                f"{root} has no class subfolders{found}: put the images in one subfolder per class, "
                "named after the class (root/cats/*.jpg, root/dogs/*.jpg)."
            )
        names = [e.name for e in class_dirs]
        if all(n.lower() in {"train", "test", "val", "valid", "validation"} for n in names):
            raise DataError(
                f"{root} holds split folders ({', '.join(names)}), not class folders: pass one of them, "
                f"e.g. {root / names[-1]}."
            )
        files: list[tuple[Path, int]] = []
        counts = []
        other = 0
        for label, entry in enumerate(class_dirs):
            found = []
            for dirpath, dirnames, filenames in os.walk(entry.path):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for f in filenames:
                    if f.startswith(".") or not f.lower().endswith(_IMAGE_SUFFIXES):
                        other += 1
                    else:
                        found.append(Path(dirpath, f))
            files += [(p, label) for p in sorted(found)]
            counts.append(len(found))
        if not files:
            raise DataError(
                f"No image files in the {len(class_dirs)} class folders of {root}: put "
                f"{'/'.join(IMAGE_SUFFIXES[:4])} images in root/<class>/."
            )
        self.root = root
        self.name = str(root)
        self.class_names = tuple(_nfc(n) for n in names)
        self.paths = tuple(p for p, _ in files)
        self.labels = np.asarray([lab for _, lab in files], dtype=np.int64)
        self.image_size = None
        self.empty_folders = tuple(n for n, c in zip(self.class_names, counts, strict=True) if c == 0)
        notes = []
        if self.empty_folders:
            notes.append(
                f"Empty class folder{'s' if len(self.empty_folders) > 1 else ''} "
                f"{_quoted(self.empty_folders)}: no images to evaluate, reported as 'no images' and left "
                "out of the per-class accuracy."
            )
        if other:
            notes.append(f"{other} file{'s' if other > 1 else ''} without an image suffix or hidden: not read.")
        if loose:
            notes.append(
                f"{len(loose)} file{'s' if len(loose) > 1 else ''} directly in {root}, outside any class folder: "
                "not read."
            )
        self.notes = tuple(notes)

    def image_id(self, index: int) -> str:
        try:
            return str(self.paths[int(index)].relative_to(self.root))
        except ValueError:
            return str(self.paths[int(index)])

    def load(self, indices, target_size, channels):
        idx = [int(i) for i in indices]
        size = (int(target_size[0]), int(target_size[1]))

        def read(i: int) -> np.ndarray | str:
            try:
                return load_image(self.paths[i], target_size=size, channels=channels)
            except ImageLoadError as e:
                return str(e)

        if len(idx) > 1:
            with ThreadPoolExecutor(max_workers=min(_LOAD_WORKERS, len(idx))) as pool:
                loaded = list(pool.map(read, idx))  # Pillow decodes outside the GIL
        else:
            loaded = [read(i) for i in idx]
        good = [(i, a) for i, a in zip(idx, loaded, strict=True) if not isinstance(a, str)]
        failures = [(i, a) for i, a in zip(idx, loaded, strict=True) if isinstance(a, str)]
        images = np.stack([a for _, a in good]) if good else np.zeros((0, *size, channels), np.uint8)
        return images, np.asarray([i for i, _ in good], dtype=np.int64), failures


# -- built-in splits ---------------------------------------------------------------------
def _keras_datasets_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"


def _read_idx(path: Path) -> np.ndarray:
    """One gzipped (or plain) unsigned-byte IDX file (http://yann.lecun.com/exdb/mnist/)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"Cannot read {path}: {e}. Replace the file.") from None
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file (bad magic number). Replace the file.")
    ndim = data[3]
    header = 4 + 4 * ndim
    dims = struct.unpack(f">{ndim}I", data[4:header]) if len(data) >= header else ()
    if not dims or len(data) - header != math.prod(dims):
        raise DataError(f"{path} is truncated or padded. Replace the file.")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


class _ArrayUnpickler(pickle.Unpickler):
    """Only NumPy arrays and plain containers: a CIFAR-10 batch file cannot run code."""

    _ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
        }
    )

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_cifar(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for fname in CIFAR10_FILES[split]:
        try:
            with open(directory / fname, "rb") as f:
                batch = _ArrayUnpickler(f, encoding="bytes").load()
            xs.append(np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            ys.append(np.asarray(batch[b"labels"], np.int64))
        except (OSError, EOFError, KeyError, TypeError, ValueError, pickle.UnpicklingError) as e:
            raise DataError(f"{directory / fname} is not a CIFAR-10 python batch file ({e}). Replace it.") from None
    return np.concatenate(xs), np.concatenate(ys)


def _where_to_put(name: str, split: str) -> str:
    cache = _keras_datasets_dir()
    if name == "fashion_mnist":
        files = " and ".join(IDX_FILES[split])
        return (
            f"put {files} in {cache / 'fashion-mnist'} (or install the Debian package dataset-fashion-mnist, "
            "which puts them in /usr/share/datasets/fashion-mnist)"
        )
    if name == "mnist":
        return f"put mnist.npz (from keras.datasets.mnist) in {cache}"
    return f"unpack cifar-10-python.tar.gz so that {cache / 'cifar-10-batches-py' / CIFAR10_FILES[split][0]} exists"


def load_builtin_split(name: str, split: str = "test") -> ArraySource:
    """Load one split of a built-in data set, preferring local files over a download.

    Fashion-MNIST is read from its two IDX files in the Keras cache
    (``~/.keras/datasets/fashion-mnist/``) or from Debian's ``dataset-fashion-mnist``
    (``/usr/share/datasets/fashion-mnist/``); MNIST from ``~/.keras/datasets/mnist.npz``;
    CIFAR-10 from ``~/.keras/datasets/cifar-10-batches-py/`` (python batches, read with an
    unpickler that only accepts arrays). Without a local copy ``keras.datasets.<name>.load_data()``
    is called, which downloads (and fails offline with a message naming what to place where).
    Only the split's own arrays are kept (10,000 test images are 7.8 MB for Fashion-MNIST).

    Args:
        name: ``"fashion_mnist"``, ``"mnist"`` or ``"cifar10"`` (see ``BUILTIN_CLASSES``).
        split: ``"test"`` or ``"train"``.

    Returns:
        An :class:`ArraySource` named ``"<name>:<split>"`` with uint8 images ``(N, 28, 28, 1)``
        (CIFAR-10: ``(N, 32, 32, 3)``) and the data set's class names.

    Raises:
        DataError: unknown name or split; a damaged local file; no local copy and no download.
    """
    if name not in BUILTIN_CLASSES:
        raise DataError(
            f"Unknown built-in data set {name!r}. Built-in splits are: "
            f"{', '.join(f'{n}:test' for n in BUILTIN_CLASSES)} (and :train)."
        )
    if split not in SPLITS:
        raise DataError(f"Unknown split {split!r} of {name}: use {name}:test or {name}:train.")
    label = f"{name}:{split}"
    classes = BUILTIN_CLASSES[name]
    cache = _keras_datasets_dir()
    if name == "fashion_mnist":
        for d in (cache / "fashion-mnist", *map(Path, FASHION_MNIST_DIRS)):
            paths = [d / f for f in IDX_FILES[split]]
            if all(p.is_file() for p in paths):
                x, y = (_read_idx(p) for p in paths)
                return ArraySource(label, x[..., None], y, classes)
    elif name == "mnist" and (cache / "mnist.npz").is_file():
        try:
            with np.load(cache / "mnist.npz", allow_pickle=False) as f:
                return ArraySource(label, f[f"x_{split}"][..., None], f[f"y_{split}"], classes)
        except (OSError, KeyError, ValueError) as e:
            raise DataError(f"{cache / 'mnist.npz'} is damaged ({e}); delete it to download it again.") from None
    elif name == "cifar10" and all((cache / "cifar-10-batches-py" / f).is_file() for f in CIFAR10_FILES[split]):
        x, y = _read_cifar(cache / "cifar-10-batches-py", split)
        return ArraySource(label, x, y, classes)
    try:
        (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, name).load_data()
    except Exception as e:  # Keras raises a bare Exception when the download fails
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise DataError(
            f"No local copy of {label} and the download failed ({reason}). Offline, {_where_to_put(name, split)}."
        ) from None
    x, y = (x_test, y_test) if split == "test" else (x_train, y_train)
    x = np.asarray(x, np.uint8)
    return ArraySource(label, x[..., None] if x.ndim == 3 else x, np.asarray(y).reshape(-1), classes)


def open_data(spec: str | os.PathLike) -> DataSource:
    """Open ``DATA`` as the report CLI takes it: a folder, or a built-in split such as ``fashion_mnist:test``.

    An existing path is always a folder of class subfolders; otherwise ``name:split`` names a
    built-in split (:func:`load_builtin_split`).

    Args:
        spec: a folder path or ``"<name>:<split>"``.

    Returns:
        A :class:`FolderSource` or an :class:`ArraySource`.

    Raises:
        DataError: no such folder and no such built-in split; see :class:`FolderSource` and
            :func:`load_builtin_split`.
    """
    text = os.fspath(spec)
    if Path(text).exists():
        return FolderSource(text)
    m = _BUILTIN_SPEC.fullmatch(text)
    if m:
        return load_builtin_split(m["name"], m["split"])
    builtins = ", ".join(f"{n}:test" for n in BUILTIN_CLASSES)
    if text in BUILTIN_CLASSES:
        raise DataError(f"No such folder: {text}. For the built-in test split write {text}:test.")
    raise DataError(f"No such folder: {text}. DATA is a folder of class subfolders or a built-in split ({builtins}).")


# -- evaluation --------------------------------------------------------------------------
@dataclass(frozen=True)
class Evaluation:
    """A model's predictions over a data set, and what follows from them.

    Attributes:
        y_true: int64 ``(N,)``, each image's true class (an index into ``class_names``).
        y_pred: int64 ``(N,)``, each image's top prediction.
        top_k_classes: int64 ``(N, k)``, the ``k`` most probable classes, most probable first
            (``top_k_classes[:, 0] == y_pred``).
        top_k_probabilities: float32 ``(N, k)`` in [0, 1], their probabilities.
        class_names: the model's classes, one per output (two for a single sigmoid output).
        confusion: int64 ``(C, C)``: ``confusion[t, p]`` images of true class ``t`` predicted
            as ``p`` (rows = true class); sums to N.
        per_class_accuracy: float64 ``(C,)`` in [0, 1]: the share of each class's images
            predicted correctly (its recall); NaN for a class without images.
        image_ids: N labels (file paths relative to the folder, or ``"fashion_mnist:test #17"``).
        source_indices: int64 ``(N,)``: each image's index in the data source (to read it again).
        data: what the data were (``DataSource.name``).
        skipped: ``(image id, reason)`` for each file that could not be read.
        notes: what a user should know (empty classes, skipped files, how classes were matched).
        outputs_probabilities: False when the model's outputs did not look like probabilities
            and softmax was applied to them as logits.
    """

    y_true: np.ndarray
    y_pred: np.ndarray
    top_k_classes: np.ndarray
    top_k_probabilities: np.ndarray
    class_names: tuple[str, ...]
    confusion: np.ndarray
    per_class_accuracy: np.ndarray
    image_ids: tuple[str, ...]
    source_indices: np.ndarray
    data: str = ""
    skipped: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = ()
    outputs_probabilities: bool = True

    @property
    def num_images(self) -> int:
        """N, the number of images evaluated (skipped files not counted)."""
        return len(self.y_true)

    @property
    def accuracy(self) -> float:
        """The share of images whose top prediction is the true class, in [0, 1]."""
        return float(np.mean(self.y_true == self.y_pred)) if len(self.y_true) else math.nan

    @property
    def support(self) -> np.ndarray:
        """int64 ``(C,)``: images per true class."""
        return self.confusion.sum(axis=1)

    @property
    def classes_without_images(self) -> tuple[str, ...]:
        """The classes with no image in the data (empty or missing folder)."""
        return tuple(n for n, s in zip(self.class_names, self.support, strict=True) if s == 0)


def evaluation_from_predictions(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    class_names: Sequence[str],
    *,
    top_k: int = 5,
    image_ids: Sequence[str] | None = None,
    source_indices: np.ndarray | None = None,
    data: str = "",
    skipped: Sequence[tuple[str, str]] = (),
    notes: Sequence[str] = (),
    outputs_probabilities: bool = True,
) -> Evaluation:
    """Build an :class:`Evaluation` from labels and class probabilities already computed.

    Args:
        y_true: int ``(N,)`` in ``[0, C)``.
        probabilities: float ``(N, C)`` in [0, 1]; ties go to the lower class index.
        class_names: C names.
        top_k: how many top classes to keep per image (clipped to C).
        image_ids, source_indices: per image; default ``"#i"`` and ``0..N-1``.
        data, skipped, notes, outputs_probabilities: copied into the result.

    Returns:
        The :class:`Evaluation` (confusion matrix from ``sklearn.metrics.confusion_matrix``).

    Raises:
        ValueError: shapes that do not match, or labels out of range.
    """
    from sklearn.metrics import confusion_matrix

    y_true = np.asarray(y_true).reshape(-1).astype(np.int64)
    p = np.asarray(probabilities, dtype=np.float32)
    c = len(class_names)
    if p.ndim != 2 or p.shape != (len(y_true), c):
        raise ValueError(f"probabilities must be (N, C) = ({len(y_true)}, {c}), got {p.shape}.")
    if len(y_true) and (y_true.min() < 0 or y_true.max() >= c):
        raise ValueError(f"y_true must be in [0, {c}), found {y_true.min()}..{y_true.max()}.")
    k = max(1, min(int(top_k), c))
    order = np.argsort(-p, axis=1, kind="stable")[:, :k].astype(np.int64)
    y_pred = order[:, 0] if len(y_true) else np.zeros(0, np.int64)
    cm = confusion_matrix(y_true, y_pred, labels=np.arange(c)).astype(np.int64)
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)
    n = len(y_true)
    return Evaluation(
        y_true=y_true,
        y_pred=y_pred,
        top_k_classes=order,
        top_k_probabilities=np.take_along_axis(p, order, axis=1),
        class_names=tuple(str(x) for x in class_names),
        confusion=cm,
        per_class_accuracy=per_class.astype(np.float64),
        image_ids=tuple(image_ids) if image_ids is not None else tuple(f"#{i}" for i in range(n)),
        source_indices=np.arange(n, dtype=np.int64) if source_indices is None else np.asarray(source_indices),
        data=data,
        skipped=tuple(skipped),
        notes=tuple(notes),
        outputs_probabilities=outputs_probabilities,
    )


def _loose(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", _nfc(str(name)).casefold()).strip("_")


def match_classes(
    data_classes: Sequence[str], model_classes: Sequence[str]
) -> tuple[np.ndarray, tuple[str, ...], tuple[tuple[str, str], ...]]:
    """Map the data's class names onto the model's, by name.

    Names match exactly (in Unicode NFC form) or, failing that, loosely: ignoring case and
    treating every run of other characters than letters and digits as one ``_``, so a folder
    ``T-shirt_top`` (a folder name cannot hold ``/``) is the class ``T-shirt/top``. A loose
    match is used only when it is unambiguous.

    Args:
        data_classes: the data's classes (folder names or a built-in data set's names).
        model_classes: the model's classes (its model card's ``class_names``).

    Returns:
        ``(mapping, missing, loose)``: ``mapping`` int64 ``(len(data_classes),)`` is the model's
        index of each data class; ``missing`` are model classes the data do not have (evaluated
        with no images: reported, not an error); ``loose`` are ``(data name, model name)``
        pairs matched loosely.

    Raises:
        DataError: a data class the model does not know; the message names every unknown
            and missing class and the model's classes.
    """
    exact = {_nfc(str(n)): i for i, n in enumerate(model_classes)}
    mapping: dict[int, int] = {}
    for j, n in enumerate(data_classes):
        if _nfc(str(n)) in exact:
            mapping[j] = exact[_nfc(str(n))]
    free = [i for i in range(len(model_classes)) if i not in mapping.values()]
    loose = []
    for j, n in enumerate(data_classes):
        if j in mapping:
            continue
        hits = [i for i in free if _loose(model_classes[i]) == _loose(n)]
        others = [k for k, m in enumerate(data_classes) if k not in mapping and _loose(m) == _loose(n)]
        if len(hits) == 1 and len(others) == 1:
            mapping[j] = hits[0]
            free.remove(hits[0])
            loose.append((str(n), str(model_classes[hits[0]])))
    extra = [str(n) for j, n in enumerate(data_classes) if j not in mapping]
    missing = tuple(str(model_classes[i]) for i in free)
    if extra:
        also = f"; and the data lack the model's {_quoted(missing)}" if missing else ""
        raise DataError(
            f"The data have {'classes' if len(extra) > 1 else 'a class'} the model does not know: "
            f"{_quoted(extra)}{also}. "
            f"The model's classes (from its model card) are {_quoted(list(model_classes))}: name the class "
            "folders after them."
        )
    return np.asarray([mapping[j] for j in range(len(data_classes))], dtype=np.int64), missing, tuple(loose)


def model_input_size(
    model: keras.Model, source: DataSource | None = None, image_size: tuple[int, int] | None = None
) -> tuple[int, int, int]:
    """The ``(height, width, channels)`` images are read at for ``model``.

    Args:
        model: a Keras image classifier.
        source: the data; a built-in split gives its own size to a model that takes any size.
        image_size: ``(height, width)`` for a model that takes any size; ignored otherwise.

    Returns:
        ``(H, W, C)``, positive ints; C is 1 or 3.

    Raises:
        DataError: the model takes any size and neither ``image_size`` nor the data give one.
        ModelLoadError: the model does not take one image input.
    """
    h, w, c = load_model_card(None, model).input_shape
    if h and w:
        return int(h), int(w), int(c)
    size = image_size or (source.image_size if source is not None else None)
    if size is None:
        raise DataError("The model accepts images of any size: give an image size (height, width) to read them at.")
    return int(size[0]), int(size[1]), int(c)


def evaluate_model(
    model: keras.Model,
    source: DataSource,
    class_names: Sequence[str] | None = None,
    *,
    batch_size: int = 256,
    top_k: int = 5,
    image_size: tuple[int, int] | None = None,
    progress: bool = True,
    preprocess: str = "raw",
) -> Evaluation:
    """Predict every image of a data set, in order and in batches, and tally the results.

    Images are read batch by batch (:meth:`DataSource.batches`), converted to the model's
    input (resized, bilinear; grayscale <-> RGB) and fed as float32 raw pixels in [0, 255]
    through one compiled forward pass; only ``batch_size`` images are in memory at a time.
    Unreadable files are skipped and listed in ``skipped``.

    Args:
        model: a Keras classifier with one image input and one ``(batch, classes)`` output.
        source: the data (:func:`open_data`, :class:`FolderSource`, :class:`ArraySource`).
        class_names: the model's classes (its model card's ``class_names``); the data's
            classes are matched to them by name. None: the data's own classes are taken to be
            the model's outputs in order (as ``image_dataset_from_directory`` numbers sorted
            folders); their number must then equal the model's outputs.
        batch_size: images per forward pass (>= 1).
        top_k: top classes kept per image.
        image_size: ``(height, width)`` for a model that accepts any size; default the data's
            own size (built-in splits). Ignored when the model's input size is fixed.
        progress: show a tqdm progress bar on stderr.
        preprocess: the model's preprocessing mode (:mod:`explain.preprocessing`), applied
            to the raw pixels in front of the model.

    Returns:
        An :class:`Evaluation`.

    Raises:
        DataError: data classes the model does not know; a class count that does not match
            the model without class names; no image that could be read; a model with a free
            input size and no ``image_size`` for a folder.
        ValueError: ``batch_size < 1``; class names that do not match the model's outputs;
            model outputs that are not ``(batch, classes)`` or not finite.
    """
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    fallback = load_model_card(None, model)  # the input shape and the number of classes
    n_out = len(fallback.class_names)
    channels = fallback.channels
    notes = list(source.notes)
    if class_names is None:
        if len(source.class_names) != n_out:
            raise DataError(
                f"The data have {len(source.class_names)} classes and the model has {n_out} outputs, and "
                "there are no class names to match them by: put the model card <name>.json beside the model."
            )
        names = tuple(source.class_names)
        mapping = np.arange(n_out, dtype=np.int64)
        notes.append(
            f"No class names from a model card: data class i ({_quoted(names, 3)}) is taken to be model output i."
        )
    else:
        names = tuple(str(c) for c in class_names)
        if len(names) != n_out:
            raise ValueError(f"{len(names)} class names for a model with {n_out} outputs.")
        mapping, missing, loose = match_classes(source.class_names, names)
        if loose:
            notes.append(
                "Class folders matched by a looser name: " + ", ".join(f"{a!r} as {b!r}" for a, b in loose) + "."
            )
        if missing:
            notes.append(
                f"The data have no class {_quoted(missing)}: no images of "
                f"{'these classes' if len(missing) > 1 else 'this class'} were evaluated."
            )
    size = model_input_size(model, source, image_size)[:2]
    if source.image_size is not None and tuple(source.image_size) != size:
        notes.append(
            f"Images resized from {source.image_size[0]}x{source.image_size[1]} to the model's input "
            f"{size[0]}x{size[1]}."
        )
    if source.channels is not None and source.channels != channels:
        kind = {1: "grayscale", 3: "RGB"}
        notes.append(f"Images converted from {kind[source.channels]} to {kind[channels]} for the model.")

    net = from_raw_pixels(model, preprocess)
    forward = tf.function(lambda x: net(x, training=False), reduce_retracing=True)
    kept, probs, skipped = [], [], []
    outputs_probabilities = True
    bar = tqdm(total=len(source), desc="Predicting", unit="img", disable=not progress, file=sys.stderr, leave=False)
    try:
        for images, idx, failures in source.batches(batch_size, size, channels):
            skipped += [(source.image_id(i), reason) for i, reason in failures]
            if len(idx):
                out = keras.ops.convert_to_numpy(forward(tf.convert_to_tensor(images, tf.float32)))
                if out.ndim != 2:
                    raise ValueError(f"The model outputs shape {out.shape}; a classifier outputs (batch, classes).")
                if not np.all(np.isfinite(out)):
                    raise ValueError("The model's outputs are not finite (NaN or infinity): its weights may be broken.")
                p, were = _as_probabilities(out)
                outputs_probabilities &= were
                probs.append(p.astype(np.float32))
                kept.append(idx)
            bar.update(len(idx) + len(failures))
    finally:
        bar.close()
    if not kept:
        first = f" First: {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        raise DataError(f"None of the {len(source)} images in {source.name} could be read.{first}")
    idx = np.concatenate(kept)
    if skipped:
        notes.append(
            f"{len(skipped)} unreadable file{'s' if len(skipped) > 1 else ''} skipped; the first: {skipped[0][1]}"
        )
    return evaluation_from_predictions(
        mapping[source.labels[idx]],
        np.concatenate(probs),
        names,
        top_k=top_k,
        image_ids=[source.image_id(i) for i in idx],
        source_indices=idx,
        data=source.name,
        skipped=skipped,
        notes=notes,
        outputs_probabilities=outputs_probabilities,
    )


# -- what to look at -----------------------------------------------------------------------
@dataclass(frozen=True)
class Confusion:
    """One cell off the diagonal of the confusion matrix: images of one class predicted as another.

    Attributes:
        true_index, predicted_index: class indices.
        true_name, predicted_name: class names.
        count: how many images.
        examples: int64 ``(count,)``, the images' positions in the :class:`Evaluation`, the
            most confident wrong predictions first.
    """

    true_index: int
    predicted_index: int
    true_name: str
    predicted_name: str
    count: int
    examples: np.ndarray

    def __str__(self) -> str:
        return (
            f"{self.true_name} predicted as {self.predicted_name}: {self.count} image{'s' if self.count != 1 else ''}"
        )


def misclassified(result: Evaluation) -> np.ndarray:
    """Positions (in ``result``) of the wrongly predicted images, most confident first.

    Returns:
        int64 ``(M,)``; ties keep the data's order.
    """
    wrong = np.flatnonzero(result.y_true != result.y_pred)
    confidence = result.top_k_probabilities[wrong, 0]
    return wrong[np.argsort(-confidence, kind="stable")].astype(np.int64)


def top_confusions(result: Evaluation, k: int = 5) -> tuple[Confusion, ...]:
    """The ``k`` most frequent confusions (true class predicted as another), most frequent first.

    Ties are broken by class index (true, then predicted). Cells with no image are never listed.

    Args:
        result: an :class:`Evaluation`.
        k: how many (>= 0).

    Returns:
        Up to ``k`` :class:`Confusion` objects.
    """
    cm = result.confusion.copy()
    np.fill_diagonal(cm, 0)
    cells = [(int(-cm[t, p]), t, p) for t, p in zip(*np.nonzero(cm), strict=True)]
    wrong = misclassified(result)
    out = []
    for neg, t, p in sorted(cells)[: max(0, int(k))]:
        examples = wrong[(result.y_true[wrong] == t) & (result.y_pred[wrong] == p)]
        out.append(Confusion(int(t), int(p), result.class_names[t], result.class_names[p], -neg, examples))
    return tuple(out)


def classification_metrics(result: Evaluation) -> dict:
    """Precision, recall and F1 per class and overall, with scikit-learn.

    ``sklearn.metrics.classification_report(..., output_dict=True)`` over every class of the
    model; a value that is undefined (precision of a class never predicted, recall of a class
    without images) is None rather than a made-up 0.

    Returns:
        ``{"accuracy": float in [0, 1], "num_images": N, "per_class": {name: {"precision",
        "recall", "f1-score", "support"}}, "macro avg": {...}, "weighted avg": {...}}``;
        JSON-serialisable (plain floats, ints and None).
    """
    from sklearn.metrics import classification_report

    c = len(result.class_names)
    labels = list(result.class_names)
    report = classification_report(
        result.y_true,
        result.y_pred,
        labels=np.arange(c),
        target_names=labels,
        output_dict=True,
        zero_division=np.nan,
    )

    def clean(d: dict) -> dict:
        out = {}
        for key, v in d.items():
            v = float(v)
            out[key] = int(v) if key == "support" else (None if math.isnan(v) else v)
        return out

    return {
        "accuracy": result.accuracy,
        "num_images": result.num_images,
        "per_class": {name: clean(report[name]) for name in labels},
        "macro avg": clean(report["macro avg"]),
        "weighted avg": clean(report["weighted avg"]),
    }
