"""The data layer: labelled image data sets read in order and in batches, and class-name matching.

The data are a folder of class subfolders (``root/<class>/*.png``, as the Keras tutorials lay
them out) or a built-in split (``fashion_mnist:test``, ``mnist:test``, ``cifar10:test``, and the
``:train`` splits). Both are read in order, never shuffled, and in batches: a folder file by file
with :func:`explain.images.load_image` (resized to the model's input), a built-in split by
slicing its arrays, so memory stays bounded by the batch size whatever the number of images.

This is the lowest floor of ``explain`` that ``training`` builds on: its folder listing
(:func:`list_class_folders`, with one set of split-folder names, :data:`SPLIT_FOLDER_NAMES`),
its IDX reader (:func:`read_idx`) and its safe CIFAR-10 reader (:func:`read_cifar_batch`) are
the ones training uses. It imports neither Keras nor TensorFlow up front (only
:func:`load_builtin_split` does, to download).

A served dashboard reads folders only under its data root (:func:`resolve_data_folder`, which
refuses ``..``, other absolute paths and symbolic links leading out; :func:`data_folders` lists
the choices) and unpacks an uploaded zip of class folders with :func:`unpack_class_folders`
(through :mod:`explain.archives`, capped by :data:`MAX_DATA_ZIP_BYTES` and
:data:`MAX_DATA_UNPACKED_BYTES`).

Every problem with the data is raised as :class:`~explain.errors.DataError` with one line that
says what was wrong and how to fix it.
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
import re
import shutil
import struct
import unicodedata
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from explain.archives import unpack_zip
from explain.errors import DataError, ImageLoadError
from explain.images import IMAGE_SUFFIXES, is_image_file, load_image, resize

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
SPLIT_FOLDER_NAMES = frozenset({"train", "training", "test", "testing", "val", "valid", "validation"})
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
    """Convert uint8 ``(B, h, w, c)`` to ``(B, H, W, channels)``: the conversion and resize of load_image."""
    th, tw = int(target_size[0]), int(target_size[1])
    if images.shape[1:] == (th, tw, channels):
        return images
    mode = "L" if channels == 1 else "RGB"
    out = np.empty((len(images), th, tw, channels), np.uint8)
    for i, img in enumerate(images):
        pil = Image.fromarray(img[..., 0], "L") if img.shape[-1] == 1 else Image.fromarray(img[..., :3], "RGB")
        if pil.mode != mode:
            pil = pil.convert(mode)
        out[i] = np.asarray(resize(pil, (th, tw)), dtype=np.uint8).reshape(th, tw, channels)
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


# -- folders ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class FolderListing:
    """The files of a folder of class subfolders, as :func:`list_class_folders` finds them.

    Attributes:
        root: the folder.
        class_folders: the class subfolders' names, sorted (as on disk, not normalised).
        files: ``(path, folder index)`` for every image file, by folder, then by path.
        counts: image files per class folder, in ``class_folders`` order (0 for an empty one).
        skipped: files inside class folders left out: no image suffix, or hidden.
        root_files: files directly in ``root``, outside any class folder (not read).
    """

    root: Path
    class_folders: tuple[str, ...]
    files: tuple[tuple[Path, int], ...]
    counts: tuple[int, ...]
    skipped: int
    root_files: int


def _scan_root(root: Path) -> list[os.DirEntry]:
    if not root.exists():
        raise DataError(f"No such folder: {root}. Pass a folder of class subfolders (root/cats/*.jpg).")
    if not root.is_dir():
        raise DataError(
            f"{root} is a file, not a folder. Pass the folder that holds one subfolder per class "
            "(root/cats/*.jpg, root/dogs/*.jpg)."
        )
    try:
        return sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as e:
        raise DataError(f"Cannot list {root}: {e.strerror or e}. Check its permissions.") from None


def _has_subfolder(path: str) -> bool:
    try:
        return any(not s.name.startswith(".") and s.is_dir() for s in os.scandir(path))
    except OSError:
        return False


def _images_below(folder: str) -> tuple[list[Path], int]:
    """Image files anywhere below ``folder`` (hidden folders left out), sorted; and how many others."""
    found, other = [], 0
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in filenames:
            if is_image_file(f):
                found.append(Path(dirpath, f))
            else:
                other += 1
    return sorted(found), other


def list_class_folders(root: str | os.PathLike) -> FolderListing:
    """List a folder of class subfolders (``root/<class>/**/*.jpg``) without opening any image.

    Class folders are the immediate, non-hidden subfolders of ``root``, sorted by name as
    ``keras.utils.image_dataset_from_directory`` numbers them; images may lie deeper inside a
    class folder. Image files are those with a suffix in :data:`explain.images.IMAGE_SUFFIXES`
    (any case), not hidden. Training (``training.folders.scan_folder``) and
    :class:`FolderSource` both list folders with this function.

    Args:
        root: the folder.

    Returns:
        A :class:`FolderListing`.

    Raises:
        DataError: ``root`` missing, a file or unreadable; no class subfolders; only split
            folders (names in :data:`SPLIT_FOLDER_NAMES`, each holding subfolders) instead of
            class folders.
    """
    root = Path(root)
    entries = _scan_root(root)
    class_dirs = [e for e in entries if not e.name.startswith(".") and e.is_dir()]
    root_files = [e for e in entries if not e.name.startswith(".") and not e.is_dir()]
    if not class_dirs:
        n = sum(1 for e in root_files if is_image_file(e.name))
        found = f" (it holds {n} images directly)" if n else ""
        raise DataError(
            f"{root} has no class subfolders{found}: put the images in one subfolder per class, "
            "named after the class (root/cats/*.jpg, root/dogs/*.jpg)."
        )
    names = [e.name for e in class_dirs]
    if all(n.lower() in SPLIT_FOLDER_NAMES for n in names) and all(_has_subfolder(e.path) for e in class_dirs):
        raise DataError(
            f"{root} holds split folders ({', '.join(names)}), not class folders: pass one of them, "
            f"e.g. {root / names[-1]}."
        )
    files: list[tuple[Path, int]] = []
    counts, skipped = [], 0
    for index, entry in enumerate(class_dirs):
        found, other = _images_below(entry.path)
        files += [(p, index) for p in found]
        counts.append(len(found))
        skipped += other
    return FolderListing(root, tuple(names), tuple(files), tuple(counts), skipped, len(root_files))


def _folder_notes(listing: FolderListing, empty_folders: Sequence[str]) -> tuple[str, ...]:
    notes = []
    if empty_folders:
        notes.append(
            f"Empty class folder{'s' if len(empty_folders) > 1 else ''} "
            f"{_quoted(empty_folders)}: no images to evaluate, reported as 'no images' and left "
            "out of the per-class accuracy."
        )
    if listing.skipped:
        n = listing.skipped
        notes.append(f"{n} file{'s' if n > 1 else ''} without an image suffix or hidden: not read.")
    if listing.root_files:
        n = listing.root_files
        notes.append(f"{n} file{'s' if n > 1 else ''} directly in {listing.root}, outside any class folder: not read.")
    return tuple(notes)


class FolderSource(DataSource):
    """A folder of class subfolders (``root/<class>/**/*.png``), read file by file.

    The folder is listed by :func:`list_class_folders` (the listing training uses). Files are
    listed up front but only decoded batch by batch, with :func:`explain.images.load_image`
    (the decoder training uses), so a folder of any size is read in bounded memory; a file
    that turns out unreadable is skipped and reported, not fatal. Empty class folders are kept
    (the class has no images: it is reported, and its row of the confusion matrix is empty).

    Args:
        root: the folder.

    Raises:
        DataError: ``root`` missing or a file; no class subfolders; split folders
            (``train/``, ``test/``) instead of classes; no image file at all.
    """

    def __init__(self, root: str | os.PathLike):
        listing = list_class_folders(root)
        if not listing.files:
            raise DataError(
                f"No image files in the {len(listing.class_folders)} class folders of {listing.root}: put "
                f"{'/'.join(IMAGE_SUFFIXES[:4])} images in root/<class>/."
            )
        self.root = listing.root
        self.name = str(listing.root)
        self.class_names = tuple(_nfc(n) for n in listing.class_folders)
        self.paths = tuple(p for p, _ in listing.files)
        self.labels = np.asarray([lab for _, lab in listing.files], dtype=np.int64)
        self.image_size = None
        self.empty_folders = tuple(n for n, c in zip(self.class_names, listing.counts, strict=True) if c == 0)
        self.notes = _folder_notes(listing, self.empty_folders)

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


# -- a served dashboard: the data root and uploaded zips of class folders -------------------
#: Largest zip of class folders accepted from an upload, in bytes (as uploaded).
MAX_DATA_ZIP_BYTES = 200 * 1024**2
#: Largest total size a zip of class folders may unpack to, in bytes.
MAX_DATA_UNPACKED_BYTES = 2 * 1024**3
#: How to zip class folders, for every refused data zip.
ZIP_HOWTO = (
    "Zip the folder that holds one subfolder per class: zip -r birds.zip birds (birds/cats/*.jpg, birds/dogs/...)."
)


def _data_root(root: str | os.PathLike) -> Path:
    """The data root, resolved; it must be an existing folder."""
    path = Path(root)
    if not path.is_dir():
        raise DataError(
            f"The data root {path} is not an existing folder. Start the dashboard with --data-root DIR, "
            "DIR a folder that holds the data folders to serve."
        )
    return path.resolve()


def _inside(path: str | os.PathLike, folder: Path) -> bool:
    return Path(path).is_relative_to(folder)


def _link_leaving(folder: Path, root: Path) -> str | None:
    """The first symbolic link under ``folder`` (hidden entries left out) that leads outside ``root``,
    as a path below ``folder``; links that stay inside are followed, once each, so a link behind a
    link is seen too (reading the folder would follow them)."""
    stack, seen = [(folder, "")], {folder}
    while stack:
        where, shown = stack.pop()
        try:
            entries = sorted(os.scandir(where), key=lambda e: e.name)
        except OSError:
            continue
        for e in entries:
            if e.name.startswith("."):
                continue
            if e.is_symlink():
                real = Path(os.path.realpath(e.path))
                if not _inside(real, root):
                    return shown + e.name
                if real.is_dir() and real not in seen:
                    seen.add(real)
                    stack.append((real, f"{shown}{e.name}/"))
            elif e.is_dir(follow_symlinks=False):
                stack.append((Path(e.path), f"{shown}{e.name}/"))
    return None


def resolve_data_folder(text: str, root: str | os.PathLike) -> Path:
    """The folder a visitor typed, confined to the data root a served dashboard was started with.

    Accepted: a path relative to ``root`` (``birds/test``, ``.`` for the root itself), or an
    absolute path inside it; ``..`` is fine while it stays inside. Symbolic links are followed
    only while they stay inside the root: on the way to the folder and anywhere below it (a class
    folder, an image file), since reading the folder would follow them.

    Args:
        text: what the visitor typed.
        root: the data root (``--data-root DIR``).

    Returns:
        The folder, resolved (absolute, symbolic links followed).

    Raises:
        DataError: ``root`` is not an existing folder; nothing typed; ``..`` leaves the root; an
            absolute path elsewhere; a symbolic link on the way or below the folder leads outside
            the root; no such folder; a file, not a folder.
    """
    real_root = _data_root(root)
    text = text.strip()
    if not text or "\0" in text:
        raise DataError("No folder given: type a folder under the data root, e.g. birds/test, or pick one listed.")
    typed = Path(text)
    if typed.is_absolute():
        lexical = Path(os.path.normpath(typed))
        if not (_inside(lexical, Path(os.path.normpath(Path(root).absolute()))) or _inside(lexical, real_root)):
            raise DataError(
                f"{text} is outside the data root: only folders under it are served. "
                "Type a path relative to the data root, e.g. birds/test."
            )
    else:
        lexical = Path(os.path.normpath(real_root / typed))
        if not _inside(lexical, real_root):
            raise DataError(
                f"{text} leaves the data root through '..': only folders under it are served. "
                "Type a path relative to the data root, e.g. birds/test."
            )
    try:
        folder = lexical.resolve()
    except (OSError, RuntimeError):
        raise DataError(f"{text} goes through a loop of symbolic links; type another folder.") from None
    if not _inside(folder, real_root):
        raise DataError(
            f"{text} leads outside the data root through a symbolic link; only folders under the data root "
            "are served. Type a folder that is really inside it."
        )
    if not folder.exists():
        raise DataError(f"No such folder under the data root: {text}. Pick one from the list of data folders.")
    if not folder.is_dir():
        raise DataError(f"{text} is a file, not a folder: type the folder that holds one subfolder per class.")
    leaving = _link_leaving(folder, real_root)
    if leaving is not None:
        raise DataError(
            f"{text}: {leaving} is a symbolic link to a place outside the data root; "
            "refusing the folder. Serve only folders whose links stay inside the data root."
        )
    return folder


def _holds_images(folder: str) -> bool:
    try:
        with os.scandir(folder) as it:
            return any(is_image_file(e.name) for e in it)
    except OSError:
        return False


def _subfolders(folder: Path, root: Path) -> list[Path]:
    """Non-hidden subfolders of ``folder``, sorted; a symbolic link only when it stays inside ``root``."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return []
    return [
        Path(e.path)
        for e in entries
        if not e.name.startswith(".") and e.is_dir() and (not e.is_symlink() or _inside(os.path.realpath(e.path), root))
    ]


def data_folders(root: str | os.PathLike, max_depth: int = 2, limit: int = 200) -> list[str]:
    """The folders under the data root that hold class subfolders, for a select box.

    A folder qualifies when one of its subfolders holds image files directly (``birds/test`` with
    ``cats/*.jpg``). Hidden folders are left out; symbolic links are never followed out of the root.

    Args:
        root: the data root.
        max_depth: how deep to look: 0 the root only, 1 its subfolders, 2 theirs (the default).
        limit: the most folders returned.

    Returns:
        Paths relative to ``root`` (``"."`` for the root itself, ``/`` as separator), sorted.

    Raises:
        DataError: ``root`` is not an existing folder.
    """
    real_root = _data_root(root)
    found, level = [], [real_root]
    for _ in range(max_depth + 1):
        below = []
        for folder in level:
            subs = _subfolders(folder, real_root)
            if any(_holds_images(str(s)) for s in subs):
                found.append(folder.relative_to(real_root).as_posix() if folder != real_root else ".")
            below += subs
        level = below
    return sorted(found)[:limit]


def _zip_top(dest: Path) -> Path:
    """The folder of an unpacked zip that holds the class folders: its top, or one wrapping folder."""
    entries = [e for e in dest.iterdir() if not e.name.startswith(".")]
    folders = [e for e in entries if e.is_dir()]
    images = [e for e in entries if e.is_file() and is_image_file(e.name)]
    if len(folders) == 1 and not images and _has_subfolder(str(folders[0])):
        return folders[0]
    return dest


def _check_class_folders(top: Path, name: str) -> None:
    """Refuse split folders instead of class folders, and fewer than 2 class folders with images."""
    names = sorted(p.name for p in top.iterdir() if p.is_dir() and not p.name.startswith("."))
    splits = [n for n in names if n.lower() in SPLIT_FOLDER_NAMES and _has_subfolder(str(top / n))]
    if names and splits == names:
        raise DataError(f"{name} holds split folders ({', '.join(names)}), not class folders: zip one. {ZIP_HOWTO}")
    with_images = []
    if names:
        listing = list_class_folders(top)
        with_images = [n for n, c in zip(listing.class_folders, listing.counts, strict=True) if c]
    if len(with_images) < 2:
        held = f"1 class folder with images ({with_images[0]!r})" if with_images else "no class folder with images"
        raise DataError(f"{name} holds {held}; at least 2 are needed. {ZIP_HOWTO}")


def unpack_class_folders(data: bytes | os.PathLike, dest: str | os.PathLike, name: str) -> Path:
    """Unpack an uploaded ``.zip`` of class folders into ``dest``, safely (:mod:`explain.archives`).

    The class folders may lie at the zip's top (``cd birds; zip -r ../birds.zip .``) or in one
    wrapping folder (``zip -r birds.zip birds``). The macOS ``__MACOSX/`` folder is removed.

    Args:
        data: the zip file's bytes (an upload) or its path.
        dest: a new or empty folder to unpack into, e.g. a per-session temporary folder; the caller
            removes it when done (also after an error).
        name: the upload's file name, as messages name it.

    Returns:
        The folder that holds the class folders (``dest`` or the wrapping folder inside it), for
        :class:`FolderSource`.

    Raises:
        DataError: no such file; more than :data:`MAX_DATA_ZIP_BYTES`; a damaged zip or not a zip; it would
            unpack to more than :data:`MAX_DATA_UNPACKED_BYTES` or looks like a zip bomb; members
            outside the folder, links or encrypted; split folders instead of class folders; fewer
            than 2 class folders with images.
    """
    if not isinstance(data, bytes | bytearray) and not Path(data).is_file():
        raise DataError(f"No such zip file: {name}. Upload a .zip of class folders.")
    size = len(data) if isinstance(data, bytes | bytearray) else Path(data).stat().st_size
    if size > MAX_DATA_ZIP_BYTES:
        raise DataError(
            f"{name} is {size / 1024**2:.0f} MB; zips of class folders up to {MAX_DATA_ZIP_BYTES // 1024**2} MB "
            "are accepted. Zip fewer images per class, or ask for the folder to be served under the data root."
        )
    dest = Path(dest)
    unpack_zip(data, dest, name, DataError, hint=ZIP_HOWTO, max_bytes=MAX_DATA_UNPACKED_BYTES)
    shutil.rmtree(dest / "__MACOSX", ignore_errors=True)
    top = _zip_top(dest)
    _check_class_folders(top, name)
    return top


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
