"""The built-in splits (``fashion_mnist:test``, ``mnist:test``, ``cifar10:test`` and the ``:train``
splits): the IDX reader (:func:`read_idx`), the safe CIFAR-10 reader (:func:`read_cifar_batch`, an
unpickler that only accepts arrays), local copies first, Keras's download otherwise.
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
import struct
from pathlib import Path

import numpy as np

from explain.data.sources import ArraySource
from explain.errors import DataError

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

#: Folder names that mean "a split", not "a class": ``root/train/cats`` pointed at ``root``.


# -- built-in splits ---------------------------------------------------------------------
def keras_datasets_dir() -> Path:
    """Where Keras keeps downloaded data sets: ``$KERAS_HOME/datasets``, default ``~/.keras/datasets``."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one unsigned-byte IDX file, gzipped (``.gz``) or plain (http://yann.lecun.com/exdb/mnist/).

    Args:
        path: the file, e.g. ``t10k-images-idx3-ubyte.gz``.

    Returns:
        uint8 array with the file's dimensions, e.g. ``(10000, 28, 28)`` or ``(10000,)``.

    Raises:
        DataError: unreadable file, bad magic number, or a file truncated or padded
            against its header.
    """
    path = Path(path)
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
        held = max(0, len(data) - header)
        raise DataError(
            f"{path} is truncated or padded: its header says {dims or '(incomplete)'}, the file holds "
            f"{held} bytes of data. Replace the file."
        )
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


def read_cifar_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 "python version" batch file (Krizhevsky 2009,
    https://www.cs.toronto.edu/~kriz/cifar.html) with an unpickler that only accepts NumPy
    arrays and plain containers, so a crafted file cannot run code.

    Args:
        path: e.g. ``cifar-10-batches-py/test_batch``.

    Returns:
        ``(images uint8 (N, 32, 32, 3) in [0, 255], labels int64 (N,))``.

    Raises:
        DataError: unreadable file, not a CIFAR-10 batch, or a pickle that asks for
            anything but arrays ("refusing to load ...").
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
        data = np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        labels = np.asarray(batch[b"labels"], np.int64)
    except (OSError, EOFError, KeyError, TypeError, ValueError, pickle.UnpicklingError) as e:
        raise DataError(f"{path} is not a CIFAR-10 python batch file ({e}). Replace it.") from None
    return data, labels


def _read_cifar(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    parts = [read_cifar_batch(directory / fname) for fname in CIFAR10_FILES[split]]
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])


def _where_to_put(name: str, split: str) -> str:
    cache = keras_datasets_dir()
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
    local = _local_split(name, split)
    x, y = local if local is not None else _download_split(name, split)
    return ArraySource(label, x[..., None] if x.ndim == 3 else x, y, BUILTIN_CLASSES[name])


def _local_split(name: str, split: str) -> tuple[np.ndarray, np.ndarray] | None:
    """``(images, labels)`` of a built-in split from local files, or None without a local copy."""
    cache = keras_datasets_dir()
    if name == "fashion_mnist":
        for d in (cache / "fashion-mnist", *map(Path, FASHION_MNIST_DIRS)):
            paths = [d / f for f in IDX_FILES[split]]
            if all(p.is_file() for p in paths):
                x, y = (read_idx(p) for p in paths)
                return x, y
    elif name == "mnist" and (cache / "mnist.npz").is_file():
        try:
            with np.load(cache / "mnist.npz", allow_pickle=False) as f:
                return f[f"x_{split}"], f[f"y_{split}"]
        except (OSError, KeyError, ValueError) as e:
            raise DataError(f"{cache / 'mnist.npz'} is damaged ({e}); delete it to download it again.") from None
    elif name == "cifar10" and all((cache / "cifar-10-batches-py" / f).is_file() for f in CIFAR10_FILES[split]):
        return _read_cifar(cache / "cifar-10-batches-py", split)
    return None


def _download_split(name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8, labels int64 (N,))`` of a built-in split through ``keras.datasets`` (downloads)."""
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, name).load_data()
    except Exception as e:  # Keras raises a bare Exception when the download fails
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise DataError(
            f"No local copy of {name}:{split} and the download failed ({reason}). "
            f"Offline, {_where_to_put(name, split)}."
        ) from None
    x, y = (x_test, y_test) if split == "test" else (x_train, y_train)
    return np.asarray(x, np.uint8), np.asarray(y, np.int64).reshape(-1)
