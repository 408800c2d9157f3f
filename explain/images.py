"""Load an image file into the pixels a model expects, with Pillow only: the one decoder.

Training (``training.folders``), evaluation (:class:`explain.data.FolderSource`), the
report, the CLIs and the dashboard all decode through :func:`load_image`, so a model
trained on a folder and explained on the same files sees identical arrays: the same
accepted suffixes (:data:`IMAGE_SUFFIXES`), the same EXIF rotation, the same
grayscale/RGB conversion (transparency composited over white), the same resize
(:data:`RESAMPLE`, Pillow's antialiased bilinear) and the same JPEG draft (reduced-size)
decoding when a target size at most half the photo's is asked for.

Every bad-file case is raised as :class:`~explain.errors.ImageLoadError` with one clear
message: empty file, not an image, truncated or corrupt data, a decompression bomb, an
unsupported colour mode, tiny images. The error's ``reason`` attribute holds the short
cause without the file name (e.g. ``"empty file (0 bytes)"``), for lists of bad files.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from explain.errors import ImageLoadError

#: Largest image accepted when Pillow's own limit (``Image.MAX_IMAGE_PIXELS``) is switched
#: off, in pixels (width x height); Pillow's default limit is the same (about 89 megapixels).
#: Checked from the header before any decoding.
MAX_PIXELS = 89_478_485
#: Smallest side accepted, in pixels.
MIN_SIDE = 2
#: Suffixes read as images (compared case-insensitively), without the dot; offered in file pickers.
IMAGE_SUFFIXES = ("png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff")
#: The same with the dot, as ``Path.suffix.lower()`` gives them.
IMAGE_FILE_SUFFIXES = tuple("." + s for s in IMAGE_SUFFIXES)
#: The resize filter: bilinear, antialiased when shrinking (Pillow widens the filter by the
#: scale), aspect ratio not kept, as ``keras.utils.load_img(target_size=...)`` does.
RESAMPLE = Image.Resampling.BILINEAR
#: Pillow modes converted to grayscale or RGB; any other mode is refused as unsupported.
SUPPORTED_MODES = frozenset(
    {"1", "L", "P", "PA", "LA", "La", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "I", "F"}
    | {"I;16", "I;16L", "I;16B", "I;16N"}
)

ImageSource = str | os.PathLike | bytes | bytearray | memoryview

_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, MemoryError)
_KINDS = "PNG, JPEG, BMP, GIF, WebP or TIFF"


def is_image_file(name: str | os.PathLike) -> bool:
    """True when ``name`` has one of :data:`IMAGE_SUFFIXES` (any case) and is not hidden (``.x``)."""
    path = Path(name)
    return not path.name.startswith(".") and path.suffix.lower() in IMAGE_FILE_SUFFIXES


def _error(label: str, reason: str, fix: str) -> ImageLoadError:
    err = ImageLoadError(f"{label}: {reason}. {fix}")
    err.reason = reason
    return err


def _read_source(source: ImageSource) -> tuple[io.BytesIO | Path, str]:
    """What Pillow should open (bytes in memory or a path) and the label used in messages."""
    if isinstance(source, bytes | bytearray | memoryview):
        if not len(source):
            raise _error("uploaded image", "empty file (0 bytes)", f"Choose a {_KINDS} image.")
        return io.BytesIO(bytes(source)), "uploaded image"
    path = Path(source)
    label = str(path)
    if not path.exists():
        err = ImageLoadError(f"No such image file: {label}. Check the path.")
        err.reason = "no such file"
        raise err
    if path.is_dir():
        raise _error(label, "a directory, not an image file", "Pass an image file.")
    try:
        size = path.stat().st_size
    except OSError as e:
        raise _error(label, f"cannot read ({e.strerror or e})", "Check its permissions.") from None
    if size == 0:
        raise _error(label, "empty file (0 bytes)", f"Choose a {_KINDS} image.")
    return path, label


def _check_header(img: Image.Image, label: str, limit: int) -> None:
    w, h = img.size
    reason = None
    if w * h > limit:
        reason = f"{w}x{h} = {w * h:,} pixels, more than Pillow's limit of {limit:,} (possible decompression bomb)"
        fix = "Resize the image before loading it."
    elif min(w, h) < MIN_SIDE:
        reason = f"too small: {w}x{h} pixels (need at least {MIN_SIDE} pixels per side)"
        fix = "Use a larger image."
    elif img.mode not in SUPPORTED_MODES:
        reason = f"unsupported colour mode {img.mode!r}"
        fix = "Save it as 8-bit RGB or grayscale."
    if reason is not None:
        img.close()
        raise _error(label, reason, fix)


def open_image(source: ImageSource) -> tuple[Image.Image, str]:
    """Open an image and check its header, without decoding its pixels.

    Args:
        source: a path, or the file's bytes (e.g. an upload).

    Returns:
        ``(image, label)``: the lazily opened Pillow image (close it, or use it in a
        ``with``) and the path or ``"uploaded image"`` for messages.

    Raises:
        ImageLoadError: missing, empty, unreadable or non-image file; more pixels than
            ``Image.MAX_IMAGE_PIXELS`` (or :data:`MAX_PIXELS` when that is None); a side
            under :data:`MIN_SIDE`; a mode not in :data:`SUPPORTED_MODES`.
    """
    fp, label = _read_source(source)
    limit = Image.MAX_IMAGE_PIXELS or MAX_PIXELS
    try:
        with warnings.catch_warnings():
            # Between one and two times the limit Pillow only warns: refused below instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(fp)
    except Image.DecompressionBombError:
        reason = f"more pixels than Pillow's limit of {limit:,} (possible decompression bomb)"
        raise _error(label, reason, "Resize the image before loading it.") from None
    except UnidentifiedImageError:
        raise _error(label, "not an image Pillow can read", f"Use a {_KINDS} file.") from None
    except OSError as e:
        if e.errno is not None:
            raise _error(label, f"cannot read ({e.strerror or e})", "Check its permissions.") from None
        raise _error(label, f"truncated or corrupt ({e})", "Replace the file.") from None
    except (ValueError, SyntaxError, EOFError) as e:
        raise _error(label, f"truncated or corrupt ({e})", "Replace the file.") from None
    _check_header(img, label, limit)
    return img, label


def check_image(source: ImageSource) -> None:
    """Decode every byte of an image's data, to catch truncated and corrupt files up front.

    JPEGs are decoded at libjpeg's reduced DCT scale (Pillow's draft mode): every byte of
    entropy-coded data is still read, at a fraction of the cost. This only checks the file;
    the pixels a model gets always come from :func:`load_image`.

    Args:
        source: a path, or the file's bytes.

    Raises:
        ImageLoadError: as :func:`open_image`, or data that cannot be decoded.
    """
    img, label = open_image(source)
    try:
        with img:
            if img.format == "JPEG":
                img.draft(None, (64, 64))
            img.load()
            img.getexif().get(0x0112)  # the EXIF orientation load_image will apply
    except _DECODE_ERRORS as e:
        raise _error(label, f"truncated or corrupt ({e})", "Replace the file.") from None


def _composite_on_white(img: Image.Image) -> Image.Image:
    # What an image viewer shows, and what a photo model expects.
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba)


def _to_mode(img: Image.Image, channels: int) -> Image.Image:
    """Convert any supported Pillow mode to 'L' (channels=1) or 'RGB' (channels=3).

    16-bit and 32-bit integer images are scaled by 255/65535 (rounded) when any value
    exceeds 255, so they are not clipped; palette images with transparency, RGBA and LA are
    composited over white.
    """
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif img.mode == "P":
        img = _composite_on_white(img) if "transparency" in img.info else img.convert("RGB")
    elif img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        img = _composite_on_white(img)
    target = "L" if channels == 1 else "RGB"
    return img if img.mode == target else img.convert(target)


def resize(img: Image.Image, target_size: tuple[int, int] | None) -> Image.Image:
    """Resize a Pillow image to ``(height, width)`` with :data:`RESAMPLE` (None or the same size: unchanged)."""
    if target_size is None or img.size == (int(target_size[1]), int(target_size[0])):
        return img
    return img.resize((int(target_size[1]), int(target_size[0])), RESAMPLE)


def _draft(img: Image.Image, target_size: tuple[int, int] | None) -> None:
    """Let libjpeg decode a JPEG at 1/2, 1/4 or 1/8 scale when that still leaves at least
    ``target_size`` on both sides (Pillow's draft mode, https://pillow.readthedocs.io/en/stable/
    reference/Image.html#PIL.Image.Image.draft): much faster for photos, and as sharp once
    resized. The longer target side is asked of both sides, so EXIF rotation cannot matter."""
    if target_size is not None and img.format == "JPEG":
        side = max(int(target_size[0]), int(target_size[1]))
        img.draft(None, (side, side))


def _check_arguments(target_size, channels) -> None:
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}.")
    if target_size is not None and (len(target_size) != 2 or min(target_size) < 1):
        raise ValueError(f"target_size must be (height, width) with positive sides, got {target_size!r}.")


def load_image(
    source: ImageSource,
    target_size: tuple[int, int] | None = None,
    channels: int = 3,
) -> np.ndarray:
    """Load an image file or bytes as raw pixels for a model.

    The first frame of an animation is taken, the image is rotated upright from its EXIF
    orientation, transparency is composited over white, and the pixels are converted to
    grayscale (``channels=1``, ITU-R 601-2 luma) or RGB (``channels=3``; CMYK converted,
    16-bit scaled by 255/65535). With ``target_size`` the image is resized (:data:`RESAMPLE`:
    bilinear, antialiased, aspect ratio not kept) as
    ``keras.utils.load_img(target_size=...)`` does; a JPEG at least twice ``target_size`` is
    first decoded by libjpeg at 1/2, 1/4 or 1/8 scale (Pillow's draft mode), never below
    ``target_size``. Training reads folders through this same function, so the pixels a model
    is trained on and explained on are identical.

    Args:
        source: a path, or the file's bytes (e.g. an upload).
        target_size: ``(height, width)`` in pixels, or None to keep the size.
        channels: 1 for grayscale, 3 for RGB.

    Returns:
        uint8 array ``(H, W, channels)``, values in [0, 255].

    Raises:
        ImageLoadError: missing, empty, unreadable, corrupt or truncated file; more than
            Pillow's pixel limit; a side under ``MIN_SIDE`` pixels; an unsupported colour mode.
            Its ``reason`` attribute is the cause without the file name.
        ValueError: ``channels`` not 1 or 3, or a non-positive ``target_size``.
    """
    _check_arguments(target_size, channels)
    img, label = open_image(source)
    try:
        with img:
            _draft(img, target_size)
            img.seek(0)
            ImageOps.exif_transpose(img, in_place=True)  # no copy when upright already
            arr = np.asarray(resize(_to_mode(img, channels), target_size), dtype=np.uint8)
    except _DECODE_ERRORS as e:
        raise _error(label, f"truncated or corrupt ({e})", "Replace the file.") from None
    if arr.ndim == 2:
        arr = arr[..., None]
    return np.ascontiguousarray(arr)
