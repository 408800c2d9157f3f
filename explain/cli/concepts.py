"""CLI: concepts. Does a human concept drive a class (TCAV), and which concepts does the model find by
itself for a class (CRAFT)?

    python -m explain.concepts MODEL [DATA] --concept stripes=DIR [--concept dots=DIR] --random DIR
        --layer L [--layer L2] --class zebra [--runs 10] [--out concepts]
    python -m explain.concepts MODEL DATA --discover --class C [--concepts 10] [--layer L] [--out concepts]

TCAV writes ``DIR/tcav.json`` and the bar chart ``DIR/tcav.png``; the class's images come from DATA (a
folder of class folders or ``name:split``), or from the data the model card says the model was trained on.
CRAFT writes ``DIR/craft.json`` and the gallery ``DIR/craft.png`` (one row per concept, most important
first). User errors print one line on stderr and exit with code 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from explain.cli import add_model_arguments, concept_folders, fail, model_parser, open_model

PROG = "python -m explain.concepts"


def _parser() -> argparse.ArgumentParser:
    p = model_parser(
        PROG,
        "Concepts: test whether concepts given as folders of example images drive a class (TCAV, Kim et al. 2018), "
        "or find a class's concepts automatically and rank them (CRAFT with --discover, Fel et al. 2023).",
        "model.keras data/ --concept stripes=concepts/stripes --random concepts/random --layer 4 --class zebra",
    )
    p.add_argument("data", nargs="?", help="images of the classes: a folder of class subfolders, or a split such "
                   "as fashion_mnist:test (TCAV: default the data named by the model card)")
    p.add_argument("--concept", action="append", default=[], metavar="NAME=DIR",
                   help="TCAV: a concept and its folder of example images (10 or more); repeat for several")
    p.add_argument("--random", type=Path, help="TCAV: a folder of random images, at least (runs + 1) x 10")
    p.add_argument("--layer", action="append", default=[], help="layer (index, name or nested path); TCAV: repeat "
                   "for several; CRAFT: one spatial layer after a ReLU (default: the last spatial layer)")
    p.add_argument("--class", dest="target_classes", action="append", default=[], metavar="CLASS",
                   help="the class to explain (a name or an index); TCAV: repeat for several")
    p.add_argument("--runs", type=int, default=10, help="TCAV: random sets per concept, at least 10 (default 10)")
    p.add_argument("--max-images", type=int, help="images of the class used (default: TCAV 200, CRAFT 500)")
    p.add_argument("--discover", action="store_true", help="CRAFT: find the class's concepts automatically")
    p.add_argument("--concepts", type=int, default=10, help="CRAFT: concepts to find (default 10)")
    p.add_argument("--importance", choices=("sobol", "gradient"), default="sobol",
                   help="CRAFT: concept importance by total Sobol indices (the paper, default) or gradient x concept")
    p.add_argument("--crops-per-image", type=int, default=8, help="CRAFT: random crops per image (default 8)")
    p.add_argument("--max-crops", type=int, default=4000, help="CRAFT: at most this many crops (default 4000)")
    p.add_argument("--out", type=Path, default=Path("concepts"), help="folder to write (default: concepts)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random step (default 0)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default 64)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_model_arguments(p)
    return p


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = _parser()
    args = parser.parse_args(argv)
    args.concept_folders = concept_folders(parser, args.concept)
    if not args.target_classes:
        parser.error("--class is required: the class to explain")
    if args.discover:
        if args.concept_folders or args.random:
            parser.error("--discover finds concepts by itself: leave out --concept and --random")
        if not args.data:
            parser.error("--discover needs DATA: the images of the class to crop")
        if len(args.layer) > 1 or len(args.target_classes) > 1:
            parser.error("--discover explains one class at one layer: give --class and --layer once")
    else:
        if not args.concept_folders or not args.random or not args.layer:
            parser.error("TCAV needs --concept NAME=DIR, --random DIR and --layer L (or --discover for CRAFT)")
    for flag, value in (("--runs", args.runs), ("--concepts", args.concepts), ("--batch-size", args.batch_size),
                        ("--crops-per-image", args.crops_per_image), ("--max-crops", args.max_crops),
                        ("--max-images", args.max_images or 1)):
        if value < 1:
            parser.error(f"{flag} must be at least 1, got {value}")
    return args


class _Bar:
    """A tqdm bar on stderr fed by the library's ``progress(stage, fraction)`` callback."""

    def __init__(self, enabled: bool):
        self.enabled, self.bar = enabled, None

    def __call__(self, stage: str, fraction: float) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm.auto import tqdm

            form = "{desc}: {percentage:3.0f}%|{bar}| {elapsed}"
            self.bar = tqdm(total=100, file=sys.stderr, leave=False, bar_format=form)
        self.bar.set_description(stage)
        self.bar.update(round(100 * fraction) - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _class_data(args, card) -> str:
    if args.data:
        return args.data
    source = card.raw.get("data_source") if card.raw else None
    if not source or not (Path(source).is_dir() or ":" in str(source)):
        from explain.errors import ExplainError

        raise ExplainError(
            "TCAV scores a class on its images: give DATA (a folder of class folders, or a split such as "
            "fashion_mnist:test); the model card names no data set that is here."
        )
    print(f"{PROG}: note: images of the class from the model card's data {source!r}", file=sys.stderr)
    return str(source)


def _run_tcav(args, model, card, bar):
    from explain.concepts import tcav
    from explain.concepts.outputs import write_tcav

    result = tcav(
        model, args.concept_folders, args.random, layers=[_layer(v) for v in args.layer], classes=args.target_classes,
        data=_class_data(args, card), runs=args.runs, seed=args.seed, max_images=args.max_images or 200,
        preprocess=card.preprocessing, class_names=card.known_class_names, batch_size=args.batch_size, progress=bar,
    )
    return result, write_tcav(result, args.out)


def _run_craft(args, model, card, bar):
    from explain.concepts import craft
    from explain.concepts.outputs import write_craft

    result = craft(
        model, args.data, args.target_classes[0], _layer(args.layer[0]) if args.layer else None, concepts=args.concepts,
        crops_per_image=args.crops_per_image, max_images=args.max_images or 500, max_crops=args.max_crops,
        importance=args.importance, preprocess=card.preprocessing, class_names=card.known_class_names,
        batch_size=args.batch_size, seed=args.seed, progress=bar,
    )
    return result, write_craft(result, args.out)


def _layer(value: str) -> int | str:
    return int(value) if value.lstrip("-").isdigit() else value


def _print_tcav(result, files) -> None:
    n = len(result.concept_images)
    print(f"TCAV: {result.runs} runs against random sets of {result.random_set_size} images; * significant "
          f"(two-sided t-test, Bonferroni over {n} concept{'s' if n > 1 else ''}, alpha {result.alpha}).")
    for cls in result.classes:
        for layer in cls.layers:
            print(f"class {cls.class_name!r} ({cls.images} images) at {layer.layer}: "
                  f"random concepts score {layer.random_scores.mean():.2f}")
            for c in layer.concepts:
                mark = {"drives": "* drives the class", "opposes": "* works against the class", "none": "n.s."}
                print(f"  {c.name:<16} score {c.score_mean:.2f} ± {c.score_std:.2f}  p {c.p_value:.2g}  "
                      f"CAV accuracy {c.cav_accuracy:.2f}  {mark[c.direction]}")
    print(f"Wrote {', '.join(str(f) for f in files)}.")


def _print_craft(result, files) -> None:
    capped = f" (of {result.crops_requested}: capped by --max-crops)" if result.crops < result.crops_requested else ""
    print(f"CRAFT: {len(result.concepts)} concepts of {result.class_name!r} at {result.layer}, from {result.crops} "
          f"crops{capped} of {result.images} images; importance by {result.importance_method} over "
          f"{result.importance_images} images.")
    for rank, c in enumerate(result.concepts, 1):
        print(f"  #{rank} concept {c.id}: importance {c.importance:.3f}; top crop {c.top_crops[0][0]}")
    print("Time: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items()))
    print(f"Wrote {', '.join(str(f) for f in files)}.")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI. Returns the exit code: 0 on success, 2 on a user error, 130 on Ctrl-C."""
    args = _parse(argv)

    from explain.errors import ExplainError

    bar = _Bar(not args.no_progress)
    try:
        model, card = open_model(args, PROG)
        result, files = (_run_craft if args.discover else _run_tcav)(args, model, card, bar)
    except (ExplainError, ValueError) as e:
        return fail(PROG, str(e))
    except OSError as e:
        return fail(PROG, f"Cannot write {e.filename or args.out}: {e.strerror or e}.")
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; nothing was written.", file=sys.stderr)
        return 130
    finally:
        bar.close()
    (_print_craft if args.discover else _print_tcav)(result, files)
    return 0


if __name__ == "__main__":
    sys.exit(main())
