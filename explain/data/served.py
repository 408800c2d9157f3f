"""A served dashboard's data: folders only under its data root (:func:`resolve_data_folder`, which
refuses ``..``, other absolute paths and symbolic links leading out; :func:`data_folders` lists the
choices), and uploaded zips of class folders (:func:`unpack_class_folders`, through
:mod:`explain.archives`, capped by :data:`MAX_DATA_ZIP_BYTES` and :data:`MAX_DATA_UNPACKED_BYTES`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from explain.archives import unpack_zip
from explain.data.sources import SPLIT_FOLDER_NAMES, has_subfolder, list_class_folders
from explain.errors import DataError
from explain.images import is_image_file

# -- a served dashboard: the data root and uploaded zips of class folders -------------------
#: Largest zip of class folders accepted from an upload, in bytes (as uploaded).
MAX_DATA_ZIP_BYTES = 200 * 1024**2
#: Largest total size a zip of class folders may unpack to, in bytes.
MAX_DATA_UNPACKED_BYTES = 2 * 1024**3
#: How to zip class folders, for every refused data zip.
ZIP_HOWTO = (
    "Zip the folder that holds one subfolder per class: zip -r birds.zip birds (birds/cats/*.jpg, birds/dogs/...)."
)


def _data_root(root: str | os.PathLike) -> Path:
    """The data root, resolved; it must be an existing folder."""
    path = Path(root)
    if not path.is_dir():
        raise DataError(
            f"The data root {path} is not an existing folder. Start the dashboard with --data-root DIR, "
            "DIR a folder that holds the data folders to serve."
        )
    return path.resolve()


def _inside(path: str | os.PathLike, folder: Path) -> bool:
    return Path(path).is_relative_to(folder)


def _link_leaving(folder: Path, root: Path) -> str | None:
    """The first symbolic link under ``folder`` (hidden entries left out) that leads outside ``root``,
    as a path below ``folder``; links that stay inside are followed, once each, so a link behind a
    link is seen too (reading the folder would follow them)."""
    stack, seen = [(folder, "")], {folder}
    while stack:
        where, shown = stack.pop()
        try:
            entries = sorted(os.scandir(where), key=lambda e: e.name)
        except OSError:
            continue
        for e in entries:
            if e.name.startswith("."):
                continue
            if e.is_symlink():
                real = Path(os.path.realpath(e.path))
                if not _inside(real, root):
                    return shown + e.name
                if real.is_dir() and real not in seen:
                    seen.add(real)
                    stack.append((real, f"{shown}{e.name}/"))
            elif e.is_dir(follow_symlinks=False):
                stack.append((Path(e.path), f"{shown}{e.name}/"))
    return None


def resolve_data_folder(text: str, root: str | os.PathLike) -> Path:
    """The folder a visitor typed, confined to the data root a served dashboard was started with.

    Accepted: a path relative to ``root`` (``birds/test``, ``.`` for the root itself), or an
    absolute path inside it; ``..`` is fine while it stays inside. Symbolic links are followed
    only while they stay inside the root: on the way to the folder and anywhere below it (a class
    folder, an image file), since reading the folder would follow them.

    Args:
        text: what the visitor typed.
        root: the data root (``--data-root DIR``).

    Returns:
        The folder, resolved (absolute, symbolic links followed).

    Raises:
        DataError: ``root`` is not an existing folder; nothing typed; ``..`` leaves the root; an
            absolute path elsewhere; a symbolic link on the way or below the folder leads outside
            the root; no such folder; a file, not a folder.
    """
    real_root = _data_root(root)
    text = text.strip()
    if not text or "\0" in text:
        raise DataError("No folder given: type a folder under the data root, e.g. birds/test, or pick one listed.")
    typed = Path(text)
    if typed.is_absolute():
        lexical = Path(os.path.normpath(typed))
        if not (_inside(lexical, Path(os.path.normpath(Path(root).absolute()))) or _inside(lexical, real_root)):
            raise DataError(
                f"{text} is outside the data root: only folders under it are served. "
                "Type a path relative to the data root, e.g. birds/test."
            )
    else:
        lexical = Path(os.path.normpath(real_root / typed))
        if not _inside(lexical, real_root):
            raise DataError(
                f"{text} leaves the data root through '..': only folders under it are served. "
                "Type a path relative to the data root, e.g. birds/test."
            )
    try:
        folder = lexical.resolve()
    except (OSError, RuntimeError):
        raise DataError(f"{text} goes through a loop of symbolic links; type another folder.") from None
    if not _inside(folder, real_root):
        raise DataError(
            f"{text} leads outside the data root through a symbolic link; only folders under the data root "
            "are served. Type a folder that is really inside it."
        )
    if not folder.exists():
        raise DataError(f"No such folder under the data root: {text}. Pick one from the list of data folders.")
    if not folder.is_dir():
        raise DataError(f"{text} is a file, not a folder: type the folder that holds one subfolder per class.")
    leaving = _link_leaving(folder, real_root)
    if leaving is not None:
        raise DataError(
            f"{text}: {leaving} is a symbolic link to a place outside the data root; "
            "refusing the folder. Serve only folders whose links stay inside the data root."
        )
    return folder


def _holds_images(folder: str) -> bool:
    try:
        with os.scandir(folder) as it:
            return any(is_image_file(e.name) for e in it)
    except OSError:
        return False


def _subfolders(folder: Path, root: Path) -> list[Path]:
    """Non-hidden subfolders of ``folder``, sorted; a symbolic link only when it stays inside ``root``."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return []
    return [
        Path(e.path)
        for e in entries
        if not e.name.startswith(".") and e.is_dir() and (not e.is_symlink() or _inside(os.path.realpath(e.path), root))
    ]


def data_folders(root: str | os.PathLike, max_depth: int = 2, limit: int = 200) -> list[str]:
    """The folders under the data root that hold class subfolders, for a select box.

    A folder qualifies when one of its subfolders holds image files directly (``birds/test`` with
    ``cats/*.jpg``). Hidden folders are left out; symbolic links are never followed out of the root.

    Args:
        root: the data root.
        max_depth: how deep to look: 0 the root only, 1 its subfolders, 2 theirs (the default).
        limit: the most folders returned.

    Returns:
        Paths relative to ``root`` (``"."`` for the root itself, ``/`` as separator), sorted.

    Raises:
        DataError: ``root`` is not an existing folder.
    """
    real_root = _data_root(root)
    found, level = [], [real_root]
    for _ in range(max_depth + 1):
        below = []
        for folder in level:
            subs = _subfolders(folder, real_root)
            if any(_holds_images(str(s)) for s in subs):
                found.append(folder.relative_to(real_root).as_posix() if folder != real_root else ".")
            below += subs
        level = below
    return sorted(found)[:limit]


def _zip_top(dest: Path) -> Path:
    """The folder of an unpacked zip that holds the class folders: its top, or one wrapping folder."""
    entries = [e for e in dest.iterdir() if not e.name.startswith(".")]
    folders = [e for e in entries if e.is_dir()]
    images = [e for e in entries if e.is_file() and is_image_file(e.name)]
    if len(folders) == 1 and not images and has_subfolder(str(folders[0])):
        return folders[0]
    return dest


def _check_class_folders(top: Path, name: str) -> None:
    """Refuse split folders instead of class folders, and fewer than 2 class folders with images."""
    names = sorted(p.name for p in top.iterdir() if p.is_dir() and not p.name.startswith("."))
    splits = [n for n in names if n.lower() in SPLIT_FOLDER_NAMES and has_subfolder(str(top / n))]
    if names and splits == names:
        raise DataError(f"{name} holds split folders ({', '.join(names)}), not class folders: zip one. {ZIP_HOWTO}")
    with_images = []
    if names:
        listing = list_class_folders(top)
        with_images = [n for n, c in zip(listing.class_folders, listing.counts, strict=True) if c]
    if len(with_images) < 2:
        held = f"1 class folder with images ({with_images[0]!r})" if with_images else "no class folder with images"
        raise DataError(f"{name} holds {held}; at least 2 are needed. {ZIP_HOWTO}")


def unpack_class_folders(data: bytes | os.PathLike, dest: str | os.PathLike, name: str) -> Path:
    """Unpack an uploaded ``.zip`` of class folders into ``dest``, safely (:mod:`explain.archives`).

    The class folders may lie at the zip's top (``cd birds; zip -r ../birds.zip .``) or in one
    wrapping folder (``zip -r birds.zip birds``). The macOS ``__MACOSX/`` folder is removed.

    Args:
        data: the zip file's bytes (an upload) or its path.
        dest: a new or empty folder to unpack into, e.g. a per-session temporary folder; the caller
            removes it when done (also after an error).
        name: the upload's file name, as messages name it.

    Returns:
        The folder that holds the class folders (``dest`` or the wrapping folder inside it), for
        :class:`FolderSource`.

    Raises:
        DataError: no such file; more than :data:`MAX_DATA_ZIP_BYTES`; a damaged zip or not a zip; it would
            unpack to more than :data:`MAX_DATA_UNPACKED_BYTES` or looks like a zip bomb; members
            outside the folder, links or encrypted; split folders instead of class folders; fewer
            than 2 class folders with images.
    """
    if not isinstance(data, bytes | bytearray) and not Path(data).is_file():
        raise DataError(f"No such zip file: {name}. Upload a .zip of class folders.")
    size = len(data) if isinstance(data, bytes | bytearray) else Path(data).stat().st_size
    if size > MAX_DATA_ZIP_BYTES:
        raise DataError(
            f"{name} is {size / 1024**2:.0f} MB; zips of class folders up to {MAX_DATA_ZIP_BYTES // 1024**2} MB "
            "are accepted. Zip fewer images per class, or ask for the folder to be served under the data root."
        )
    dest = Path(dest)
    unpack_zip(data, dest, name, DataError, hint=ZIP_HOWTO, max_bytes=MAX_DATA_UNPACKED_BYTES)
    shutil.rmtree(dest / "__MACOSX", ignore_errors=True)
    top = _zip_top(dest)
    _check_class_folders(top, name)
    return top
