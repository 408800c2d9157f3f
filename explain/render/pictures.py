"""Pictures composed in NumPy and encoded once by Pillow: what the dashboard shows on screen, and
the pixels of their downloads.

A matplotlib figure with one subplot per feature map takes 0.3-0.8 s to draw and save; the same
grid composed here as one array (tiles, a colormap look-up table, labels drawn by Pillow) takes a
few milliseconds. Each picture has one layout, made here: :mod:`explain.render.figures` turns a
picture into a download by showing these very pixels in a titled figure
(:func:`explain.render.figures.picture_figure`), so the screen and the download cannot differ.

With :mod:`explain.render.figures`, the only module that imports matplotlib (for its colormaps only).
"""

from __future__ import annotations

import functools
import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: Normalisations for feature-map grids.
NORMALIZATIONS = ("per_map", "layer")
#: The widest picture made for the screen, in pixels (about the dashboard's main column).
MAX_WIDTH = 1100
_WHITE = (255, 255, 255)


# --------------------------------------------------------------------------- shared decisions
def scale_maps(maps: np.ndarray, normalize: str) -> tuple[np.ndarray, np.ndarray]:
    """Scale feature maps to [0, 1] for display.

    Args:
        maps: float ``(H, W, K)``: K feature maps of one image; NaN and inf count as 0.
        normalize: ``"per_map"`` scales each map to its own min-max (shows every map's pattern);
            ``"layer"`` scales all maps together (shows which maps are strong).

    Returns:
        ``(scaled, flat)``: float32 ``(H, W, K)`` in [0, 1], and a bool ``(K,)`` mask of the
        constant ("flat") maps, which are drawn as 0.

    Raises:
        ValueError: ``normalize`` not in :data:`NORMALIZATIONS`.
    """
    maps = np.nan_to_num(np.asarray(maps, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
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


def grid_shape(n: int, cols: int | None = None) -> tuple[int, int]:
    """``(rows, cols)`` for ``n`` tiles: ``cols`` per row, by default ``ceil(sqrt(n))``.

    Raises:
        ValueError: ``n < 1`` or ``cols < 1``.
    """
    if n < 1:
        raise ValueError(f"A grid needs at least one tile, got {n}.")
    if cols is not None and cols < 1:
        raise ValueError(f"cols must be at least 1, got {cols}.")
    cols = min(cols or math.ceil(math.sqrt(n)), n)
    return math.ceil(n / cols), cols


def tile_gap(h: int, w: int) -> int:
    """The gap between tiles of ``h x w`` maps, in map pixels (about 7% of a tile, at least 1)."""
    return max(1, round(max(h, w) / 14))


def select_channels(total: int, channels: list[int] | None, max_maps: int) -> list[int]:
    """The channels a grid shows, in order: ``channels`` (default all) cut to ``max_maps``.

    Raises:
        ValueError: ``max_maps < 1``, or a channel outside ``[0, total)``.
    """
    if max_maps < 1:
        raise ValueError(f"max_maps must be at least 1, got {max_maps}.")
    chosen = list(range(total)) if channels is None else [int(c) for c in channels]
    bad = [c for c in chosen if not 0 <= c < total]
    if bad:
        raise ValueError(f"Channel {bad[0]} is out of range: the layer has {total} channels (0 to {total - 1}).")
    return chosen[:max_maps]


@functools.lru_cache(maxsize=32)
def colormap_lut(name: str) -> np.ndarray:
    """A matplotlib colormap as a look-up table.

    Args:
        name: a matplotlib colormap name, e.g. ``"viridis"``, ``"jet"``.

    Returns:
        uint8 ``(256, 3)``: row ``i`` is the colour of the value ``i / 255``. Read-only.

    Raises:
        ValueError: an unknown colormap name.
    """
    from matplotlib import colormaps

    try:
        cmap = colormaps[name]
    except KeyError:
        raise ValueError(f"Unknown colormap {name!r}; use a matplotlib name such as 'viridis' or 'jet'.") from None
    lut = np.round(cmap(np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)
    lut.flags.writeable = False
    return lut


def apply_colormap(values: np.ndarray, cmap: str) -> np.ndarray:
    """Colour values in [0, 1] (clipped; NaN as 0) with a colormap: uint8 ``values.shape + (3,)``.

    Raises:
        ValueError: an unknown colormap name.
    """
    v = np.nan_to_num(np.asarray(values, dtype=np.float32), nan=0.0)
    return colormap_lut(cmap)[np.clip(np.rint(v * 255.0), 0, 255).astype(np.uint8)]


def encode_png(picture: np.ndarray) -> bytes:
    """PNG bytes of a uint8 ``(H, W, 3)``, ``(H, W, 4)`` or ``(H, W)`` array (zlib level 1: fast,
    lossless; these pictures are mostly flat areas and compress well anyway)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(picture)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


@functools.lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _draw_labels(picture: np.ndarray, labels: list[tuple[int, int, str]], size: int) -> np.ndarray:
    """``picture`` (uint8 RGB) with each ``(x, y, text)`` label drawn on it: white text on a box
    that darkens what is under it to 40% (drawn in NumPy; Pillow only draws the text)."""
    font = _font(size)
    out = picture.copy()
    for x, y, text in labels:
        _, _, right, bottom = font.getbbox(text)
        box = out[y : y + bottom + 3, x : x + right + 4]
        box[:] = (box * 0.4).astype(np.uint8)
    image = Image.fromarray(out)
    draw = ImageDraw.Draw(image)
    for x, y, text in labels:
        draw.text((x + 2, y + 1), text, fill=_WHITE, font=font)
    return np.asarray(image)


# --------------------------------------------------------------------------- pictures
def _upscale(n_cols: int, w: int, gap: int) -> int:
    """The integer zoom that makes a row of ``n_cols`` tiles about :data:`MAX_WIDTH` wide (tiles <= 160 px)."""
    fit = MAX_WIDTH // max(1, n_cols * (w + gap))
    return int(max(1, min(fit, 160 // max(1, w))))


#: A mosaic's palette: 240 colormap levels, white (gaps), then 15 greys from the label boxes'
#: dark grey to white (their text, antialiased).
_LEVELS, _WHITE_INDEX, _BOX_INDEX = 240, 240, 241


@dataclass(frozen=True)
class IndexedPicture:
    """A picture as palette indices: ``indices`` uint8 ``(H, W)``, ``palette`` uint8 ``(256, 3)``.

    A mosaic has at most 256 colours, so it is composed and encoded as an indexed PNG: a third of
    the bytes of RGB and 5-6 times faster to encode (15 ms against 95 ms for a 960x960 mosaic)."""

    indices: np.ndarray
    palette: np.ndarray

    def rgb(self) -> np.ndarray:
        """uint8 ``(H, W, 3)``."""
        return self.palette[self.indices]

    def png(self) -> bytes:
        """PNG bytes (palette mode, zlib level 1)."""
        image = Image.fromarray(self.indices, "P")
        image.putpalette(self.palette.reshape(-1).tolist())
        buf = io.BytesIO()
        image.save(buf, format="PNG", compress_level=1)
        return buf.getvalue()


def _mosaic_palette(cmap: str) -> np.ndarray:
    lut = colormap_lut(cmap)[np.rint(np.linspace(0, 255, _LEVELS)).astype(int)]
    greys = np.rint(np.linspace(40, 255, 256 - _BOX_INDEX))[:, None].repeat(3, axis=1)
    return np.concatenate([lut, [[255, 255, 255]], greys]).astype(np.uint8)


def _label_indexed(indices: np.ndarray, labels: list[tuple[int, int, str]], size: int) -> None:
    """Draw each ``(x, y, text)`` label into ``indices``: white text on a dark grey box."""
    font = _font(size)
    mask = Image.new("L", (indices.shape[1], indices.shape[0]), 0)
    draw = ImageDraw.Draw(mask)
    boxes = []
    for x, y, text in labels:
        _, _, right, bottom = font.getbbox(text)
        boxes.append((slice(y, y + bottom + 3), slice(x, x + right + 4)))
        draw.text((x + 2, y + 1), text, fill=255, font=font)
    ink = np.asarray(mask)
    for box in boxes:
        indices[box] = _BOX_INDEX + np.rint(ink[box] * ((255 - _BOX_INDEX) / 255.0)).astype(np.uint8)


def mosaic_picture(
    activations: np.ndarray,
    *,
    channels: list[int] | None = None,
    max_maps: int = 64,
    cols: int | None = None,
    normalize: str = "per_map",
    cmap: str = "viridis",
) -> IndexedPicture:
    """:func:`feature_map_mosaic` as an :class:`IndexedPicture` (what the dashboard encodes);
    arguments and errors as :func:`feature_map_mosaic`."""
    acts = np.asarray(activations)
    if acts.ndim != 3:
        raise ValueError(f"feature_map_mosaic needs one image's (H, W, C) activations, got shape {acts.shape}.")
    palette = _mosaic_palette(cmap)
    shown = select_channels(acts.shape[-1], channels, max_maps)
    rows, cols = grid_shape(len(shown), cols)
    h, w = acts.shape[:2]
    scaled, flat = scale_maps(acts[..., shown], normalize)
    gap = tile_gap(h, w)
    zoom = _upscale(cols, w, gap)
    shrink = math.ceil(cols * (w + gap) * zoom / MAX_WIDTH)  # many large maps: every shrink-th pixel
    tiles = np.rint(np.moveaxis(scaled, -1, 0)[:, ::shrink, ::shrink] * (_LEVELS - 1)).astype(np.uint8)
    if zoom > 1:
        tiles = tiles.repeat(zoom, axis=1).repeat(zoom, axis=2)
    th, tw = tiles.shape[1:]
    zg = max(1, gap * zoom // shrink)
    out = np.full((rows * (th + zg) - zg, cols * (tw + zg) - zg), _WHITE_INDEX, np.uint8)
    labels = []
    for k, ch in enumerate(shown):
        r, c = divmod(k, cols)
        y, x = r * (th + zg), c * (tw + zg)
        out[y : y + th, x : x + tw] = tiles[k]
        labels.append((x, y, f"{ch}" + (" flat" if flat[k] else "")))
    if tw >= 24:
        _label_indexed(out, labels, int(np.clip(tw // 7, 9, 14)))
    return IndexedPicture(out, palette)


def feature_map_mosaic(
    activations: np.ndarray,
    *,
    channels: list[int] | None = None,
    max_maps: int = 64,
    cols: int | None = None,
    normalize: str = "per_map",
    cmap: str = "viridis",
) -> np.ndarray:
    """One image's feature maps as one labelled mosaic, ready for the screen.

    Tile label = channel index ("flat" for a constant map); maps enlarged by an integer factor
    (nearest neighbour) so a row is about :data:`MAX_WIDTH` pixels wide, with white gaps. The
    colormap has 240 levels. Also the picture of :func:`explain.render.figures.feature_map_grid`.

    Args:
        activations: float ``(H, W, C)``: one image's activations of one layer.
        channels: which channels, in order; default all. Cut to ``max_maps``.
        max_maps: most tiles (>= 1).
        cols: tiles per row; default ``ceil(sqrt(n))``.
        normalize: ``"per_map"`` or ``"layer"``, as :func:`scale_maps`.
        cmap: a matplotlib colormap name.

    Returns:
        uint8 ``(rows * (H * z + g) - g, cols * (W * z + g) - g, 3)``, z the zoom and g the gap;
        when even zoom 1 is wider than :data:`MAX_WIDTH` (many large maps), every k-th pixel of
        each map is kept instead (z = 1/k). Tiles under 24 pixels get no labels.

    Raises:
        ValueError: activations not 3-D, ``max_maps < 1``, ``cols < 1``, a channel out of range,
            a bad ``normalize`` or an unknown colormap.
    """
    return mosaic_picture(
        activations, channels=channels, max_maps=max_maps, cols=cols, normalize=normalize, cmap=cmap
    ).rgb()


def _zoom_to(h: int, w: int, min_size: int) -> int:
    return max(1, min_size // max(h, w))


def as_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 ``(H, W, 3)`` from a uint8 (or 0-255 float) ``(H, W, 1 | 3 | 4)`` or ``(H, W)`` image.

    Raises:
        ValueError: not a 2-D or 3-D image with 1, 3 or 4 channels.
    """
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[-1] not in (1, 3, 4):
        raise ValueError(f"An image is (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got shape {img.shape}.")
    img = np.clip(img, 0, 255).astype(np.uint8) if img.dtype != np.uint8 else img
    return np.repeat(img, 3, axis=-1) if img.shape[-1] == 1 else img[..., :3]


def enlarge(image: np.ndarray, min_size: int = 224, rgb: bool = True) -> np.ndarray:
    """An image enlarged by the largest integer factor (nearest neighbour) that keeps its longer
    side within ``min_size`` pixels (none for a larger image): a 28x28 digit becomes 224x224 with
    sharp pixels. RGB uint8, or
    with ``rgb=False`` a grayscale image stays ``(H, W)`` (a third of the PNG bytes)."""
    img = as_rgb(image) if rgb or np.shape(image)[-1] != 1 else np.asarray(image)[..., 0]
    z = _zoom_to(*img.shape[:2], min_size)
    return img.repeat(z, axis=0).repeat(z, axis=1) if z > 1 else img


def heatmap_colors(heatmap: np.ndarray, cmap: str = "jet", min_size: int = 224) -> np.ndarray:
    """A heatmap coloured by ``cmap``, enlarged bilinearly as :func:`enlarge` enlarges its image.

    Args:
        heatmap: float ``(H, W)`` in [0, 1].
        cmap: a matplotlib colormap name.
        min_size: as :func:`enlarge`.

    Returns:
        uint8 ``(H * z, W * z, 3)``.

    Raises:
        ValueError: an unknown colormap.
    """
    h = np.nan_to_num(np.asarray(heatmap, dtype=np.float32), nan=0.0)
    z = _zoom_to(*h.shape, min_size)
    if z > 1:
        size = (h.shape[1] * z, h.shape[0] * z)
        h = np.asarray(Image.fromarray(h, "F").resize(size, Image.Resampling.BILINEAR), dtype=np.float32)
    return apply_colormap(h, cmap)


def overlay(
    image: np.ndarray,
    heatmap: np.ndarray,
    *,
    cmap: str = "jet",
    alpha: float = 0.5,
    flat: bool = False,
    min_size: int = 224,
) -> np.ndarray:
    """A heatmap blended over its image in NumPy: ``(1 - alpha) * image + alpha * colour``.

    The image is enlarged nearest-neighbour, the heatmap bilinearly. Also the picture of
    :func:`explain.render.figures.heatmap_overlay`. A flat or non-finite heatmap gives the image alone with the note
    "flat heatmap".

    Args:
        image: uint8 ``(H, W, C)``, C = 1 or 3, raw pixels.
        heatmap: float ``(H, W)`` in [0, 1].
        cmap: a matplotlib colormap name.
        alpha: heatmap opacity in [0, 1].
        flat: the map carries no information.
        min_size: the picture's longer side is at least this many pixels (integer zoom).

    Returns:
        uint8 ``(H * z, W * z, 3)``.

    Raises:
        ValueError: shapes that do not match, alpha outside [0, 1], an unknown colormap.
    """
    h = np.asarray(heatmap, dtype=np.float32)
    if h.shape != tuple(np.asarray(image).shape[:2]):
        raise ValueError(f"heatmap shape {h.shape} does not match the image's {np.asarray(image).shape[:2]}.")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}.")
    base = enlarge(image, min_size)
    if flat or not np.isfinite(h).all():
        return _draw_labels(base, [(4, 4, "flat heatmap (no information)")], 12)
    colours = heatmap_colors(h, cmap, min_size).astype(np.float32)
    return np.rint((1.0 - alpha) * base + alpha * colours).astype(np.uint8)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: float) -> list[str]:
    """``text``'s lines (``"\\n"``), each cut at spaces into lines at most ``width`` pixels wide
    where it can be (a single word wider than that stays whole)."""
    out = []
    for line in text.split("\n"):
        words, current = line.split(" "), ""
        for word in words:
            candidate = f"{current} {word}" if current else word
            if current and draw.textlength(candidate, font=font) > width:
                out.append(current)
                candidate = word
            current = candidate
        out.append(current)
    return out


def side_by_side(pictures: list[np.ndarray], captions: list[str], *, gap: int = 12) -> np.ndarray:
    """Pictures in one row on white, each with its caption (one or more lines) underneath.

    Args:
        pictures: uint8 ``(H_i, W_i, 3)``; shorter ones are centred vertically.
        captions: one per picture; ``"\\n"`` starts a new line, and a line wider than its
            picture is wrapped at spaces.
        gap: pixels between pictures.

    Returns:
        uint8 ``(max H + caption height, sum W + gaps, 3)``.

    Raises:
        ValueError: no pictures, or a caption count that differs.
    """
    if not pictures or len(pictures) != len(captions):
        raise ValueError(f"side_by_side needs one caption per picture, got {len(pictures)} and {len(captions)}.")
    font = _font(13)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    wrapped = [_wrap(measure, c, font, p.shape[1]) for p, c in zip(pictures, captions, strict=True)]
    text_h = max(len(lines) for lines in wrapped) * 17 + 6
    height = max(p.shape[0] for p in pictures)
    width = sum(p.shape[1] for p in pictures) + gap * (len(pictures) - 1)
    canvas = Image.new("RGB", (width, height + text_h), _WHITE)
    draw = ImageDraw.Draw(canvas)
    x = 0
    for pic, lines in zip(pictures, wrapped, strict=True):
        canvas.paste(Image.fromarray(as_rgb(pic)), (x, (height - pic.shape[0]) // 2))
        for i, line in enumerate(lines):
            tw = draw.textlength(line, font=font)
            draw.text((x + max(0, (pic.shape[1] - tw) / 2), height + 4 + 17 * i), line, fill=(30, 30, 30), font=font)
        x += pic.shape[1] + gap
    return np.asarray(canvas)


def captioned_grid(pictures: list[np.ndarray], captions: list[str], *, cols: int = 4, gap: int = 12) -> np.ndarray:
    """Pictures in rows of ``cols`` (:func:`side_by_side` rows, left-aligned, stacked on white).

    Args:
        pictures: uint8 ``(H_i, W_i, 3)``.
        captions: one per picture.
        cols: pictures per row (at least 1).
        gap: pixels between pictures and between rows.

    Returns:
        uint8 ``(H', W', 3)``.

    Raises:
        ValueError: no pictures, or a caption count that differs.
    """
    if not pictures or len(pictures) != len(captions):
        raise ValueError(f"captioned_grid needs one caption per picture, got {len(pictures)} and {len(captions)}.")
    cols = max(1, int(cols))
    rows = [
        side_by_side(pictures[i : i + cols], captions[i : i + cols], gap=gap) for i in range(0, len(pictures), cols)
    ]
    width = max(r.shape[1] for r in rows)
    canvas = np.full((sum(r.shape[0] for r in rows) + gap * (len(rows) - 1), width, 3), 255, np.uint8)
    y = 0
    for r in rows:
        canvas[y : y + r.shape[0], : r.shape[1]] = r
        y += r.shape[0] + gap
    return canvas


def attribution_picture(
    image: np.ndarray, maps: list[tuple[str, np.ndarray, bool]], *, cmap: str = "jet", alpha: float = 0.5
) -> np.ndarray:
    """The image, then one heatmap overlay per method, side by side and captioned: the picture of
    :func:`explain.render.figures.attribution_panel`.

    Args:
        image: uint8 ``(H, W, C)``, C = 1 or 3.
        maps: ``(caption, heatmap float (H, W) in [0, 1], flat)`` per method; ``"\\n"`` in a
            caption starts a line.
        cmap, alpha: as :func:`overlay`.

    Returns:
        uint8 ``(H', W', 3)``: :func:`side_by_side` of :func:`enlarge` (captioned "image") and
        each :func:`overlay`.

    Raises:
        ValueError: as :func:`overlay`.
    """
    pictures = [enlarge(image)] + [overlay(image, heat, cmap=cmap, alpha=alpha, flat=flat) for _, heat, flat in maps]
    return side_by_side(pictures, ["image", *(caption for caption, _, _ in maps)])


def top_k_chart(
    probabilities: np.ndarray, class_names: list[str] | tuple[str, ...], k: int = 5, *, width: int = 560
) -> np.ndarray:
    """Horizontal bars of the ``k`` most probable classes, names on the left, percentages on the
    bars; also the picture of :func:`explain.render.figures.top_k_bars`.

    Args:
        probabilities: float ``(num_classes,)`` in [0, 1].
        class_names: one name per class.
        k: how many classes (clipped to the number of classes).
        width: picture width in pixels.

    Returns:
        uint8 ``(34 * k + 16, width, 3)``.

    Raises:
        ValueError: fewer class names than probabilities.
    """
    p = np.nan_to_num(np.asarray(probabilities, dtype=np.float64).reshape(-1))
    if len(class_names) < p.size:
        raise ValueError(f"{len(class_names)} class names for {p.size} classes.")
    top = np.argsort(-p, kind="stable")[: min(k, p.size)]
    font = _font(15)
    names = [str(class_names[i]) for i in top]
    canvas = Image.new("RGB", (width, 34 * len(top) + 16), _WHITE)
    draw = ImageDraw.Draw(canvas)
    name_w = int(min(width * 0.45, max(draw.textlength(n, font=font) for n in names) + 14))
    bar_w = width - name_w - 8
    for row, (i, name) in enumerate(zip(top, names, strict=True)):
        y = 8 + 34 * row
        text = name if draw.textlength(name, font=font) <= name_w - 10 else name[: max(1, (name_w - 10) // 9)] + "…"
        draw.text((name_w - 8 - draw.textlength(text, font=font), y + 7), text, fill=(30, 30, 30), font=font)
        draw.rectangle((name_w, y, width - 8, y + 26), fill=(240, 242, 246))
        pct = f"{p[i]:.1%}"
        inside = p[i] > 0.8
        end = name_w + round(bar_w * float(np.clip(p[i], 0, 1)))
        draw.rectangle((name_w, y, end, y + 26), fill=(59, 117, 175))
        tx = end - 8 - draw.textlength(pct, font=font) if inside else end + 6
        draw.text((tx, y + 6), pct, fill=(255, 255, 255) if inside else (30, 30, 30), font=font)
    return np.asarray(canvas)


def lime_picture(image: np.ndarray, segments: np.ndarray, weights: np.ndarray, *, num_features: int = 5) -> np.ndarray:
    """LIME's superpixels on the image: boundaries in yellow, the ``num_features`` strongest
    superpixels tinted green (for the class) or red (against it). Small images are enlarged
    (nearest neighbour) to at least 224 pixels so the boundaries stay thin.

    Used by :func:`explain.render.figures.lime_boundaries` (which adds a title) and the dashboard.

    Args:
        image: uint8 ``(H, W, C)``, C = 1 or 3.
        segments: int ``(H, W)`` superpixel labels ``0..n-1`` (a ``LimeAttribution``'s ``segments[i]``).
        weights: float ``(n,)`` signed LIME weights (``weights[i]``).
        num_features: how many superpixels (largest absolute weight) to tint.

    Returns:
        uint8 ``(H * z, W * z, 3)``.

    Raises:
        ValueError: segments not matching the image, or fewer weights than superpixels.
    """
    from skimage.segmentation import find_boundaries

    seg = np.asarray(segments)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if seg.shape != np.asarray(image).shape[:2]:
        raise ValueError(f"segments shape {seg.shape} does not match the image's {np.asarray(image).shape[:2]}.")
    if seg.max(initial=0) >= w.size:
        raise ValueError(f"{seg.max() + 1} superpixels but {w.size} weights.")
    rgb = enlarge(image)
    z = rgb.shape[0] // seg.shape[0]
    if z > 1:
        seg = seg.repeat(z, axis=0).repeat(z, axis=1)
    out = rgb.astype(np.float64) / 255.0
    for k in np.argsort(-np.abs(w), kind="stable")[:num_features]:
        if w[k] == 0:
            continue
        tint = np.array([0.1, 0.8, 0.2]) if w[k] > 0 else np.array([0.9, 0.15, 0.1])
        mask = seg == k
        out[mask] = 0.55 * out[mask] + 0.45 * tint
    out[find_boundaries(seg, mode="inner")] = (1.0, 0.9, 0.0)
    return np.rint(out * 255).astype(np.uint8)


def activation_chart(
    values: np.ndarray, *, labels: list[str] | None = None, max_units: int = 64, width: int = 900
) -> np.ndarray:
    """Bars of a non-spatial layer's activations for one image (blue positive, red negative), unit
    names underneath, the value scale (largest, 0, smallest) on the left: also the picture of
    :func:`explain.render.figures.activation_bars`. The units shown are the ``max_units``
    strongest by absolute value, in unit order.

    Args:
        values: float ``(D,)``; NaN and inf count as 0.
        labels: one name per unit (e.g. class names for the output layer); default indices.
        max_units: how many units at most.
        width: picture width in pixels.

    Returns:
        uint8 ``(210 + label height, width, 3)``; the label height is at most 110 pixels.
    """
    v = np.nan_to_num(np.asarray(values, dtype=np.float32).reshape(-1), nan=0.0, posinf=0.0, neginf=0.0)
    order = np.sort(np.argsort(-np.abs(v), kind="stable")[:max_units])
    names = [labels[i] if labels is not None else str(i) for i in order]
    font = _font(11)
    text_h = int(min(110, max(font.getbbox(n)[2] for n in names) + 8))
    plot_h, top = 200, 10
    canvas = Image.new("RGB", (width, top + plot_h + text_h), _WHITE)
    draw = ImageDraw.Draw(canvas)
    lo, hi = min(0.0, float(v[order].min())), max(0.0, float(v[order].max()))
    span = hi - lo if hi > lo else 1.0
    zero = top + round(plot_h * hi / span)
    scale = {top: hi, top + plot_h: lo, zero: 0.0}  # by height: 0 wins where it is the top or the bottom
    ticks = [(y, f"{value:.3g}") for y, value in scale.items()]
    left = 10 + max(round(draw.textlength(text, font=font)) for _, text in ticks) + 6
    for y, text in ticks:
        draw.text((left - 6 - draw.textlength(text, font=font), y - 6), text, fill=(80, 80, 80), font=font)
        draw.line((left - 4, y, left - 1, y), fill=(80, 80, 80))
    draw.line((left - 1, top, left - 1, top + plot_h), fill=(160, 160, 160))
    step = (width - 10 - left) / len(order)
    for k, (i, name) in enumerate(zip(order, names, strict=True)):
        x0 = left + k * step
        y = top + round(plot_h * (hi - float(v[i])) / span)
        draw.rectangle(
            (x0 + step * 0.1, min(y, zero), x0 + step * 0.9, max(y, zero)),
            fill=(59, 117, 175) if v[i] >= 0 else (192, 80, 77),
        )
        label = Image.new("L", (text_h, 14), 255)
        ImageDraw.Draw(label).text((text_h - 4 - font.getbbox(name)[2], 0), name, fill=30, font=font)
        canvas.paste(label.rotate(90, expand=True), (round(x0 + step / 2 - 7), top + plot_h + 2))
    draw.line((left, zero, width - 10, zero), fill=(0, 0, 0), width=1)
    return np.asarray(canvas)
