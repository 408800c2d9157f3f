"""Pure figure builders: ``(data, ax=None) -> matplotlib.figure.Figure``.

With :mod:`explain.render.pictures` (for its colormaps only), the only module that imports
matplotlib. Figures are made with ``matplotlib.figure.Figure`` directly, never through pyplot's
global state, so they are safe in threads (Streamlit) and never pop up windows.

One layout per picture: a picture the dashboard shows (a feature-map mosaic, a heatmap over its
image, the top-k chart, a layer's activation bars, methods side by side) is composed once, in
NumPy, by :mod:`explain.render.pictures`; its download here is a titled figure around the very
same pixels (:func:`picture_figure`). So the download cannot drift from the screen, and each
picture is drawn by one piece of code. The figures with no screen picture of their own (the
confusion matrix, per-class accuracy, training curves, the embedding map, pattern grids) are
drawn with matplotlib; the galleries put the same heatmap overlays in their panels.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from explain.render.pictures import (  # noqa: F401  (NORMALIZATIONS is re-exported)
    NORMALIZATIONS,
    activation_chart,
    attribution_picture,
    captioned_grid,
    enlarge,
    feature_map_mosaic,
    grid_shape,
    lime_picture,
    overlay,
    tile_gap,
    top_k_chart,
)

#: Picture pixels per inch of a figure made around a picture (:func:`picture_figure`); saved at
#: :func:`explain.io.save_figure`'s 120 dpi, a picture is enlarged a little, never shrunk.
PICTURE_DPI = 100


def _figure_and_ax(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _with_title(fig: Figure, title: str, fontsize: float) -> Figure:
    """``fig`` with ``title`` as its suptitle (none when ``title`` is empty)."""
    if title:
        fig.suptitle(title, fontsize=fontsize)
    return fig


def picture_figure(
    picture: np.ndarray,
    *,
    title: str = "",
    fontsize: float = 10,
    min_size: tuple[float, float] = (0.0, 0.0),
    ax: Axes | None = None,
) -> Figure:
    """A figure around a picture of :mod:`explain.render.pictures`: its pixels (``imshow``, axes
    off) under a title. The download of every screen picture is made here.

    Args:
        picture: uint8 ``(H, W, 3)``, e.g. :func:`~explain.render.pictures.overlay`'s.
        title: the axes' title (``"\\n"`` starts a line); none when empty.
        fontsize: the title's font size in points.
        min_size: the new figure's smallest ``(width, height)`` in inches; else ``PICTURE_DPI``
            pixels per inch, and wide enough for the title's longest line.
        ax: axes to draw into; None makes a new figure.

    Returns:
        The ``Figure``; ``fig.axes[0].images[0].get_array()`` (or the given ``ax``'s last image)
        is ``picture`` itself.
    """
    h, w = np.shape(picture)[:2]
    lines = title.split("\n") if title else []
    text_w = max((len(line) for line in lines), default=0) * fontsize * 0.55 / 72  # inches, about
    size = (max(w / PICTURE_DPI, text_w) + 0.3, h / PICTURE_DPI + 0.2 + 0.2 * len(lines) * fontsize / 10)
    fig, ax = _figure_and_ax(ax, (max(size[0], min_size[0]), max(size[1], min_size[1])))
    ax.imshow(picture)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=fontsize, wrap=True)  # a long file name wraps instead of running off
    return fig


def _tile_label(ax: Axes, x: float, y: float, text: str, fontsize: float) -> None:
    """White text on a dark box, its top-left corner at data coordinates ``(x, y)``."""
    ax.text(
        x,
        y,
        text,
        color="white",
        fontsize=fontsize,
        va="top",
        ha="left",
        bbox={"facecolor": "black", "alpha": 0.55, "pad": 1.0, "linewidth": 0},
    )


def feature_map_grid(
    activations: np.ndarray,
    *,
    title: str = "",
    channels: list[int] | None = None,
    max_maps: int = 64,
    cols: int | None = None,
    normalize: str = "per_map",
    cmap: str = "viridis",
    ax: Axes | None = None,
) -> Figure:
    """One image's feature maps as a labelled grid of tiles: the screen's
    :func:`~explain.render.pictures.feature_map_mosaic`, under a title.

    Args:
        activations: float array ``(H, W, C)``: one image's activations of one layer.
        title: figure title, e.g. ``"Layer 1: conv2d (Conv2D), output (None, 28, 28, 32)"``; a
            second line says the scaling and how many channels are shown.
        channels: which channels to draw, in order; default the first ``max_maps``.
        max_maps: most tiles drawn (>= 1); the title says when channels were left out.
        cols: tiles per row; default ``ceil(sqrt(n))``.
        normalize: ``"per_map"`` scales each map to its own min-max (shows the pattern of
            every map), ``"layer"`` scales all maps together (shows which maps are strong).
            A constant map is drawn dark and labelled "flat".
        cmap: a matplotlib colormap name.
        ax: axes to draw into; None makes a new figure.

    Returns:
        The ``Figure``: the mosaic's uint8 pixels (tile label = channel index, drawn in them).

    Raises:
        ValueError: activations not 3-D, ``max_maps < 1``, ``cols < 1``, a channel out of range,
            a bad ``normalize`` or an unknown colormap.
    """
    acts = np.asarray(activations)
    if acts.ndim != 3:
        raise ValueError(f"feature_map_grid needs one image's (H, W, C) activations, got shape {acts.shape}.")
    picture = feature_map_mosaic(acts, channels=channels, max_maps=max_maps, cols=cols, normalize=normalize, cmap=cmap)
    total = acts.shape[-1]
    n = min(max_maps, total if channels is None else len(channels))
    note = "each map scaled to its own min-max" if normalize == "per_map" else "one scale for the whole layer"
    note += "; tile label = channel index"
    more = f"; showing {n} of {total} channels" if n < total else f"; {total} channels"
    return picture_figure(picture, title=f"{title}\n{note}{more}" if title else f"{note}{more}", min_size=(5, 0), ax=ax)


def pattern_grid(
    images: np.ndarray,
    labels: list[str],
    *,
    title: str = "",
    cols: int | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Draw feature-visualisation patterns (:mod:`explain.features.patterns`) as a labelled
    grid of tiles, in the style of :func:`feature_map_grid`.

    Args:
        images: float ``(K, H, W, C)`` in [0, 255], C = 1 (drawn in grey) or 3.
        labels: one tile label per image, e.g. ``"12: 0.83"`` (channel and final activation).
        title: figure title.
        cols: tiles per row; default ``ceil(sqrt(K))``.
        ax: axes to draw into; None makes a new figure.

    Returns:
        The ``Figure``.

    Raises:
        ValueError: images not ``(K, H, W, 1 or 3)`` with K >= 1, a label count that differs
            from K, or ``cols < 1``.
    """
    imgs = np.asarray(images, dtype=np.float32)
    if imgs.ndim != 4 or imgs.shape[0] < 1 or imgs.shape[-1] not in (1, 3):
        raise ValueError(f"pattern_grid needs images (K, H, W, 1 or 3) with K >= 1, got shape {imgs.shape}.")
    if len(labels) != len(imgs):
        raise ValueError(f"{len(labels)} labels for {len(imgs)} images.")
    if cols is not None and cols < 1:
        raise ValueError(f"cols must be at least 1, got {cols}.")
    n, h, w, c = imgs.shape
    rows, cols = grid_shape(n, cols)
    gap = tile_gap(h, w)
    mosaic = np.ones((rows * (h + gap) - gap, cols * (w + gap) - gap, c), np.float32)
    for k in range(n):
        r, q = divmod(k, cols)
        mosaic[r * (h + gap) : r * (h + gap) + h, q * (w + gap) : q * (w + gap) + w] = np.clip(imgs[k] / 255.0, 0, 1)
    tile_in = min(1.3, max(0.55, 11.0 / max(cols, rows)))
    fig, ax = _figure_and_ax(ax, (cols * tile_in + 0.4, rows * tile_in + 0.9))
    ax.imshow(mosaic[..., 0] if c == 1 else mosaic, cmap="gray" if c == 1 else None, vmin=0.0, vmax=1.0)
    fontsize = max(5.0, min(9.0, tile_in * 7))
    for k, label in enumerate(labels):
        r, q = divmod(k, cols)
        _tile_label(ax, q * (w + gap) + 0.5, r * (h + gap) + 0.5, label, fontsize)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def activation_bars(
    values: np.ndarray,
    *,
    title: str = "",
    labels: list[str] | None = None,
    max_units: int = 64,
    ax: Axes | None = None,
) -> Figure:
    """Bars of a non-spatial layer's activations (e.g. a Dense layer) for one image: the screen's
    :func:`~explain.render.pictures.activation_chart`, under a title.

    Args:
        values: float array ``(D,)``.
        title: figure title; the number of units shown is added when some are left out.
        labels: one name per unit (e.g. class names for the output layer); default indices.
        max_units: the strongest ``max_units`` units (by absolute value) are drawn, in unit order.
        ax: axes to draw into; None makes a new figure.

    Returns:
        The ``Figure``.
    """
    size = np.asarray(values).size
    shown = f" (strongest {min(max_units, size)} of {size} units)" if max_units < size else ""
    picture = activation_chart(values, labels=labels, max_units=max_units)
    return picture_figure(picture, title=f"{title}{shown}", ax=ax)


def top_k_bars(
    probabilities: np.ndarray,
    class_names: list[str] | tuple[str, ...],
    k: int = 5,
    ax: Axes | None = None,
    *,
    title: str = "",
) -> Figure:
    """Horizontal bars of the ``k`` most probable classes for one image, names on the left,
    percentages on the bars: the screen's :func:`~explain.render.pictures.top_k_chart`.

    Args:
        probabilities: float array ``(num_classes,)`` in [0, 1].
        class_names: one name per class.
        k: how many classes (clipped to the number of classes).
        ax: axes to draw into; None makes a new figure.
        title: the axes' title; none by default.

    Returns:
        The ``Figure``.

    Raises:
        ValueError: fewer class names than probabilities.
    """
    return picture_figure(top_k_chart(probabilities, class_names, k), title=title, ax=ax)


def _image_panel(ax: Axes, image: np.ndarray, title: str = "", fontsize: float = 8) -> None:
    """The image in ``ax`` as the screen shows it (:func:`~explain.render.pictures.enlarge`: at
    least 224 pixels, sharp), beside the overlays of the same image."""
    picture_figure(enlarge(image), title=title, fontsize=fontsize, ax=ax)


def heatmap_overlay(
    image: np.ndarray,
    heatmap: np.ndarray,
    *,
    title: str = "",
    cmap: str = "jet",
    alpha: float = 0.5,
    flat: bool = False,
    colorbar: bool = False,
    ax: Axes | None = None,
) -> Figure:
    """A heatmap drawn over its image: the screen's :func:`~explain.render.pictures.overlay`
    (image enlarged nearest-neighbour to at least 224 pixels, heatmap bilinearly), under a title.

    Args:
        image: uint8 ``(H, W, C)`` (C = 1 or 3), raw pixels.
        heatmap: float ``(H, W)`` in [0, 1] (an attribution's ``heatmap[i]``).
        title: axes title.
        cmap: matplotlib colormap for the heatmap.
        alpha: heatmap opacity in [0, 1].
        flat: the map is flat (no information): the image is drawn alone with a note.
        colorbar: add a colour bar (0 = least, 1 = most relevant); none for a flat map.
        ax: axes to draw into; None makes a new figure.

    Returns:
        The ``Figure``.

    Raises:
        ValueError: shapes that do not match, alpha outside [0, 1], an unknown colormap.
    """
    flat = flat or not np.isfinite(np.asarray(heatmap, dtype=np.float32)).all()
    picture = overlay(image, heatmap, cmap=cmap, alpha=alpha, flat=flat)
    fig = picture_figure(picture, title=title, fontsize=9, min_size=(4.0, 4.2), ax=ax)
    if colorbar and not flat:
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        mappable = ScalarMappable(Normalize(0.0, 1.0), cmap)
        target = ax if ax is not None else fig.axes[0]
        fig.colorbar(mappable, ax=target, fraction=0.046, pad=0.04, label="relevance")
    return fig


def attribution_panel(
    image: np.ndarray,
    maps: list[tuple[str, np.ndarray, bool]],
    *,
    title: str = "",
    cmap: str = "jet",
    alpha: float = 0.5,
) -> Figure:
    """Side by side: the image, then one overlay per method for the same image and class, each
    captioned: :func:`~explain.render.pictures.attribution_picture` (the screen's overlays side by
    side), under a title.

    Args:
        image: uint8 ``(H, W, C)``.
        maps: ``(label, heatmap (H, W) in [0, 1], flat)`` per method, e.g.
            ``("gradcam @ conv2d_1\\ndeletion 0.120 / insertion 0.810", heat, False)``
            (:func:`~explain.attribution.method_label`).
        title: the figure's title (e.g. the class explained).
        cmap, alpha: as :func:`heatmap_overlay`.

    Returns:
        The ``Figure``.

    Raises:
        ValueError: as :func:`heatmap_overlay`.
    """
    return picture_figure(attribution_picture(image, maps, cmap=cmap, alpha=alpha), title=title, min_size=(4.0, 0))


def overlay_grid(
    images: np.ndarray,
    heatmaps: np.ndarray,
    captions: list[str],
    *,
    flat: np.ndarray | None = None,
    title: str = "",
    cols: int = 4,
    cmap: str = "jet",
    alpha: float = 0.5,
    ax: Axes | None = None,
) -> Figure:
    """Several images, each with its heatmap over it and a caption, in rows of ``cols``: how an
    :class:`~explain.attribution.base.Attribution` of a batch shows itself.

    Args:
        images: uint8 ``(N, H, W, C)``, C = 1 or 3; None draws the heatmaps alone.
        heatmaps: float ``(N, H, W)`` in [0, 1].
        captions: N captions (``"\\n"`` starts a line).
        flat: bool ``(N,)``: maps with no information, drawn as the image alone with a note.
        title: the figure's title.
        cols: images per row.
        cmap, alpha: as :func:`heatmap_overlay`.
        ax: axes to draw into; None makes a new figure.

    Returns:
        The ``Figure``.

    Raises:
        ValueError: counts or shapes that do not match.
    """
    heatmaps = np.asarray(heatmaps, dtype=np.float32)
    if images is None:  # the heatmaps alone
        images, alpha = np.zeros((*heatmaps.shape, 1), np.uint8), 1.0
    flat = np.zeros(len(heatmaps), bool) if flat is None else np.asarray(flat, bool)
    if not len(images) == len(heatmaps) == len(captions) == len(flat):
        raise ValueError(
            f"overlay_grid needs as many images, heatmaps, captions and flat flags: got {len(images)}, "
            f"{len(heatmaps)}, {len(captions)} and {len(flat)}."
        )
    pictures = [
        overlay(im, heat, cmap=cmap, alpha=alpha, flat=bool(f))
        for im, heat, f in zip(images, heatmaps, flat, strict=True)
    ]
    return picture_figure(captioned_grid(pictures, captions, cols=cols), title=title, ax=ax)


def panel_figure(n: int, *, cols: int = 2, panel_size: tuple[float, float] = (5.0, 4.5), title: str = ""):
    """A new figure with ``n`` empty axes in rows of ``cols``, for results drawn as several panels
    (activations of several layers, an evaluation). Returns ``(Figure, [Axes] * n)``."""
    cols = max(1, min(int(cols), n))
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(panel_size[0] * cols, panel_size[1] * rows), layout="constrained")
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(n)]
    return _with_title(fig, title, 12), axes


def lime_boundaries(
    image: np.ndarray,
    segments: np.ndarray,
    weights: np.ndarray,
    *,
    num_features: int = 5,
    title: str = "",
    ax: Axes | None = None,
) -> Figure:
    """LIME's superpixels on the image: boundaries in yellow, the ``num_features`` strongest
    superpixels tinted green (for the class) or red (against it).

    Args:
        image: uint8 ``(H, W, C)``.
        segments: int ``(H, W)`` superpixel labels ``0..n-1`` (``LIME.segments[i]``).
        weights: float ``(n,)`` signed LIME weights (``LIME.weights[i]``).
        num_features: how many superpixels (largest absolute weight) to tint.
        title: axes title.
        ax: axes to draw into; None makes a new figure.

    Returns:
        The ``Figure``.

    Raises:
        ValueError: segments not matching the image, or fewer weights than superpixels.
    """
    out = lime_picture(image, segments, weights, num_features=num_features)
    shown = min(num_features, np.asarray(weights).size)
    fig, ax = _figure_and_ax(ax, (4.0, 4.2))
    ax.imshow(out, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title or f"LIME superpixels: green for, red against (top {shown})", fontsize=9)
    return fig


# -- model report: per-class accuracy, confusion matrix, galleries -------------------------
def _short(text: str, width: int = 30) -> str:
    """Shorten a long label from the left ("…/cats/img_0001.png"), keeping the file name."""
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def per_class_accuracy_chart(
    per_class_accuracy: np.ndarray,
    class_names: list[str] | tuple[str, ...],
    *,
    support: np.ndarray | None = None,
    overall: float | None = None,
    title: str = "",
    ax: Axes | None = None,
) -> Figure:
    """Horizontal bars of each class's accuracy, sorted worst (top) to best, percentage on each bar.

    Args:
        per_class_accuracy: float ``(C,)`` in [0, 1] (``Evaluation.per_class_accuracy``); NaN
            marks a class without images, drawn last as "no images".
        class_names: C names.
        support: int ``(C,)`` images per class, shown as ``"Shirt (n=1000)"``; optional.
        overall: the overall accuracy in [0, 1], drawn as a dashed line; optional.
        title: axes title.
        ax: axes to draw into; None makes a new figure.

    Returns:
        The ``Figure``. Bars (``ax.patches``) and y tick labels run from the worst class to the best.

    Raises:
        ValueError: lengths that do not match.
    """
    acc = np.asarray(per_class_accuracy, dtype=np.float64).reshape(-1)
    if len(class_names) != acc.size or (support is not None and np.asarray(support).size != acc.size):
        raise ValueError(f"{acc.size} accuracies for {len(class_names)} class names (and support sizes must match).")
    known = np.isfinite(acc)
    order = np.concatenate([np.flatnonzero(known)[np.argsort(acc[known], kind="stable")], np.flatnonzero(~known)])
    labels = [
        f"{class_names[i]} (n={int(support[i]):,})" if support is not None else str(class_names[i]) for i in order
    ]
    fig, ax = _figure_and_ax(ax, (7.5, 0.36 * len(order) + 1.4))
    values = np.where(known[order], acc[order], 0.0)
    # Red at 50% and below, yellow at 75%, green at 100%: the eye goes to the weak classes.
    shade = np.clip((values - 0.5) / 0.5, 0.0, 1.0)
    colors = [_colormap("RdYlGn")(0.1 + 0.8 * t) if k else "#bbbbbb" for t, k in zip(shade, known[order], strict=True)]
    ax.barh(np.arange(len(order)), values, color=colors, edgecolor="#555555", linewidth=0.4)
    ax.set_yticks(np.arange(len(order)), labels, fontsize=9 if len(order) <= 30 else 6)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.0)
    ax.set_xticks(np.linspace(0, 1, 6), [f"{t:.0%}" for t in np.linspace(0, 1, 6)])
    ax.set_xlabel("accuracy (share of the class's images predicted correctly)")
    for y, i in enumerate(order):
        # At the bar's start: clear of the bar's end and of the overall-accuracy line.
        text = f"{acc[i]:.1%}" if known[i] else "no images"
        ax.text(0.012, y, text, va="center", fontsize=8.5, fontweight="bold" if known[i] else "normal", zorder=3)
    if overall is not None and np.isfinite(overall):
        _overall_line(ax, overall, len(order))
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    ax.set_title(title or "Per-class accuracy, worst to best", fontsize=10)
    return fig


def _overall_line(ax: Axes, overall: float, bars: int) -> None:
    """A dashed vertical line at ``overall`` in [0, 1], labelled above the first of ``bars`` bars."""
    ax.set_ylim(bars - 0.5, -1.4)  # room above the first bar for the line's label
    ax.axvline(overall, color="black", linestyle="--", linewidth=1)
    ax.text(
        overall,
        -0.95,
        f"overall {overall:.1%}",
        ha="center",
        va="center",
        fontsize=8,
        bbox={"facecolor": "white", "edgecolor": "none", "pad": 1},
    )


def _colormap(name: str):
    import matplotlib

    return matplotlib.colormaps[name]


def _confusion_panel(ax: Axes, cm: np.ndarray, names: list[str], normalized: bool, title: str) -> None:
    c = cm.shape[0]
    counts = cm.astype(np.float64)
    cmap = _colormap("Blues").with_extremes(bad="#e4e4e4")  # a class without images: a grey row
    if normalized:
        rows = counts.sum(axis=1, keepdims=True)
        shown = np.where(rows > 0, counts / np.where(rows > 0, rows, 1.0), np.nan)
        im = ax.imshow(np.ma.masked_invalid(shown), cmap=cmap, vmin=0.0, vmax=1.0)
    else:
        shown = counts
        im = ax.imshow(shown, cmap=cmap, vmin=0.0, vmax=max(1.0, counts.max()))
    fs = max(4.0, min(10.0, 130.0 / c))
    ax.set_xticks(np.arange(c), names, rotation=45, ha="right", rotation_mode="anchor", fontsize=fs)
    ax.set_yticks(np.arange(c), names, fontsize=fs)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=10)
    if c <= 30:
        top = np.nanmax(shown) if np.isfinite(shown).any() else 1.0
        for t in range(c):
            for p in range(c):
                v = shown[t, p]
                if normalized:
                    if not np.isfinite(v):
                        text = "–"
                    elif cm[t, p] == 0:
                        text = ""
                    else:
                        text = f"{v:.0%}" if v >= 0.095 else f"{v:.1%}"
                else:
                    text = f"{int(v)}"
                dark = np.isfinite(v) and v > 0.55 * top
                ax.text(p, t, text, ha="center", va="center", fontsize=fs * 0.9, color="white" if dark else "black")
    bar = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.03, format="{x:.0%}" if normalized else None)
    if not normalized:
        bar.ax.yaxis.get_major_locator().set_params(integer=True)  # counts: no 0.5-image ticks


def confusion_matrix_figure(
    confusion: np.ndarray,
    class_names: list[str] | tuple[str, ...],
    *,
    normalize: str = "both",
    title: str = "",
    ax: Axes | None = None,
) -> Figure:
    """The confusion matrix as counts, row-normalised, or both side by side.

    Rows are the true class, columns the predicted class (scikit-learn's convention). Each
    cell is labelled (up to 30 classes); row-normalised cells read "share of the true class's
    images", and a class without images has a grey row.

    Args:
        confusion: int ``(C, C)``, ``confusion[t, p]`` images of class ``t`` predicted as ``p``.
        class_names: C names, on both axes.
        normalize: ``"counts"``, ``"true"`` (row-normalised) or ``"both"`` (side by side;
            needs ``ax=None``).
        title: figure (``"both"``) or axes title.
        ax: axes to draw one panel into; None makes a new figure.

    Returns:
        The ``Figure``.

    Raises:
        ValueError: a non-square matrix, names that do not match, a bad ``normalize``, or
            ``normalize="both"`` with ``ax``.
    """
    cm = np.asarray(confusion)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(class_names):
        raise ValueError(f"confusion must be (C, C) with C = {len(class_names)} class names, got {cm.shape}.")
    if normalize not in ("counts", "true", "both"):
        raise ValueError(f"normalize must be 'counts', 'true' or 'both', got {normalize!r}.")
    names = [str(n) for n in class_names]
    side = 0.42 * len(names) + 2.4
    count_title = f"Counts ({int(cm.sum()):,} images)"
    norm_title = "Row-normalised (share of each true class)"
    if normalize == "both":
        if ax is not None:
            raise ValueError("normalize='both' draws two panels: pass ax=None, or draw 'counts' and 'true' separately.")
        fig = Figure(figsize=(2 * side + 0.6, side), layout="constrained")
        left, right = fig.subplots(1, 2)
        _confusion_panel(left, cm, names, False, count_title)
        _confusion_panel(right, cm, names, True, norm_title)
        return _with_title(fig, title, 11)
    fig, ax = _figure_and_ax(ax, (side + 0.6, side))
    _confusion_panel(ax, cm, names, normalize == "true", title or (norm_title if normalize == "true" else count_title))
    return fig


def _subfigure_grid(fig: Figure | None, n: int, rows: int, cols: int, figsize: tuple[float, float], space: float):
    """``(fig, subfigures)``: the first ``n`` subfigures of a ``rows x cols`` grid, row by row, in
    ``fig`` (None: a new constrained-layout figure of ``figsize`` inches); the cells past ``n``
    stay empty."""
    if fig is None:
        fig = Figure(figsize=figsize, layout="constrained")
    return fig, np.atleast_1d(fig.subfigures(rows, cols, wspace=space, hspace=space)).reshape(-1)[:n]


def _check_gallery(imgs: np.ndarray, tm: np.ndarray, pm: np.ndarray, cols: int) -> None:
    """Raise ValueError for a gallery's bad arguments (:func:`confusion_gallery`, :func:`look_alike_gallery`)."""
    n = len(imgs)
    if n == 0 or imgs.ndim != 4 or tm.shape != (n, *imgs.shape[1:3]) or pm.shape != tm.shape:
        raise ValueError(
            f"A gallery needs images (N, H, W, C) and two (N, H, W) heatmaps with N >= 1; got "
            f"{imgs.shape}, {tm.shape}, {pm.shape}."
        )
    if cols < 1:
        raise ValueError(f"cols must be at least 1, got {cols}.")


def _gallery_example(sub, image: np.ndarray, maps, titles, label: str | None, *, cmap: str, alpha: float) -> None:
    """One framed group of a gallery in subfigure ``sub``: the image, then the true class's and
    the predicted class's ``(heatmap, flat)`` in ``maps`` over it, with ``titles``."""
    sub.set_facecolor("#f6f6f6")
    sub.set_edgecolor("#cccccc")
    sub.set_linewidth(1.0)
    a_img, *a_maps = sub.subplots(1, 3)
    _image_panel(a_img, image, "image")
    for ax, (heat, flat), title in zip(a_maps, maps, titles, strict=True):
        heatmap_overlay(image, heat, title=title, cmap=cmap, alpha=alpha, flat=flat, ax=ax)
    if label is not None:
        sub.suptitle(_short(label, 60), fontsize=8)


def confusion_gallery(
    images: np.ndarray,
    true_maps: np.ndarray,
    predicted_maps: np.ndarray,
    *,
    true_name: str,
    predicted_name: str,
    labels: list[str] | None = None,
    true_flat: np.ndarray | None = None,
    predicted_flat: np.ndarray | None = None,
    method: str = "Grad-CAM",
    cols: int = 2,
    title: str = "",
    cmap: str = "jet",
    alpha: float = 0.5,
    fig: Figure | None = None,
) -> Figure:
    """Misclassified examples of one confusion, each with its heatmaps for the true and the predicted class.

    Every example is a framed group of three panels: the image, the heatmap for the TRUE
    class over it, and the heatmap for the PREDICTED class over it, so one sees what the
    model found of each class in the same picture.

    Args:
        images: uint8 ``(N, H, W, C)``, C = 1 or 3.
        true_maps: float ``(N, H, W)`` in [0, 1], heatmaps for the true class.
        predicted_maps: float ``(N, H, W)`` in [0, 1], heatmaps for the predicted class.
        true_name, predicted_name: the two classes' names.
        labels: one caption per example (e.g. ``"shirts/img_07.png · 97% T-shirt/top"``).
        true_flat, predicted_flat: bool ``(N,)``: flat maps, drawn as "flat heatmap".
        method: the heatmaps' method, for the panel titles (``"Grad-CAM"``, ``"saliency"``).
        cols: examples per row (>= 1).
        title: the figure's title, e.g. ``"Shirt predicted as T-shirt/top: 117 images"``.
        cmap, alpha: as :func:`heatmap_overlay`.
        fig: a ``Figure`` (or ``SubFigure``) to draw into; None makes a new one. (A gallery is
            a grid of panels, so it takes a figure rather than one ``ax``.)

    Returns:
        The ``Figure``.

    Raises:
        ValueError: no examples, shapes that do not match, or ``cols < 1``.
    """
    n = len(np.asarray(images))
    tf_ = np.zeros(n, bool) if true_flat is None else np.asarray(true_flat, bool)
    pf_ = np.zeros(n, bool) if predicted_flat is None else np.asarray(predicted_flat, bool)
    titles = [(f"{method}: {true_name}\n(true class)", f"{method}: {predicted_name}\n(predicted)")] * n
    return look_alike_gallery(
        images,
        (true_maps, predicted_maps),
        titles,
        [None] * n if labels is None else labels,
        flat=(tf_, pf_),
        cols=cols,
        title=title,
        cmap=cmap,
        alpha=alpha,
        fig=fig,
    )


def top_k_grid(
    images: np.ndarray,
    probabilities: np.ndarray,
    class_names: list[str] | tuple[str, ...],
    *,
    k: int = 5,
    titles: list[str] | None = None,
    fig: Figure | None = None,
) -> Figure:
    """Several images, each beside the bars of its ``k`` most probable classes.

    Args:
        images: uint8 ``(N, H, W, C)``.
        probabilities: float ``(N, num_classes)`` in [0, 1].
        class_names: one name per class.
        k: classes per image (clipped to the number of classes).
        titles: one caption per image (e.g. the file name and the true class).
        fig: a ``Figure`` (or ``SubFigure``) to draw into; None makes a new one.

    Returns:
        The ``Figure``.

    Raises:
        ValueError: no images, or images and probabilities of different lengths.
    """
    imgs = np.asarray(images)
    p = np.asarray(probabilities, dtype=np.float64)
    if len(imgs) == 0 or p.ndim != 2 or len(p) != len(imgs):
        raise ValueError(f"top_k_grid needs N >= 1 images and (N, classes) probabilities; got {imgs.shape}, {p.shape}.")
    n = len(imgs)
    kk = min(k, p.shape[1])
    cols = 2 if n > 1 else 1
    rows = math.ceil(n / cols)
    fig, groups = _subfigure_grid(fig, n, rows, cols, (cols * 6.2, rows * (0.32 * kk + 1.3)), space=0.05)
    for i, sub in enumerate(groups):
        a_img, a_bar = sub.subplots(1, 2, width_ratios=[1, 2.6])
        _image_panel(a_img, imgs[i])
        top_k_bars(p[i], class_names, k=kk, ax=a_bar)
        a_bar.tick_params(axis="y", labelsize=8)
        a_bar.set_xlabel("")
        if titles is not None:
            sub.suptitle(_short(titles[i], 70), fontsize=9)
    return fig


def ranked_bars(
    labels: list[str], values: list[float], *, title: str = "", xlabel: str = "", ax: Axes | None = None
) -> Figure:
    """Horizontal bars in the given order, the first on top and highlighted, each with its value as a
    percentage: a ranking such as a hyperparameter grid's validation accuracies.

    Args:
        labels: one label per bar, best first.
        values: float per bar in [0, 1], the same length.
        title: the figure's title; xlabel: the axis label.
        ax: draw into this Axes; default a new figure.

    Returns:
        The ``matplotlib.figure.Figure``.

    Raises:
        ValueError: no bars, or labels and values of different lengths.
    """
    if not labels or len(labels) != len(values):
        raise ValueError(f"ranked_bars needs one value per label, at least one ({len(labels)}, {len(values)} given).")
    fig, ax = _figure_and_ax(ax, (7, 0.35 * len(labels) + 1.3))
    colors = ["#d9822b" if i == 0 else "#3b75af" for i in range(len(labels))]
    ax.barh(range(len(labels)), values, color=colors)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    lo = min(values)
    ax.set_xlim(max(0.0, lo - (1 - lo) * 0.5 - 0.01), 1.0)
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:.2%}", va="center", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    return fig


def training_curves(
    history: dict[str, list[float]],
    *,
    best_epoch: int | None = None,
    title: str = "",
    fig: Figure | None = None,
) -> Figure:
    """Training and validation curves per epoch, one panel per metric (loss, accuracy, ...).

    Args:
        history: Keras ``History.history`` as the model card stores it:
            ``{"loss": [...], "val_loss": [...], "accuracy": [...], "val_accuracy": [...]}``;
            each ``val_<metric>`` goes in the panel of ``<metric>``; ``learning_rate`` is left out.
        best_epoch: the kept epoch (1-based), marked with a dotted line; optional.
        title: the figure's title.
        fig: a ``Figure`` (or ``SubFigure``) to draw into; None makes a new one.

    Returns:
        The ``Figure``.

    Raises:
        ValueError: no metric with at least one number.
    """
    series = {
        str(key): np.asarray(v, dtype=np.float64)
        for key, v in history.items()
        if isinstance(v, list | tuple) and v and all(isinstance(x, int | float) for x in v)
    }
    metrics = [m for m in series if not m.startswith("val_") and m not in ("learning_rate", "lr")]
    metrics += [m[4:] for m in series if m.startswith("val_") and m[4:] not in series]
    metrics = sorted(dict.fromkeys(metrics), key=lambda m: (m != "loss", m != "accuracy", m))[:4]
    if not metrics:
        raise ValueError("The history holds no metric with numbers per epoch.")
    if fig is None:
        fig = Figure(figsize=(4.6 * len(metrics), 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(metrics))).reshape(-1)
    for ax, metric in zip(axes, metrics, strict=True):
        for key, style, label in ((metric, "-o", "training"), (f"val_{metric}", "-s", "validation")):
            if key in series:
                ax.plot(np.arange(1, len(series[key]) + 1), series[key], style, markersize=3, label=label)
        if best_epoch:
            ax.axvline(best_epoch, color="gray", linestyle=":", linewidth=1, label=f"kept epoch {best_epoch}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        epochs = max(len(series[k]) for k in (metric, f"val_{metric}") if k in series)
        if epochs <= 10:  # a short run: one tick per epoch (a locator labels 1 epoch as 0.96 ... 1.04)
            ax.set_xticks(range(1, epochs + 1))
        else:
            ax.xaxis.get_major_locator().set_params(integer=True)
    return _with_title(fig, title, 11)


def class_colors(n: int) -> np.ndarray:
    """float ``(n, 4)`` RGBA colours, one per class: ``tab10`` up to 10 classes, ``tab20`` up to
    20, evenly spaced ``turbo`` beyond (the dashboard's map uses the same colours)."""
    from matplotlib import colormaps

    if n <= 10:
        return colormaps["tab10"](np.arange(n))
    if n <= 20:
        return colormaps["tab20"](np.arange(n))
    return colormaps["turbo"](np.linspace(0.05, 0.95, n))


def class_hex_colors(n: int) -> list[str]:
    """The colours of :func:`class_colors` as ``"#rrggbb"`` strings, for charts drawn outside matplotlib
    (the dashboard's map)."""
    from matplotlib.colors import to_hex

    return [to_hex(c) for c in class_colors(n)]


def _thumbnail(ax: Axes, image: np.ndarray, xy, color, zoom: float) -> None:
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    img = np.asarray(image)
    gray = img.ndim == 3 and img.shape[-1] == 1
    box = OffsetImage(img[..., 0] if gray else img, zoom=zoom, cmap="gray" if gray else None)
    ax.add_artist(AnnotationBbox(box, xy, frameon=True, pad=0.1, bboxprops={"edgecolor": color, "linewidth": 1.2}))


def embedding_map(
    emb,
    ax: Axes | None = None,
    *,
    thumbnails: dict[int, np.ndarray] | None = None,
    title: str | None = None,
    point_size: float | None = None,
) -> Figure:
    """A data set's map in the model's feature space (:func:`explain.dataset.embedding.embed`).

    Each image is a dot coloured by its true class; a misclassified image is a cross in the
    colour of the class it was predicted as, drawn on top. The legend names the classes
    (up to 20).

    Args:
        emb: an :class:`explain.dataset.embedding.Embedding`.
        ax: the axes to draw on; None makes a new 9 x 8 inch figure.
        thumbnails: ``{row of emb: uint8 image (H, W, C)}`` drawn at their points, framed in
            their true class's colour (a sample of points, say 30).
        title: the title; None for one that names the layer, the method and the mistakes.
        point_size: marker area in points²; None scales it with the number of points.

    Returns:
        The ``Figure``.

    Raises:
        ValueError: coordinates that are not ``(N, 2)``.
    """
    xy = np.asarray(emb.coordinates, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"embedding_map needs (N, 2) coordinates, got {xy.shape}.")
    fig, ax = _figure_and_ax(ax, (9, 8))
    colors = class_colors(len(emb.class_names))
    wrong = np.asarray(emb.y_true) != np.asarray(emb.y_pred)
    size = point_size or float(np.clip(40000 / max(len(xy), 1), 4, 30))
    ax.scatter(*xy[~wrong].T, s=size, c=colors[emb.y_true[~wrong]], linewidths=0, alpha=0.7)
    ax.scatter(*xy[wrong].T, s=size * 3, c=colors[emb.y_pred[wrong]], marker="x", linewidths=0.8)
    for i, image in (thumbnails or {}).items():
        _thumbnail(ax, image, xy[i], colors[emb.y_true[i]], zoom=22 / max(np.shape(image)[:2]))
    if len(emb.class_names) <= 20:
        from matplotlib.lines import Line2D

        handles = [
            Line2D([], [], marker="o", linestyle="", color=colors[k], label=_short(name, 24))
            for k, name in enumerate(emb.class_names)
        ]
        cross = "misclassified (colour: predicted)"
        handles.append(Line2D([], [], marker="x", linestyle="", color="#444444", label=cross))
        ax.legend(handles=handles, fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal", adjustable="datalim")
    if title is None:
        method = {"umap": "UMAP", "tsne": "t-SNE", "pca": "PCA"}.get(emb.method, emb.method)
        title = (
            f"{len(xy):,} images in the features of layer {emb.layer!r} ({method}); "
            f"{int(wrong.sum()):,} misclassified (crosses)"
        )
    ax.set_title(title, fontsize=10)
    return fig


def look_alike_gallery(
    images: np.ndarray,
    maps: tuple[np.ndarray, np.ndarray],
    titles: list[tuple[str, str]],
    labels: list[str | None],
    *,
    flat: tuple[np.ndarray, np.ndarray] | None = None,
    cols: int = 2,
    title: str = "",
    cmap: str = "jet",
    alpha: float = 0.5,
    fig: Figure | None = None,
) -> Figure:
    """Images that look like another class to the model, each with two heatmaps: for its true
    class and for the class its neighbours in feature space have. (The gallery behind
    :func:`confusion_gallery` too: any two heatmaps per image, with titles per image.)

    Args:
        images: uint8 ``(N, H, W, C)``, N >= 1.
        maps: two float ``(N, H, W)`` heatmaps in [0, 1]: the true class's, the look-alike class's.
        titles: per image, the two heatmaps' titles.
        labels: per image, a caption ("Shirt #17 · looks like T-shirt/top (9/10 neighbours)"), or None.
        flat: two bool ``(N,)``: flat maps, drawn as "flat heatmap".
        cols, title, cmap, alpha, fig: as :func:`confusion_gallery`.

    Returns:
        The ``Figure``.

    Raises:
        ValueError: no images, shapes that do not match, or ``cols < 1``.
    """
    imgs = np.asarray(images)
    a, b = (np.asarray(m, np.float32) for m in maps)
    _check_gallery(imgs, a, b, cols)
    n = len(imgs)
    fa, fb = flat if flat is not None else (np.zeros(n, bool), np.zeros(n, bool))
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    fig, groups = _subfigure_grid(fig, n, rows, cols, (cols * 6.3, rows * 2.55 + (0.5 if title else 0.1)), 0.04)
    for k, sub in enumerate(groups):
        pair = ((a[k], bool(fa[k])), (b[k], bool(fb[k])))
        _gallery_example(sub, imgs[k], pair, titles[k], labels[k], cmap=cmap, alpha=alpha)
    return _with_title(fig, title, 11)


def _heat_panel(ax: Axes, heat: np.ndarray, title: str, cmap: str) -> None:
    """A heatmap alone (no image), 0 to 1, in ``ax``."""
    ax.imshow(np.asarray(heat, np.float32), cmap=cmap, vmin=0.0, vmax=1.0, interpolation="bilinear")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=7)


def spray_clusters(
    audit,
    images: dict[int, np.ndarray] | None = None,
    maps: dict[int, np.ndarray] | None = None,
    *,
    captions: dict[int, str] | None = None,
    cmap: str = "jet",
    alpha: float = 0.5,
    method: str = "",
) -> Figure:
    """One class's strategies (:class:`explain.dataset.spray.ClassAudit`), one row per cluster: its mean
    heatmap with its size, accuracy and relevance share, then its prototypes (the images nearest its
    centre), each with its own heatmap over it.

    Args:
        audit: a ``ClassAudit``.
        images: ``{id: uint8 (H, W, C)}`` of the prototypes; None or missing ids: the heatmap alone.
        maps: ``{id: float (H, W) in [0, 1]}``, each prototype's heatmap at its image's size (or any
            size when its image is missing).
        captions: ``{id: short text}`` under each prototype (e.g. its file name).
        cmap, alpha: as :func:`heatmap_overlay`.
        method: the heatmaps' method, for the title.

    Returns:
        The ``Figure``.

    Raises:
        ValueError: an audit without clusters.
    """
    clusters = audit.clusters
    if not clusters:
        raise ValueError("spray_clusters needs an audit with at least one cluster.")
    images, maps, captions = images or {}, maps or {}, captions or {}
    cols = 1 + max(len(k.prototypes) for k in clusters)
    fig = Figure(figsize=(1.25 * cols + 0.4, 1.5 * len(clusters) + 0.7), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(clusters), cols, squeeze=False))
    for row, k in zip(axes, clusters, strict=True):
        acc = "" if k.accuracy is None else f", {k.accuracy:.0%} right"
        _heat_panel(row[0], k.mean_heatmap, f"cluster {k.index}\n{k.size} img{acc}\nshare {k.share:.0%}", cmap)
        for ax, i in zip(row[1:], k.prototypes, strict=False):
            heat = maps.get(i)
            if i in images and heat is not None:
                caption = _short(captions.get(i, f"#{i}"), 18)
                heatmap_overlay(images[i], heat, title=caption, cmap=cmap, alpha=alpha, ax=ax)
                ax.title.set_fontsize(7)
            elif heat is not None:
                _heat_panel(ax, heat, _short(captions.get(i, f"#{i}"), 18), cmap)
        for ax in row[1 + len(k.prototypes) :]:
            ax.set_axis_off()
    gap = "" if audit.eigengap is None else f", eigengap {audit.eigengap:.3f}"
    by = f" ({method})" if method else ""
    fig.suptitle(f"{audit.name}: {len(audit.ids):,} heatmaps{by} in {len(clusters)} clusters{gap}", fontsize=10)
    return fig


def score_curves(
    fractions: np.ndarray,
    curves: dict[str, np.ndarray],
    *,
    title: str = "",
    xlabel: str = "fraction of pixels",
    ylabel: str = "score",
    ax: Axes | None = None,
) -> Figure:
    """Curves over a fraction of pixels (deletion / insertion, ROAD): for each curve set, every image's curve
    thin and the mean over images bold, its mean area in the legend.

    Args:
        fractions: float ``(F,)`` in [0, 1], the x axis.
        curves: ``{label: float (N, F)}``; NaN rows (flat maps, orders not run) are left out.
        title, xlabel, ylabel: the axes' labels.
        ax: axes to draw into; None makes a new figure.

    Returns:
        The ``Figure``.

    Raises:
        ValueError: a curve set whose length differs from ``fractions``.
    """
    x = np.asarray(fractions, dtype=np.float64)
    fig, ax = _figure_and_ax(ax, (6, 4))
    for (label, values), color in zip(curves.items(), ("tab:red", "tab:blue", "tab:green", "tab:purple"), strict=False):
        ys = np.atleast_2d(np.asarray(values, dtype=np.float64))
        if ys.shape[1] != len(x):
            raise ValueError(f"score_curves: {label} has {ys.shape[1]} points for {len(x)} fractions.")
        ys = ys[np.isfinite(ys).all(axis=1)]
        if not len(ys):
            continue
        for y in ys[:50]:
            ax.plot(x, y, color=color, alpha=0.15, linewidth=0.8)
        mean = ys.mean(axis=0)
        area = float(np.trapezoid(mean, x)) if hasattr(np, "trapezoid") else float(np.trapz(mean, x))
        ax.plot(x, mean, color=color, linewidth=2.2, label=f"{label}: mean area {area:.3f} ({len(ys)} images)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def spray_overview(result, *, max_classes: int = 8, max_clusters: int = 4, ax: Axes | None = None) -> Figure:
    """An audit at a glance (:class:`explain.dataset.spray.SprayResult`): a row per class, the most clearly
    separate strategies (largest eigengap) first, each cluster's mean heatmap with its size and accuracy.

    Args:
        result: a ``SprayResult``.
        max_classes: most rows (the title says when classes were left out).
        max_clusters: most clusters per row (the largest).
        ax: axes for the first class's first cluster alone; None makes a new figure.

    Returns:
        The ``Figure``.

    Raises:
        ValueError: an audit without classes.
    """
    if not result.classes:
        raise ValueError("spray_overview needs an audit with at least one class.")
    ranked = result.most_distinct() + [c for c in result.classes if c.eigengap is None]
    shown = ranked[: max(1, max_classes)]
    if ax is not None:
        c = shown[0]
        _heat_panel(ax, c.clusters[0].mean_heatmap if c.clusters else c.mean_heatmap, c.name, "jet")
        return ax.figure
    cols = max(1, min(max_clusters, max(len(c.clusters) for c in shown)))
    fig = Figure(figsize=(max(1.6 * cols + 1.2, 6.5), 1.7 * len(shown) + 0.8), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(shown), cols, squeeze=False))
    for row, c in zip(axes, shown, strict=True):
        for j, panel in enumerate(row):
            if j >= len(c.clusters):
                panel.set_axis_off()
                continue
            k = c.clusters[j]
            acc = "" if k.accuracy is None else f", {k.accuracy:.0%} right"
            head = _short(c.name, 14) if j == 0 else ""
            _heat_panel(panel, k.mean_heatmap, f"{head}\n#{k.index}: n={k.size}{acc}", "jet")
    more = f" (the first {len(shown)} of {len(result.classes)} classes)" if len(shown) < len(result.classes) else ""
    title = f"SpRAy: each class's strategies,\nthe mean {result.method or 'heatmap'} of each cluster{more}"
    return _with_title(fig, title, 11)


def spray_map(audit, ax: Axes | None = None, *, title: str | None = None) -> Figure:
    """One class's heatmaps in 2-D (:class:`explain.dataset.spray.ClassAudit` ``coords``), coloured by cluster.

    Raises:
        ValueError: the audit has no 2-D map (``coords`` None).
    """
    if audit.coords is None:
        raise ValueError(f"The audit of {audit.name!r} has no 2-D map: run spray with a projection.")
    fig, ax = _figure_and_ax(ax, (6.5, 5.5))
    colors = class_colors(max(len(audit.clusters), 1))
    xy = np.asarray(audit.coords, np.float64)
    size = float(np.clip(20000 / max(len(xy), 1), 4, 30))
    for k in audit.clusters:
        at = audit.labels == k.index
        label = f"cluster {k.index} ({k.size})"
        ax.scatter(*xy[at].T, s=size, color=colors[k.index], linewidths=0, alpha=0.8, label=label)
    ax.legend(fontsize=8, loc="best", frameon=False)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(title or f"{audit.name}: its heatmaps in 2-D, coloured by cluster", fontsize=10)
    return fig


def method_ranking(
    labels: list[str], headers: list[str], values: np.ndarray, ranks: np.ndarray, *, title: str = ""
) -> Figure:
    """Attribution methods ranked: a table with a row per method (best first) and a column per metric, each
    cell coloured by the method's rank on that metric (green = 1st, red = last, grey = not scored) and
    showing the metric's value.

    Args:
        labels: one row label per method, best first (e.g. ``"1. hirescam"``).
        headers: one column header per metric (e.g. ``"deletion\\n(lower is better)"``).
        values: float ``(rows, metrics)``, the metric values; NaN where not scored.
        ranks: float ``(rows, metrics)``, each value's rank among the rows (1 = best); NaN where not scored.
        title: the figure's title.

    Returns:
        The ``Figure``.

    Raises:
        ValueError: no rows, or shapes that do not match.
    """
    values, ranks = np.asarray(values, np.float64), np.asarray(ranks, np.float64)
    if not labels or values.shape != (len(labels), len(headers)) or ranks.shape != values.shape:
        raise ValueError(
            f"method_ranking needs values and ranks of shape (rows, metrics) = ({len(labels)}, {len(headers)}), "
            f"got {values.shape} and {ranks.shape}."
        )
    n, m = values.shape
    fig = Figure(figsize=(1.35 * m + 2.6, 0.36 * n + 1.5), layout="constrained")
    ax = fig.subplots()
    shade = np.where(np.isfinite(ranks), (ranks - 1) / max(n - 1, 1), np.nan)
    cmap = _colormap("RdYlGn_r").copy()
    cmap.set_bad("#dddddd")
    ax.imshow(np.ma.masked_invalid(shade), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
    for i in range(n):
        for j in range(m):
            text = "–" if not np.isfinite(values[i, j]) else f"{values[i, j]:.3f}"
            dark = np.isfinite(shade[i, j]) and not 0.2 <= shade[i, j] <= 0.8  # deep green or deep red
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if dark else "black")
    ax.set_xticks(range(m), headers, fontsize=7)
    ax.xaxis.tick_top()
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.tick_params(length=0)
    ax.set_title(title, fontsize=10)
    return fig


def method_gallery(
    images: np.ndarray, maps: dict[str, np.ndarray], captions: list[str], *, cmap: str = "jet"
) -> Figure:
    """The same images under every method: a row per image (the image, then one overlay per method), a
    column per method in the order given (best first).

    Args:
        images: uint8 ``(n, H, W, C)``.
        maps: ``{method: float (n, H, W) in [0, 1]}``.
        captions: one caption per image, drawn over its first column.
        cmap: the heatmaps' colormap.

    Returns:
        The ``Figure``.

    Raises:
        ValueError: no images, or maps or captions that do not match them.
    """
    images = np.asarray(images)
    n = len(images)
    if n == 0 or len(captions) != n or any(np.shape(v)[:1] != (n,) for v in maps.values()):
        raise ValueError(f"method_gallery needs one caption and one map per method for each of the {n} images.")
    cols = 1 + len(maps)
    fig = Figure(figsize=(1.2 * cols + 0.3, 1.3 * n + 0.6), layout="constrained")
    axes = np.atleast_2d(fig.subplots(n, cols, squeeze=False))
    for i, row in enumerate(axes):
        _image_panel(row[0], images[i], _short(captions[i], 20), fontsize=7)
        for ax, (name, heat) in zip(row[1:], maps.items(), strict=True):
            heatmap_overlay(images[i], heat[i], title=_short(name, 16) if i == 0 else "", cmap=cmap, ax=ax)
            ax.title.set_fontsize(7)
    return fig


def tcav_bars(result, ax: Axes | None = None) -> Figure:
    """TCAV scores as bars: one group per layer, one bar per concept, its height the mean TCAV score over
    the runs with the standard deviation as an error bar; ``*`` marks a significant concept (Bonferroni),
    and a dashed line each layer's random-vs-random mean. One panel per class.

    Args:
        result: a :class:`~explain.concepts.tcav.TCAVResult` (``.classes``, each with ``.class_name`` and
            ``.layers``, each with ``.layer``, ``.random_scores`` and ``.concepts`` holding ``.name``,
            ``.score_mean``, ``.score_std``, ``.significant``, ``.direction``).
        ax: draw into this Axes (one class only); default a new figure.

    Returns:
        The ``Figure``.
    """
    classes = list(result.classes)
    if ax is not None and len(classes) != 1:
        raise ValueError("tcav_bars draws several classes as several panels: pass ax=None.")
    names = [c.name for c in classes[0].layers[0].concepts]
    colors = [class_hex_colors(max(len(names), 2))[i] for i in range(len(names))]
    n_layers = len(classes[0].layers)
    width = 0.8 / len(names)
    if ax is None:
        fig = Figure(figsize=(max(4.5, 1.0 + 1.3 * n_layers * max(1, len(names) / 2)), 3.2 * len(classes)),
                     layout="constrained")
        axes = fig.subplots(len(classes), 1, squeeze=False)[:, 0]
    else:
        fig, axes = ax.figure, [ax]
    for axis, cls in zip(axes, classes, strict=True):
        for li, layer in enumerate(cls.layers):
            for ci, c in enumerate(layer.concepts):
                x = li - 0.4 + width * (ci + 0.5)
                axis.bar(x, c.score_mean, width * 0.9, yerr=c.score_std, capsize=3, color=colors[ci],
                         label=c.name if li == 0 else None, alpha=1.0 if c.significant else 0.45)
                axis.text(x, min(1.0, c.score_mean + c.score_std) + 0.03, "*" if c.significant else "n.s.",
                          ha="center", fontsize=9 if c.significant else 6)
            null = float(np.mean(layer.random_scores))
            axis.hlines(null, li - 0.45, li + 0.45, colors="#555555", linestyles="dashed", linewidth=1)
        axis.set_xticks(range(n_layers), [_short(layer.layer, 24) for layer in cls.layers], fontsize=8)
        axis.set_ylim(0, 1.32)  # room for the marks and the legend above the bars
        axis.set_yticks(np.linspace(0, 1, 6))
        axis.set_ylabel("TCAV score")
        axis.set_title(f"class {cls.class_name!r}   (* significant; dashed: random concepts)", fontsize=9)
        axis.legend(fontsize=7, loc="upper right", ncols=min(len(names), 4))
    return fig


def craft_gallery(result, ax: Axes | None = None, *, crops: int = 6) -> Figure:
    """CRAFT's concepts, one row each, most important first: its rank, id and importance, the crops that
    express it most, then the whole image of its top crop with the concept's attribution map over it.

    Args:
        result: a :class:`~explain.concepts.craft.CraftResult` (``.concepts`` with ``.id``,
            ``.importance``, ``.crops`` uint8 ``(n, H, W, C)``, ``.example`` and ``.example_map`` (or None);
            ``.class_name``, ``.layer``, ``.importance_method``).
        ax: not supported (a grid of panels); must be None.
        crops: crops drawn per concept (at most those the result holds).

    Returns:
        The ``Figure``.

    Raises:
        ValueError: ``ax`` given, or a result without concepts.
    """
    if ax is not None:
        raise ValueError("craft_gallery draws a grid of panels: pass ax=None.")
    concepts = list(result.concepts)
    if not concepts:
        raise ValueError("craft_gallery needs at least one concept.")
    cols = min(crops, max(len(c.crops) for c in concepts))
    maps = any(getattr(c, "example", None) is not None for c in concepts)
    fig = Figure(figsize=(1.15 * (cols + maps) + 1.6, 1.15 * len(concepts) + 0.6), layout="constrained")
    axes = fig.subplots(len(concepts), cols + 1 + maps, squeeze=False)
    unit = "total Sobol index" if result.importance_method == "sobol" else "gradient x concept"
    for r, (row, c) in enumerate(zip(axes, concepts, strict=True)):
        row[0].axis("off")
        row[0].text(0.5, 0.5, f"#{r + 1}: concept {c.id}\n{c.importance:.3g}", ha="center", va="center",
                    fontsize=8)
        for j, axis in enumerate(row[1 : cols + 1]):
            axis.axis("off")
            if j < len(c.crops):
                crop = c.crops[j]
                axis.imshow(crop[..., 0] if crop.shape[-1] == 1 else crop, cmap="gray", vmin=0, vmax=255)
        if maps and getattr(c, "example", None) is not None:
            heatmap_overlay(c.example, c.example_map, title="in its image" if r == 0 else "", ax=row[-1])
            row[-1].title.set_fontsize(7)
        elif maps:
            row[-1].axis("off")
    fig.suptitle(f"CRAFT concepts of {result.class_name!r} at {result.layer} ({unit}, most important first; "
                 "last column: the concept's map over its top crop's image)", fontsize=9)
    return fig
