"""Zip archives a stranger sent: size caps, zip-bomb ratio, members that leave the folder.

One safe unpacker serves every zip the project opens: a ``.keras`` archive (checked here, read by
Keras), a zipped SavedModel folder (``explain.models.legacy``) and a zip of class folders uploaded
to the dashboard (``explain.data.unpack_class_folders``). The caller names the error class, so a
model zip fails with ``ModelLoadError`` and a data zip with ``DataError``, each with one line.

Every check runs on the zip's directory before a byte is written: the total uncompressed size, the
compression ratio (per member and overall), the number of members, member names (absolute, with
``..``, with a drive letter), symbolic links and encrypted members. Unpacking then streams each
member into a regular file, counting bytes, so a directory that lies about sizes is caught too.
"""

from __future__ import annotations

import io
import os
import re
import stat
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from explain._quiet import quiet_import
from explain.errors import ExplainError, ModelLoadError

quiet_import()

#: Largest total uncompressed size accepted inside a ``.keras`` archive or a zipped SavedModel, in bytes.
MAX_UNCOMPRESSED_BYTES = 4 * 1024**3
#: Largest compression ratio accepted for one archive member, or for the whole archive (zip-bomb guard).
MAX_COMPRESSION_RATIO = 200
#: Members (and archives) smaller than this, uncompressed, are not ratio-checked: text compresses well.
RATIO_CHECKED_FROM = 16 * 1024**2
#: Most members an archive may hold (each becomes a file: a million empty files is a bomb too).
MAX_MEMBERS = 200_000

_CHUNK = 1024**2
_DRIVE = re.compile(r"[A-Za-z]:")
_UNZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError)


def _mib(n: int) -> str:
    return f"{n / 1024**3:.1f} GiB" if n >= 1024**3 else f"{n / 1024**2:.0f} MB"


def check_zip_sizes(
    path: str | os.PathLike,
    infos: list[zipfile.ZipInfo],
    error: type[ExplainError] = ModelLoadError,
    max_bytes: int | None = None,
) -> None:
    """Zip-bomb guards for an archive about to be read or unpacked, from its directory alone.

    Args:
        path: the archive, as messages name it.
        infos: its members (``ZipFile.infolist()``).
        error: the exception class to raise (``ModelLoadError`` for models, ``DataError`` for data).
        max_bytes: the largest total uncompressed size; None: :data:`MAX_UNCOMPRESSED_BYTES`.

    Raises:
        error: more than :data:`MAX_MEMBERS` members; it would unpack to more than ``max_bytes``;
            a member, or the whole archive, over :data:`RATIO_CHECKED_FROM` is compressed more
            than :data:`MAX_COMPRESSION_RATIO`:1.
    """
    cap = MAX_UNCOMPRESSED_BYTES if max_bytes is None else max_bytes
    if len(infos) > MAX_MEMBERS:
        raise error(f"{path} holds {len(infos)} files, more than the {MAX_MEMBERS} allowed; zip fewer files.")
    total = sum(i.file_size for i in infos)
    if total > cap:
        raise error(
            f"{path} would unpack to {_mib(total)}, more than the {_mib(cap)} allowed; "
            "refusing it as a possible zip bomb."
        )
    for i in infos:
        ratio = i.file_size / i.compress_size if i.compress_size else 0
        if ratio > MAX_COMPRESSION_RATIO and i.file_size > RATIO_CHECKED_FROM:
            raise error(f"{path}: member {i.filename} is compressed {ratio:.0f}:1; refusing it as a possible zip bomb.")
    packed = sum(i.compress_size for i in infos)
    if packed and total / packed > MAX_COMPRESSION_RATIO and total > RATIO_CHECKED_FROM:
        raise error(f"{path} is compressed {total / packed:.0f}:1 overall; refusing it as a possible zip bomb.")


def member_path(info: zipfile.ZipInfo) -> PurePosixPath:
    """A member's path inside the archive, with Windows ``\\`` separators read as ``/`` and ``.`` parts dropped."""
    return PurePosixPath(*[p for p in PurePosixPath(info.filename.replace("\\", "/")).parts if p != "."])


def check_members(infos: list[zipfile.ZipInfo], path: str | os.PathLike, error=ModelLoadError, hint: str = "") -> None:
    """Refuse members that could write outside the folder they are unpacked into, links, and encrypted members.

    Args:
        infos: the archive's members.
        path: the archive, as messages name it.
        error: the exception class to raise.
        hint: a sentence appended to the message for a member outside the folder (how to zip properly).

    Raises:
        error: a member with an absolute path, a drive letter or a ``..`` part; a symbolic link;
            an encrypted member.
    """
    for info in infos:
        name = info.filename
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or _DRIVE.match(name) or ".." in parts or "\0" in name:
            raise error(
                f"{path}: member {name!r} points outside the zip file's folder; refusing the archive. {hint}".rstrip()
            )
        if stat.S_ISLNK(info.external_attr >> 16):
            raise error(f"{path}: member {name!r} is a symbolic link; refusing the archive. Zip real files.")
        if info.flag_bits & 0x1:
            raise error(f"{path}: member {name!r} is encrypted; zip the files without a password.")


@contextmanager
def open_zip(
    source: bytes | str | os.PathLike,
    path: str | os.PathLike,
    error: type[ExplainError] = ModelLoadError,
    hint: str = "",
    max_bytes: int | None = None,
) -> Iterator[tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]]:
    """Open a zip file and run every check on its directory (:func:`check_zip_sizes`, :func:`check_members`).

    Args:
        source: the archive's bytes or its path.
        path: the archive, as messages name it (an upload's file name).
        error: the exception class to raise.
        hint: appended to the message for a member outside the folder.
        max_bytes: the largest total uncompressed size; None: :data:`MAX_UNCOMPRESSED_BYTES`.

    Yields:
        ``(zip file, its members)``, checked; the zip file is closed afterwards.

    Raises:
        error: a damaged zip file (or not a zip file at all), and everything the checks refuse.
    """
    try:
        zf = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes | bytearray) else source)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise error(f"{path} is a damaged zip file ({e}). Copy or download it again.") from None
    with zf:
        infos = zf.infolist()
        check_zip_sizes(path, infos, error, max_bytes)
        check_members(infos, path, error, hint)
        yield zf, infos


def extract_members(
    zf: zipfile.ZipFile,
    infos: list[zipfile.ZipInfo],
    dest: Path,
    path: str | os.PathLike,
    error: type[ExplainError] = ModelLoadError,
    max_bytes: int | None = None,
) -> None:
    """Unpack members checked by :func:`open_zip` into ``dest`` as regular files and folders.

    Bytes are counted while they are written, so an archive whose directory understates its
    sizes stops at ``max_bytes`` all the same. Links, devices and permissions are never created.

    Args:
        zf: the open zip file.
        infos: the members to unpack (from :func:`open_zip`).
        dest: an existing folder, normally new and empty.
        path: the archive, as messages name it.
        error: the exception class to raise.
        max_bytes: the largest total uncompressed size; None: :data:`MAX_UNCOMPRESSED_BYTES`.

    Raises:
        error: a member would land outside ``dest``; the archive unpacks to more than
            ``max_bytes``; a damaged member (bad CRC, truncated data) or one that cannot be written.
    """
    cap = MAX_UNCOMPRESSED_BYTES if max_bytes is None else max_bytes
    dest = Path(dest).resolve()
    written = 0
    for info in infos:
        parts = member_path(info).parts
        target = dest.joinpath(*parts)
        if not target.resolve().is_relative_to(dest):
            raise error(f"{path}: member {info.filename!r} points outside the zip file's folder.")
        try:
            if info.is_dir() or not parts:
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                while chunk := src.read(_CHUNK):
                    written += len(chunk)
                    if written > cap:
                        raise error(
                            f"{path} unpacks to more than the {_mib(cap)} allowed; refusing it as a possible zip bomb."
                        )
                    out.write(chunk)
        except _UNZIP_ERRORS as e:
            raise error(f"{path} is a damaged zip file ({info.filename}: {e}). Copy or download it again.") from None


def unpack_zip(
    source: bytes | str | os.PathLike,
    dest: str | os.PathLike,
    path: str | os.PathLike,
    error: type[ExplainError] = ModelLoadError,
    hint: str = "",
    max_bytes: int | None = None,
) -> list[PurePosixPath]:
    """Check a zip file, then unpack it into ``dest``: :func:`open_zip` and :func:`extract_members`.

    Args:
        source: the archive's bytes or its path.
        dest: the folder to unpack into (created if missing; normally new and empty).
        path: the archive, as messages name it.
        error: the exception class to raise (``ModelLoadError``, ``DataError``).
        hint: appended to the message for a member outside the folder (how to zip properly).
        max_bytes: the largest total uncompressed size; None: :data:`MAX_UNCOMPRESSED_BYTES`.

    Returns:
        The members' paths inside ``dest`` (:func:`member_path`).

    Raises:
        error: a damaged zip file; anything :func:`check_zip_sizes`, :func:`check_members` or
            :func:`extract_members` refuses. What was unpacked before a refusal stays in ``dest``:
            the caller removes ``dest``.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with open_zip(source, path, error, hint, max_bytes) as (zf, infos):
        extract_members(zf, infos, dest, path, error, max_bytes)
        return [member_path(i) for i in infos]
