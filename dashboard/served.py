"""Where the Report tab may read data on a served dashboard (``docs/deploy.md``).

- With ``--data-root DIR``, folders only under ``DIR``: typed (relative to ``DIR``, or absolute
  inside it) or picked from the folders listed under it; :func:`explain.data.resolve_data_folder`
  refuses the rest (``..`` leaving it, absolute paths elsewhere, symbolic links leading out).
- Without it, folders only while the server listens on this machine alone (``server.address``
  ``localhost``, ``127.0.0.1`` or ``::1``); otherwise the folder choice says how to turn them on.
- Always: built-in splits, and a ``.zip`` of class folders uploaded by the visitor, unpacked once per
  upload (keyed by its digest) into a temporary folder of the session, which is removed when another
  zip replaces it or when the session ends.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from dashboard.cache import startup_args
from dashboard.state import MAP_PICK
from dashboard.widgets import digest
from explain import ExplainError
from explain.data import data_folders, resolve_data_folder, unpack_class_folders
from explain.errors import DataError

#: ``server.address`` values that reach this machine only; unset means every interface (served).
LOCAL_ADDRESSES = frozenset({"localhost", "127.0.0.1", "::1"})
#: Why the folder choice is off, and how to turn it on (one line).
FOLDERS_OFF = (
    "Folders on the server are off: it listens beyond this machine and was started without a data root. "
    "Turn them on with `streamlit run app.py -- --data-root DIR` (the folders under DIR), or with "
    "`--server.address localhost` for yourself alone; built-in data and .zip uploads work either way."
)
# Session-state keys: the last folder typed and what it resolved to; this session's unpacked zip.
_TYPED, _ZIP = "_report_folder_resolved", "_report_zip"
#: Seconds a session may be gone before :func:`sweep` removes its unpacked zip (Streamlit keeps a
#: disconnected session 2 minutes for a reconnect, then drops it without telling anyone).
GONE_S = 300
#: Every session's unpacked zip on this server: temporary folder -> [session id, when last seen active].
_HELD: dict[str, list] = {}
_HELD_LOCK = threading.Lock()


@dataclass(frozen=True)
class Chosen:
    """Data the Report tab can evaluate on.

    Attributes:
        spec: what :func:`explain.data.open_data` opens (a built-in split, or a folder's path).
        label: what the page shows (the typed folder, the upload's name), never a temporary path.
        typed: the text a visitor typed under the data root, resolved again when the report starts.
        zip_digest: the upload's digest when the data is an uploaded zip.
        refused: why a typed folder is refused (one line), or None.
    """

    spec: str
    label: str
    typed: str | None = None
    zip_digest: str | None = None
    refused: str | None = None


def data_root() -> Path | None:
    """The ``--data-root`` the server was started with, if any."""
    root = startup_args().data_root
    return root.expanduser() if root else None


def local_only() -> bool:
    """Whether the server listens on this machine only (``server.address`` a loopback name)."""
    address = str(st.get_option("server.address") or "").strip().strip("[]").lower()
    return address in LOCAL_ADDRESSES


def folders_open() -> bool:
    """Whether the Report tab reads folders at all: under a data root, or on a server for this machine only."""
    return data_root() is not None or local_only()


def listed_folders() -> list[str]:
    """The folders under the data root that hold class subfolders (relative, ``"."`` the root itself).

    Raises:
        DataError: the data root is not an existing folder.
    """
    return data_folders(data_root())


def typed_folder(text: str, fresh: bool = False) -> Chosen:
    """The folder typed under the data root, or its refusal (``refused``: the one line of
    :func:`explain.data.resolve_data_folder`). The answer is kept per text for this session's reruns
    (the check walks the folder for links) unless ``fresh``."""
    root = data_root()
    memo = st.session_state.get(_TYPED)
    if fresh or not memo or memo[0] != (str(root), text):
        try:
            folder = resolve_data_folder(text, root)
            real_root = Path(root).resolve()
            label = folder.relative_to(real_root).as_posix() if folder != real_root else "the data root"
            result = Chosen(str(folder), label, typed=text)
        except DataError as e:
            result = Chosen("", text, typed=text, refused=str(e))
        memo = st.session_state[_TYPED] = ((str(root), text), result)
    return memo[1]


class SessionZip:
    """This session's unpacked zip: its temporary folder is removed when :meth:`remove` is called
    (another zip replaces it) or when the object is collected (the session's state is dropped when
    the session ends), or at the server's exit."""

    def __init__(self, key: str, name: str, tmp: str):
        self.key, self.name, self.tmp = key, name, tmp
        self.folder: Path | None = None
        self.error: str | None = None
        self._remove = weakref.finalize(self, shutil.rmtree, tmp, ignore_errors=True)

    def remove(self) -> None:
        self._remove()


def uploaded_zip(name: str, data: bytes) -> Chosen:
    """An uploaded ``.zip`` of class folders, unpacked once per upload (:func:`explain.data.unpack_class_folders`)
    into a temporary folder of this session; a new zip removes the last one (and a map point read from it).

    Raises:
        DataError: the library's refusal (size, zip bomb, members outside the folder, links, not class
            folders), one line naming the upload.
    """
    key = digest(data)
    held = st.session_state.get(_ZIP)
    if not isinstance(held, SessionZip) or held.key != key:
        if isinstance(held, SessionZip):
            _forget(held)
        held = SessionZip(key, name, tempfile.mkdtemp(prefix="explain-data-zip-"))
        st.session_state[_ZIP] = held
        _register(held.tmp)
        try:
            held.folder = unpack_class_folders(data, held.tmp, name)
        except BaseException as e:
            held.remove()  # nothing is kept of a refused zip but its message
            if not isinstance(e, DataError):
                del st.session_state[_ZIP]
                raise
            held.error = str(e).replace(held.tmp + os.sep, "")
    if held.error is not None:
        raise DataError(held.error)
    return Chosen(str(held.folder), name, zip_digest=key)


def _forget(held: SessionZip) -> None:
    """Remove an unpacked zip that another replaces, and a map point that would read from it."""
    picked = st.session_state.get(MAP_PICK)
    if held.folder is not None and isinstance(picked, dict) and picked.get("spec") == str(held.folder):
        del st.session_state[MAP_PICK]
    held.remove()


def _register(tmp: str) -> None:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is not None:
        with _HELD_LOCK:
            _HELD[tmp] = [ctx.session_id, time.monotonic()]


def sweep() -> None:
    """Remove the unpacked zips of sessions that have been gone for :data:`GONE_S` seconds.

    A session's :class:`SessionZip` removes its folder when it is collected, but Streamlit drops a
    closed session only by forgetting it, so that waits for a full garbage collection, which an idle
    server may not run for hours: this sweep (run with every Report tab) does not wait."""
    from streamlit.runtime import Runtime

    if not Runtime.exists():
        return
    runtime, now = Runtime.instance(), time.monotonic()
    with _HELD_LOCK:
        for tmp, seen in list(_HELD.items()):
            if os.path.isdir(tmp) and runtime.is_active_session(seen[0]):
                seen[1] = now
            elif not os.path.isdir(tmp) or now - seen[1] > GONE_S:  # removed already (replaced), or long gone
                shutil.rmtree(tmp, ignore_errors=True)
                del _HELD[tmp]


def current_zip() -> str | None:
    """The digest of the zip this session holds unpacked, if any."""
    held = st.session_state.get(_ZIP)
    return held.key if isinstance(held, SessionZip) and held.folder is not None else None


def shown_as(source, chosen: Chosen):
    """``source`` named as the page shows ``chosen`` (``clothes.zip``, ``birds/test``) in the report's
    titles and notes, not by its path on the server: a copy, the cached source is only ever read."""
    if chosen.label == chosen.spec:
        return source
    shown = copy.copy(source)
    shown.name = chosen.label
    shown.notes = tuple(note.replace(chosen.spec, chosen.label) for note in source.notes)
    return shown


def in_visitor_words(error: ExplainError) -> str:
    """An error as a visitor sees it: without the data root's or a temporary folder's path on the server."""
    text = str(error)
    held = st.session_state.get(_ZIP)
    if isinstance(held, SessionZip):
        text = text.replace(held.tmp + os.sep, "")
    root = data_root()
    if root is not None:
        for path in {str(Path(root).resolve()), str(root)}:
            text = text.replace(path + os.sep, "").replace(path, "the data root")
    return text
