"""The commands: ``python -m explain.<name>`` runs ``explain/cli/<name>.py``, and so does
``python -m explain <name>``.

The CLIs live in :mod:`explain.cli`; a meta path finder (PEP 451) resolves ``explain.layers``,
``explain.attribute``, ... to those files, so no module of the library takes a command's name.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from pathlib import Path

#: Each command with what it does, as ``python -m explain`` lists them.
COMMANDS = {
    "layers": "the layer table; feature-map grids of one image",
    "attribute": "heatmaps (Grad-CAM, saliency, LIME, ...) of one image, with faithfulness scores",
    "filters": "a conv layer's kernels, filter and class patterns",
    "report": "a model report on a data set: accuracy, confusions, heatmaps, embedding",
    "audit": "a whole data set's heatmaps clustered per class (SpRAy): the model's strategies, Clever Hans",
    "compare": "every attribution method scored on a data sample and ranked: which heatmaps to trust",
    "concepts": "concepts: does a concept folder drive a class (TCAV); a class's own concepts found (CRAFT)",
    "convert": "a Keras 2 .h5 / SavedModel file converted to .keras with its model card",
}
_HERE = Path(__file__).resolve().parent


class CommandFinder(importlib.abc.MetaPathFinder):
    """Finds ``explain.<command>`` as the file ``explain/cli/<command>.py``."""

    def find_spec(self, fullname, path=None, target=None):
        package, _, name = fullname.partition(".")
        if package != "explain" or name not in COMMANDS:
            return None
        return importlib.util.spec_from_file_location(fullname, _HERE / f"{name}.py")


def install() -> None:
    """Add :class:`CommandFinder` to ``sys.meta_path`` once (after the path finder: real modules win)."""
    if not any(isinstance(f, CommandFinder) for f in sys.meta_path):
        sys.meta_path.append(CommandFinder())


def main(argv: list[str] | None = None) -> int:
    """``python -m explain <command> [args]``: run a command, or list them.

    Returns:
        The command's exit code; 2 for an unknown command; 0 for the list.
    """
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        width = max(map(len, COMMANDS))
        lines = [f"  {name:<{width}}  {what}" for name, what in COMMANDS.items()]
        print("usage: python -m explain.<command> [args]   (or: python -m explain <command> [args])\n\ncommands:")
        print("\n".join(lines))
        if argv and argv[0] not in ("-h", "--help"):
            print(f"\nNo such command: {argv[0]!r}.", file=sys.stderr)
            return 2
        return 0
    return importlib.import_module(f"explain.cli.{argv[0]}").main(argv[1:])
