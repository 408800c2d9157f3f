"""``python -m explain.convert``: a thin entry point; the CLI lives in :mod:`explain.cli.convert`."""

import sys

from explain.cli.convert import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
