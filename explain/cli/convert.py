"""CLI: convert a model once into a Keras 3 ``.keras`` file with its model card.

    python -m explain.convert OLD NEW.keras [--preprocess P] [--classes FILE | a,b,c]

OLD is anything :func:`explain.models.load_model` opens: a Keras 2 ``.h5``, a SavedModel
folder (or a ``.zip`` of one), or a ``.keras`` file. NEW.keras loads in Keras safe mode
everywhere, and NEW.json beside it records the class names and the preprocessing mode, so
later commands need neither ``--preprocess`` nor ``--classes``. The written file is read
back and its predictions compared with the original's before the command reports success.
Both files are written atomically; user errors print one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from explain.cli import add_model_arguments, fail, loading_options, model_parser, open_model

PROG = "python -m explain.convert"

#: Largest max abs difference between the predictions of the original and the written model.
TOLERANCE = 1e-5

#: Keys of the original model card carried over to the new one.
_KEPT = ("architecture", "dataset", "data_source", "split", "test_metrics", "validation_metrics", "history")


def _parser() -> argparse.ArgumentParser:
    p = model_parser(
        PROG,
        "Convert a Keras 2 .h5 / SavedModel (or any model explain opens) to a Keras 3 .keras file "
        "with its model card (class names, preprocessing mode).",
        "old_model.h5 model.keras --preprocess unit --classes classes.txt",
    )
    p.add_argument("out", type=Path, help="the .keras file to write; its model card goes beside it as .json")
    add_model_arguments(p)
    return p


def model_card_document(card, model, source: str) -> dict:
    """The JSON model card of a converted model.

    Args:
        card: the :class:`~explain.models.ModelCard` (with the user's overrides).
        model: the converted ``keras.Model``.
        source: the original file, as the user named it.

    Returns:
        A JSON-serialisable dict: name, class names (when known), input shape, colour mode,
        preprocessing mode, where it was converted from, and the original card's data set,
        metrics and history when it had them.
    """
    import keras
    import tensorflow as tf

    doc = {"name": model.name}
    if card.class_names_from != "indices":
        doc["class_names"] = list(card.class_names)
    doc.update(
        {
            "input_shape": list(card.input_shape),
            "color_mode": card.color_mode,
            "preprocessing": card.preprocessing,
            "converted_from": source,
        }
    )
    doc.update({k: card.raw[k] for k in _KEPT if k in card.raw})
    doc["versions"] = {"keras": keras.__version__, "tensorflow": tf.__version__}
    doc["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return doc


def _write(model, doc: dict, out: Path, options: dict) -> float:
    """Write ``out`` and its card atomically; return the max abs prediction difference of the
    written file against ``model`` on random raw-pixel images."""
    import numpy as np

    from explain.io import atomic_path
    from explain.models.loading import load_model

    with atomic_path(out) as tmp:
        model.save(tmp)
        reread = load_model(tmp, **options)
        shape = [d or 32 for d in model.inputs[0].shape[1:]]
        x = np.random.default_rng(0).uniform(0, 255, (4, *shape)).astype("float32")
        diff = float(np.max(np.abs(np.asarray(model(x, training=False)) - np.asarray(reread(x, training=False)))))
        if not diff <= TOLERANCE:
            raise ValueError(f"the written file predicts differently from the original (max abs difference {diff:g}).")
        with atomic_path(out.with_suffix(".json")) as card_tmp:
            card_tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return diff


def main(argv: list[str] | None = None) -> int:
    """Run the CLI. Returns the exit code: 0 on success, 2 on a user error."""
    args = _parser().parse_args(argv)
    if args.out.suffix != ".keras":
        return fail(PROG, f"the output must end in .keras, got {args.out}.")
    if args.out.resolve() == Path(args.model).resolve():
        return fail(PROG, f"the output {args.out} is the input model; choose another file name.")

    from explain.errors import ExplainError

    try:
        model, card = open_model(args, PROG)
        doc = model_card_document(card, model, str(args.model))
        diff = _write(model, doc, args.out, loading_options(args))
    except (ExplainError, ValueError) as e:
        return fail(PROG, str(e))
    except OSError as e:
        return fail(PROG, f"Cannot write {e.filename or args.out}: {e.strerror or e}.")
    names = f"{len(card.class_names)} class names" if "class_names" in doc else "no class names (use --classes)"
    print(
        f"Wrote {args.out} and {args.out.with_suffix('.json')}: {len(model.layers)} layers, "
        f"preprocessing {card.preprocessing!r}, {names}. The written file predicts as the original "
        f"(max abs difference {diff:.1e})."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
