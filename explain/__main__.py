"""``python -m explain <command> [args]``: runs ``python -m explain.<command>``; without one, lists them."""

import sys

from explain.cli.commands import main

sys.exit(main())
