"""Built-in data sets, loaded through Keras or, offline, from local IDX files.

Fashion-MNIST (Xiao et al. 2017, https://github.com/zalandoresearch/fashion-mnist) and
MNIST are distributed as four gzipped IDX files. ``keras.datasets.*.load_data()``
downloads them into ``~/.keras/datasets``; offline, the same four files can come from a
``--data-dir`` or, for Fashion-MNIST, from the Debian package ``dataset-fashion-mnist``
(``/usr/share/datasets/fashion-mnist/``).
"""

from __future__ import annotations

import gzip
import os
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
}


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
        name: ``"fashion_mnist"`` or ``"mnist"``.
        data_dir: a directory holding the four IDX files named in ``IDX_FILES``.

    Returns:
        The :class:`Dataset`, pixels uint8 ``(N, 28, 28, 1)``.

    Raises:
        DatasetError: unknown name, incomplete ``data_dir``, or no local copy and no network;
            the message names the files to place and where.
    """
    if name not in BUILTIN:
        raise DatasetError(f"Unknown data set {name!r}. Built-in data sets are: {', '.join(BUILTIN)}.")
    spec = BUILTIN[name]
    class_names = spec["class_names"]
    files = ", ".join(IDX_FILES)
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
        raise DatasetError(
            f"Could not download {name} through Keras ({str(e).splitlines()[0][:160]}). "
            f"Offline, put the four IDX files ({files}) in a folder and pass --data-dir FOLDER{hint}."
        ) from None
    return Dataset(
        name=name,
        x_train=np.asarray(x_train, np.uint8)[..., None],
        y_train=np.asarray(y_train, np.int64),
        x_test=np.asarray(x_test, np.uint8)[..., None],
        y_test=np.asarray(y_test, np.int64),
        class_names=class_names,
        source="keras",
    )
