"""Atomic file writing: a crash or a full disk never leaves a half-written file."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a figure is only written here; matplotlib is imported by explain.render
    from matplotlib.figure import Figure


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it over ``path`` atomically.

    On any exception the temporary file is removed and ``path`` is left as it was.
    The parent directory is created if missing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; give the file the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``.

    For writers that take a path, e.g. ``atomic_write(out, model.save)`` or
    ``atomic_write(out, lambda p: p.write_text(text))``. Built on :func:`atomic_path`: on
    any exception (KeyboardInterrupt included) the temporary file is removed, ``path``
    keeps its previous content and the exception propagates.

    Returns:
        ``path`` as a ``Path``.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        write(tmp)
    return path


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Write a figure as PNG atomically. Returns the path written."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path


def slug(text: str) -> str:
    """``text`` as part of a file name: runs of anything but ASCII letters and digits become ``_``, lower case,
    at most 40 characters (``"T-shirt/top"`` -> ``"t_shirt_top"``); ``"class"`` when nothing is left."""
    s = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()
    return s[:40] or "class"
