"""explain.render.figures: each download is a titled figure around the screen picture's own pixels."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from explain import activation_bars, attribution_panel, feature_map_grid, heatmap_overlay, top_k_bars
from explain.render import pictures


def _shown(fig, k: int = 0) -> np.ndarray:
    """The pixels the figure's ``k``-th axes show."""
    return np.asarray(fig.axes[k].images[-1].get_array())


def _image_and_heat():
    image = np.random.default_rng(0).integers(0, 255, (12, 10, 1), dtype=np.uint8)
    yy, xx = np.mgrid[0:12, 0:10]
    return image, np.exp(-((yy - 4.0) ** 2 + (xx - 6.0) ** 2) / 8).astype(np.float32)


def test_grid_is_the_mosaic_with_a_title():
    acts = np.random.default_rng(0).normal(size=(7, 9, 20)).astype(np.float32)
    fig = feature_map_grid(acts, title="Layer 1", max_maps=12, cols=5, cmap="magma")
    assert isinstance(fig, Figure)
    np.testing.assert_array_equal(_shown(fig), pictures.feature_map_mosaic(acts, max_maps=12, cols=5, cmap="magma"))
    title = fig.axes[0].get_title()
    assert title.startswith("Layer 1\n") and "tile label = channel index" in title and "showing 12 of 20" in title
    assert not fig.axes[0].axison
    picked = feature_map_grid(acts, channels=[5, 2], normalize="layer")
    np.testing.assert_array_equal(_shown(picked), pictures.feature_map_mosaic(acts, channels=[5, 2], normalize="layer"))
    assert "showing 2 of 20" in picked.axes[0].get_title() and "one scale" in picked.axes[0].get_title()


def test_grid_labels_are_in_the_pixels_and_flat_maps_are_finite():
    acts = np.random.default_rng(0).normal(size=(28, 28, 3)).astype(np.float32)
    acts[..., 1] = 4.0
    acts[0, 0, 2] = np.nan
    drawn = _shown(feature_map_grid(acts))
    assert drawn.dtype == np.uint8 and drawn.ndim == 3
    plain = pictures.mosaic_picture(acts).indices
    assert (plain > 240).any()  # the channel labels ("1 flat" too) are drawn into the mosaic's pixels


def test_grid_draws_into_given_axes():
    fig = Figure()
    ax = fig.add_subplot()
    assert feature_map_grid(np.ones((4, 4, 2)), ax=ax) is fig
    np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), pictures.feature_map_mosaic(np.ones((4, 4, 2))))


def test_grid_errors():
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        feature_map_grid(np.ones((4, 4)))
    with pytest.raises(ValueError, match="max_maps"):
        feature_map_grid(np.ones((4, 4, 2)), max_maps=0)
    with pytest.raises(ValueError, match="normalize"):
        feature_map_grid(np.ones((4, 4, 2)), normalize="bad")


def test_overlay_download_is_the_screen_overlay():
    image, heat = _image_and_heat()
    fig = heatmap_overlay(image, heat, title="boot: class 9\ngradcam @ conv", cmap="viridis", alpha=0.3, colorbar=True)
    np.testing.assert_array_equal(_shown(fig), pictures.overlay(image, heat, cmap="viridis", alpha=0.3))
    assert fig.axes[0].get_title() == "boot: class 9\ngradcam @ conv"
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "relevance"  # the colour bar
    flat = heatmap_overlay(image, heat * np.nan, colorbar=True)
    np.testing.assert_array_equal(_shown(flat), pictures.overlay(image, heat, flat=True))
    assert len(flat.axes) == 1  # no colour bar for a flat map
    host = Figure()
    ax = host.add_subplot()
    assert heatmap_overlay(image, heat, ax=ax) is host
    with pytest.raises(ValueError, match="does not match"):
        heatmap_overlay(image, heat[:5])


def test_attribution_panel_is_the_screen_row():
    image, heat = _image_and_heat()
    maps = [("gradcam @ conv\ndeletion 0.100 / insertion 0.900", heat, False), ("saliency", heat, True)]
    fig = attribution_panel(image, maps, title="boot: class 9", cmap="jet", alpha=0.5)
    row = pictures.attribution_picture(image, maps, cmap="jet", alpha=0.5)
    np.testing.assert_array_equal(_shown(fig), row)
    assert fig.axes[0].get_title() == "boot: class 9"
    overlay = pictures.overlay(image, heat, cmap="jet", alpha=0.5)
    h, w = overlay.shape[:2]
    np.testing.assert_array_equal(row[:h, w + 12 : 2 * w + 12], overlay)  # the second picture: the first overlay


def test_bars_and_top_k_are_the_screen_charts():
    values = np.arange(10.0) - 5
    names = [f"c{i}" for i in range(10)]
    fig = activation_bars(values, title="dense", labels=names, max_units=4)
    np.testing.assert_array_equal(_shown(fig), pictures.activation_chart(values, labels=names, max_units=4))
    assert fig.axes[0].get_title() == "dense (strongest 4 of 10 units)"
    p = np.array([0.1, 0.6, 0.3])
    fig = top_k_bars(p, ["a", "b", "c"], k=2, title="top 2")
    np.testing.assert_array_equal(_shown(fig), pictures.top_k_chart(p, ["a", "b", "c"], k=2))
    assert fig.axes[0].get_title() == "top 2"
    host = Figure()
    assert top_k_bars(p, ["a", "b", "c"], ax=host.add_subplot()) is host
