import numpy as np
import pytest
from matplotlib.figure import Figure

from explain import activation_bars, feature_map_grid, top_k_bars


def _tile_labels(fig):
    return [t.get_text() for t in fig.axes[0].texts]


def test_grid_labels_each_channel_and_respects_max_maps():
    acts = np.random.default_rng(0).normal(size=(7, 9, 20)).astype(np.float32)
    fig = feature_map_grid(acts, title="Layer 1", max_maps=12, cols=5)
    assert isinstance(fig, Figure)
    assert _tile_labels(fig) == [str(i) for i in range(12)]
    assert "showing 12 of 20 channels" in fig.axes[0].get_title()
    image = fig.axes[0].images[0].get_array()
    assert image.shape == (3 * 7 + 2, 5 * 9 + 4)  # 3 rows x 5 cols of 7x9 (H x W) tiles, 1-pixel gaps


def test_flat_and_nan_maps_are_labelled_not_drawn_as_nan():
    acts = np.random.default_rng(0).normal(size=(5, 5, 3)).astype(np.float32)
    acts[..., 1] = 4.0
    acts[0, 0, 2] = np.nan
    fig = feature_map_grid(acts)
    assert _tile_labels(fig)[1] == "1 flat"
    drawn = fig.axes[0].images[0].get_array()
    tiles = np.asarray(drawn)[np.isfinite(np.asarray(drawn))]
    assert tiles.min() >= 0 and tiles.max() <= 1


def test_grid_draws_into_given_axes():
    fig = Figure()
    ax = fig.add_subplot()
    assert feature_map_grid(np.ones((4, 4, 2)), ax=ax) is fig


def test_grid_errors():
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        feature_map_grid(np.ones((4, 4)))
    with pytest.raises(ValueError, match="max_maps"):
        feature_map_grid(np.ones((4, 4, 2)), max_maps=0)
    with pytest.raises(ValueError, match="normalize"):
        feature_map_grid(np.ones((4, 4, 2)), normalize="bad")


def test_bars_and_top_k():
    fig = activation_bars(np.arange(10.0) - 5, labels=[f"c{i}" for i in range(10)], max_units=4)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["c0", "c1", "c2", "c9"]
    p = np.array([0.1, 0.6, 0.3])
    fig = top_k_bars(p, ["a", "b", "c"], k=2)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["b", "c"]
