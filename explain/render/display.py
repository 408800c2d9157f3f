"""Results that show themselves: in Jupyter (``_repr_png_``, ``_repr_html_``), as a Figure
(:func:`show`), and as plain Python types (``as_dict``) for JSON or R (reticulate).

Every result of the public API mixes in :class:`Displayable` and defines ``figure(ax=None)``, the
picture a user would otherwise draw with matplotlib; a result that is a table too defines
``table()``. Jupyter then shows the picture (and the table) under the cell, as scikit-learn's
Display objects and captum's visualisations do.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Pixels per inch of the PNG a notebook shows.
NOTEBOOK_DPI = 90


def figure_png(fig: Figure, dpi: int = NOTEBOOK_DPI) -> bytes:
    """A figure as PNG bytes (nothing written to disk, no pyplot state)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _cell(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return "" if math.isnan(value) else f"{value:.3f}"
    return html.escape(str(value))


def html_table(headers: list[str], rows: list[list[Any]], *, caption: str = "") -> str:
    """A small HTML table (floats to 3 decimals, NaN blank, text escaped)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def png_img(png: bytes, alt: str = "") -> str:
    """PNG bytes as an inline ``<img>`` (base64 data URI)."""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}"/>'


def plain(value: Any) -> Any:
    """``value`` as plain Python types: dataclasses and mappings as dicts, tuples as lists, paths as
    strings, NumPy scalars as Python numbers; NumPy arrays stay arrays (reticulate turns them into R
    arrays; ``.tolist()`` them for JSON)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


class Displayable:
    """Mixin for results that draw themselves.

    A subclass defines ``figure(ax=None, **options) -> Figure`` and, where a table helps,
    ``table() -> (headers, rows)``. Jupyter calls :meth:`_repr_png_` (or :meth:`_repr_html_`,
    which it prefers, when there is a table); :func:`show` returns the same figure.
    """

    def figure(self, ax: Axes | None = None, **options) -> Figure:
        """The result's picture. Overridden by every result that has one (a result that is only a table,
        such as MuFidelity's scores, shows its table).

        Raises:
            TypeError: the result has no picture.
        """
        raise TypeError(f"A {type(self).__name__} has no picture: it shows itself as a table (see .table()).")

    @classmethod
    def _has_figure(cls) -> bool:
        return cls.figure is not Displayable.figure

    def table(self) -> tuple[list[str], list[list[Any]]] | None:
        """``(headers, rows)`` for :meth:`_repr_html_`; None when the result has no table."""
        return None

    def as_dict(self) -> dict:
        """The result as plain Python types (:func:`plain`): for JSON, pandas or R (reticulate)."""
        return plain(self)

    def _repr_png_(self) -> bytes | None:
        """The figure as PNG, for Jupyter (None for a result that is only a table)."""
        return figure_png(self.figure()) if self._has_figure() else None

    def _repr_html_(self) -> str | None:
        """The figure above the table, for Jupyter; None (Jupyter then shows the PNG) without a table."""
        table = self.table()
        if table is None:
            return None
        headers, rows = table
        picture = png_img(self._repr_png_(), type(self).__name__) if self._has_figure() else ""
        return f"<div>{picture}{html_table(headers, rows)}</div>"


def show(result: Any, ax: Axes | None = None, **options) -> Figure:
    """The picture a result of explain shows in a notebook, as a matplotlib Figure.

    Args:
        result: any result of explain's public API: an ``Attribution`` (its overlays), a
            ``Prediction`` (the top-k bars), activations (:func:`explain.compute_activations`:
            feature-map grids), ``FeaturePatterns``, an ``Evaluation`` (per-class accuracy and
            confusion matrix), an ``Embedding`` (the map), a ``Comparison`` (the method ranking),
            an audit (``AuditResult``, ``SprayResult``), ``TCAVResult``, ``CraftResult``, a metric's
            scores, a ``Report``.
        ax: axes to draw into; None makes a new figure. A result drawn as several panels (an
            ``Evaluation``) draws its main one there.
        **options: passed to the result's ``figure``, e.g. ``class_names=[...]`` for an
            ``Attribution``.

    Returns:
        The ``Figure`` (not shown: a notebook shows it as the cell's value, a script saves it with
        ``fig.savefig``).

    Raises:
        TypeError: ``result`` is not one of explain's results (a list: pass one element).
    """
    if isinstance(result, list | tuple):
        raise TypeError(
            f"explain.show takes one result, not a {type(result).__name__} of {len(result)}: "
            f"pass one element, e.g. explain.show(results[0])."
        )
    if not isinstance(result, Displayable):
        raise TypeError(
            f"explain.show draws explain's results (an Attribution, a Prediction, activations, an Evaluation, "
            f"an Embedding...), not a {type(result).__name__}."
        )
    fig = result.figure(ax=ax, **options)
    _notebook_shows(type(fig))
    return fig


def _notebook_shows(figure_type: type) -> None:
    """In IPython, have a matplotlib Figure returned as a cell's value shown as its PNG, as pyplot's inline
    backend does for pyplot figures (explain's figures are built without pyplot)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    if shell is None:
        return
    shell.display_formatter.formatters["image/png"].for_type(figure_type, figure_png)
