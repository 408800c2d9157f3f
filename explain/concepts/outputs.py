"""The files the concept methods write: JSON, and the figures (each written atomically)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from explain.concepts.craft import CraftResult
from explain.concepts.tcav import TCAVResult


def tcav_json(result: TCAVResult) -> dict:
    """``tcav.json``'s content: for one class ``{"class", "images", "layers": [{"layer", "concepts": [{"name",
    "score_mean", "score_std", "p_value", "significant", "cav_accuracy", "direction", ...}], ...}], "runs",
    "random_set_size", "alpha", "seed", "concept_images"}``; for several, the same settings and ``"classes"``,
    a list of such class entries."""
    full = result.as_dict()
    classes = full.pop("classes")
    return {**classes[0], **full} if len(classes) == 1 else {**full, "classes": classes}


def write_tcav(result: TCAVResult, out_dir: str | os.PathLike) -> tuple[Path, ...]:
    """Write ``tcav.json`` and ``tcav.png`` (:func:`~explain.render.figures.tcav_bars`) into ``out_dir``."""
    from explain.io import atomic_write, save_figure
    from explain.render.figures import tcav_bars

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    document = json.dumps(tcav_json(result), indent=2)
    return (
        atomic_write(out / "tcav.json", lambda p: p.write_text(document, encoding="utf-8")),
        save_figure(tcav_bars(result), out / "tcav.png"),
    )


def write_craft(result: CraftResult, out_dir: str | os.PathLike) -> tuple[Path, ...]:
    """Write ``craft.json`` (:meth:`CraftResult.as_dict`) and ``craft.png`` (the gallery: one row per
    concept with its crops, most important first) into ``out_dir``."""
    from explain.io import atomic_write, save_figure
    from explain.render.figures import craft_gallery

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    document = json.dumps(result.as_dict(), indent=2)
    return (
        atomic_write(out / "craft.json", lambda p: p.write_text(document, encoding="utf-8")),
        save_figure(craft_gallery(result), out / "craft.png"),
    )
