"""CLI: a model report, written by :func:`explain.dataset.report.write_report`.

    python -m explain.report MODEL DATA --out DIR [--images a.png b.png] [--confusions 5]
        [--examples 6] [--top-k 5] [--batch-size 256] [--layer L] [--image-size H W] [--no-progress]
        [--no-embedding] [--embedding-layer L] [--embedding-method umap|tsne|pca] [--audit] [--compare [N]]
        [--concept NAME=DIR ... --random DIR [--concept-layer L]] [--craft [N]]

See :mod:`explain.dataset.report` for the files DIR receives. User errors print one line on stderr
and exit with code 2; Ctrl-C exits 130 with DIR as it was.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from explain.cli import add_model_arguments, concept_folders, fail, model_parser, open_model

PROG = "python -m explain.report"


def _parser() -> argparse.ArgumentParser:
    p = model_parser(
        PROG,
        "Evaluate a model on a data set and write a report: per-class accuracy, confusion matrix, "
        "metrics, the most frequent confusions with Grad-CAM, and one self-contained HTML page.",
        "models/fashion_mnist_cnn.keras fashion_mnist:test --out report/",
    )
    p.add_argument(
        "data", help="a folder of class subfolders, or a built-in split: fashion_mnist:test, mnist:test, cifar10:test"
    )
    p.add_argument("--out", type=Path, default=Path("report"), help="folder to write (default: report)")
    p.add_argument("--images", nargs="+", metavar="IMAGE", help="images whose top-k predictions to show")
    p.add_argument("--confusions", type=int, default=5, help="most frequent confusions shown (default 5)")
    p.add_argument("--examples", type=int, default=6, help="images per confusion gallery (default 6)")
    p.add_argument("--top-k", type=int, default=5, help="classes in the top-k bars (default 5)")
    p.add_argument("--batch-size", type=int, default=256, help="images per forward pass (default 256)")
    p.add_argument("--layer", help="Grad-CAM target layer: index, name or nested path (default: last spatial)")
    p.add_argument(
        "--image-size", type=int, nargs=2, metavar=("H", "W"), help="for a model that accepts any image size"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-embedding", action="store_true", help="no feature-space map (embedding.png, look_alikes.png)")
    p.add_argument(
        "--embedding-layer",
        metavar="L",
        help="the map's feature layer: index, name or nested path (default: the classifier head's input)",
    )
    p.add_argument(
        "--embedding-method", choices=("umap", "tsne", "pca"), default="umap", help="map projection (default umap)"
    )
    p.add_argument(
        "--audit", action="store_true",
        help="add an Audit section: every image explained, each class's heatmaps clustered (SpRAy)",
    )  # fmt: skip
    p.add_argument(
        "--compare", type=int, nargs="?", const=50, default=0, metavar="N",
        help="add a 'Which method?' section: every attribution method ranked by faithfulness on N images (50)",
    )  # fmt: skip
    p.add_argument("--concept", action="append", default=[], metavar="NAME=DIR",
                   help="add a Concepts section: TCAV of this concept folder for the classes with most errors; repeat")
    p.add_argument("--random", type=Path, help="random images for TCAV (a folder of 110 or more)")
    p.add_argument("--concept-layer", action="append", default=[], metavar="L",
                   help="TCAV's layer (index, name or nested path; repeat; default the last spatial layer)")
    p.add_argument("--craft", type=int, nargs="?", const=2, default=0, metavar="N",
                   help="add CRAFT's concepts for the N classes with most errors to the Concepts section (2)")
    add_model_arguments(p)
    return p


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """The checked arguments; a bad one exits 2 through ``parser.error``."""
    parser = _parser()
    args = parser.parse_args(argv)
    for flag, value, least in (
        ("--confusions", args.confusions, 0),
        ("--examples", args.examples, 1),
        ("--top-k", args.top_k, 1),
        ("--compare", args.compare, 0),
        ("--craft", args.craft, 0),
        ("--batch-size", args.batch_size, 1),
    ):
        if value < least:
            parser.error(f"{flag} must be at least {least}, got {value}")
    if args.image_size and min(args.image_size) < 1:
        parser.error(f"--image-size must be positive, got {args.image_size}")
    args.concept_folders = concept_folders(parser, args.concept)
    if args.concept_folders and not args.random:
        parser.error("--concept needs --random DIR: random images to compare the concept with")
    return args


def _run(args: argparse.Namespace, command: str):
    """Open the model and the data, then write the report: ``(Report, ModelCard)``.

    Raises:
        ExplainError, ValueError: bad model, data, image or layer.
        OSError: a file could not be written.
    """
    from explain.dataset.evaluation import open_data
    from explain.dataset.report import write_report

    model, card = open_model(args, PROG)
    report = write_report(
        model,
        open_data(args.data),
        args.out,
        model_path=args.model,
        card=card,
        images=args.images,
        confusions=args.confusions,
        examples=args.examples,
        top_k=args.top_k,
        batch_size=args.batch_size,
        layer=args.layer,
        image_size=tuple(args.image_size) if args.image_size else None,
        progress=not args.no_progress,
        embedding=not args.no_embedding,
        embedding_layer=args.embedding_layer,
        embedding_method=args.embedding_method,
        audit=args.audit,
        compare=args.compare,
        concepts=args.concept_folders or None,
        random_images=args.random,
        concept_layers=[int(v) if v.lstrip("-").isdigit() else v for v in args.concept_layer] or None,
        craft=args.craft,
        command=command,
    )
    return report, card


def _print_summary(report, card) -> None:
    """The accuracy, the notes not printed yet, the most frequent confusions and where the page is."""
    from explain.dataset.report import HTML_FILE

    r = report.evaluation
    print(f"Accuracy {r.accuracy:.1%} on {r.num_images:,} images of {r.data}.")
    for note in report.notes:
        if note not in card.notes:  # those were printed when the model was opened
            print(f"Note: {note}")
    if report.confusions:
        print("Most frequent confusions:")
        for c in report.confusions:
            print(f"  {c}")
    print(f"Wrote {len(report.files)} files to {report.out_dir}; open {report.out_dir / HTML_FILE}.")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI. Returns the exit code: 0 on success, 2 on a user error, 130 on Ctrl-C."""
    args = _parse(argv)

    from explain.errors import ExplainError

    command = " ".join([PROG, *(sys.argv[1:] if argv is None else argv)])
    try:
        report, card = _run(args, command)
    except (ExplainError, ValueError) as e:
        return fail(PROG, str(e))
    except OSError as e:
        return fail(PROG, f"Cannot write {e.filename or args.out}: {e.strerror or e}.")
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted before the report was complete.", file=sys.stderr)
        return 130
    _print_summary(report, card)
    return 0


if __name__ == "__main__":
    sys.exit(main())
