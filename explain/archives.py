"""Zip archives a stranger sent: size caps, zip-bomb ratio, members that leave the folder."""

from __future__ import annotations

import os
import zipfile

from explain._quiet import quiet_import
from explain.errors import ModelLoadError

quiet_import()

#: Largest total uncompressed size accepted inside a ``.keras`` archive, in bytes.
MAX_UNCOMPRESSED_BYTES = 4 * 1024**3
#: Largest compression ratio accepted for one archive member (zip-bomb guard).
MAX_COMPRESSION_RATIO = 200


def check_zip_sizes(path: str | os.PathLike, infos: list[zipfile.ZipInfo]) -> None:
    """Zip-bomb guards for an archive about to be read or unpacked.

    Args:
        path: the archive, as messages name it.
        infos: its members (``ZipFile.infolist()``).

    Raises:
        ModelLoadError: it would unpack to more than :data:`MAX_UNCOMPRESSED_BYTES`, or a member
            over 16 MiB is compressed more than :data:`MAX_COMPRESSION_RATIO`:1.
    """
    total = sum(i.file_size for i in infos)
    if total > MAX_UNCOMPRESSED_BYTES:
        raise ModelLoadError(
            f"{path} would unpack to {total / 1024**3:.1f} GiB, more than the "
            f"{MAX_UNCOMPRESSED_BYTES / 1024**3:.0f} GiB allowed; refusing it as a possible zip bomb."
        )
    for i in infos:
        if i.compress_size and i.file_size / i.compress_size > MAX_COMPRESSION_RATIO and i.file_size > 2**24:
            raise ModelLoadError(
                f"{path}: member {i.filename} is compressed {i.file_size / i.compress_size:.0f}:1; "
                "refusing it as a possible zip bomb."
            )

