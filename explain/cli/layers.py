"""CLI: export a layer's feature maps for one image as a PNG grid.

    python -m explain.layers MODEL IMAGE --layer 6 [--out grid.png] [--max-maps 64] [--cols N]
    python -m explain.layers MODEL --list

User errors print one line on stderr (plus the layer table for a bad layer) and exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from explain.cli import add_model_arguments, fail, model_parser, open_model, spatial_layer

PROG = "python -m explain.layers"


def _parser() -> argparse.ArgumentParser:
    p = model_parser(
        PROG,
        "Write a PNG grid of one layer's feature maps for one image.",
        "models/fashion_mnist_cnn.keras sample_images/fashion_mnist_9_ankle_boot.png --layer 1",
    )
    p.add_argument("image", nargs="?", help="an image file (PNG, JPEG, BMP, GIF, WebP, TIFF)")
    p.add_argument("--layer", help="layer index or name (nested: outer/inner); see --list")
    p.add_argument(
        "--out", type=Path, help="PNG to write (default: <image>_layer<index>_<name>.png in the current folder)"
    )
    p.add_argument("--max-maps", type=int, default=64, help="most feature maps drawn (default 64)")
    p.add_argument("--cols", type=int, help="tiles per row (default: square grid)")
    p.add_argument(
        "--normalize", choices=("per_map", "layer"), default="per_map", help="scale each map alone or the layer as one"
    )
    p.add_argument("--list", action="store_true", help="print the layer table and exit")
    add_model_arguments(p)
    return p


def _fail(message: str, table: str | None = None) -> int:
    code = fail(PROG, message)
    if table:
        print("\n" + table, file=sys.stderr)
    return code


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.max_maps < 1:
        parser.error(f"--max-maps must be at least 1, got {args.max_maps}")
    if args.cols is not None and args.cols < 1:
        parser.error(f"--cols must be at least 1, got {args.cols}")
    if not args.list and (args.image is None or args.layer is None):
        parser.error("give an IMAGE and --layer (or --list to see the layers)")
    return args


def _spatial_layer(model, layer: str):
    """The layer's :class:`~explain.models.LayerInfo`; a LayerError when it has no feature maps."""
    return spatial_layer(model, layer, "no feature maps to draw. Choose a layer with a 4-D output.")


def _feature_maps(model, card, info, image_path: str):
    """One image's activations of the layer: float32 ``(h, w, C)``."""
    from explain.features.activations import compute_activations
    from explain.images import load_image

    h, w, c = card.input_shape
    image = load_image(image_path, target_size=(h, w) if h and w else None, channels=c)
    return compute_activations(model, image, [info.name], preprocess=card.preprocessing)[info.name][0]


def _output_path(info, args) -> Path:
    """``--out``, or ``<image>_layer<index>_<name>.png`` in the current folder."""
    if args.out is not None:
        return args.out
    slug = info.name.replace("/", "_")
    return Path(f"{Path(args.image).stem}_layer{info.index if info.index is not None else 'nested'}_{slug}.png")


def _write_grid(acts, info, args, out: Path) -> None:
    from explain.io import save_figure
    from explain.render.figures import feature_map_grid

    where = f"Layer {info.index}" if info.index is not None else "Nested layer"
    fig = feature_map_grid(
        acts,
        title=f"{where}: {info.name} ({info.type}), output {info.shape_text}\nimage: {Path(args.image).name}",
        max_maps=args.max_maps,
        cols=args.cols,
        normalize=args.normalize,
    )
    save_figure(fig, out)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI: parse, load the model, compute the layer's feature maps, write the grid.

    Returns the exit code: 0 on success, 2 on a user error (one line on stderr, plus the layer
    table for a bad layer).
    """
    args = _parse(argv)

    from explain.errors import ExplainError, LayerError
    from explain.models.layers import format_layer_table, layer_table

    try:
        model, card = open_model(args, PROG)
    except ExplainError as e:
        return _fail(str(e))
    table = format_layer_table(layer_table(model))
    if args.list:
        print(table)
        return 0
    try:
        info = _spatial_layer(model, args.layer)
        acts = _feature_maps(model, card, info, args.image)
    except LayerError as e:
        return _fail(str(e), table)
    except ExplainError as e:
        return _fail(str(e))
    out = _output_path(info, args)
    try:
        _write_grid(acts, info, args, out)
    except OSError as e:
        return _fail(f"Cannot write {out}: {e.strerror or e}.")
    shown = min(args.max_maps, acts.shape[-1])
    print(f"Wrote {out} ({shown} of {acts.shape[-1]} feature maps of layer {info.name!r}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
