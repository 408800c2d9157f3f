"""``python -m explain.concepts``: the concepts command (``explain/cli/concepts.py``). The library package
``explain.concepts`` takes the command's name, so the command runs from here."""

if __name__ == "__main__":
    import sys

    from explain.cli.concepts import main

    sys.exit(main())
