"""The data layer: labelled image data sets read in order and in batches, and class-name matching.

The data are a folder of class subfolders (``root/<class>/*.png``, as the Keras tutorials lay them
out, :mod:`~explain.data.sources`) or a built-in split (``fashion_mnist:test``, ``mnist:test``,
``cifar10:test`` and the ``:train`` splits, :mod:`~explain.data.builtin`); :func:`open_data` takes
either (:mod:`~explain.data.spec`). Both are read in order, never shuffled, and in batches, so memory
stays bounded by the batch size whatever the number of images. A served dashboard reads folders only
under its data root and unpacks uploaded zips of class folders (:mod:`~explain.data.served`).

This is the lowest floor of ``explain`` that ``training`` builds on: its folder listing, its IDX
reader and its safe CIFAR-10 reader are the ones training uses. It imports neither Keras nor
TensorFlow up front (only :func:`load_builtin_split` does, to download).

Every problem with the data is raised as :class:`~explain.errors.DataError` with one line that says
what was wrong and how to fix it.
"""

from explain.data.builtin import (
    BUILTIN_CLASSES,
    CIFAR10_FILES,
    FASHION_MNIST_DIRS,
    IDX_FILES,
    SPLITS,
    keras_datasets_dir,
    load_builtin_split,
    read_cifar_batch,
    read_idx,
)
from explain.data.served import (
    MAX_DATA_UNPACKED_BYTES,
    MAX_DATA_ZIP_BYTES,
    ZIP_HOWTO,
    data_folders,
    resolve_data_folder,
    unpack_class_folders,
)
from explain.data.sources import (
    SPLIT_FOLDER_NAMES,
    ArraySource,
    DataSource,
    FolderListing,
    FolderSource,
    list_class_folders,
    match_classes,
)
from explain.data.spec import open_data

__all__ = [
    "BUILTIN_CLASSES",
    "CIFAR10_FILES",
    "FASHION_MNIST_DIRS",
    "IDX_FILES",
    "MAX_DATA_UNPACKED_BYTES",
    "MAX_DATA_ZIP_BYTES",
    "SPLITS",
    "SPLIT_FOLDER_NAMES",
    "ZIP_HOWTO",
    "ArraySource",
    "DataSource",
    "FolderListing",
    "FolderSource",
    "data_folders",
    "keras_datasets_dir",
    "list_class_folders",
    "load_builtin_split",
    "match_classes",
    "open_data",
    "read_cifar_batch",
    "read_idx",
    "resolve_data_folder",
    "unpack_class_folders",
]
