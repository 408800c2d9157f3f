"""Built-in data sets, loaded through Keras or, offline, from local files.

CIFAR-10 (Krizhevsky 2009, https://www.cs.toronto.edu/~kriz/cifar.html) comes as pickled
"python version" batches; they are read with an unpickler that only accepts NumPy arrays.

Fashion-MNIST (Xiao et al. 2017, https://github.com/zalandoresearch/fashion-mnist) and
MNIST are distributed as four gzipped IDX files. ``keras.datasets.*.load_data()``
downloads them into ``~/.keras/datasets``; offline, the same four files can come from a
``--data-dir`` or, for Fashion-MNIST, from the Debian package ``dataset-fashion-mnist``
(``/usr/share/datasets/fashion-mnist/``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from explain import data as _data
from explain.errors import DataError

#: The four gzipped IDX files of Fashion-MNIST and MNIST: train images, train labels, test
#: images, test labels (the data layer's ``explain.data.IDX_FILES``, flattened).
IDX_FILES = (*_data.IDX_FILES["train"], *_data.IDX_FILES["test"])
FASHION_MNIST_CLASSES = _data.BUILTIN_CLASSES["fashion_mnist"]
CIFAR10_CLASSES = _data.BUILTIN_CLASSES["cifar10"]

BUILTIN = {
    "fashion_mnist": {
        "class_names": FASHION_MNIST_CLASSES,
        "keras_cache": "fashion-mnist",
        "local_dirs": _data.FASHION_MNIST_DIRS,
        "debian_package": "dataset-fashion-mnist",
    },
    "mnist": {
        "class_names": _data.BUILTIN_CLASSES["mnist"],
        "keras_cache": None,  # Keras stores MNIST as one mnist.npz
        "local_dirs": (),
        "debian_package": None,
    },
    "cifar10": {
        "class_names": CIFAR10_CLASSES,
        "keras_cache": None,  # Keras unpacks it to ~/.keras/datasets/cifar-10-batches-py and finds it there
        "local_dirs": (),
        "debian_package": None,
    },
}

#: CIFAR-10's python batch files: the five training batches, then the test batch.
CIFAR10_FILES = (*_data.CIFAR10_FILES["train"], *_data.CIFAR10_FILES["test"])


class DatasetError(ValueError):
    """A data set could not be found or read; the message says what to do."""


@dataclass(frozen=True)
class Dataset:
    """A built-in image classification data set held in memory.

    Attributes:
        name: data set name, e.g. ``"fashion_mnist"``.
        x_train, x_test: uint8 arrays ``(N, H, W, C)``, raw pixels in [0, 255].
        y_train, y_test: int64 arrays ``(N,)`` of class indices.
        class_names: one name per class index.
        source: where the data came from (a directory or ``"keras"``).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def color_mode(self) -> str:
        return "grayscale" if self.input_shape[-1] == 1 else "rgb"


@contextmanager
def dataset_errors() -> Iterator[None]:
    """Re-raise the data layer's :class:`~explain.errors.DataError` as :class:`DatasetError`, same message."""
    try:
        yield
    except DataError as e:
        raise DatasetError(str(e)) from None


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (optionally gzipped) with the data layer's :func:`explain.data.read_idx`.

    Returns:
        uint8 array with the file's dimensions, e.g. ``(60000, 28, 28)`` or ``(60000,)``.

    Raises:
        DatasetError: the file is unreadable, or not a valid unsigned-byte IDX file.
    """
    with dataset_errors():
        return _data.read_idx(path)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with dataset_errors():
        return _data.read_cifar_batch(path)


def _load_cifar_dir(directory: Path) -> Dataset:
    parts = [_read_cifar_batch(directory / f) for f in CIFAR10_FILES]
    x_train = np.concatenate([p[0] for p in parts[:5]])
    y_train = np.concatenate([p[1] for p in parts[:5]])
    return Dataset("cifar10", x_train, y_train, parts[5][0], parts[5][1], CIFAR10_CLASSES, str(directory))


def _find_idx_dir(candidates: list[Path]) -> Path | None:
    for d in candidates:
        if all((d / f).is_file() for f in IDX_FILES):
            return d
    return None


def _load_idx_dir(name: str, directory: Path, class_names: tuple[str, ...]) -> Dataset:
    x_train, y_train, x_test, y_test = (read_idx(directory / f) for f in IDX_FILES)
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise DatasetError(f"Image and label counts differ in {directory}.")
    return Dataset(
        name=name,
        x_train=x_train[..., None],
        y_train=y_train.astype(np.int64),
        x_test=x_test[..., None],
        y_test=y_test.astype(np.int64),
        class_names=class_names,
        source=str(directory),
    )


def load_builtin(name: str, data_dir: str | os.PathLike | None = None) -> Dataset:
    """Load a built-in data set, preferring local files over a download.

    Order: ``data_dir`` (the four IDX files) if given; else the Keras cache
    (``~/.keras/datasets``); else a known local copy (Debian's ``dataset-fashion-mnist``);
    else ``keras.datasets.<name>.load_data()``, which downloads.

    Args:
        name: ``"fashion_mnist"``, ``"mnist"`` or ``"cifar10"``.
        data_dir: a directory holding the four IDX files named in ``IDX_FILES`` (for
            CIFAR-10: the unpacked python batches named in ``CIFAR10_FILES``).

    Returns:
        The :class:`Dataset`, pixels uint8 ``(N, 28, 28, 1)`` (CIFAR-10: ``(N, 32, 32, 3)``).

    Raises:
        DatasetError: unknown name, incomplete ``data_dir``, or no local copy and no network;
            the message names the files to place and where.
    """
    if name not in BUILTIN:
        raise DatasetError(f"Unknown data set {name!r}. Built-in data sets are: {', '.join(BUILTIN)}.")
    if data_dir is not None and name == "cifar10":
        return _load_cifar_dir(_cifar_data_dir(Path(data_dir)))
    if data_dir is not None:
        return _load_idx_dir(name, _idx_data_dir(Path(data_dir)), BUILTIN[name]["class_names"])
    found = _find_idx_dir(_local_idx_dirs(name))
    if found is not None:
        return _load_idx_dir(name, found, BUILTIN[name]["class_names"])
    return _download(name)


def _cifar_data_dir(d: Path) -> Path:
    """The folder of CIFAR-10 python batches in ``--data-dir`` (itself or its cifar-10-batches-py/)."""
    if (d / "cifar-10-batches-py").is_dir():
        d = d / "cifar-10-batches-py"
    missing = [f for f in CIFAR10_FILES if not (d / f).is_file()]
    if missing:
        raise DatasetError(
            f"--data-dir {d} lacks {', '.join(missing)}: it must hold the unpacked CIFAR-10 python "
            f"version ({', '.join(CIFAR10_FILES)}), from cifar-10-python.tar.gz."
        )
    return d


def _idx_data_dir(d: Path) -> Path:
    """``--data-dir`` checked to hold all four IDX files."""
    files = ", ".join(IDX_FILES)
    missing = [f for f in IDX_FILES if not (d / f).is_file()]
    if len(missing) == len(IDX_FILES):
        raise DatasetError(f"--data-dir {d} holds none of the four IDX files it needs: {files}.")
    if missing:
        raise DatasetError(f"--data-dir {d} lacks {', '.join(missing)} (it needs all four: {files}).")
    return d


def _local_idx_dirs(name: str) -> list[Path]:
    """Where local IDX files of ``name`` may be: the Keras cache, then known local copies."""
    spec = BUILTIN[name]
    candidates = []
    if spec["keras_cache"]:
        candidates.append(_data.keras_datasets_dir() / spec["keras_cache"])
    return candidates + [Path(p) for p in spec["local_dirs"]]


def _download(name: str) -> Dataset:
    """``keras.datasets.<name>.load_data()``, which downloads; offline, a message naming the files to place."""
    import keras

    spec = BUILTIN[name]
    try:
        (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, name).load_data()
    except Exception as e:  # Keras raises a bare Exception on URL failures
        hint = f" or install the Debian package {spec['debian_package']}" if spec["debian_package"] else ""
        what = (
            "the unpacked CIFAR-10 python batches (cifar-10-batches-py/data_batch_1 ... test_batch)"
            if name == "cifar10"
            else f"the four IDX files ({', '.join(IDX_FILES)})"
        )
        raise DatasetError(
            f"Could not download {name} through Keras ({str(e).splitlines()[0][:160]}). "
            f"Offline, put {what} in a folder and pass --data-dir FOLDER{hint}."
        ) from None
    x_train, x_test = np.asarray(x_train, np.uint8), np.asarray(x_test, np.uint8)
    if x_train.ndim == 3:  # MNIST-style grayscale: add the channel axis
        x_train, x_test = x_train[..., None], x_test[..., None]
    return Dataset(
        name=name,
        x_train=x_train,
        y_train=np.asarray(y_train, np.int64).reshape(-1),
        x_test=x_test,
        y_test=np.asarray(y_test, np.int64).reshape(-1),
        class_names=spec["class_names"],
        source="keras",
    )
