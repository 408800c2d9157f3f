import io
import struct
import zlib

import numpy as np
import pytest
from conftest import SAMPLES, random_image
from PIL import Image

from explain import ImageLoadError, load_image


def test_real_photo_loads_as_uint8_rgb():
    arr = load_image(SAMPLES / "photo_chelsea.jpg")
    assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3
    assert arr.shape[:2] == (300, 451)


def test_real_fashion_sample_resized_and_converted():
    arr = load_image(SAMPLES / "fashion_mnist_9_ankle_boot.png", target_size=(28, 28), channels=1)
    assert arr.shape == (28, 28, 1)
    rgb = load_image(SAMPLES / "fashion_mnist_9_ankle_boot.png", channels=3)
    # grayscale to RGB repeats the gray value in each channel
    assert np.array_equal(rgb[..., 0], rgb[..., 2]) and np.array_equal(rgb[..., 0:1], arr)


def test_photo_to_grayscale_model_size():
    arr = load_image(SAMPLES / "photo_coffee.jpg", target_size=(28, 28), channels=1)
    assert arr.shape == (28, 28, 1) and arr.dtype == np.uint8


def test_bytes_and_path_give_the_same_pixels(png_path):
    assert np.array_equal(load_image(png_path), load_image(png_path.read_bytes()))


def test_resize_is_height_width(png_path):
    assert load_image(png_path, target_size=(10, 20)).shape == (10, 20, 3)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "CMYK", "L"])
def test_modes_convert(tmp_path, mode):
    path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    random_image(mode=mode).save(path)
    assert load_image(path).shape == (40, 30, 3)
    assert load_image(path, channels=1).shape == (40, 30, 1)


def test_transparent_pixels_become_white(tmp_path):
    arr = np.zeros((8, 8, 4), np.uint8)  # fully transparent black
    path = tmp_path / "t.png"
    Image.fromarray(arr, "RGBA").save(path)
    assert (load_image(path) == 255).all()


def test_palette_image(tmp_path):
    path = tmp_path / "p.gif"
    random_image().convert("P").save(path)
    assert load_image(path).shape == (40, 30, 3)


def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path):
    arr = np.full((6, 6), 65535, np.uint16)
    arr[0, 0] = 0
    path = tmp_path / "16.png"
    Image.fromarray(arr).save(path)
    out = load_image(path, channels=1)
    assert out[1, 1, 0] == 255 and out[0, 0, 0] == 0


def test_exif_rotation_is_applied(tmp_path):
    img = random_image(h=20, w=50)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif)
    assert load_image(path).shape[:2] == (50, 20)


def test_animated_gif_uses_first_frame(tmp_path):
    frames = [Image.new("RGB", (10, 10), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    out = load_image(path)
    assert out[5, 5, 0] > 200 and out[5, 5, 2] < 50


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header(width: int, height: int) -> bytes:
    """A tiny PNG file whose header declares width x height pixels (its data is a few bytes)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 10)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"this is not an image at all" * 10, "not an image"),
        (_png_header(30000, 30000), "decompression bomb"),
        (_png_header(11000, 10000), "decompression bomb"),
    ],
)
def test_bad_bytes(data, message):
    with pytest.raises(ImageLoadError, match=message):
        load_image(data)


def test_truncated_jpeg(tmp_path):
    buf = io.BytesIO()
    random_image(h=200, w=200).save(buf, "JPEG")
    with pytest.raises(ImageLoadError, match=r"truncated|corrupt"):
        load_image(buf.getvalue()[: len(buf.getvalue()) // 2])


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ImageLoadError, match="No such image file"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageLoadError, match="directory"):
        load_image(tmp_path)


def test_tiny_image(tmp_path):
    path = tmp_path / "one.png"
    Image.new("RGB", (1, 1)).save(path)
    with pytest.raises(ImageLoadError, match="1x1"):
        load_image(path)


def test_renamed_text_file(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("hello")
    with pytest.raises(ImageLoadError, match="not an image"):
        load_image(path)


def test_bad_arguments(png_path):
    with pytest.raises(ValueError, match="channels"):
        load_image(png_path, channels=2)
    with pytest.raises(ValueError, match="target_size"):
        load_image(png_path, target_size=(0, 5))
