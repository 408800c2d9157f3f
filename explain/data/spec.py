"""``DATA`` as the CLIs, the report and the dashboard take it: a folder, or a built-in split."""

from __future__ import annotations

import os
import re
from pathlib import Path

from explain.data.builtin import BUILTIN_CLASSES, load_builtin_split
from explain.data.sources import DataSource, FolderSource
from explain.errors import DataError

_BUILTIN_SPEC = re.compile(r"(?P<name>[A-Za-z0-9_\-]+):(?P<split>[A-Za-z]+)")


def open_data(spec: str | os.PathLike) -> DataSource:
    """Open ``DATA`` as the report CLI takes it: a folder, or a built-in split such as ``fashion_mnist:test``.

    An existing path is always a folder of class subfolders; otherwise ``name:split`` names a
    built-in split (:func:`load_builtin_split`).

    Args:
        spec: a folder path or ``"<name>:<split>"``.

    Returns:
        A :class:`FolderSource` or an :class:`ArraySource`.

    Raises:
        DataError: no such folder and no such built-in split; see :class:`FolderSource` and
            :func:`load_builtin_split`.
    """
    text = os.fspath(spec)
    if Path(text).exists():
        return FolderSource(text)
    m = _BUILTIN_SPEC.fullmatch(text)
    if m:
        return load_builtin_split(m["name"], m["split"])
    builtins = ", ".join(f"{n}:test" for n in BUILTIN_CLASSES)
    if text in BUILTIN_CLASSES:
        raise DataError(f"No such folder: {text}. For the built-in test split write {text}:test.")
    raise DataError(f"No such folder: {text}. DATA is a folder of class subfolders or a built-in split ({builtins}).")
