"""What every CLI shares: a parser whose first argument is the model, the model arguments
(``--preprocess``, ``--classes``), opening the model with its card, and the one-line user
error on stderr with exit code 2."""

from __future__ import annotations

import argparse
import sys

from explain.models.budget import MAX_DEFAULT_MB
from explain.models.preprocessing import DESCRIPTIONS, MODES

#: The help text of a CLI's MODEL argument.
MODEL_HELP = (
    "a Keras model: .keras, .h5 (Keras 2 or 3), a Keras 2 SavedModel folder or a .zip of one "
    "(its model card <name>.json is read when present)"
)


def model_parser(prog: str, description: str, example: str) -> argparse.ArgumentParser:
    """A CLI's parser with the positional ``model`` argument (:data:`MODEL_HELP`) added.

    Args:
        prog: the command as users type it, e.g. ``"python -m explain.report"``.
        description: one or two sentences on what the command does.
        example: the arguments of an example call; the epilog reads ``example: <prog> <example>``.

    Returns:
        The ``argparse.ArgumentParser``; the caller adds its own arguments, then
        :func:`add_model_arguments`.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description, epilog=f"example: {prog} {example}")
    parser.add_argument("model", help=MODEL_HELP)
    return parser


def add_preprocess_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--preprocess MODE`` (one of :data:`explain.models.preprocessing.MODES`; default None: the card's)."""
    parser.add_argument(
        "--preprocess",
        choices=MODES,
        metavar="MODE",
        help="the model's input scaling: "
        + "; ".join(f"{m} = {DESCRIPTIONS[m]}" for m in MODES)
        + " (default: the model card's, else raw)",
    )


def add_loading_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--trust-code FILE.py`` (repeatable) and ``--max-model-mb MB``: how a model file is opened."""
    parser.add_argument(
        "--trust-code",
        metavar="FILE.py",
        action="append",
        help="your own Python file that defines the model's custom layers (e.g. a Vision Transformer's Patches); "
        "it is imported and Lambda layers load too. Only for code and models you trust. Repeat for several files",
    )
    parser.add_argument(
        "--max-model-mb",
        metavar="MB",
        type=float,
        help="refuse a model whose config declares more weights than this, in MB "
        f"(default: a quarter of the free memory, at most {MAX_DEFAULT_MB})",
    )


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--preprocess``, ``--classes``, ``--trust-code`` and ``--max-model-mb`` to a CLI that opens a model."""
    add_loading_arguments(parser)
    add_preprocess_argument(parser)
    parser.add_argument(
        "--classes",
        metavar="NAMES",
        help="class names: a text file with one name per line, or a,b,c "
        "(default: the model card's; ImageNet's for a 1000-class model)",
    )


def spatial_layer(model, layer: str, nothing: str):
    """Resolve ``layer`` and check that it has feature maps (a 4-D output).

    Args:
        model: the model.
        layer: index or name (nested path) from the command line.
        nothing: the end of the error for a layer without them, e.g. ``"no feature maps to
            draw. Choose a layer with a 4-D output."``.

    Returns:
        The layer's :class:`~explain.models.LayerInfo`.

    Raises:
        LayerError: an unknown layer, or one without height and width (the message ends in ``nothing``).
    """
    from explain.errors import LayerError
    from explain.models.layers import resolve_layer

    info = resolve_layer(model, layer)
    if not info.is_spatial:
        raise LayerError(
            f"Layer {info.name!r} ({info.type}) has output shape {info.output_shape}, without height and width, "
            f"so it has {nothing}"
        )
    return info


def concept_folders(parser: argparse.ArgumentParser, values: list[str]) -> dict[str, str]:
    """``{name: folder}`` from repeated ``--concept NAME=DIR`` values; a malformed or repeated one exits 2
    through ``parser.error``."""
    concepts: dict[str, str] = {}
    for value in values:
        name, sep, folder = value.partition("=")
        if not sep or not name.strip() or not folder.strip():
            parser.error(f"--concept takes NAME=DIR, e.g. --concept stripes=concepts/stripes; got {value!r}")
        if name.strip() in concepts:
            parser.error(f"--concept {name.strip()!r} is given twice")
        concepts[name.strip()] = folder.strip()
    return concepts


def fail(prog: str, message: str) -> int:
    """Print ``prog: error: message`` on stderr; return the exit code 2."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def loading_options(args: argparse.Namespace) -> dict:
    """``load_model``'s keyword arguments from :func:`add_loading_arguments`' flags."""
    return {"trusted_code": getattr(args, "trust_code", None), "max_model_mb": getattr(args, "max_model_mb", None)}


def open_model(args: argparse.Namespace, prog: str):
    """Load ``args.model`` and its model card with ``--preprocess`` / ``--classes`` applied.

    The card's notes (what was assumed: no card, the preprocessing guessed) are printed on
    stderr as ``prog: note: ...`` lines.

    Returns:
        ``(keras.Model, ModelCard)``.

    Raises:
        ExplainError: the model cannot be opened; a bad class-name list or count.
    """
    from explain.models.card import load_model_card
    from explain.models.loading import load_model

    model = load_model(args.model, **loading_options(args))
    card = load_model_card(args.model, model, preprocess=args.preprocess, classes=args.classes)
    for note in card.notes:
        print(f"{prog}: note: {note}", file=sys.stderr)
    return model, card
