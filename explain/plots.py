"""Pure figure builders: ``(data, ax=None) -> matplotlib.figure.Figure``.

The only module that imports matplotlib. Figures are made with
``matplotlib.figure.Figure`` directly, never through pyplot's global state, so they are
safe in threads (Streamlit) and never pop up windows.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

#: Normalisations for feature-map grids.
NORMALIZATIONS = ("per_map", "layer")


def _figure_and_ax(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _scale(maps: np.ndarray, normalize: str) -> tuple[np.ndarray, np.ndarray]:
    """Scale ``(H, W, K)`` maps to [0, 1]; return them and a bool ``(K,)`` 'flat' mask."""
    maps = np.nan_to_num(maps.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if normalize == "per_map":
        lo = maps.min(axis=(0, 1), keepdims=True)
        hi = maps.max(axis=(0, 1), keepdims=True)
    elif normalize == "layer":
        lo = np.full((1, 1, maps.shape[-1]), maps.min(), np.float32)
        hi = np.full((1, 1, maps.shape[-1]), maps.max(), np.float32)
    else:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}.")
    span = hi - lo
    flat = (span <= 1e-12).reshape(-1) if normalize == "per_map" else np.ptp(maps, axis=(0, 1)) <= 1e-12
    scaled = np.where(span > 1e-12, (maps - lo) / np.where(span > 1e-12, span, 1.0), 0.0)
    return scaled.astype(np.float32), flat


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
    """Draw one image's feature maps as a labelled grid of tiles.

    Args:
        activations: float array ``(H, W, C)``: one image's activations of one layer.
        title: figure title, e.g. ``"Layer 1: conv2d (Conv2D), output (None, 28, 28, 32)"``.
        channels: which channels to draw, in order; default the first ``max_maps``.
        max_maps: most tiles drawn (>= 1); the title says when channels were left out.
        cols: tiles per row; default ``ceil(sqrt(n))``.
        normalize: ``"per_map"`` scales each map to its own min-max (shows the pattern of
            every map), ``"layer"`` scales all maps together (shows which maps are strong).
            A constant map is drawn dark and labelled "flat".
        cmap: a matplotlib colormap name.
        ax: axes to draw into; None makes a new figure.

    Returns:
        The ``Figure``.

    Raises:
        ValueError: activations not 3-D, ``max_maps < 1``, ``cols < 1`` or bad ``normalize``.
    """
    acts = np.asarray(activations)
    if acts.ndim != 3:
        raise ValueError(f"feature_map_grid needs one image's (H, W, C) activations, got shape {acts.shape}.")
    if max_maps < 1:
        raise ValueError(f"max_maps must be at least 1, got {max_maps}.")
    if cols is not None and cols < 1:
        raise ValueError(f"cols must be at least 1, got {cols}.")
    total = acts.shape[-1]
    chosen = list(range(total)) if channels is None else [int(c) for c in channels]
    shown = chosen[:max_maps]
    n = len(shown)
    cols = min(cols or math.ceil(math.sqrt(n)), n)
    rows = math.ceil(n / cols)
    h, w = acts.shape[:2]
    scaled, flat = _scale(acts[..., shown], normalize)

    gap = max(1, round(max(h, w) / 14))
    mosaic = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap), np.nan, np.float32)
    for k in range(n):
        r, c = divmod(k, cols)
        mosaic[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = scaled[..., k]

    tile_in = min(1.3, max(0.55, 11.0 / max(cols, rows)))
    fig, ax = _figure_and_ax(ax, (cols * tile_in + 0.4, rows * tile_in + 0.9))
    ax.set_facecolor("white")
    ax.imshow(mosaic, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    fontsize = max(5.0, min(9.0, tile_in * 7))
    for k, ch in enumerate(shown):
        r, c = divmod(k, cols)
        label = f"{ch}" + (" flat" if flat[k] else "")
        ax.text(
            c * (w + gap) + 0.5,
            r * (h + gap) + 0.5,
            label,
            color="white",
            fontsize=fontsize,
            va="top",
            ha="left",
            bbox={"facecolor": "black", "alpha": 0.55, "pad": 1.0, "linewidth": 0},
        )
    ax.set_axis_off()
    note = "each map scaled to its own min-max" if normalize == "per_map" else "one scale for the whole layer"
    note += "; tile label = channel index"
    more = f"; showing {n} of {total} channels" if n < total else f"; {total} channels"
    ax.set_title(f"{title}\n{note}{more}" if title else f"{note}{more}", fontsize=10)
    return fig


def activation_bars(
    values: np.ndarray,
    *,
    title: str = "",
    labels: list[str] | None = None,
    max_units: int = 64,
    ax: Axes | None = None,
) -> Figure:
    """Bar chart of a non-spatial layer's activations (e.g. a Dense layer) for one image.

    Args:
        values: float array ``(D,)``.
        title: figure title.
        labels: one name per unit (e.g. class names for the output layer); default indices.
        max_units: the strongest ``max_units`` units (by absolute value) are drawn.
        ax: axes to draw into; None makes a new figure.

    Returns:
        The ``Figure``.
    """
    v = np.nan_to_num(np.asarray(values, dtype=np.float32).reshape(-1))
    order = np.argsort(-np.abs(v), kind="stable")[:max_units]
    order = np.sort(order)
    names = [labels[i] if labels is not None else str(i) for i in order]
    fig, ax = _figure_and_ax(ax, (max(5.0, 0.22 * len(order) + 1.5), 3.2))
    ax.bar(range(len(order)), v[order], color=np.where(v[order] >= 0, "#3b75af", "#c0504d"))
    ax.set_xticks(range(len(order)), names, rotation=90 if len(order) > 12 or labels else 0, fontsize=7)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_ylabel("activation")
    shown = f" (strongest {len(order)} of {v.size} units)" if len(order) < v.size else ""
    ax.set_title(f"{title}{shown}", fontsize=10)
    return fig


def top_k_bars(
    probabilities: np.ndarray, class_names: list[str] | tuple[str, ...], k: int = 5, ax: Axes | None = None
) -> Figure:
    """Horizontal bars of the ``k`` most probable classes for one image.

    Args:
        probabilities: float array ``(num_classes,)`` in [0, 1].
        class_names: one name per class.
        k: how many classes (clipped to the number of classes).
        ax: axes to draw into; None makes a new figure.

    Returns:
        The ``Figure``.
    """
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    top = np.argsort(-p, kind="stable")[: min(k, p.size)]
    fig, ax = _figure_and_ax(ax, (5.0, 0.45 * len(top) + 0.8))
    ax.barh(range(len(top)), p[top], color="#3b75af")
    ax.set_yticks(range(len(top)), [class_names[i] for i in top])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability")
    for y, i in enumerate(top):
        ax.text(min(p[i] + 0.01, 0.86), y, f"{p[i]:.1%}", va="center", fontsize=9)
    return fig


def _show_image(ax: Axes, image: np.ndarray) -> None:
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] == 1:
        ax.imshow(img[..., 0], cmap="gray", vmin=0, vmax=255)
    else:
        ax.imshow(img.astype(np.uint8) if img.dtype != np.uint8 else img)


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
    """A heatmap drawn over its image.

    Args:
        image: uint8 ``(H, W, C)`` (C = 1 or 3), raw pixels.
        heatmap: float ``(H, W)`` in [0, 1] (an attribution's ``heatmap[i]``).
        title: axes title.
        cmap: matplotlib colormap for the heatmap.
        alpha: heatmap opacity in [0, 1].
        flat: the map is flat (no information): the image is drawn alone with a note.
        colorbar: add a colour bar (0 = least, 1 = most relevant).
        ax: axes to draw into; None makes a new figure.

    Returns:
        The ``Figure``.

    Raises:
        ValueError: shapes that do not match, or alpha outside [0, 1].
    """
    h = np.asarray(heatmap, dtype=np.float32)
    if h.shape != tuple(np.asarray(image).shape[:2]):
        raise ValueError(f"heatmap shape {h.shape} does not match the image's {np.asarray(image).shape[:2]}.")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}.")
    fig, ax = _figure_and_ax(ax, (4.0, 4.2))
    _show_image(ax, image)
    if flat or not np.isfinite(h).all():
        ax.text(
            0.5,
            0.5,
            "flat heatmap\n(no information)",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color="white",
            fontsize=10,
            bbox={"facecolor": "black", "alpha": 0.6, "linewidth": 0},
        )
    else:
        im = ax.imshow(h, cmap=cmap, alpha=alpha, vmin=0.0, vmax=1.0, interpolation="bilinear")
        if colorbar:
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="relevance")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def attribution_panel(
    image: np.ndarray,
    maps: list[tuple[str, np.ndarray, bool]],
    *,
    title: str = "",
    cmap: str = "jet",
    alpha: float = 0.5,
) -> Figure:
    """Side by side: the image, then one overlay per method for the same image and class.

    Args:
        image: uint8 ``(H, W, C)``.
        maps: ``(label, heatmap (H, W) in [0, 1], flat)`` per method, e.g.
            ``("Grad-CAM\\ndeletion 0.12", heat, False)``.
        title: the figure's title (e.g. the class explained).
        cmap, alpha: as :func:`heatmap_overlay`.

    Returns:
        The ``Figure``.
    """
    n = len(maps) + 1
    fig = Figure(figsize=(2.6 * n, 3.2), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    _show_image(axes[0], image)
    axes[0].set_title("image", fontsize=9)
    axes[0].set_axis_off()
    for ax, (label, heat, flat) in zip(axes[1:], maps, strict=True):
        heatmap_overlay(image, heat, title=label, cmap=cmap, alpha=alpha, flat=flat, ax=ax)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


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
    from skimage.segmentation import find_boundaries

    img = np.asarray(image)
    seg = np.asarray(segments)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if seg.shape != img.shape[:2]:
        raise ValueError(f"segments shape {seg.shape} does not match the image's {img.shape[:2]}.")
    if seg.max(initial=0) >= w.size:
        raise ValueError(f"{seg.max() + 1} superpixels but {w.size} weights.")
    rgb = np.repeat(img, 3, axis=-1) if img.shape[-1] == 1 else img[..., :3]
    scale = max(1, 224 // max(seg.shape))  # small images: enlarge so boundaries stay thin
    if scale > 1:
        rgb = rgb.repeat(scale, axis=0).repeat(scale, axis=1)
        seg = seg.repeat(scale, axis=0).repeat(scale, axis=1)
    out = rgb.astype(np.float64) / 255.0
    strongest = np.argsort(-np.abs(w), kind="stable")[:num_features]
    for k in strongest:
        if w[k] == 0:
            continue
        tint = np.array([0.1, 0.8, 0.2]) if w[k] > 0 else np.array([0.9, 0.15, 0.1])
        mask = seg == k
        out[mask] = 0.55 * out[mask] + 0.45 * tint
    out[find_boundaries(seg, mode="inner")] = (1.0, 0.9, 0.0)
    fig, ax = _figure_and_ax(ax, (4.0, 4.2))
    ax.imshow(out, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title or f"LIME superpixels: green for, red against (top {len(strongest)})", fontsize=9)
    return fig
