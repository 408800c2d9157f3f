"""What a browser session keeps between script runs: the closed tabs' widgets, widgets that start
over when what they belong to changes, and one size-capped store of results.

Streamlit forgets a widget's value in a run that does not draw it, and only the open tab is drawn:
each tab module lists the widget keys it keeps in a module-level ``KEPT_WIDGETS`` tuple, and the
frame (``app.py``) hands them all to :func:`keep_widgets` at the start of every run.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable

import numpy as np
import streamlit as st


def keep_widgets(keys: Iterable[str]) -> None:
    """Keep the values of widgets ``keys`` through a run that does not draw them (a closed tab)."""
    for key in keys:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


def reset_on_change(key: str, context: Hashable, value) -> None:
    """Set widget ``key`` to ``value`` when ``context`` (the model, the image, the layer it belongs
    to) differs from the one it was last set for, or when it has no value yet. Call it before the
    widget is drawn; otherwise the user's choice stands."""
    marker = f"_{key}_for"
    if st.session_state.get(marker) != context or key not in st.session_state:
        st.session_state[marker] = context
        st.session_state[key] = value


def _nbytes(value) -> int:
    """A result's size in bytes, roughly: its arrays, bytes and strings, looked into one level deep."""
    if isinstance(value, np.ndarray | bytes | str):
        return value.nbytes if isinstance(value, np.ndarray) else len(value)
    if isinstance(value, dict):
        return sum(_nbytes(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(_nbytes(v) for v in value)
    inner = getattr(value, "__dict__", None)
    if inner is None and hasattr(value, "__dataclass_fields__"):
        inner = {f: getattr(value, f) for f in value.__dataclass_fields__}
    if isinstance(inner, dict):
        return sum(_nbytes(v) for v in inner.values() if isinstance(v, np.ndarray | bytes | str | dict | list))
    return sys.getsizeof(value)


class SessionStore:
    """A least-recently-used store of one session's results, keyed by tuples, capped by entries and
    bytes (the oldest go first). It lives in ``st.session_state``, so sessions never see each
    other's results; a background job may put its result in while the session's script runs.

    Args:
        max_entries: entries kept at most.
        max_bytes: bytes kept at most (arrays, bytes and strings counted; one entry larger than
            this is still kept, alone).
    """

    def __init__(self, max_entries: int, max_bytes: int = 256 * 1024**2):
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._items: OrderedDict[tuple, tuple[object, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple, default=None):
        """The value under ``key`` (now the most recently used), or ``default``."""
        with self._lock:
            if key not in self._items:
                return default
            self._items.move_to_end(key)
            return self._items[key][0]

    def put(self, key: tuple, value) -> None:
        """Keep ``value`` under ``key``, dropping the least recently used entries over the caps."""
        size = _nbytes(value)
        with self._lock:
            self._items.pop(key, None)
            self._items[key] = (value, size)
            while len(self._items) > 1 and (
                len(self._items) > self.max_entries or sum(s for _, s in self._items.values()) > self.max_bytes
            ):
                self._items.popitem(last=False)

    def __contains__(self, key: tuple) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


def session_store(name: str, max_entries: int, max_bytes: int = 256 * 1024**2) -> SessionStore:
    """This session's store ``name`` (``st.session_state[name]``), made on first use."""
    store = st.session_state.get(name)
    if not isinstance(store, SessionStore):
        store = st.session_state[name] = SessionStore(max_entries, max_bytes)
    return store


#: Session-state keys more than one module reads: the open tab, and a point picked on the Report
#: tab's map (it becomes the sidebar's image, chosen in the run after the pick).
TAB, MAP_PICK, IMAGE_PENDING = "tab", "map_pick", "image_pending"
