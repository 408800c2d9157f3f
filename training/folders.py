"""Image classification data from a folder of class subfolders, as the Keras tutorials lay it out.

``root/cats/*.jpg``, ``root/dogs/*.jpg``: each immediate subfolder of ``root`` is a class,
named after the folder and numbered in sorted order, like
``keras.utils.image_dataset_from_directory`` (https://keras.io/api/data_loading/image/).
Unlike it, :func:`scan_folder` decodes every file once up front, so a truncated JPEG, an
empty file or a text file renamed ``.png`` is reported by name before training starts
instead of stopping an epoch half way; and :func:`make_dataset` decodes each image once,
into a uint8 cache, instead of on every epoch. Folders are listed by
:func:`explain.data.list_class_folders` and images decoded by :func:`explain.images.load_image`,
the same listing and decoder that explaining uses, so a model trained on a folder and
explained on the same files sees identical arrays.

Typical use::

    report = scan_folder("data/train")
    print(report.summary())
    train, val = split_files(report.files, validation_fraction=0.2, seed=0)
    train_ds = make_dataset(train, (150, 150), 3, 32, shuffle_seed=0)
    val_ds = make_dataset(val, (150, 150), 3, 32, shuffle_seed=None)

Everything a user can get wrong is raised as :class:`~training.datasets.DatasetError`
with one line that says how to fix it.
"""

from __future__ import annotations

import hashlib
import os
import unicodedata
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from explain.data import SPLIT_FOLDER_NAMES, FolderListing, list_class_folders
from explain.errors import ImageLoadError
from explain.images import IMAGE_FILE_SUFFIXES, MIN_SIDE, SUPPORTED_MODES, check_image, load_image
from training.datasets import DatasetError, dataset_errors

if TYPE_CHECKING:
    import tensorflow as tf

#: File suffixes read as images (compared case-insensitively): the decoder's own list,
#: ``explain.images.IMAGE_FILE_SUFFIXES``, so training and explaining read the same files.
IMAGE_SUFFIXES = IMAGE_FILE_SUFFIXES
#: The imbalance ratio (largest / smallest non-empty class) above which summary() warns.
IMBALANCE_WARNING = 3.0
# MIN_SIDE, SPLIT_FOLDER_NAMES and SUPPORTED_MODES are re-exported from explain.images and
# explain.data, where they are defined.
__all__ = [
    "IMAGE_SUFFIXES",
    "IMBALANCE_WARNING",
    "MIN_SIDE",
    "SPLIT_FOLDER_NAMES",
    "SUPPORTED_MODES",
    "ScanReport",
    "load_image_file",
    "make_dataset",
    "scan_folder",
    "split_files",
]

_SHOWN_BAD_FILES = 10
_FILE_CACHE_SHUFFLE_BUFFER = 4096

FileList = Sequence[tuple[Path, int]]


@dataclass(frozen=True)
class ScanReport:
    """What :func:`scan_folder` found in a folder of class subfolders.

    Attributes:
        root: the folder scanned.
        class_names: one name per label, in label order (sorted folder names, or the
            ``class_names`` passed to :func:`scan_folder`).
        files: ``(path, label)`` for every good image, by class then by path; labels are
            ints in ``[0, len(class_names))``.
        counts: good images per class name (0 for an empty class), in label order.
        bad_files: ``(path, reason)`` for every file with an image suffix that cannot be
            used (empty, not an image, truncated or corrupt, too large, too small).
        skipped: files left out without a check: no image suffix (``.txt``,
            ``.DS_Store``, ...) or hidden (name starting with ``.``).
        empty_classes: class names with no good image (training refuses these).
        imbalance: largest / smallest count among the non-empty classes (>= 1.0).
        ignored_root_files: files lying directly in ``root``, outside any class folder
            (ignored, as Keras does).
    """

    root: Path
    class_names: tuple[str, ...]
    files: tuple[tuple[Path, int], ...]
    counts: dict[str, int]
    bad_files: tuple[tuple[Path, str], ...]
    skipped: int
    empty_classes: tuple[str, ...]
    imbalance: float
    ignored_root_files: int = field(default=0)

    @property
    def num_images(self) -> int:
        """Number of good images."""
        return len(self.files)

    def summary(self) -> str:
        """A short human report: counts per class, bad files with reasons, empty classes, imbalance.

        Returns:
            Several lines of text without a trailing newline, e.g.::

                120 images in 2 classes in data/train
                  cats  70
                  dogs  50
                2 bad files left out:
                  cats/x.jpg: truncated or corrupt (image file is truncated (3 bytes not processed))
                  dogs/y.png: not an image Pillow can read
                3 files skipped (no image suffix .jpg .jpeg .png .bmp .gif, or hidden)
        """
        n_classes = len(self.class_names)
        lines = [f"{self.num_images} images in {n_classes} class{'es' if n_classes != 1 else ''} in {self.root}"]
        width = max((_display_width(c) for c in self.class_names), default=0)
        digits = len(str(max(self.counts.values(), default=0)))
        lines += [
            f"  {name}{' ' * (width - _display_width(name))}  {self.counts[name]:>{digits}}"
            for name in self.class_names
        ]
        if self.bad_files:
            n_bad = len(self.bad_files)
            lines.append(f"{n_bad} bad file{'s' if n_bad != 1 else ''} left out:")
            for path, reason in self.bad_files[:_SHOWN_BAD_FILES]:
                lines.append(f"  {_relative(path, self.root)}: {reason}")
            if n_bad > _SHOWN_BAD_FILES:
                lines.append(f"  and {n_bad - _SHOWN_BAD_FILES} more")
        if self.skipped:
            lines.append(
                f"{self.skipped} file{'s' if self.skipped != 1 else ''} skipped "
                f"(no image suffix {' '.join(IMAGE_SUFFIXES)}, or hidden)"
            )
        if self.ignored_root_files:
            lines.append(
                f"{self.ignored_root_files} file{'s' if self.ignored_root_files != 1 else ''} directly in "
                f"{self.root} ignored (not in a class folder)"
            )
        if self.empty_classes:
            lines.append(
                f"empty class{'es' if len(self.empty_classes) != 1 else ''} (no readable image): "
                f"{', '.join(self.empty_classes)}; add images or remove the folder before training"
            )
        if self.imbalance > IMBALANCE_WARNING:
            nonempty = [c for c in self.class_names if self.counts[c] > 0]
            big = max(nonempty, key=lambda c: self.counts[c])
            small = min(nonempty, key=lambda c: self.counts[c])
            lines.append(
                f"warning: classes are imbalanced, largest/smallest = {self.imbalance:.1f} "
                f"({big} {self.counts[big]}, {small} {self.counts[small]}); accuracy will favour the large "
                "classes: add images to the small ones or use class weights"
            )
        return "\n".join(lines)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _display_width(text: str) -> int:
    """Terminal columns: wide East Asian characters take two, combining marks none."""
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _nfc(name: str) -> str:
    # macOS file systems hand back decomposed names ("cafe\u0301"); users type composed ones.
    return unicodedata.normalize("NFC", name)


def _quoted(names) -> str:
    return ", ".join(repr(n) for n in names)


def scan_folder(root: str | os.PathLike, class_names: Sequence[str] | None = None, workers: int = 4) -> ScanReport:
    """Find and check every image in ``root/<class>/``; report counts, bad files and imbalance.

    Class folders are the immediate, non-hidden subfolders of ``root``, sorted by name as
    ``keras.utils.image_dataset_from_directory`` sorts them; images may also lie in
    folders below a class folder. Files whose suffix is one of ``IMAGE_SUFFIXES`` (any
    case) are opened with Pillow and fully decoded (``Image.load``, in ``workers``
    threads: Pillow releases the GIL while decoding), so empty, non-image, truncated and
    corrupt files are caught here (JPEGs at libjpeg's reduced DCT scale, which still decodes
    every byte of image data, so big photos check fast); so are images over Pillow's ``Image.MAX_IMAGE_PIXELS``
    (decompression bombs) and under ``MIN_SIDE`` pixels a side. Other files are counted as
    skipped, not errors. Class folders without a good image are reported as empty, not
    refused (training refuses them).

    Args:
        root: the folder holding one subfolder per class.
        class_names: the expected classes, e.g. the training classes when checking a
            test or validation folder: labels follow this order and the folders must match
            it exactly (compared in Unicode NFC form). None: the sorted folder names.
        workers: threads decoding images (>= 1).

    Returns:
        A :class:`ScanReport`; ``files`` holds ``(Path, int label)`` pairs, labels in
        ``[0, len(class_names))``.

    Raises:
        DatasetError: ``root`` missing or not a folder; no class subfolders; ``root``
            holding split folders (``train/``, ``test/``) instead of classes; class folders
            that differ from ``class_names``; no readable image at all; or, when
            ``class_names`` is None, fewer than two classes with images.
    """
    if workers < 1:
        raise DatasetError(f"workers must be at least 1, got {workers}.")
    with dataset_errors():
        listing = list_class_folders(root)
    names, label_of = _labels(listing, class_names)
    candidates = sorted(((p, label_of[i]) for p, i in listing.files), key=lambda pl: pl[1])  # by label, then path
    with ThreadPoolExecutor(max_workers=workers) as pool:
        reasons = list(pool.map(_check_file, (p for p, _ in candidates)))
    return _scan_report(listing, names, candidates, reasons, one_class_ok=class_names is not None)


def _check_file(path: Path) -> str | None:
    """Fully decode ``path`` (:func:`explain.images.check_image`); None if usable, else the reason."""
    try:
        check_image(path)
    except ImageLoadError as e:
        return getattr(e, "reason", str(e))
    return None


def _labels(listing: FolderListing, class_names: Sequence[str] | None) -> tuple[tuple[str, ...], dict[int, int]]:
    """The class names and each class folder's label (folder index -> label), checked against ``class_names``."""
    folders = listing.class_folders
    if class_names is None:
        return tuple(folders), {i: i for i in range(len(folders))}
    names = tuple(class_names)
    if not names:
        raise DatasetError("class_names is empty: pass the training classes, or None to use the folder names.")
    wanted = {_nfc(n): i for i, n in enumerate(names)}
    if len(wanted) != len(names):
        raise DatasetError(f"class_names has duplicates: {_quoted(names)}.")
    extra = [n for n in folders if _nfc(n) not in wanted]
    present = {_nfc(n) for n in folders}
    missing = [n for n in names if _nfc(n) not in present]
    if extra:
        raise DatasetError(
            f"{listing.root} has class folder{'s' if len(extra) > 1 else ''} {_quoted(extra)} not among the "
            f"training classes ({_quoted(names)}): rename or remove {'them' if len(extra) > 1 else 'it'}."
        )
    if missing:
        raise DatasetError(
            f"{listing.root} lacks the class folder{'s' if len(missing) > 1 else ''} {_quoted(missing)} that "
            f"training has: create {'them' if len(missing) > 1 else 'it'} (empty is fine) so labels line up."
        )
    return names, {i: wanted[_nfc(n)] for i, n in enumerate(folders)}


def _scan_report(
    listing: FolderListing,
    names: tuple[str, ...],
    candidates: list[tuple[Path, int]],
    reasons: list[str | None],
    *,
    one_class_ok: bool,
) -> ScanReport:
    """Tally the checked files into a :class:`ScanReport`; refuse a folder training cannot use."""
    root = listing.root
    files = tuple((p, lab) for (p, lab), r in zip(candidates, reasons, strict=True) if r is None)
    bad = tuple((p, r) for (p, _), r in zip(candidates, reasons, strict=True) if r is not None)
    per_label = np.bincount(np.asarray([lab for _, lab in files], dtype=np.int64), minlength=len(names))
    counts = {n: int(per_label[i]) for i, n in enumerate(names)}
    nonempty = [c for c in counts.values() if c > 0]
    if not files:
        skipped = listing.skipped
        what = f"{len(bad)} bad files, {skipped} other files" if (bad or skipped) else "no files at all"
        first = f" First bad file: {_relative(bad[0][0], root)}: {bad[0][1]}." if bad else ""
        raise DatasetError(
            f"No readable image in the {len(listing.class_folders)} class folders of {root} ({what}).{first} "
            f"Put {'/'.join(s.lstrip('.') for s in IMAGE_SUFFIXES)} images in root/<class>/."
        )
    if not one_class_ok and len(nonempty) < 2:
        only = next(n for n in names if counts[n] > 0)
        raise DatasetError(
            f"Only one class in {root} has images ({only!r}, {counts[only]} images): need at least two classes, "
            "one subfolder each (root/cats/*.jpg, root/dogs/*.jpg)."
        )
    return ScanReport(
        root=root,
        class_names=names,
        files=files,
        counts=counts,
        bad_files=bad,
        skipped=listing.skipped,
        empty_classes=tuple(n for n in names if counts[n] == 0),
        imbalance=float(max(nonempty) / min(nonempty)),
        ignored_root_files=listing.root_files,
    )


def load_image_file(path: str | os.PathLike | bytes, image_size: tuple[int, int], channels: int) -> np.ndarray:
    """Load one image file as the uint8 pixels a model is trained on.

    Decoded by :func:`explain.images.load_image`, the decoder the explanations, the report
    and the dashboard use, so a model is trained on exactly the arrays it is explained on:
    the first frame of an animation, turned upright from its EXIF orientation, converted to
    grayscale or RGB (transparency composited on white; 16-bit images scaled by 255/65535,
    not clipped; CMYK converted) and resized to ``image_size`` with Pillow's antialiased
    bilinear filter, aspect ratio not kept, as ``keras.utils.load_img`` does. JPEGs at least
    twice the target size are first decoded at 1/2, 1/4 or 1/8 scale by libjpeg (Pillow's
    draft mode), for explaining too.

    Args:
        path: the image file (a path, or its file-system bytes as ``tf.numpy_function``
            passes it).
        image_size: ``(height, width)`` in pixels, both >= 1.
        channels: 1 (grayscale, ITU-R 601-2 luma) or 3 (RGB).

    Returns:
        uint8 array ``(height, width, channels)``, values in [0, 255].

    Raises:
        DatasetError: the file is missing, empty, not an image, truncated or corrupt, over
            Pillow's pixel limit, or under ``MIN_SIDE`` pixels a side; or ``channels`` or
            ``image_size`` is invalid. The message names the file.
    """
    _check_size_and_channels(image_size, channels)
    path = Path(os.fsdecode(path))
    try:
        return load_image(path, (int(image_size[0]), int(image_size[1])), channels)
    except ImageLoadError as e:
        raise DatasetError(f"{path}: {getattr(e, 'reason', e)}. Remove or replace the file.") from None


def _check_size_and_channels(image_size: tuple[int, int], channels: int) -> None:
    if channels not in (1, 3):
        raise DatasetError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}.")
    if len(image_size) != 2 or min(image_size) < 1:
        raise DatasetError(f"image_size must be (height, width) with positive sides, got {image_size!r}.")


def split_files(
    files: FileList, validation_fraction: float = 0.2, seed: int = 0
) -> tuple[tuple[tuple[Path, int], ...], tuple[tuple[Path, int], ...]]:
    """Split ``(path, label)`` pairs into training and validation, seeded and stratified by class.

    In every class with n >= 2 images, ``max(1, round(n * validation_fraction))`` images,
    capped at n - 1, go to validation (none if the fraction is 0); a class with one image
    goes to training only, so every class keeps at least one training image. Which images
    are held out depends only on the set of files and the seed, not on their order.

    Args:
        files: ``(path, label)`` pairs, e.g. ``ScanReport.files``.
        validation_fraction: share of each class held out, in [0, 1).
        seed: seeds the choice; the same seed gives the same split.

    Returns:
        ``(train, val)``: two tuples of ``(Path, int)`` pairs, each in the order of ``files``.

    Raises:
        DatasetError: ``validation_fraction`` outside [0, 1).
    """
    if not 0 <= validation_fraction < 1:
        raise DatasetError(f"validation fraction must be in [0, 1), got {validation_fraction}.")
    pairs = [(Path(p), int(lab)) for p, lab in files]
    by_label: dict[int, list[int]] = {}
    for i, (_, lab) in enumerate(pairs):
        by_label.setdefault(lab, []).append(i)
    rng = np.random.default_rng(seed)
    held_out: set[int] = set()
    for lab in sorted(by_label):
        idx = sorted(by_label[lab], key=lambda i: str(pairs[i][0]))
        n = len(idx)
        if n < 2 or validation_fraction == 0:
            continue
        n_val = min(n - 1, max(1, round(n * validation_fraction)))
        held_out.update(idx[j] for j in rng.permutation(n)[:n_val])
    train = tuple(pf for i, pf in enumerate(pairs) if i not in held_out)
    val = tuple(pf for i, pf in enumerate(pairs) if i in held_out)
    return train, val


def _cache_key(files: FileList, image_size: tuple[int, int], channels: int) -> str:
    h = hashlib.sha256(f"{tuple(image_size)}|{channels}".encode())
    for p, lab in files:
        try:
            st = os.stat(p)
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        h.update(os.fsencode(p) + f"|{lab}|{stamp}\n".encode())
    return h.hexdigest()[:16]


def make_dataset(
    files: FileList,
    image_size: tuple[int, int],
    channels: int,
    batch_size: int,
    *,
    shuffle_seed: int | None,
    cache: bool | str = True,
) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of ``(images, labels)`` batches that decodes every file only once.

    Files are decoded by :func:`load_image_file` in parallel (``tf.numpy_function``,
    ``num_parallel_calls=AUTOTUNE``, order kept), then cached as uint8, so the first
    epoch decodes and later epochs read the cache. With ``shuffle_seed`` the cached
    images are reshuffled every epoch (seeded, so runs repeat); with None the order is
    that of ``files`` (evaluation never shuffles). Batches are prefetched.

    Args:
        files: ``(path, label)`` pairs, e.g. ``ScanReport.files`` or a part of
            :func:`split_files`; at least one.
        image_size: ``(height, width)`` in pixels.
        channels: 1 (grayscale) or 3 (RGB).
        batch_size: images per batch (>= 1); the last batch may be smaller.
        shuffle_seed: seed of the per-epoch shuffle, or None for no shuffling.
        cache: True caches in memory (``N * H * W * C`` bytes); a path caches to files
            named ``<path>.<key>*``, where the key digests the file list (paths, labels,
            sizes, modification times), ``image_size`` and ``channels``, so a stale cache is
            never read; False decodes every epoch. With a file cache the shuffle buffer
            holds at most 4096 images and the decoding order is shuffled once, so memory
            stays bounded.

    Returns:
        A ``tf.data.Dataset`` yielding uint8 images ``(B, H, W, C)`` in [0, 255] and int32
        labels ``(B,)``.

    Raises:
        DatasetError: no files, or an invalid ``image_size``, ``channels`` or ``batch_size``.
            A file that became unreadable after :func:`scan_folder` stops iteration with a
            TensorFlow error whose message holds the DatasetError text.
    """
    import tensorflow as tf

    files = [(Path(p), int(lab)) for p, lab in files]
    if not files:
        raise DatasetError("No image files to make a data set from: scan a folder with scan_folder() first.")
    _check_size_and_channels(image_size, channels)
    if batch_size < 1:
        raise DatasetError(f"batch size must be at least 1, got {batch_size}.")
    size = (int(image_size[0]), int(image_size[1]))
    file_cache = isinstance(cache, str | os.PathLike) and not isinstance(cache, bool)
    buffer = len(files)
    if file_cache and shuffle_seed is not None and len(files) > _FILE_CACHE_SHUFFLE_BUFFER:
        # A full-size shuffle buffer would hold every image in memory; spread classes over
        # the cache file instead and shuffle within a bounded window each epoch.
        order = np.random.default_rng(shuffle_seed).permutation(len(files))
        files = [files[i] for i in order]
        buffer = _FILE_CACHE_SHUFFLE_BUFFER
    ds = _cached(_decoded(files, size, channels), cache if file_cache else bool(cache), files, size, channels)
    if shuffle_seed is not None:
        ds = ds.shuffle(buffer, seed=shuffle_seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _cached(ds: tf.data.Dataset, cache: bool | str | os.PathLike, files, size, channels) -> tf.data.Dataset:
    """``ds`` cached in memory (True), in files ``<cache>.<key>*`` (a path), or not at all (False)."""
    if cache is True:
        return ds.cache()
    if cache is False:
        return ds
    base = Path(cache)
    base.parent.mkdir(parents=True, exist_ok=True)
    return ds.cache(f"{base}.{_cache_key(files, size, channels)}")


def _decoded(files: list[tuple[Path, int]], size: tuple[int, int], channels: int) -> tf.data.Dataset:
    """Unbatched ``(uint8 image (H, W, C), int32 label)`` pairs, decoded in parallel by :func:`load_image_file`."""
    import tensorflow as tf

    # Paths travel as file-system bytes, so any file name (Unicode or not) round-trips.
    paths = np.array([os.fsencode(p) for p, _ in files], dtype=object)
    labels = np.array([lab for _, lab in files], dtype=np.int32)

    def _decode(path: bytes) -> np.ndarray:
        return load_image_file(path, size, channels)

    def _load(path, label):
        image = tf.numpy_function(_decode, [path], tf.uint8, stateful=False)
        image.set_shape((*size, channels))
        return image, label

    ds = tf.data.Dataset.from_tensor_slices((tf.constant(paths, dtype=tf.string), labels))
    return ds.map(_load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
