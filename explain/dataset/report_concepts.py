"""The report's "Concepts" section: TCAV for the concept folders the user gives, and CRAFT for the classes
with the most errors (:mod:`explain.concepts`). Computed by :func:`concepts_section`, drawn and written by
:func:`concepts_pngs`, :func:`concepts_files`, :func:`concepts_html` and :func:`concepts_document`.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass

import numpy as np

from explain.io import slug

TCAV_PNG = "tcav.png"
TCAV_JSON = "tcav.json"
CRAFT_JSON = "craft.json"
CRAFT_PNG = "craft_{slug}.png"
#: TCAV tests at most this many classes, those with the most errors first.
TCAV_CLASSES = 10
#: Images per class that TCAV scores and CRAFT crops in a report.
TCAV_IMAGES = 100
CRAFT_IMAGES = 200


@dataclass(frozen=True)
class ConceptsSection:
    """What the Concepts section shows: ``tcav`` (a :class:`~explain.concepts.TCAVResult`, or None when no
    concept folder was given) and ``craft`` (one :class:`~explain.concepts.CraftResult` per class shown)."""

    tcav: object
    craft: tuple


def classes_by_errors(evaluation) -> list[int]:
    """Class indices with at least one image, the most misclassified images first (ties: class order)."""
    cm = np.asarray(evaluation.confusion)
    support = cm.sum(axis=1)
    errors = support - np.diag(cm)
    return [int(c) for c in np.argsort(-errors, kind="stable") if support[c] > 0]


def concepts_section(model, source, card, opts, evaluation) -> ConceptsSection | None:
    """TCAV of ``opts.concepts`` against ``opts.random_images`` at ``opts.concept_layers`` (default the last
    spatial layer) for up to :data:`TCAV_CLASSES` classes, and CRAFT for the ``opts.craft`` classes with the
    most errors. None when neither is asked for."""
    from explain.attribution.base import default_target_layer
    from explain.concepts import craft, tcav

    if not opts.concepts and not opts.craft:
        return None
    ranked = classes_by_errors(evaluation)
    names = tuple(card.class_names)
    progress = opts.progress if callable(opts.progress) else None
    result = None
    if opts.concepts:
        layers = list(opts.concept_layers or [default_target_layer(model, "TCAV").name])
        result = tcav(
            model, dict(opts.concepts), opts.random_images, layers, [names[c] for c in ranked[:TCAV_CLASSES]],
            source, max_images=TCAV_IMAGES, preprocess=card.preprocessing, class_names=names,
            progress=(lambda stage, f: progress(f"Concepts: TCAV ({stage})", f)) if progress else None,
        )  # fmt: skip
    found = tuple(
        craft(
            model, source, names[c], concepts=6, max_images=CRAFT_IMAGES, preprocess=card.preprocessing,
            class_names=names,
            progress=(lambda stage, f, n=names[c]: progress(f"Concepts: CRAFT of {n} ({stage})", f))
            if progress else None,
        )
        for c in ranked[: opts.craft]
    )  # fmt: skip
    return ConceptsSection(result, found)


def concepts_pngs(section: ConceptsSection | None, png) -> dict[str, bytes]:
    """The section's figures by file name: the TCAV bars and one CRAFT gallery per class (``png`` turns a
    figure into PNG bytes)."""
    if section is None:
        return {}
    from explain.render.figures import craft_gallery, tcav_bars

    pngs = {TCAV_PNG: png(tcav_bars(section.tcav))} if section.tcav is not None else {}
    for r in section.craft:
        pngs[CRAFT_PNG.format(slug=slug(r.class_name))] = png(craft_gallery(r))
    return pngs


def concepts_document(section: ConceptsSection | None) -> dict | None:
    """``metrics.json``'s ``"concepts"``: ``{"tcav": tcav.json's content or None, "craft": [craft.json entries]}``."""
    if section is None:
        return None
    from explain.concepts.outputs import tcav_json

    return {
        "tcav": tcav_json(section.tcav) if section.tcav is not None else None,
        "craft": [r.as_dict() for r in section.craft],
    }


def concepts_files(section: ConceptsSection | None, pngs: dict[str, bytes]) -> dict[str, bytes]:
    """``tcav.json``, ``craft.json`` and the section's PNGs, as files beside the page."""
    doc = concepts_document(section)
    if doc is None:
        return {}
    files = {f: b for f, b in pngs.items() if f == TCAV_PNG or f.startswith("craft_")}
    if doc["tcav"] is not None:
        files[TCAV_JSON] = (json.dumps(doc["tcav"], indent=2) + "\n").encode()
    if doc["craft"]:
        files[CRAFT_JSON] = (json.dumps(doc["craft"], indent=2) + "\n").encode()
    return files


def _tcav_rows(result) -> list[str]:
    e = html.escape
    verdict = {"drives": "drives the class", "opposes": '<span class="bad">works against it</span>', "none": "–"}
    rows = []
    for cls in result.classes:
        for layer in cls.layers:
            for c in layer.concepts:
                rows.append(
                    f"<tr><td>{e(cls.class_name)}</td><td class=mono>{e(layer.layer)}</td><td>{e(c.name)}</td>"
                    f"<td class=n>{c.score_mean:.2f} ± {c.score_std:.2f}</td><td class=n>{c.p_value:.2g}</td>"
                    f"<td>{'yes' if c.significant else 'no'}</td><td>{verdict[c.direction]}</td>"
                    f"<td class=n>{c.cav_accuracy:.2f}</td></tr>"
                )
    return rows


def concepts_html(section: ConceptsSection | None, pngs: dict[str, bytes], img) -> list[str]:
    """The section's HTML (``img(png bytes, alt)`` embeds a picture)."""
    if section is None:
        return []
    e = html.escape
    parts = ['<h2 id="concepts">Concepts</h2>']
    if section.tcav is not None:
        t = section.tcav
        parts.append(
            f"<p>TCAV (Kim et al. 2018): does a concept, given as a folder of example images, drive a class? The score "
            "is the share of the class's images whose score rises along the concept's direction in the layer "
            f"(0.5: no effect). {t.runs} runs against random sets of {t.random_set_size} images; significant: a "
            f"two-sided t-test against random concepts, Bonferroni over the concepts (alpha {t.alpha}).</p>"
        )
        parts.append(
            "<table><tr><th>class</th><th>layer</th><th>concept</th><th>TCAV score</th><th>p-value</th>"
            "<th>significant</th><th>effect</th><th>CAV accuracy</th></tr>" + "".join(_tcav_rows(t)) + "</table>"
        )
        parts.append(img(pngs[TCAV_PNG], "TCAV scores per class, layer and concept"))
    for r in section.craft:
        parts.append(
            f"<h3>Concepts the model found for {e(r.class_name)!s} (CRAFT)</h3><p>{len(r.concepts)} concepts at "
            f"<code>{e(r.layer)}</code> from {r.crops:,} crops of {r.images} images, most important first (total "
            "Sobol index: the share of the class score's variance the concept accounts for).</p>"
        )
        parts.append(img(pngs[CRAFT_PNG.format(slug=slug(r.class_name))], f"CRAFT concepts of {r.class_name}"))
    return parts
