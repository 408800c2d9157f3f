"""How a method's result is named wherever it is shown: a panel's title, a tile's caption, a line
of the CLI's output, the report's page."""

from __future__ import annotations

import math
from typing import Protocol


class _Scores(Protocol):
    deletion_auc: object
    insertion_auc: object
    flat: object


def method_label(
    name: str,
    layer: str | None = None,
    scores: _Scores | tuple[float, float] | None = None,
    *,
    index: int = 0,
    sep: str = ", ",
) -> str:
    """A method's label: ``"gradcam @ conv2d_1, deletion 0.123 / insertion 0.810"``.

    Args:
        name: the method's registry name (``Attribution.method``), e.g. ``"gradcam"``.
        layer: the target layer's name (``Attribution.layer``); None for methods without one.
        scores: deletion / insertion AUC (Petsiuk et al. 2018, https://arxiv.org/abs/1806.07421),
            each in [0, 1]: a :class:`~explain.metrics.faithfulness.FaithfulnessScores` (image
            ``index`` is read; a flat heatmap reads ``"flat heatmap"``), or a ``(deletion,
            insertion)`` pair of floats (NaN reads ``"flat heatmap"``); None leaves them out.
        index: which image of ``scores`` (a batch's result) to read.
        sep: between the method and its scores: ``", "`` on one line, ``"\\n"`` for a figure title.

    Returns:
        ``"<name>"``, ``"<name> @ <layer>"``, then ``<sep>deletion D / insertion I`` (3 decimals)
        or ``<sep>flat heatmap`` when scores are given.

    Raises:
        IndexError: ``index`` outside ``scores``' batch.
    """
    label = name + (f" @ {layer}" if layer else "")
    if scores is None:
        return label
    if isinstance(scores, tuple):
        deletion, insertion = (float(v) for v in scores)
        flat = math.isnan(deletion) or math.isnan(insertion)
    else:
        deletion, insertion = float(scores.deletion_auc[index]), float(scores.insertion_auc[index])
        flat = bool(scores.flat[index])
    return label + sep + ("flat heatmap" if flat else f"deletion {deletion:.3f} / insertion {insertion:.3f}")
