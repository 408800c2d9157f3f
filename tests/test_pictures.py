"""explain.render.pictures: the dashboard's pictures, composed in NumPy. Each test checks pixels."""

import io

import numpy as np
import pytest
from PIL import Image

from explain.render.pictures import (
    MAX_WIDTH,
    activation_chart,
    apply_colormap,
    attribution_picture,
    colormap_lut,
    encode_png,
    enlarge,
    feature_map_mosaic,
    grid_shape,
    heatmap_colors,
    lime_picture,
    mosaic_picture,
    overlay,
    scale_maps,
    side_by_side,
    top_k_chart,
)


def _maps(h=14, w=14, c=9, seed=0):
    return np.random.default_rng(seed).normal(size=(h, w, c)).astype(np.float32)


def test_scale_maps_per_map_and_layer_and_flat():
    maps = np.stack([np.arange(4.0).reshape(2, 2), np.full((2, 2), 7.0), 10 * np.arange(4.0).reshape(2, 2)], -1)
    per, flat = scale_maps(maps, "per_map")
    assert flat.tolist() == [False, True, False]
    np.testing.assert_allclose(per[..., 0], per[..., 2])  # each map on its own scale
    assert per[..., 1].max() == 0.0
    layer, _ = scale_maps(maps, "layer")
    assert layer[..., 2].max() == 1.0 and layer[..., 0].max() == pytest.approx(0.1)  # one scale: map 0 is weak
    with pytest.raises(ValueError, match="normalize"):
        scale_maps(maps, "bogus")


def test_grid_shape():
    assert grid_shape(9) == (3, 3) and grid_shape(10) == (3, 4) and grid_shape(1) == (1, 1)
    assert grid_shape(5, cols=10) == (1, 5)
    with pytest.raises(ValueError):
        grid_shape(0)


def test_mosaic_tiles_are_the_colormapped_maps():
    """Each tile is its map, scaled to [0, 1], coloured with the colormap and enlarged by an integer
    zoom; tiles sit row by row with white gaps; labels only cover each tile's top-left corner."""
    acts = _maps()
    picture = mosaic_picture(acts, cmap="viridis")
    rgb = picture.rgb()
    _, cols = grid_shape(9)
    zoom = rgb.shape[1] // (cols * 14 + (cols - 1))  # 14-pixel maps, 1-pixel gaps, all enlarged
    assert zoom > 1 and rgb.shape[1] == zoom * (cols * 14 + cols - 1)
    scaled, _ = scale_maps(acts, "per_map")
    levels = np.rint(scaled * 239).astype(int)
    lut = colormap_lut("viridis")[np.rint(np.linspace(0, 255, 240)).astype(int)]
    gap = zoom
    for k in (0, 4, 8):
        r, c = divmod(k, cols)
        y, x = r * (14 * zoom + gap), c * (14 * zoom + gap)
        tile = rgb[y : y + 14 * zoom, x : x + 14 * zoom]
        expected = lut[levels[..., k]].repeat(zoom, 0).repeat(zoom, 1)
        np.testing.assert_array_equal(tile[20:, 20:], expected[20:, 20:])  # away from the label
        assert not np.array_equal(tile[:8, :8], expected[:8, :8])  # the label is there
    assert (rgb[:, 14 * zoom : 14 * zoom + gap] == 255).all()  # a white gap between columns


def test_mosaic_order_count_flat_label_and_png():
    acts = _maps(c=20)
    acts[..., 3] = 1.0  # flat
    order = [3, 0, 1]
    rgb = feature_map_mosaic(acts, channels=order, max_maps=2)
    assert rgb.shape[1] < feature_map_mosaic(acts, max_maps=20).shape[1]  # 2 tiles, one row
    png = mosaic_picture(acts, channels=order, max_maps=2).png()
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")), rgb)  # lossless
    h = rgb.shape[0]
    first = rgb[:, :h]
    assert (first[h // 2 :, h // 2 :] == first[-1, -1]).all()  # the flat map: one colour
    with pytest.raises(ValueError, match="out of range"):
        feature_map_mosaic(acts, channels=[25])
    with pytest.raises(ValueError, match="max_maps"):
        feature_map_mosaic(acts, max_maps=0)
    with pytest.raises(ValueError, match="\\(H, W, C\\)"):
        feature_map_mosaic(acts[0])


def test_many_large_maps_fit_the_screen_and_tiny_tiles_have_no_labels():
    big = _maps(112, 112, 256)
    rgb = feature_map_mosaic(big, max_maps=256)
    assert rgb.shape[1] <= MAX_WIDTH
    tiny = _maps(2, 2, 4000)  # 64 columns: tiles of 10 pixels
    pic = mosaic_picture(tiny, max_maps=4000)
    assert not (pic.indices > 240).any()  # no label box or text: every pixel is a map or a gap


def test_apply_colormap_and_lut():
    lut = colormap_lut("jet")
    assert lut.shape == (256, 3) and lut.dtype == np.uint8 and not lut.flags.writeable
    np.testing.assert_array_equal(apply_colormap(np.array([[0.0, 1.0, np.nan, 2.0]]), "jet")[0], lut[[0, 255, 0, 255]])
    with pytest.raises(ValueError, match="Unknown colormap"):
        colormap_lut("no-such-map")


def test_overlay_blends_in_the_image_pixels():
    image = np.full((28, 28, 1), 200, np.uint8)
    heat = np.tile(np.linspace(0, 1, 28, dtype=np.float32), (28, 1))
    assert enlarge(image).shape == (224, 224, 3)
    np.testing.assert_array_equal(overlay(image, heat, alpha=0.0), enlarge(image))
    colours = heatmap_colors(heat, "jet")
    assert colours.shape == (224, 224, 3)
    np.testing.assert_array_equal(overlay(image, heat, alpha=1.0, cmap="jet"), colours)
    half = overlay(image, heat, alpha=0.5, cmap="jet").astype(int)
    assert np.abs(half - (200 + colours.astype(int)) / 2).max() <= 0.5 + 1e-9
    flat = overlay(image, heat, flat=True)
    assert (flat[-50:] == 200).all() and not (flat[:20, :100] == 200).all()  # the image, with a note
    with pytest.raises(ValueError, match="does not match"):
        overlay(image, heat[:10])
    with pytest.raises(ValueError, match="alpha"):
        overlay(image, heat, alpha=1.5)


def test_top_k_chart_bar_lengths():
    chart = top_k_chart(np.array([0.05, 0.9, 0.05]), ["a", "b", "c"], k=2)
    assert chart.shape == (34 * 2 + 16, 560, 3)
    blue = (chart[..., 2] > 150) & (chart[..., 0] < 90)
    first, second = blue[8 + 13].sum(), blue[8 + 34 + 13].sum()
    assert first > 10 * second > 0  # 0.9 against 0.05
    with pytest.raises(ValueError, match="class names"):
        top_k_chart(np.ones(3) / 3, ["a"])


def test_activation_chart_colours_by_sign_with_a_value_scale():
    chart = activation_chart(np.array([1.0, -1.0]), labels=["up", "down"], width=200)
    left, right = chart[:, 10:100], chart[:, 100:190]
    assert ((left[..., 2] > 150) & (left[..., 0] < 90)).any() and not (
        (left[..., 0] > 170) & (left[..., 2] < 100)
    ).any()
    assert ((right[..., 0] > 170) & (right[..., 2] < 100)).any()
    scale = chart[:210, : 10 + 6]  # the value labels (1, 0, -1) left of the bars, in grey
    assert ((scale[..., 0] < 200) & (np.ptp(scale, axis=-1) < 10)).any()
    assert not (activation_chart(np.array([np.nan, np.inf, 2.0])) == 0).all()  # non-finite values count as 0


def test_attribution_picture_is_the_image_then_the_overlays():
    image = np.full((8, 8, 1), 90, np.uint8)
    heat = np.tile(np.linspace(0, 1, 8, dtype=np.float32), (8, 1))
    row = attribution_picture(image, [("gradcam @ conv", heat, False), ("saliency", heat, True)], cmap="jet")
    big = enlarge(image)
    w = big.shape[1]
    np.testing.assert_array_equal(row[: big.shape[0], :w], big)
    np.testing.assert_array_equal(row[: big.shape[0], w + 12 : 2 * w + 12], overlay(image, heat, cmap="jet"))
    np.testing.assert_array_equal(row[: big.shape[0], 2 * w + 24 :], overlay(image, heat, flat=True))


def test_lime_picture_is_what_the_figure_shows():
    from explain.render.figures import lime_boundaries

    image = np.full((8, 8, 3), 100, np.uint8)
    segments = np.zeros((8, 8), int)
    segments[:, 4:] = 1
    pic = lime_picture(image, segments, np.array([0.5, -0.5]), num_features=2)
    assert pic.shape == (224, 224, 3)
    assert pic[100, 50, 1] > pic[100, 50, 0] and pic[100, 170, 0] > pic[100, 170, 1]  # green for, red against
    fig = lime_boundaries(image, segments, np.array([0.5, -0.5]), num_features=2)
    shown = fig.axes[0].images[0].get_array()
    np.testing.assert_array_equal(np.asarray(shown), pic)


def test_side_by_side_and_png():
    a, b = np.zeros((10, 20, 3), np.uint8), np.full((30, 5, 3), 9, np.uint8)
    row = side_by_side([a, b], ["one", "two\nlines"], gap=4)
    assert row.shape[1] == 29 and row.shape[0] > 30
    assert (row[10:20, 0:20] == 0).all()  # the short picture is centred vertically
    with pytest.raises(ValueError):
        side_by_side([a], [])
    one_line = side_by_side([np.zeros((40, 60, 3), np.uint8)], ["x"])
    wrapped = side_by_side([np.zeros((40, 60, 3), np.uint8)], ["integrated_gradients deletion 0.123 / insertion 0.456"])
    assert wrapped.shape[0] >= one_line.shape[0] + 3 * 17  # a caption wider than its picture wraps at spaces
    png = encode_png(a)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
