"""CLI: which attribution method to trust on a model: every method run on a seeded sample of the data,
scored by the same faithfulness metrics, ranked.

    python -m explain.compare MODEL DATA [--images 100] [--methods a,b,...] [--out compare]
        [--layer L] [--seed 0] [--check-images 8] [--batch-size 64] [--image-size H W]

``DIR`` receives ``methods.csv`` (one row per method, best first), ``ranking.png``, ``gallery.png`` and
``compare.json`` (:mod:`explain.dataset.compare` says what each metric asks and how the ranking is made).
User errors print one line on stderr and exit with code 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from explain.cli import add_model_arguments, fail, model_parser, open_model

PROG = "python -m explain.compare"


def _parser() -> argparse.ArgumentParser:
    p = model_parser(
        PROG,
        "Run every attribution method on a seeded sample of a data set, score each map by the same faithfulness "
        "metrics (deletion/insertion, MuFidelity, ROAD, stability, the sanity check) and rank the methods: which "
        "heatmaps to believe for this model.",
        "models/fashion_mnist_cnn.keras fashion_mnist:test --images 100 --out compare/",
    )
    p.add_argument("data", help="a folder of class subfolders, or a built-in split such as fashion_mnist:test")
    p.add_argument("--images", type=int, default=100, help="images drawn from the data (default 100)")
    p.add_argument("--methods", help="comma-separated methods (default: every method that applies to the model)")
    p.add_argument("--out", type=Path, default=Path("compare"), help="folder to write (default: compare)")
    p.add_argument("--layer", help="target layer of the CAM methods: index, name or nested path")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample and of every random step (default 0)")
    p.add_argument(
        "--check-images", type=int, default=8,
        help="images the stability and sanity checks use (they explain again: default 8)",
    )  # fmt: skip
    p.add_argument("--batch-size", type=int, default=64, help="perturbed images per forward pass (default 64)")
    p.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), help="for a model taking any image size")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_model_arguments(p)
    return p


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = _parser()
    args = parser.parse_args(argv)
    for flag, value in (
        ("--images", args.images),
        ("--check-images", args.check_images),
        ("--batch-size", args.batch_size),
    ):
        if value < 1:
            parser.error(f"{flag} must be at least 1, got {value}")
    if args.image_size and min(args.image_size) < 1:
        parser.error(f"--image-size must be positive, got {args.image_size}")
    args.method_list = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
    if args.methods is not None and not args.method_list:
        parser.error("--methods is empty: give method names separated by commas, e.g. --methods gradcam,saliency")
    return args


def _run(args: argparse.Namespace):
    from explain.dataset.compare import compare_methods, write_comparison

    model, card = open_model(args, PROG)
    result = compare_methods(
        model,
        args.data,
        methods=args.method_list,
        images=args.images,
        seed=args.seed,
        layer=args.layer,
        preprocess=card.preprocessing,
        class_names=card.known_class_names,
        image_size=tuple(args.image_size) if args.image_size else None,
        batch_size=args.batch_size,
        check_images=args.check_images,
        progress=not args.no_progress,
    )
    return result, write_comparison(result, args.out)


def _print_summary(result, files) -> None:
    """The ranking as a table, what could not run, the notes and the files."""
    from explain.dataset.compare import BETTER

    print(f"{len(result.images)} images of {result.data}, each explained for its top prediction.")
    heads = [f"{m}{'↓' if BETTER[m] == 'lower' else '↑'}" for m in BETTER]
    print(f"{'rank':>4}  {'method':<22}" + "".join(f"{h:>12}" for h in heads) + f"{'sanity':>8}{'s/image':>10}")
    for s in result.scores:
        if s.error is not None:
            continue
        cells = "".join(f"{getattr(s, m):>12.3f}" for m in BETTER)
        sanity = {True: "pass", False: "FAIL", None: "-"}[s.sanity_passed]
        print(f"{s.rank:>4}  {s.method:<22}{cells}{sanity:>8}{s.seconds_per_image:>10.4f}")
    print("↓ lower is better, ↑ higher is better; a method failing the sanity check is ranked after those passing.")
    for s in result.scores:
        if s.error is not None:
            print(f"  {s.method}: not ranked: {s.error}")
    for note in result.notes:
        print(f"note: {note}")
    print(f"Trust first: {result.best().method}. Wrote {', '.join(str(f) for f in files)}.")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI. Returns the exit code: 0 on success, 2 on a user error, 130 on Ctrl-C."""
    args = _parse(argv)

    from explain.errors import ExplainError

    try:
        result, files = _run(args)
    except (ExplainError, ValueError) as e:
        return fail(PROG, str(e))
    except OSError as e:
        return fail(PROG, f"Cannot write {e.filename or args.out}: {e.strerror or e}.")
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; nothing was written.", file=sys.stderr)
        return 130
    _print_summary(result, files)
    return 0


if __name__ == "__main__":
    sys.exit(main())
