"""The dashboard's browser-side pieces (Streamlit components v2, ``controls.js`` and ``viewer.js``).

Streamlit answers every widget change with a script run on the server; on a 2-core machine that
round trip alone takes 110-200 ms from the click to new pixels (``bench/bench_browser.py`` measures
it, its "Streamlit floor" line). For the two things a user does over and over, stepping through
layers and sliding the opacity, the browser must answer by itself:

- :func:`select_control` / :func:`range_control` announce a choice in the page at once (a window
  event) and send it to the server afterwards, as a widget does;
- :func:`show_view` draws a *view* (pictures with captions, heatmaps laid over them) and keeps every
  view it was sent in a page-wide cache, so a choice whose view is cached is drawn in the same
  frame; :func:`prefetch_views` sends views before they are asked for (the neighbouring layers).

Every picture is sent once per browser session (session state remembers which), except the one on
screen, which is always sent. Pictures travel as ``data:`` URIs of PNGs made by
:mod:`explain.render.pictures`.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from explain.render.pictures import encode_png

_HERE = Path(__file__).resolve().parent
_CSS = (_HERE / "style.css").read_text()
_CONTROL = st.components.v2.component(
    "explain.control", js=(_HERE / "controls.js").read_text(), css=_CSS, isolate_styles=False
)
_VIEWER = st.components.v2.component("explain.viewer", js=(_HERE / "viewer.js").read_text(), isolate_styles=False)
#: How many view keys a session remembers having sent (the browser keeps 240).
SENT_KEPT = 200


@dataclass(frozen=True)
class Tile:
    """One picture of a view: ``src`` a ``data:`` URI, ``over`` an optional heatmap (same size)
    laid over it with the view's opacity, a caption (``\\n`` for new lines) and alt text."""

    src: str
    over: str | None = None
    caption: str = ""
    alt: str = ""
    pixelated: bool = False


def data_uri(picture: np.ndarray | bytes) -> str:
    """A ``data:image/png;base64,...`` URI of a uint8 picture (encoded by :func:`encode_png`) or PNG bytes."""
    png = picture if isinstance(picture, bytes) else encode_png(picture)
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def view_key(*parts: object) -> str:
    """A short stable key for a view: a hash of everything its pictures depend on."""
    return hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=10).hexdigest()


def _sent() -> OrderedDict:
    return st.session_state.setdefault("_views_sent", OrderedDict())


def _mark_sent(key: str) -> None:
    sent = _sent()
    sent.pop(key, None)
    sent[key] = True
    while len(sent) > SENT_KEPT:
        sent.popitem(last=False)


def _tiles(tiles: Sequence[Tile]) -> list[dict]:
    return [asdict(t) for t in tiles]


def select_control(
    label: str, options: Sequence[str], *, key: str, event: str, index: int = 0, help: str | None = None
) -> str:
    """A drop-down with previous / next buttons whose choice the page hears at once.

    Args:
        label: the label above it.
        options: the choices (distinct strings).
        key: the widget key; its state is ``st.session_state[key]["value"]``.
        event: the window event announcing a choice (``detail`` = the option) to viewers.
        index: the option chosen until the user picks one, or when the stored one is gone.
        help: a tooltip.

    Returns:
        The chosen option.
    """
    options = list(options)
    stored = (st.session_state.get(key) or {}).get("value")
    value = stored if stored in options else options[index]
    data = {"kind": "select", "label": label, "options": options, "value": value, "event": event, "help": help}
    _CONTROL(key=key, data=data, default={"value": value}, on_value_change=lambda: None)
    return value


def range_control(label: str, lo: float, hi: float, step: float, value: float, *, key: str, event: str) -> float:
    """A slider whose every move the page hears at once (``event``, ``detail`` = the number) and
    the server when it is let go. Returns its value (``value`` until the user moves it)."""
    stored = (st.session_state.get(key) or {}).get("value")
    current = float(stored) if isinstance(stored, int | float) and lo <= stored <= hi else float(value)
    data = {"kind": "range", "label": label, "min": lo, "max": hi, "step": step, "value": current, "event": event}
    _CONTROL(key=key, data=data, default={"value": current}, on_value_change=lambda: None)
    return current


def show_view(
    key: str,
    current: str,
    tiles: Callable[[], Sequence[Tile]],
    *,
    pick: tuple[str, Mapping[str, str]] | None = None,
    alpha: tuple[str, float] | None = None,
) -> None:
    """Draw the view ``current`` (its tiles made by ``tiles()``) and keep it in the page's cache.

    Args:
        key: the element key.
        current: the view key (:func:`view_key`) of what is shown now.
        tiles: makes the view's tiles; always called (the view on screen is always sent).
        pick: ``(event, {option: view key})``: on that control event, draw the option's view
            from the cache at once.
        alpha: ``(event, opacity)``: the overlays' opacity, and the control event that changes it.
    """
    data = {
        "current": current,
        "views": {current: _tiles(tiles())},
        "pick": {"event": pick[0], "keys": dict(pick[1])} if pick else None,
        "alpha": {"event": alpha[0], "value": alpha[1]} if alpha else None,
    }
    _VIEWER(key=key, data=data)
    _mark_sent(current)


def prefetch_views(
    key: str,
    views: Iterable[tuple[str, Callable[[], Sequence[Tile]]]],
    *,
    first: int = 2,
    budget_s: float = 0.25,
    chunk: int = 2,
) -> None:
    """Send views the user may ask for next (not shown), nearest first; each only if this session
    has not sent it yet.

    Args:
        key: the elements' key prefix (``{key}_0``, ``{key}_1``, ...).
        views: ``(view key, make tiles)`` in the order to send them.
        first: how many unsent views always go, whatever they cost.
        budget_s: after those, more go until making them has taken this many seconds.
        chunk: views per element; Streamlit can stop a run between elements, so a click while
            views are being made is answered without waiting for all of them.
    """
    start, made, batch, n = time.perf_counter(), 0, {}, 0
    for view, make in views:
        if view in _sent():
            continue
        if made >= first and time.perf_counter() - start > budget_s:
            break
        batch[view] = _tiles(make())
        made += 1
        if len(batch) == chunk:
            _send_hidden(f"{key}_{n}", batch)
            batch, n = {}, n + 1
    if batch:
        _send_hidden(f"{key}_{n}", batch)


def _send_hidden(key: str, views: dict) -> None:
    _VIEWER(key=key, data={"views": views, "hidden": True})
    for view in views:
        _mark_sent(view)
