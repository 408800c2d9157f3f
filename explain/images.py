"""Load an image file into the pixels a model expects, with Pillow only.

Every bad-file case is handled here and raised as :class:`~explain.errors.ImageLoadError`
with one clear message: empty file, not an image, truncated or corrupt data, a
decompression bomb, 16-bit / palette / RGBA / LA / CMYK modes, EXIF rotation, animated
images (first frame), tiny images.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from explain.errors import ImageLoadError

#: Largest image accepted, in pixels (width x height): Pillow's own decompression-bomb
#: threshold (about 89 megapixels), checked from the header before any decoding.
MAX_PIXELS = 89_478_485
#: Smallest side accepted, in pixels.
MIN_SIDE = 2
#: Suffixes offered in file pickers.
IMAGE_SUFFIXES = ("png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff")

ImageSource = str | os.PathLike | bytes | bytearray | memoryview


def _open(source: ImageSource) -> tuple[Image.Image, str]:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        label = "uploaded image"
    else:
        path = Path(source)
        label = str(path)
        if not path.exists():
            raise ImageLoadError(f"No such image file: {label}. Check the path.")
        if path.is_dir():
            raise ImageLoadError(f"{label} is a directory, not an image file.")
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ImageLoadError(f"Cannot read {label}: {e.strerror or e}.") from None
    if not data:
        raise ImageLoadError(f"{label} is empty (0 bytes). Choose a PNG, JPEG, BMP or GIF image.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageLoadError(
            f"{label} declares more pixels than the {MAX_PIXELS:,} allowed (possible "
            "decompression bomb). Resize the image before loading it."
        ) from None
    except UnidentifiedImageError:
        raise ImageLoadError(
            f"{label} is not an image Pillow can read. Use a PNG, JPEG, BMP, GIF, WebP or TIFF file."
        ) from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageLoadError(f"{label} could not be opened as an image: {e}.") from None
    if w * h > MAX_PIXELS:
        raise ImageLoadError(
            f"{label} is {w}x{h} = {w * h:,} pixels, more than the {MAX_PIXELS:,} allowed. "
            "Resize the image before loading it."
        )
    if min(w, h) < MIN_SIDE:
        raise ImageLoadError(f"{label} is only {w}x{h} pixels; images need at least {MIN_SIDE} pixels per side.")
    return img, label


def _to_mode(img: Image.Image, channels: int) -> Image.Image:
    """Convert any Pillow mode to 'L' (channels=1) or 'RGB' (channels=3)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA")  # palette with transparency keeps it as alpha
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Composite over white: what an image viewer shows, and what a photo model expects.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    target = "L" if channels == 1 else "RGB"
    return img if img.mode == target else img.convert(target)


def load_image(
    source: ImageSource,
    target_size: tuple[int, int] | None = None,
    channels: int = 3,
) -> np.ndarray:
    """Load an image file or bytes as raw pixels for a model.

    The image is rotated upright from its EXIF orientation, the first frame of an
    animation is taken, transparency is composited over white, and the pixels are
    converted to grayscale (``channels=1``) or RGB (``channels=3``). With
    ``target_size`` the image is resized (bilinear, aspect ratio not kept) as
    ``keras.utils.load_img(target_size=...)`` does.

    Args:
        source: a path, or the file's bytes (e.g. an upload).
        target_size: ``(height, width)`` in pixels, or None to keep the size.
        channels: 1 for grayscale, 3 for RGB.

    Returns:
        uint8 array ``(H, W, channels)``, values in [0, 255].

    Raises:
        ImageLoadError: missing, empty, unreadable, corrupt or truncated file; more than
            ``MAX_PIXELS`` pixels; a side under ``MIN_SIDE`` pixels.
        ValueError: ``channels`` not 1 or 3, or a non-positive ``target_size``.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}.")
    if target_size is not None and (len(target_size) != 2 or min(target_size) < 1):
        raise ValueError(f"target_size must be (height, width) with positive sides, got {target_size!r}.")
    img, label = _open(source)
    try:
        img.seek(0)
        img = ImageOps.exif_transpose(img)
        img = _to_mode(img, channels)
        if target_size is not None and img.size != (target_size[1], target_size[0]):
            img = img.resize((int(target_size[1]), int(target_size[0])), Image.Resampling.BILINEAR)
        arr = np.asarray(img, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise ImageLoadError(f"{label} is truncated or corrupt and could not be decoded ({e}).") from None
    if arr.ndim == 2:
        arr = arr[..., None]
    return np.ascontiguousarray(arr)
