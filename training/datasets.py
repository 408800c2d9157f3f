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

import gzip
import os
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

FASHION_MNIST_CLASSES = (
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
)

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

BUILTIN = {
    "fashion_mnist": {
        "class_names": FASHION_MNIST_CLASSES,
        "keras_cache": "fashion-mnist",
        "local_dirs": ("/usr/share/datasets/fashion-mnist",),
        "debian_package": "dataset-fashion-mnist",
    },
    "mnist": {
        "class_names": tuple(str(i) for i in range(10)),
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

CIFAR10_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")


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


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (optionally gzipped), as specified at http://yann.lecun.com/exdb/mnist/.

    Returns:
        uint8 array with the file's dimensions, e.g. ``(60000, 28, 28)`` or ``(60000,)``.

    Raises:
        DatasetError: the file is not a valid unsigned-byte IDX file.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DatasetError(f"Cannot read IDX file {path}: {e}") from None
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise DatasetError(f"{path} is not an unsigned-byte IDX file (bad magic number).")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{path} is truncated (header incomplete).")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(dims)) if dims else 0
    if len(data) - header != expected:
        raise DatasetError(
            f"{path} is truncated or padded: header says {dims} = {expected} bytes, file holds {len(data) - header}."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only plain containers and NumPy arrays: a CIFAR batch file cannot run code."""

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


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (OSError, EOFError, KeyError, TypeError, ValueError, pickle.UnpicklingError) as e:
        raise DatasetError(f"{path} is not a CIFAR-10 python batch file ({e}).") from None
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


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
    spec = BUILTIN[name]
    class_names = spec["class_names"]
    files = ", ".join(IDX_FILES)
    if data_dir is not None and name == "cifar10":
        d = Path(data_dir)
        if (d / "cifar-10-batches-py").is_dir():
            d = d / "cifar-10-batches-py"
        missing = [f for f in CIFAR10_FILES if not (d / f).is_file()]
        if missing:
            raise DatasetError(
                f"--data-dir {d} lacks {', '.join(missing)}: it must hold the unpacked CIFAR-10 python "
                f"version ({', '.join(CIFAR10_FILES)}), from cifar-10-python.tar.gz."
            )
        return _load_cifar_dir(d)
    if data_dir is not None:
        d = Path(data_dir)
        missing = [f for f in IDX_FILES if not (d / f).is_file()]
        if len(missing) == len(IDX_FILES):
            raise DatasetError(f"--data-dir {d} holds none of the four IDX files it needs: {files}.")
        if missing:
            raise DatasetError(f"--data-dir {d} lacks {', '.join(missing)} (it needs all four: {files}).")
        return _load_idx_dir(name, d, class_names)

    candidates = []
    if spec["keras_cache"]:
        keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
        candidates.append(keras_home / "datasets" / spec["keras_cache"])
    candidates += [Path(p) for p in spec["local_dirs"]]
    found = _find_idx_dir(candidates)
    if found is not None:
        return _load_idx_dir(name, found, class_names)

    import keras

    try:
        (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, name).load_data()
    except Exception as e:  # Keras raises a bare Exception on URL failures
        hint = f" or install the Debian package {spec['debian_package']}" if spec["debian_package"] else ""
        what = (
            "the unpacked CIFAR-10 python batches (cifar-10-batches-py/data_batch_1 ... test_batch)"
            if name == "cifar10"
            else f"the four IDX files ({files})"
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
        class_names=class_names,
        source="keras",
    )
