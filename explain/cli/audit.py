"""CLI: the audit of a whole data set: every image explained, the model's strategies per class found by
Spectral Relevance Analysis (SpRAy), and where the model looks.

    python -m explain.audit MODEL DATA --out DIR [--method saliency] [--layer L] [--target true|pred]
        [--clusters K] [--border 0.15 | --region x0,y0,x1,y1] [--normalize sum|max|l2|none]
        [--projection umap|tsne|pca|none] [--class C ...] [--engine local|ray] [--batch-size 64]

See :mod:`explain.dataset.audit` for the files DIR receives, and docs/scale.md for ``--engine ray``.
User errors print one line on stderr and exit with code 2; Ctrl-C exits 130 (a second run resumes).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from explain.cli import add_model_arguments, fail, model_parser, open_model

PROG = "python -m explain.audit"


def _parser() -> argparse.ArgumentParser:
    p = model_parser(
        PROG,
        "Explain every image of a data set, cluster each class's heatmaps (SpRAy, Lapuschkin et al. 2019) to "
        "find the model's strategies, and rank the classes by how much relevance lies in the border or a region: "
        "a watermark, a frame or a ruler the model learnt instead of the object (a Clever Hans).",
        "models/fashion_mnist_cnn.keras fashion_mnist:test --out audit/",
    )
    p.add_argument("data", help="a folder of class subfolders, or a built-in split such as fashion_mnist:test")
    p.add_argument("--out", type=Path, default=Path("audit"), help="folder to write (default: audit)")
    p.add_argument("--method", default="saliency", help="attribution method (default saliency; see explain.METHODS)")
    p.add_argument("--layer", help="target layer of a class activation map: index, name or nested path")
    p.add_argument(
        "--target", choices=("true", "pred"), default="true",
        help="explain each image's true class (default, as SpRAy does) or the predicted one",
    )  # fmt: skip
    p.add_argument("--clusters", type=int, help="clusters per class (default: chosen by the eigengap, 2 to 8)")
    p.add_argument("--border", type=float, default=0.15, help="border band width, a fraction of each side (0.15)")
    p.add_argument("--region", metavar="x0,y0,x1,y1", help="measure relevance in this rectangle (fractions) instead")
    p.add_argument(
        "--normalize", choices=("sum", "max", "l2", "none"), default="sum",
        help="how each heatmap is scaled before clustering (default sum: a distribution of relevance)",
    )  # fmt: skip
    p.add_argument(
        "--projection", choices=("umap", "tsne", "pca", "none"), default="umap", help="2-D map per class (umap)"
    )
    p.add_argument("--class", dest="audit_classes", action="append", metavar="C", help="audit only this class (repeat)")
    p.add_argument("--engine", choices=("local", "ray"), default="local", help="where the rows are computed")
    p.add_argument("--batch-size", type=int, default=64, help="images per batch (default 64)")
    p.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), help="for a model taking any image size")
    p.add_argument("--seed", type=int, default=0, help="seed of the clustering and the 2-D maps (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_model_arguments(p)
    return p


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.clusters is not None and args.clusters < 2:
        parser.error(f"--clusters must be at least 2 (or left out to choose by the eigengap), got {args.clusters}")
    if args.image_size and min(args.image_size) < 1:
        parser.error(f"--image-size must be positive, got {args.image_size}")
    return args


def _run(args: argparse.Namespace):
    from explain.dataset.audit import audit

    model, card = open_model(args, PROG)
    result = audit(
        model,
        args.data,
        args.out,
        method=args.method,
        layer=args.layer,
        target=args.target,
        engine=args.engine,
        model_path=args.model,
        preprocess=card.preprocessing,
        class_names=card.known_class_names,
        batch_size=args.batch_size,
        clusters=args.clusters,
        classes=args.audit_classes,
        border=args.border,
        region=args.region,
        normalize=args.normalize,
        projection=None if args.projection == "none" else args.projection,
        seed=args.seed,
        progress=not args.no_progress,
        image_size=tuple(args.image_size) if args.image_size else None,
    )
    return result


def _print_summary(result) -> None:
    """Per class its clusters; then the classes and clusters that look most at the region."""
    s = result.spray
    if result.reused:
        print(f"Reused the explanations in {result.out_dir / 'explanations.parquet'} (same model, data and method).")
    print(f"{s.method} heatmaps on a {s.grid[0]}x{s.grid[1]} grid; share of relevance measured in the {s.region}.")
    for c in s.classes:
        gap = "not clustered" if c.eigengap is None else f"eigengap {c.eigengap:.3f}"
        sizes = ", ".join(f"{k.size}" for k in c.clusters)
        print(f"  {c.name}: {len(c.ids):,} images in {len(c.clusters)} clusters ({sizes}); {gap}; share {c.share:.0%}")
    distinct = s.most_distinct(3)
    if distinct:
        print("Most distinct strategies (largest eigengap): " + ", ".join(c.name for c in distinct) + ".")
    print("Looking most at the " + s.region + ":")
    for c, k in s.clusters_at_region()[:3]:
        acc = "" if k.accuracy is None else f", {k.accuracy:.0%} classified right"
        print(f"  {c.name} cluster {k.index}: {k.size} images, {k.share:.0%} of their relevance there{acc}")
    print(f"Wrote {len(result.files)} files to {result.out_dir}.")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI. Returns the exit code: 0 on success, 2 on a user error, 130 on Ctrl-C."""
    args = _parse(argv)

    from explain.errors import ExplainError

    try:
        result = _run(args)
    except (ExplainError, ValueError) as e:
        return fail(PROG, str(e))
    except OSError as e:
        return fail(PROG, f"Cannot write {e.filename or args.out}: {e.strerror or e}.")
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; run the same command again to continue where it stopped.", file=sys.stderr)
        return 130
    _print_summary(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
