"""``python -m explain.layers``: a thin entry point; the CLI lives in :mod:`explain.cli.layers`."""

import sys

from explain.cli.layers import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
