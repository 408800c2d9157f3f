"""Property tests (hypothesis): heatmap normalisation and image loading never go out of contract."""

from __future__ import annotations

import io

import numpy as np
import tensorflow as tf
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from explain import ImageLoadError, load_image
from explain.attribution import normalize_maps
from explain.attribution.base import normalize_maps_tf

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

shapes = st.tuples(st.integers(1, 3), st.integers(1, 6), st.integers(1, 6))
finite64 = st.floats(allow_nan=False, allow_infinity=False, width=64)
finite32 = st.floats(allow_nan=False, allow_infinity=False, width=32)


def _check(maps: np.ndarray, flat: np.ndarray, raw: np.ndarray) -> None:
    assert maps.shape == raw.shape and maps.dtype == np.float32
    assert not np.isnan(maps).any()
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    assert flat.shape == (raw.shape[0],) and flat.dtype == bool
    for k in range(raw.shape[0]):
        if np.all(raw[k] == raw[k].flat[0]):  # a constant map carries no information
            assert flat[k] and not maps[k].any()
        if flat[k]:
            assert not maps[k].any()
        else:  # an informative map spans [0, 1]
            assert maps[k].max() == np.float32(1.0) and maps[k].min() == 0.0


@SETTINGS
@given(arrays(np.float64, shapes, elements=finite64))
@example(np.array([[[-1.7e308, 1.7e308], [0.0, 1.0]]]))  # hi - lo overflows to inf: once gave NaN pixels
@example(np.array([[[5e-324, 0.0], [0.0, 0.0]]]))  # a subnormal bump
def test_normalize_maps_any_finite_input(raw):
    maps, flat = normalize_maps(raw)
    _check(maps, flat, raw)


@SETTINGS
@given(arrays(np.float32, shapes, elements=finite32))
@example(np.array([[[-3.4e38, 3.4e38], [0.0, 1.0]]], np.float32))
def test_normalize_maps_tf_any_finite_input(raw):
    maps, flat = normalize_maps_tf(tf.constant(raw))
    _check(maps.numpy(), flat.numpy(), raw)
    ref_maps, ref_flat = normalize_maps(raw)
    # TensorFlow on CPU flushes subnormal floats to zero: compare maps of normal magnitude only.
    normal = np.abs(raw).max(axis=(1, 2)) >= np.finfo(np.float32).tiny
    assert np.array_equal(flat.numpy()[normal], ref_flat[normal])
    assert np.allclose(maps.numpy()[normal], ref_maps[normal], atol=1e-5)


@SETTINGS
@given(st.binary(min_size=0, max_size=400))
def test_random_bytes_raise_only_image_load_error(data):
    try:
        arr = load_image(data)
    except ImageLoadError:
        return
    assert arr.dtype == np.uint8 and arr.ndim == 3


@SETTINGS
@given(
    st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"BM", b"II*\x00", b"RIFF"]),
    st.binary(max_size=300),
)
def test_random_bytes_behind_an_image_signature(magic, rest):
    try:
        arr = load_image(magic + rest, target_size=(8, 8), channels=1)
    except ImageLoadError:
        return
    assert arr.shape == (8, 8, 1) and arr.dtype == np.uint8


MODES = {"L": 1, "RGB": 3, "RGBA": 4, "LA": 2, "P": 1, "CMYK": 4, "I;16": 1}


@SETTINGS
@given(
    st.sampled_from(sorted(MODES)),
    st.integers(2, 40),
    st.integers(2, 40),
    st.sampled_from(["PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP"]),
    st.sampled_from([1, 3]),
    st.integers(0, 2**32 - 1),
)
def test_valid_images_round_trip_to_uint8(mode, h, w, fmt, channels, seed):
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    else:
        bands = MODES[mode]
        arr = rng.integers(0, 256, (h, w, bands) if bands > 1 else (h, w), dtype=np.uint8)
        img = Image.fromarray(arr, "L").convert("P") if mode == "P" else Image.fromarray(arr, mode)
    buf = io.BytesIO()
    try:
        img.save(buf, fmt)
    except (OSError, ValueError, KeyError):
        return  # Pillow cannot write this mode in this format: nothing to load
    arr = load_image(buf.getvalue(), channels=channels)
    assert arr.dtype == np.uint8 and arr.shape == (h, w, channels)
    assert arr.flags.c_contiguous
