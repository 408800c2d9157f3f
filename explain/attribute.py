"""``python -m explain.attribute``: a thin entry point; the CLI lives in :mod:`explain.cli.attribute`."""

import sys

from explain.cli.attribute import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
