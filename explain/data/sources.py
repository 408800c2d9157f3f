"""Labelled image data read in order and in batches: :class:`DataSource`, :class:`ArraySource`,
a folder of class subfolders (:class:`FolderSource`, :func:`list_class_folders`, the split-folder names
:data:`SPLIT_FOLDER_NAMES` that training uses too), and class-name matching (:func:`match_classes`).

A folder is read file by file with :func:`explain.images.load_image` (resized to the model's input), an
array by slicing, so memory stays bounded by the batch size whatever the number of images.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from explain.errors import DataError, ImageLoadError
from explain.images import IMAGE_SUFFIXES, is_image_file, load_image, resize

#: Folder names that mean "a split", not "a class": ``root/train/cats`` pointed at ``root``.
SPLIT_FOLDER_NAMES = frozenset({"train", "training", "test", "testing", "val", "valid", "validation"})
_LOAD_WORKERS = 4


def _nfc(name: str) -> str:
    # macOS hands back decomposed folder names ("cafe\u0301"); model cards hold composed ones.
    return unicodedata.normalize("NFC", name)


def quoted_names(names: Sequence[str], limit: int = 12) -> str:
    """``names`` quoted and comma-separated, the first ``limit`` of them, then "and N more"."""
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


def has_subfolder(path: str) -> bool:
    """Whether the folder ``path`` holds a visible subfolder (False when it cannot be read)."""
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
    if all(n.lower() in SPLIT_FOLDER_NAMES for n in names) and all(has_subfolder(e.path) for e in class_dirs):
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
            f"{quoted_names(empty_folders)}: no images to evaluate, reported as 'no images' and left "
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
        also = f"; and the data lack the model's {quoted_names(missing)}" if missing else ""
        raise DataError(
            f"The data have {'classes' if len(extra) > 1 else 'a class'} the model does not know: "
            f"{quoted_names(extra)}{also}. "
            f"The model's classes (from its model card) are {quoted_names(list(model_classes))}: name the class "
            "folders after them."
        )
    return np.asarray([mapping[j] for j in range(len(data_classes))], dtype=np.int64), missing, tuple(loose)
