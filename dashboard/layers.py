"""The Layers tab: a layer picker answered in the browser, that layer's feature-map grid (or bar
chart), one channel enlarged over the image; the neighbouring layers' pictures are sent ahead."""

from __future__ import annotations

import functools

import numpy as np
import streamlit as st

from dashboard import cache
from dashboard.components import Tile, prefetch_views, select_control, show_view, view_key
from dashboard.context import Ctx
from dashboard.state import reset_on_change
from dashboard.widgets import download, guarded, safe
from explain import activation_bars, feature_map_grid, heatmap_overlay
from explain.features.activations import channel_heatmap
from explain.render import pictures

LAYER_LABEL = "Layer (index · name (type) output shape)"
#: The window event of the layer picker (dashboard/controls.js).
LAYER_EVENT = "explain:layer"
#: Layers on each side of the one shown whose pictures are always sent ahead; more layers, nearest
#: first, go while making their pictures takes under PREFETCH_SECONDS per run (every layer of a
#: small model after a run or two).
NEIGHBOURS = 1
PREFETCH_SECONDS = 0.25
# The tab's widget keys, and those it keeps while closed.
LAYER, MAX_MAPS, NORMALIZE, SORT_CHANNELS, CHANNEL = "layer", "max_maps", "normalize", "sort_channels", "channel"
KEPT_WIDGETS = (LAYER, MAX_MAPS, NORMALIZE, SORT_CHANNELS, CHANNEL)
DL_BARS, DL_GRID, DL_CHANNEL = "dl_bars", "dl_grid", "dl_channel"
#: The keys of the layer's viewer and of the elements that send other layers' pictures ahead.
LAYER_VIEW, LAYER_PREFETCH = "layer_view", "layer_prefetch"
#: Each layer's own "Feature maps shown", by layer name (session state).
MAX_MAPS_BY_LAYER = "max_maps_by_layer"


class LayerViews:
    """The Layers tab's pictures of one model and image: what each layer's view shows, its key,
    and its tiles. Each layer remembers its own "Feature maps shown"; the scale and the sort
    order are the tab's."""

    def __init__(self, ctx: Ctx):
        self.ctx = ctx
        self.rows, self.groups = cache.browsable(ctx)
        self.labels = [r.label for r in self.rows]
        self.max_maps = st.session_state.setdefault(MAX_MAPS_BY_LAYER, {})

    def activations(self, row) -> np.ndarray:
        group = next(g for g in self.groups if row.name in g)
        return cache.group_activations(self.ctx, group)[row.name]

    def settings(self, row) -> tuple[int, str, bool]:
        """``(feature maps shown, scale, sort by mean)`` for ``row``."""
        default = int(min(row.channels or 1, 64))
        normalize = st.session_state.get(NORMALIZE, "per_map")
        return self.max_maps.get(row.name, default), normalize, bool(st.session_state.get(SORT_CHANNELS, False))

    def key(self, row) -> str:
        ctx = self.ctx
        if not row.is_spatial:
            return view_key("bars", ctx.model_key, ctx.image_key, row.name)
        return view_key("maps", ctx.model_key, ctx.image_key, row.name, *self.settings(row))

    def title(self, row) -> str:
        where = f"Layer {row.index}: " if row.index is not None else "Nested layer "
        return f"{where}{row.name} ({row.type}), output {row.shape_text}"

    def caption(self, row) -> str:
        if not row.is_spatial:
            return "Bars: the strongest units (blue positive, red negative)."
        shown, normalize, _ = self.settings(row)
        total = int(row.channels)
        note = "each map scaled to its own min-max" if normalize == "per_map" else "one scale for the whole layer"
        more = f"showing {min(shown, total)} of {total} channels" if shown < total else f"{total} channels"
        return f"{note}; tile label = channel index; {more}"

    def bar_labels(self, flat: np.ndarray) -> list[str] | None:
        """The class names, for a layer with one unit per class."""
        names = self.ctx.class_names
        return list(names) if flat.size == len(names) else None

    def tiles(self, row) -> list[Tile]:
        a = self.activations(row)
        if row.is_spatial:
            shown, normalize, by_mean = self.settings(row)
            channels = list(np.argsort(-a.mean(axis=(0, 1)), kind="stable")) if by_mean else None
            make = lambda: pictures.mosaic_picture(a, channels=channels, max_maps=shown, normalize=normalize).png()  # noqa: E731
            src = cache.uri("maps", self.key(row), make)
        else:
            flat = a.reshape(-1)
            src = cache.uri(
                "bars", self.key(row), lambda: pictures.activation_chart(flat, labels=self.bar_labels(flat))
            )
        alt = f"{self.title(row)}: {self.caption(row)}"
        return [Tile(src=src, caption=f"{self.title(row)}\n{self.caption(row)}", alt=alt)]


def _grid_controls(views: LayerViews, row) -> None:
    """The feature-map grid's controls (they change the view's key, so they come before it)."""
    c1, c2, c3 = st.columns(3)
    n = int(row.channels)
    if n > 1:
        reset_on_change(MAX_MAPS, row.name, views.settings(row)[0])  # each layer its own count
        views.max_maps[row.name] = c1.slider("Feature maps shown", 1, int(min(n, 256)), key=MAX_MAPS)
    else:  # a slider from 1 to 1 is an error in Streamlit (a Rescaling layer of a grayscale model)
        c1.caption("1 feature map (the layer has one channel).")
    c2.radio(
        "Scale",
        ["per_map", "layer"],
        horizontal=True,
        key=NORMALIZE,
        format_func=lambda s: "each map alone" if s == "per_map" else "whole layer",
    )
    c3.checkbox("Sort channels by mean activation", key=SORT_CHANNELS)


def _layer_download(views: LayerViews, row, a: np.ndarray) -> None:
    title = views.title(row)
    if not row.is_spatial:
        flat = a.reshape(-1)
        names = views.bar_labels(flat)
        download(lambda: activation_bars(flat, title=title, labels=names), f"{safe(row.name)}_activations.png", DL_BARS)
        return
    shown, normalize, by_mean = views.settings(row)
    channels = list(np.argsort(-a.mean(axis=(0, 1)), kind="stable")) if by_mean else None
    download(
        lambda: feature_map_grid(a, title=title, channels=channels, max_maps=shown, normalize=normalize),
        f"{safe(row.name)}_feature_maps.png",
        DL_GRID,
    )


def _channel_block(ctx: Ctx, row, a: np.ndarray) -> None:
    """One channel of a spatial layer, enlarged over the image (default: the strongest channel)."""
    st.markdown("**One channel, enlarged over the image**")
    d1, d2 = st.columns([1, 2])
    n = a.shape[-1]
    strongest = int(np.argmax(a.mean(axis=(0, 1))))
    reset_on_change(CHANNEL, (row.name, ctx.image_name), strongest)  # a new layer or image: its strongest
    channel = int(d1.number_input("Channel", 0, n - 1, key=CHANNEL)) if n > 1 else 0
    d1.caption(f"Default: the channel with the highest mean activation ({strongest}).")
    pixels = ctx.pixels
    with d2:
        st.image(cache.channel_png(ctx, row.name, channel, a), caption=f"{row.name}, channel {channel}")
        heat = lambda: channel_heatmap(a, channel, pixels.shape[:2])  # noqa: E731
        download(
            lambda: heatmap_overlay(pixels, heat(), title=f"{row.name}, channel {channel}", cmap="viridis", alpha=0.6),
            f"{safe(row.name)}_channel{channel}.png",
            DL_CHANNEL,
        )


def _first_interesting(rows) -> int:
    """The tab's first layer: the first convolution, else the first layer with feature maps past the
    input (a Vision Transformer's patches), else the first."""
    conv = (i for i, r in enumerate(rows) if r.type.startswith("Conv"))
    maps = (i for i, r in enumerate(rows) if r.is_spatial and r.type not in ("InputLayer", "Rescaling"))
    return next(conv, next(maps, 0))


@st.fragment
@guarded
def render(ctx: Ctx) -> None:
    """The Layers tab (a fragment: its controls rerun it alone)."""
    views = LayerViews(ctx)
    label = select_control(
        LAYER_LABEL, views.labels, key=LAYER, event=LAYER_EVENT, index=_first_interesting(views.rows)
    )
    i = views.labels.index(label)
    row = views.rows[i]
    a = views.activations(row)
    if row.is_spatial:
        _grid_controls(views, row)
    keys = {r.label: views.key(r) for r in views.rows}
    show_view(LAYER_VIEW, keys[label], lambda: views.tiles(row), pick=(LAYER_EVENT, keys))
    _layer_download(views, row, a)
    if row.is_spatial:
        _channel_block(ctx, row, a)
    order = sorted((j for j in range(len(views.rows)) if j != i), key=lambda j: (abs(j - i), j))
    ahead = ((views.key(views.rows[j]), functools.partial(views.tiles, views.rows[j])) for j in order)
    prefetch_views(LAYER_PREFETCH, ahead, first=2 * NEIGHBOURS, budget_s=PREFETCH_SECONDS)
