"""CLI: what each filter (or class) of a model responds to, as a PNG grid.

    python -m explain.filters MODEL --layer L [--channels 0-15,32] [--steps N] [--size H W]
        [--seed S] [--out grid.png] [--cols N]
    python -m explain.filters MODEL --layer L --kernels          # the layer's kernel weights
    python -m explain.filters MODEL --class-patterns [0,3,5]     # class patterns (all without a list)

Filter and class patterns come from :mod:`explain.features.patterns` (activation
maximisation: Erhan et al. 2009; Simonyan et al. 2013, https://arxiv.org/abs/1312.6034;
Olah et al. 2017, https://distill.pub/2017/feature-visualization/). ``--kernels`` draws
:func:`explain.features.kernels.conv_filters`. User errors print one line on stderr (plus the layer table
for a bad layer) and exit 2; Ctrl-C exits 130 and writes nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from explain.cli import add_model_arguments, fail, model_parser, open_model, spatial_layer

PROG = "python -m explain.filters"
_RANGE = re.compile(r"^(\d+)\s*-\s*(\d+)$")


class UsageError(ValueError):
    """A bad command-line value; its message is the one line printed."""


def _parser() -> argparse.ArgumentParser:
    p = model_parser(
        PROG,
        "Write a PNG grid of the input pattern each filter of a layer responds to most (activation "
        "maximisation), of a convolution layer's kernel weights (--kernels), or of the image each class "
        "responds to most (--class-patterns; --classes is the class NAMES, as in every explain command).",
        "models/fashion_mnist_cnn.keras --layer conv2d_1 --channels 0-15 --steps 64",
    )
    p.add_argument("--layer", help="layer index, name or nested path (outer/inner) of a convolution-like layer")
    p.add_argument(
        "--channels", metavar="SPEC", help="channels to draw: numbers and ranges, e.g. 0-15,32 (default: all)"
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--kernels", action="store_true", help="draw the layer's kernel weights instead of patterns")
    mode.add_argument(
        "--class-patterns",
        nargs="?",
        const="",
        metavar="SPEC",
        help="draw class patterns instead: class indices, ranges or names, e.g. 0,3,5 or 0-2,Bag "
        "(no list: all classes); tiles are labelled with the class names of the model card or --classes",
    )
    p.add_argument("--steps", type=int, default=128, help="optimisation steps (default 128; 32 gives a quick sketch)")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="pattern size, for a model of free input size")
    p.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same images (default 0)")
    p.add_argument(
        "--batch-size", type=int, default=64, help="channels optimised together (default 64; less memory: fewer)"
    )
    p.add_argument(
        "--out",
        type=Path,
        help="PNG to write (default: <model>_<layer>_patterns.png, _kernels.png or <model>_class_patterns.png "
        "in the current folder)",
    )
    p.add_argument("--cols", type=int, help="tiles per row (default: square grid)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_model_arguments(p)
    return p


def _one_line_errors(parser: argparse.ArgumentParser) -> None:
    """Make argparse's own errors one line on stderr (``prog: error: ... (see --help)``), exit 2."""

    def error(message: str):
        sys.exit(fail(PROG, f"{message.rstrip('.')} (see --help)."))

    parser.error = error  # type: ignore[method-assign]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """The checked arguments; a bad one exits 2 with one line on stderr."""
    parser = _parser()
    _one_line_errors(parser)
    args = parser.parse_args(argv)
    for flag, value in (("--steps", args.steps), ("--batch-size", args.batch_size), ("--cols", args.cols)):
        if value is not None and value < 1:
            parser.error(f"{flag} must be at least 1, got {value}")
    if args.size is not None and min(args.size) < 1:
        parser.error(f"--size must be two positive numbers of pixels, got {args.size[0]} {args.size[1]}")
    if args.class_patterns is not None:
        if args.layer is not None or args.channels is not None:
            parser.error("--class-patterns draws the output's classes: leave out --layer and --channels")
    elif args.layer is None:
        parser.error(
            "give --layer (a convolution layer; see python -m explain.layers MODEL --list) or --class-patterns"
        )
    try:
        args.channel_list = None if args.channels is None else parse_channels(args.channels)
    except UsageError as e:
        parser.error(f"--channels: {e}")
    return args


def parse_channels(spec: str, names: tuple[str, ...] = ()) -> list[int]:
    """Parse a channel (or class) list such as ``"0-15,32"``.

    Args:
        spec: comma-separated items, each a whole number ``N`` or an inclusive range ``A-B``
            (``A <= B``), or, when ``names`` is given, one of those names exactly
            (``"T-shirt/top"``).
        names: class names an item may be, by position.

    Returns:
        The indices in the order given, without repeats.

    Raises:
        UsageError: an empty spec or item, a descending range, or an item that is neither a
            number, a range nor a name.
    """
    out: list[int] = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            raise UsageError(f"Empty item in {spec!r}: give numbers and ranges separated by commas, e.g. 0-15,32.")
        found = _RANGE.match(item)
        if item.isdigit():
            picked = [int(item)]
        elif found:
            a, b = int(found.group(1)), int(found.group(2))
            if a > b:
                raise UsageError(f"Range {item!r} runs backwards: write it low-high, e.g. {b}-{a}.")
            picked = list(range(a, b + 1))
        elif item in names:
            picked = [names.index(item)]
        else:
            known = f" or a class name ({', '.join(names)})" if names else ""
            where = "" if item == spec.strip() else f" in {spec!r}"
            raise UsageError(f"{item!r}{where} is not a number, a range like 0-15{known}.")
        out.extend(i for i in picked if i not in out)
    return out


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "layer"


def _output_path(args: argparse.Namespace, layer_name: str | None) -> Path:
    """``--out``, or ``<model stem>_<layer>_patterns.png`` / ``_kernels.png`` / ``<model stem>_class_patterns.png``."""
    if args.out is not None:
        return args.out
    stem = Path(args.model.rstrip("/\\")).stem or "model"
    if layer_name is None:
        return Path(f"{stem}_class_patterns.png")
    return Path(f"{stem}_{_slug(layer_name)}_{'kernels' if args.kernels else 'patterns'}.png")


def _where(info) -> str:
    return f"Layer {info.index}" if info.index is not None else "Nested layer"


class _Progress:
    """A tqdm bar on stderr over the optimisation steps, fed by the library's ``progress`` callback
    (made on the first call, when the number of steps in all is known)."""

    def __init__(self, enabled: bool):
        self.enabled, self.bar = enabled, None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="Optimising", unit="step", file=sys.stderr, leave=False)
        self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _optimise(run, args: argparse.Namespace):
    """Call ``run(progress)`` under a progress bar; return ``(patterns, seconds)``."""
    bar = _Progress(not args.no_progress)
    start = time.perf_counter()
    try:
        patterns = run(bar)
    finally:
        bar.close()
    return patterns, time.perf_counter() - start


def _options(args: argparse.Namespace, card) -> dict:
    return {
        "steps": args.steps,
        "size": args.size,
        "seed": args.seed,
        "preprocess": card.preprocessing,
        "batch_size": args.batch_size,
    }


def _filter_figure(model, card, args: argparse.Namespace):
    """Filter patterns of ``--layer``: ``(figure, patterns, seconds, layer info)``."""
    from explain.features.patterns import filter_patterns
    from explain.render.figures import pattern_grid

    info = _spatial_layer(model, args.layer)
    patterns, seconds = _optimise(
        lambda bar: filter_patterns(model, info.name, args.channel_list, progress=bar, **_options(args, card)), args
    )
    _check_finite(patterns.images)
    labels = patterns.labels()
    title = (
        f"{_where(info)}: {info.name} ({info.type}), output {info.shape_text}\n"
        f"{len(labels)} filter patterns, {patterns.steps} steps, seed {patterns.seed}"
    )
    return pattern_grid(patterns.images, labels, title=title, cols=args.cols), patterns, seconds, info


def _spatial_layer(model, layer: str):
    """The layer's :class:`~explain.models.LayerInfo`; a LayerError naming --class-patterns when it has no channels."""
    return spatial_layer(
        model,
        layer,
        "no filters to visualise: choose a convolution layer from the table below, "
        "or use --class-patterns for the output's classes.",
    )


def _check_finite(images) -> None:
    import numpy as np

    if not np.isfinite(images).all():
        from explain.errors import ExplainError

        raise ExplainError(
            "The optimisation diverged (NaN or infinite pixels), so there is nothing to draw: "
            "try fewer --steps or another --seed."
        )


def _class_figure(model, card, args: argparse.Namespace):
    """Class patterns: ``(figure, patterns, seconds)``, tiles labelled with the class names."""
    from explain.features.patterns import class_patterns
    from explain.render.figures import pattern_grid

    names = tuple(card.class_names)
    classes = parse_channels(args.class_patterns, names) if args.class_patterns else None
    patterns, seconds = _optimise(
        lambda bar: class_patterns(model, classes, progress=bar, **_options(args, card)), args
    )
    _check_finite(patterns.images)
    labels = patterns.labels(names)
    title = (
        f"Class patterns of {getattr(model, 'name', 'model')}: {len(labels)} classes\n"
        f"{patterns.steps} steps, seed {patterns.seed}"
    )
    return pattern_grid(patterns.images, labels, title=title, cols=args.cols), patterns, seconds


def _kernel_figure(model, args: argparse.Namespace):
    """``--kernels``: ``(figure, filters drawn, layer info)``, drawn as in the dashboard's Filters tab."""
    from explain.errors import LayerError
    from explain.features.kernels import conv_filters
    from explain.models.layers import resolve_layer
    from explain.render.figures import feature_map_grid

    info = resolve_layer(model, args.layer)
    kernels = conv_filters(model, info.name)  # (kh, kw, filters)
    n = kernels.shape[-1]
    channels = list(range(n)) if args.channel_list is None else args.channel_list
    bad = [c for c in channels if c >= n]
    if bad:
        raise LayerError(f"Channel {bad[0]} is out of range: layer {info.name!r} has {n} filters, 0 to {n - 1}.")
    title = (
        f"{_where(info)}: {info.name} ({info.type}), kernels {kernels.shape[0]}x{kernels.shape[1]}, "
        "averaged over input channels\nblue: most negative, red: most positive weight"
    )
    fig = feature_map_grid(
        kernels, title=title, channels=channels, max_maps=len(channels), cols=args.cols, cmap="RdBu_r"
    )
    return fig, len(channels), info


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _draw(model, card, args: argparse.Namespace) -> tuple[object, str, str | None]:
    """Compute and draw what was asked: ``(figure, summary for the last line, layer name or None)``."""
    if args.class_patterns is not None:
        fig, patterns, seconds = _class_figure(model, card, args)
        return fig, f"{len(patterns.channels)} class patterns, {patterns.steps} steps, {seconds:.1f} s", None
    if args.kernels:
        fig, n, info = _kernel_figure(model, args)
        return fig, f"{n} kernels of layer {info.name!r}", info.name
    fig, patterns, seconds, info = _filter_figure(model, card, args)
    summary = f"{len(patterns.channels)} patterns of layer {info.name!r}, {patterns.steps} steps, {seconds:.1f} s"
    return fig, summary, info.name


def main(argv: list[str] | None = None) -> int:
    """Run the CLI: parse, load the model, compute the patterns (or kernels), write the grid.

    Returns the exit code: 0 on success, 2 on a user error (one line on stderr, plus the layer
    table for a bad layer), 130 on Ctrl-C (nothing written).
    """
    args = _parse(argv)

    from explain.errors import ExplainError, LayerError
    from explain.io import save_figure
    from explain.models.layers import format_layer_table, layer_table

    try:
        model, card = open_model(args, PROG)
    except ExplainError as e:
        return fail(PROG, _one_line(e))
    try:
        fig, summary, layer_name = _draw(model, card, args)
    except LayerError as e:
        code = fail(PROG, _one_line(e))
        print("\n" + format_layer_table(layer_table(model)), file=sys.stderr)
        return code
    except ValueError as e:  # ExplainError, UsageError and the library's bad-argument errors
        return fail(PROG, _one_line(e))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; nothing was written.", file=sys.stderr)
        return 130
    out = _output_path(args, layer_name)
    try:
        save_figure(fig, out)
    except OSError as e:
        return fail(PROG, f"Cannot write {out}: {e.strerror or e}.")
    print(f"Wrote {out} ({summary}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
