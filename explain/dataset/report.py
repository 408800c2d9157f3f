"""A model report: which classes a model gets wrong and why, as figures, CSV, JSON and one HTML page.

    python -m explain.report MODEL DATA --out DIR [--images a.png b.png] [--confusions 5]
        [--examples 6] [--top-k 5] [--batch-size 256] [--layer L] [--image-size H W] [--no-progress]
        [--no-embedding] [--embedding-layer L] [--embedding-method umap|tsne|pca]

DATA is a folder of class subfolders or a built-in split (``fashion_mnist:test``, ``mnist:test``,
``cifar10:test``). DIR receives:

* ``per_class_accuracy.png``: per-class accuracy, worst to best, with the percentage on each bar;
* ``confusion_matrix.png``: counts and row-normalised, side by side; ``confusion_matrix.csv``:
  class names as header and index, rows = true class;
* ``metrics.json``: precision, recall and F1 per class and overall accuracy (scikit-learn);
* ``confusion_01_<true>_as_<predicted>.png`` ...: the most frequent confusions, each a gallery of
  examples with Grad-CAM (Selvaraju et al. 2017) for the true and the predicted class side by
  side (saliency, Simonyan et al. 2013, for a model without a convolutional layer);
* ``embedding.png``: the data set as a map of the model's penultimate-layer features (UMAP,
  McInnes et al. 2018), coloured by true class, mistakes as crosses; ``look_alikes.png``: the 10
  images whose nearest neighbours in feature space are mostly of another class, each with Grad-CAM
  for its true class and for the class it looks like (``--no-embedding`` leaves both out);
* ``top_k_predictions.png``: the top-k predictions for chosen images (default: a few misclassified);
* ``training_curves.png``: the model card's training history, when it has one;
* ``training_strip.png``: how the explanation evolved during training (the strip ``python -m training train
  --explain-every N`` wrote, read only from inside the model's folder: :func:`explain.models.card.training_strip`),
  when the model card names one;
* ``predictions.csv``: every image's true class, prediction and probability;
* ``report.html``: all of it in one self-contained page (images embedded), to e-mail.

Everything is computed before the first file is written, and every file is written atomically,
so a bad input or an interruption leaves DIR as it was. User errors print one line on stderr
and exit with code 2.
"""

from __future__ import annotations

import base64
import csv
import datetime
import html
import io
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from explain.dataset.report_concepts import (
    concepts_document,
    concepts_files,
    concepts_html,
    concepts_pngs,
    concepts_section,
)
from explain.io import slug

if TYPE_CHECKING:
    from explain.dataset.embedding import Embedding
    from explain.dataset.evaluation import Confusion, Evaluation

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: Names of the files every report writes (galleries and optional figures come on top).
PER_CLASS_PNG = "per_class_accuracy.png"
CONFUSION_PNG = "confusion_matrix.png"
CONFUSION_CSV = "confusion_matrix.csv"
METRICS_JSON = "metrics.json"
PREDICTIONS_CSV = "predictions.csv"
TOP_K_PNG = "top_k_predictions.png"
EMBEDDING_PNG = "embedding.png"
LOOK_ALIKES_PNG = "look_alikes.png"
#: Images drawn as thumbnails on the map, and look-alikes explained.
THUMBNAILS = 30
LOOK_ALIKES = 10
CURVES_PNG = "training_curves.png"
#: The training strip the model card names, copied (decoded and encoded again) beside the page.
STRIP_PNG = "training_strip.png"
HTML_FILE = "report.html"
#: The audit section (``audit=True``): the classes ranked by relevance in the border, and one PNG per class shown.
AUDIT_LOOKS_PNG = "audit_looks.png"
AUDIT_PNG = "audit_{slug}.png"
#: Classes the audit section shows: those with the largest eigengap.
AUDIT_CLASSES = 3
#: The "Which method?" section (``compare=N``): the methods ranked, the table and the same images under each.
METHODS_CSV = "methods.csv"
METHODS_RANKING_PNG = "methods_ranking.png"
METHODS_GALLERY_PNG = "methods_gallery.png"


@dataclass(frozen=True)
class Report:
    """What :func:`write_report` wrote.

    Attributes:
        out_dir: the folder written to.
        files: every file written, ``report.html`` last.
        evaluation: the predictions and tallies (:class:`~explain.dataset.evaluation.Evaluation`).
        confusions: the confusions shown, most frequent first.
        galleries: the gallery PNG of each confusion, in the same order.
        heatmap_method: ``"gradcam"``, ``"saliency"`` (model without a conv layer) or None
            (no heatmap could be computed).
        notes: what a reader should know (empty classes, skipped files, fallbacks).
    """

    out_dir: Path
    files: tuple[Path, ...]
    evaluation: Evaluation
    confusions: tuple[Confusion, ...]
    galleries: tuple[Path, ...]
    heatmap_method: str | None
    notes: tuple[str, ...]

    def _repr_html_(self) -> str:
        """In a notebook: where the report is (a link to ``report.html``), its accuracy, its notes."""
        import html

        page = self.files[-1] if self.files else self.out_dir / "report.html"
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return (
            f'<p>Report: <a href="{html.escape(page.as_posix())}" target="_blank">{html.escape(str(page))}</a>, '
            f"accuracy {self.evaluation.accuracy:.1%} on {self.evaluation.num_images:,} images, "
            f"{len(self.files)} files.</p>" + (f"<ul>{notes}</ul>" if notes else "")
            + self.evaluation._repr_html_()
        )

    def figure(self, ax=None):
        """The evaluation's figure (:meth:`Evaluation.figure`)."""
        return self.evaluation.figure(ax=ax)


def _png(fig, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _heatmap_method(model, layer, preprocess: str):
    """Grad-CAM at ``layer``; saliency when the model has no conv layer, or only 1x1 feature maps (and no
    layer was asked for)."""
    from explain.attribution import METHODS
    from explain.errors import ExplainError, NoSpatialLayerError

    try:
        return METHODS["gradcam"](model, layer=layer, preprocess=preprocess), None
    except NoSpatialLayerError as e:
        if layer is not None:
            raise
        only_1x1 = e.reason == NoSpatialLayerError.ONLY_1X1
        why = "only 1x1 feature maps at this image size" if only_1x1 else "no convolutional layer"
        note = (
            f"The model has {why}, so Grad-CAM cannot be computed: the galleries show "
            f"saliency maps instead ({METHODS['saliency'].reference})."
        )
    try:
        return METHODS["saliency"](model, preprocess=preprocess), note
    except ExplainError as e:
        return None, f"No heatmaps: {e}"


def _pick_examples(result, limit: int) -> list[int]:
    """Up to ``limit`` misclassified images where the model hesitated most (lowest top
    probability), one per true class first; the first images when nothing is misclassified."""
    from explain.dataset.evaluation import misclassified

    wrong = [int(i) for i in misclassified(result)[::-1]]  # least confident first
    if not wrong:
        return list(range(min(limit, result.num_images)))
    chosen, seen = [], set()
    for i in wrong:
        if int(result.y_true[i]) not in seen:
            chosen.append(i)
            seen.add(int(result.y_true[i]))
        if len(chosen) == limit:
            return chosen
    return chosen + [i for i in wrong if i not in chosen][: limit - len(chosen)]


def _confusion_csv(result) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["true \\ predicted", *result.class_names])
    for name, row in zip(result.class_names, result.confusion, strict=True):
        w.writerow([name, *(int(v) for v in row)])
    return buf.getvalue().encode("utf-8")


def _predictions_csv(result) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["image", "true", "predicted", "probability", "correct"])
    names = result.class_names
    for i in range(result.num_images):
        t, p = int(result.y_true[i]), int(result.y_pred[i])
        w.writerow([result.image_ids[i], names[t], names[p], f"{result.top_k_probabilities[i, 0]:.4f}", int(t == p)])
    return buf.getvalue().encode("utf-8")


# -- HTML ----------------------------------------------------------------------------------
_CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;max-width:1180px;margin:1.5em auto;
padding:0 1em;color:#222;line-height:1.45;background:#fff}
h1{font-size:1.7em;margin:.2em 0}h2{font-size:1.3em;border-bottom:2px solid #e4e4e4;padding-bottom:.2em;margin-top:2em}
h3{font-size:1.05em;margin:1.4em 0 .4em}.sub{color:#666;margin-top:0}
table{border-collapse:collapse;font-size:.92em;margin:.6em 0}td,th{padding:.28em .8em;border-bottom:1px solid #eee;
text-align:left;vertical-align:top}th{background:#f5f5f5;font-weight:600}td.n{text-align:right;
font-variant-numeric:tabular-nums}tr.avg td{font-style:italic;background:#fafafa}
.kpi{display:flex;gap:1em;flex-wrap:wrap;margin:1em 0}.kpi div{background:#f5f7fa;border:1px solid #e2e6ec;
border-radius:6px;padding:.6em 1em;min-width:9em}.kpi b{display:block;font-size:1.7em}
.kpi span{color:#555;font-size:.85em}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.4em .8em;margin:.4em 0;font-size:.93em}
img{max-width:100%;height:auto;display:block;margin:.5em 0}nav a{margin-right:1em}
.bad{color:#b00020}.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.88em;word-break:break-all}
code{white-space:nowrap;font-size:.92em}
footer{margin-top:3em;color:#666;font-size:.85em;border-top:1px solid #eee;padding-top:.6em}
"""


def _img(data: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}">'


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.3f}"


def _html_head(
    title: str,
    summary,
    kpis,
    notes: Sequence[str],
    has_curves: bool,
    has_map: bool,
    has_audit: bool = False,
    has_methods: bool = False,
    has_concepts: bool = False,
    has_strip: bool = False,
) -> list[str]:
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f'<p class="sub">Generated {e(datetime.datetime.now().strftime("%Y-%m-%d %H:%M"))} by explain</p>',
        '<div class="kpi">' + "".join(f"<div><b>{e(v)}</b><span>{e(k)}</span></div>" for k, v in kpis) + "</div>",
        "<table>" + "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in summary) + "</table>",
    ]
    parts += [f'<p class="note">{e(n)}</p>' for n in notes]
    links = [("accuracy", "Per-class accuracy"), ("confusion", "Confusion matrix"), ("confusions", "Top confusions")]
    links += [("embedding", "Feature-space map")] if has_map else []
    links += [("audit", "Audit")] if has_audit else []
    links += [("methods", "Which method?")] if has_methods else []
    links += [("concepts", "Concepts")] if has_concepts else []
    links += [("top-k", "Top-k predictions")] + ([("training", "Training curves")] if has_curves else [])
    links += [("training-strip", "Explanation during training")] if has_strip else []
    parts.append("<nav>" + "".join(f'<a href="#{a}">{e(t)}</a>' for a, t in links) + "</nav>")
    return parts


def _html_accuracy(pngs: dict[str, bytes], metrics: dict) -> list[str]:
    e = html.escape
    parts = ['<h2 id="accuracy">Per-class accuracy</h2>']
    parts.append(_img(pngs[PER_CLASS_PNG], "per-class accuracy, worst to best"))
    rows = ["<table><tr><th>class</th><th>accuracy (recall)</th><th>precision</th><th>F1</th><th>images</th></tr>"]
    lines = [(name, m, "") for name, m in metrics["per_class"].items()]
    lines += [(key, metrics[key], " class=avg") for key in ("macro avg", "weighted avg")]
    for name, m, css in lines:
        rows.append(
            f"<tr{css}><td>{e(name)}</td><td class=n>{_fmt(m['recall'])}</td><td class=n>{_fmt(m['precision'])}</td>"
            f"<td class=n>{_fmt(m['f1-score'])}</td><td class=n>{m['support']:,}</td></tr>"
        )
    parts.append("".join(rows) + "</table>")
    parts.append(
        "<p>Precision: of the images predicted as the class, the share that are; recall (the class's accuracy): "
        "of the class's images, the share predicted as it; F1: their harmonic mean. – : undefined (class never "
        "predicted, or without images).</p>"
    )
    parts.append('<h2 id="confusion">Confusion matrix</h2>')
    parts.append(
        f"<p>Rows are the true class, columns the predicted class; the same counts are in {CONFUSION_CSV}.</p>"
    )
    parts.append(_img(pngs[CONFUSION_PNG], "confusion matrix: counts and row-normalised"))
    return parts


def _html_confusions(pngs: dict[str, bytes], confusions, method_label: str | None) -> list[str]:
    e = html.escape
    parts = ['<h2 id="confusions">Most frequent confusions</h2>']
    if not confusions:
        return [*parts, "<p>No image was misclassified.</p>"]
    if method_label:
        parts.append(
            f"<p>For each confusion, the most confidently wrong examples: the image, then {e(method_label)} "
            "for the <b>true</b> class and for the <b>predicted</b> class (red = most relevant).</p>"
        )
    items = [f'<li><a href="#confusion-{k}">{e(t)}</a> ({e(s)})</li>' for k, (t, s, _) in enumerate(confusions, 1)]
    parts.append("<ol>" + "".join(items) + "</ol>")
    for k, (text, _share, gallery) in enumerate(confusions, 1):
        parts.append(f'<h3 id="confusion-{k}">{k}. {e(text)}</h3>')
        if gallery:
            parts.append(_img(pngs[gallery], text))
    return parts


def _html_embedding(pngs: dict[str, bytes], emb) -> list[str]:
    if EMBEDDING_PNG not in pngs:
        return []
    e = html.escape
    method = {"umap": "UMAP (McInnes et al. 2018)", "tsne": "t-SNE", "pca": "PCA"}.get(emb.method, emb.method)
    parts = [
        '<h2 id="embedding">Feature-space map</h2>',
        f"<p>Every image as the model sees it: the activations of layer <code>{e(emb.layer)}</code> "
        f"{e(str(emb.feature_shape))}, projected to 2-D with {e(method)}. Images close together look alike to the "
        "model. Dots are coloured by true class; a misclassified image is a cross in the colour of the class it was "
        "predicted as. Overlapping colours are classes the model does not separate.</p>",
        _img(pngs[EMBEDDING_PNG], "the data set in the model's feature space"),
    ]
    if LOOK_ALIKES_PNG in pngs:
        parts.append(
            "<h3>Looks like another class to the model</h3><p>The images whose nearest neighbours in feature space "
            "are mostly of another class, each with a heatmap for its true class and for the class it looks like.</p>"
        )
        parts.append(_img(pngs[LOOK_ALIKES_PNG], "images that look like another class"))
    return parts


def _html_audit(pngs: dict[str, bytes], section: AuditSection | None) -> list[str]:
    if section is None:
        return []
    e, s = html.escape, section.spray
    parts = [
        '<h2 id="audit">Audit: the model\'s strategies (SpRAy)</h2>',
        f"<p>Every image explained ({e(s.method)}, for its true class), and each class's heatmaps clustered by "
        "spectral clustering (Spectral Relevance Analysis, Lapuschkin et al. 2019). A class whose heatmaps fall into "
        "clearly separate clusters (a large eigengap) decides in more than one way: look at each cluster's mean "
        "heatmap and its prototypes for a cue that merely goes with the label (a watermark, a frame, a ruler).</p>",
        "<table><tr><th>class</th><th>clusters (sizes)</th><th>eigengap</th><th>share of relevance in the "
        f"{e(s.region)}</th></tr>",
    ]
    for c in s.most_distinct() + [c for c in s.classes if c.eigengap is None]:
        gap = "–" if c.eigengap is None else f"{c.eigengap:.3f}"
        sizes = ", ".join(str(k.size) for k in c.clusters)
        parts.append(f"<tr><td>{e(c.name)}</td><td>{len(c.clusters)} ({sizes})</td><td class=n>{gap}</td>"
                     f"<td class=n>{c.share:.1%}</td></tr>")  # fmt: skip
    parts.append("</table>")
    parts.append(_img(pngs[AUDIT_LOOKS_PNG], "classes ranked by the share of relevance in the border"))
    for name in section.shown:
        parts.append(f"<h3>{e(name)}</h3>")
        parts.append(_img(pngs[AUDIT_PNG.format(slug=slug(name))], f"the clusters of {name}"))
    return parts


def _html_methods(pngs: dict[str, bytes], comparison) -> list[str]:
    """The methods ranked (:mod:`explain.dataset.compare`): the table, the ranking figure, the gallery."""
    if comparison is None:
        return []
    from explain.dataset.compare import BETTER

    e = html.escape
    parts = [
        '<h2 id="methods">Which method? Attribution methods ranked on this model</h2>',
        f"<p>Every attribution method on the same {len(comparison.images)} images (each explained for its top "
        "prediction), scored by the same faithfulness metrics. The rank is the mean of each method's rank on the "
        "six metrics; a method that fails the sanity check (its map does not change when the weights are random) "
        "comes after those that pass. &darr; lower is better, &uarr; higher is better.</p>",
        "<table><tr><th>rank</th><th>method</th>"
        + "".join(f"<th>{e(m)} {'&darr;' if BETTER[m] == 'lower' else '&uarr;'}</th>" for m in BETTER)
        + "<th>sanity check</th><th>seconds / image</th></tr>",
    ]
    for s in comparison.scores:
        if s.error is not None:
            parts.append(f"<tr><td>–</td><td>{e(s.method)}</td><td colspan={len(BETTER) + 2}>{e(s.error)}</td></tr>")
            continue
        cells = "".join(f"<td class=n>{_fmt(_finite(getattr(s, m)))}</td>" for m in BETTER)
        sanity = {True: "passes", False: '<span class="bad">fails</span>', None: "–"}[s.sanity_passed]
        parts.append(
            f"<tr><td class=n>{s.rank}</td><td>{e(s.method)}</td>{cells}<td>{sanity}</td>"
            f"<td class=n>{s.seconds_per_image:.4f}</td></tr>"
        )
    parts.append("</table>")
    if METHODS_RANKING_PNG in pngs:
        parts.append(_img(pngs[METHODS_RANKING_PNG], "each method's rank on each metric"))
        parts.append(_img(pngs[METHODS_GALLERY_PNG], "the same images under every method"))
    return parts


def _finite(v: float) -> float | None:
    return v if v == v else None  # NaN -> None ("–")


def _html_strip(pngs: dict[str, bytes], strip) -> list[str]:
    """How the explanation evolved during training: the strip the model card names, or one line saying why not."""
    if strip is None:
        return []
    from explain.attribution import METHODS

    e = html.escape
    parts = ['<h2 id="training-strip">How the explanation evolved during training</h2>']
    if STRIP_PNG not in pngs:
        return [*parts, f'<p class="note">{e(strip.note or "The training strip cannot be shown.")}</p>']
    cls = METHODS.get(strip.method)
    reference = f" {strip.method}: {cls.reference}." if cls is not None and getattr(cls, "reference", None) else ""
    parts.append(
        f"<p>{e(strip.caption)}{e(reference)} Watch whether the maps settle on the object or on something that "
        f"merely goes with the label. From the model card: <code>{e(strip.name)}</code> (copied beside this page "
        f"as {STRIP_PNG}).</p>"
    )
    parts.append(_img(pngs[STRIP_PNG], "the maps of fixed images, epoch by epoch"))
    return parts


def _html_rest(
    pngs: dict[str, bytes], top_k_caption: str, has_curves: bool, result, files, command, strip=None
) -> list[str]:
    e = html.escape
    parts = ['<h2 id="top-k">Top-k predictions</h2>']
    parts.append(f"<p>{e(top_k_caption).replace('--images', '<code>--images</code>')}</p>")
    parts.append(_img(pngs[TOP_K_PNG], "top-k predictions"))
    if has_curves:
        parts.append('<h2 id="training">Training curves (from the model card)</h2>')
        parts.append(_img(pngs[CURVES_PNG], "training and validation curves"))
    parts += _html_strip(pngs, strip)
    if result.skipped:
        parts.append("<h2>Unreadable files (skipped)</h2><table>")
        for name, reason in result.skipped[:50]:
            parts.append(f"<tr><td class=mono>{e(name)}</td><td class=bad>{e(reason)}</td></tr>")
        parts.append("</table>")
        if len(result.skipped) > 50:
            parts.append(f"<p>and {len(result.skipped) - 50} more (see {METRICS_JSON}).</p>")
    parts.append(
        "<footer>Files beside this page: " + e(", ".join(files)) + f'.<br>Command: <span class="mono">{e(command)}'
        "</span></footer></body></html>"
    )
    return parts


def _html(
    *,
    title: str,
    summary: list[tuple[str, str]],
    kpis: list[tuple[str, str]],
    notes: Sequence[str],
    metrics: dict,
    result,
    pngs: dict[str, bytes],
    confusions: list[tuple[str, str, str | None]],
    method_label: str | None,
    top_k_caption: str,
    has_curves: bool,
    files: list[str],
    command: str,
    embedding=None,
    audit: AuditSection | None = None,
    comparison=None,
    concepts=None,
    strip=None,
) -> str:
    """The self-contained page: every figure embedded as a data: URI."""
    parts = _html_head(
        title, summary, kpis, notes, has_curves, EMBEDDING_PNG in pngs, AUDIT_LOOKS_PNG in pngs, comparison is not None,
        concepts is not None, strip is not None,
    )
    parts += _html_accuracy(pngs, metrics)
    parts += _html_confusions(pngs, confusions, method_label)
    parts += _html_embedding(pngs, embedding)
    parts += _html_audit(pngs, audit)
    parts += _html_methods(pngs, comparison)
    parts += concepts_html(concepts, pngs, _img)
    parts += _html_rest(pngs, top_k_caption, has_curves, result, files, command, strip)
    return "\n".join(parts)


# -- compute -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReportOptions:
    """What a report shows and how it is computed: the keywords of :func:`compute_report`
    (and of :func:`write_report`, whose defaults are these).

    Attributes:
        images: image files whose top-k predictions to show; default a few misclassified images.
        confusions: how many of the most frequent confusions get a gallery (>= 0).
        examples: images per gallery (>= 1).
        top_k: classes in the top-k bars (>= 1).
        batch_size: images per forward pass (>= 1; checked by the evaluation).
        layer: Grad-CAM's target layer (index, name or nested path); default the last spatial one.
        image_size: ``(height, width)`` for a model that takes any size.
        progress: True for progress bars on stderr; a callable ``(stage, fraction in [0, 1])``
            (the dashboard's progress bar); False for none.
        embedding: draw the feature-space map and the look-alikes (:mod:`explain.dataset.embedding`).
        embedding_layer: the layer the map's features come from; default the classifier head's input.
        embedding_method: ``"umap"``, ``"tsne"`` or ``"pca"``.
        audit: add an "Audit" section: every image explained (saliency, for its true class) and each class's
            heatmaps clustered (SpRAy, :mod:`explain.dataset.spray`); the :data:`AUDIT_CLASSES` classes with the
            most distinct strategies (largest eigengap) are shown, a row per cluster. One more backward pass
            over the data.
        compare: add a "Which method?" section: every attribution method run on this many images of the data
            (seeded) and ranked by faithfulness (:func:`explain.dataset.compare.compare_methods`); 0 for none.
        concepts: ``{name: folder of example images}``: add a "Concepts" section with TCAV of each concept for
            the classes with the most errors (:mod:`explain.dataset.report_concepts`); needs ``random_images``.
        random_images: a folder of random images for TCAV, at least 110.
        concept_layers: the layers TCAV tests at; default the last spatial layer.
        craft: CRAFT's concepts for this many classes, those with the most errors (0 for none).

    Raises:
        ValueError: ``compare < 0``, ``craft < 0``, ``confusions < 0``, ``examples < 1`` or ``top_k < 1``;
            ``concepts`` without ``random_images``.
    """

    images: Sequence[str | os.PathLike] | None = None
    confusions: int = 5
    examples: int = 6
    top_k: int = 5
    batch_size: int = 256
    layer: int | str | None = None
    image_size: tuple[int, int] | None = None
    progress: bool | Callable[[str, float], None] = True
    embedding: bool = True
    embedding_layer: int | str | None = None
    embedding_method: str = "umap"
    audit: bool = False
    compare: int = 0
    concepts: Mapping[str, str | os.PathLike] | None = None
    random_images: str | os.PathLike | None = None
    concept_layers: Sequence[int | str] | None = None
    craft: int = 0

    def __post_init__(self):
        for name, least in (("confusions", 0), ("examples", 1), ("top_k", 1), ("compare", 0), ("craft", 0)):
            if getattr(self, name) < least:
                raise ValueError(f"{name} must be at least {least}, got {getattr(self, name)}.")
        if self.concepts and not self.random_images:
            raise ValueError("Concept folders need random images to compare with: give random_images (--random DIR).")


@dataclass(frozen=True)
class Gallery:
    """One confusion's examples, with a heatmap for the true and for the predicted class.

    Attributes:
        confusion: the :class:`~explain.dataset.evaluation.Confusion`.
        share: e.g. ``"11.2% of the Shirt images"``.
        images: uint8 ``(n, H, W, C)`` raw pixels (n may be 0 when no example could be read).
        labels: one caption per image.
        true_maps, predicted_maps: float32 ``(n, H, W)`` in [0, 1].
        true_flat, predicted_flat: bool ``(n,)``: flat maps (drawn as zeros).
    """

    confusion: Confusion
    share: str
    images: np.ndarray
    labels: tuple[str, ...]
    true_maps: np.ndarray
    predicted_maps: np.ndarray
    true_flat: np.ndarray
    predicted_flat: np.ndarray


@dataclass(frozen=True)
class TopK:
    """The images whose top-k predictions a report shows.

    Attributes:
        images: uint8 ``(m, H, W, C)``.
        probabilities: float ``(m, classes)`` in [0, 1].
        titles: one caption per image.
        caption: what the images are (chosen with ``--images``, or misclassified ones).
        k: classes per bar chart.
    """

    images: np.ndarray
    probabilities: np.ndarray
    titles: tuple[str, ...]
    caption: str
    k: int


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows, computed, before any figure is drawn (:func:`compute_report`).

    Attributes:
        evaluation: the predictions and tallies.
        metrics: :func:`~explain.dataset.evaluation.classification_metrics` of it.
        galleries: the most frequent confusions, most frequent first, with their examples.
        heatmap_method: ``"gradcam"``, ``"saliency"`` or None; ``method_label`` says it for people.
        top_k: the images whose top-k predictions are shown (:class:`TopK`).
        notes: what a reader should know.
        card: the model card used; ``input_size`` the ``(H, W, C)`` images were read at.
        embedding: the feature-space map (None when turned off or impossible: see the notes).
        look_alikes: its look-alike images explained (:class:`LookAlikes`), or None.
        audit: the audit section (:class:`AuditSection`), or None.
        comparison: the methods ranked (:class:`~explain.dataset.compare.Comparison`), or None.
        concepts: the Concepts section (:class:`~explain.dataset.report_concepts.ConceptsSection`), or None.
        strip: the training strip the model card names (:class:`~explain.models.card.TrainingStrip`, its
            ``pixels`` None with a ``note`` when it cannot be shown), or None when the card names none.
    """

    evaluation: Evaluation
    metrics: dict
    galleries: tuple[Gallery, ...]
    heatmap_method: str | None
    method_label: str | None
    top_k: TopK
    notes: tuple[str, ...]
    card: object
    input_size: tuple[int, int, int]
    embedding: Embedding | None = None
    look_alikes: LookAlikes | None = None
    audit: AuditSection | None = None
    comparison: object = None
    concepts: object = None
    strip: object = None


@dataclass(frozen=True)
class AuditSection:
    """The report's audit: SpRAy over the whole data set, and the prototypes of the classes shown.

    Attributes:
        spray: the :class:`~explain.dataset.spray.SprayResult` (every class).
        shown: the classes shown, largest eigengap first.
        images, maps, captions: the shown clusters' prototypes (:func:`explain.dataset.audit.prototype_pictures`).
    """

    spray: object
    shown: tuple[str, ...]
    images: dict
    maps: dict
    captions: dict


@dataclass(frozen=True)
class LookAlikes:
    """Images that look like another class to the model, explained, and the map's thumbnails.

    Attributes:
        images: uint8 ``(n, H, W, C)``; ``rows`` their rows in the embedding.
        looks_like: int64 ``(n,)``: the class most of each image's neighbours have.
        labels: one caption per image.
        true_maps, other_maps: float32 ``(n, H, W)`` in [0, 1]: heatmaps for the true class and
            for the look-alike class; ``true_flat``, ``other_flat`` bool ``(n,)``.
        thumbnails: ``{row of the embedding: uint8 image}`` drawn on the map.
    """

    images: np.ndarray
    rows: np.ndarray
    looks_like: np.ndarray
    labels: tuple[str, ...]
    true_maps: np.ndarray
    other_maps: np.ndarray
    true_flat: np.ndarray
    other_flat: np.ndarray
    thumbnails: dict


def _spread_rows(xy: np.ndarray, n: int, spacing: float = 0.09) -> list[int]:
    """Up to ``n`` rows, in a seeded random order, no two closer than ``spacing`` times the map's
    extent (so the map's thumbnails do not cover each other)."""
    xy = np.asarray(xy, np.float64)
    gap = spacing * float(np.max(np.ptp(xy, axis=0)) or 1.0)
    chosen: list[int] = []
    for i in np.random.default_rng(0).permutation(len(xy)):
        if all(np.hypot(*(xy[i] - xy[j])) >= gap for j in chosen):
            chosen.append(int(i))
            if len(chosen) == n:
                break
    return sorted(chosen)


def _look_alikes(source, emb, explainer, size) -> LookAlikes:
    """The :data:`LOOK_ALIKES` look-alikes with both heatmaps, and :data:`THUMBNAILS` seeded thumbnails."""
    from explain.dataset.embedding import look_alikes
    from explain.dataset.evaluation import load_rows

    found = {a.index: a for a in look_alikes(emb, LOOK_ALIKES)}
    imgs, rows = load_rows(source, emb.source_indices, list(found), size)
    other = np.array([found[r].looks_like for r in rows], np.int64)
    names = emb.class_names
    k = emb.neighbors.shape[1]
    labels = tuple(
        f"{emb.image_ids[r]}: {names[emb.y_true[r]]}, {round(found[r].share * k)}/{k} neighbours "
        f"{names[found[r].looks_like]}"
        for r in rows
    )
    if explainer is not None and len(imgs):
        a_true, a_other = explainer(imgs, emb.y_true[rows]), explainer(imgs, other)
        maps = (a_true.heatmap, a_other.heatmap, a_true.flat, a_other.flat)
    else:
        zeros = np.zeros(imgs.shape[:3], np.float32)
        maps = (zeros, zeros, np.ones(len(imgs), bool), np.ones(len(imgs), bool))
    thumbs, thumb_rows = load_rows(source, emb.source_indices, _spread_rows(emb.coordinates, THUMBNAILS), size)
    return LookAlikes(imgs, np.array(rows, np.int64), other, labels, *maps, dict(zip(thumb_rows, thumbs, strict=True)))


def _evaluate_and_embed(model, source, card, opts: ReportOptions, size) -> tuple[Evaluation, Embedding | None, list]:
    """The evaluation, with the feature-space map from the same pass when it is asked for and
    possible (a note says why not: too few images, or no feature layer by default)."""
    from explain.dataset.embedding import MIN_IMAGES, embed
    from explain.dataset.evaluation import evaluate_model
    from explain.errors import LayerError

    common = dict(batch_size=opts.batch_size, top_k=opts.top_k, image_size=size[:2], preprocess=card.preprocessing)
    names = card.known_class_names
    note = None
    if opts.embedding and len(source) >= MIN_IMAGES:
        try:
            emb = embed(
                model, source, names, layer=opts.embedding_layer, method=opts.embedding_method,
                progress=opts.progress, **common,
            )  # fmt: skip
            return emb.evaluation, emb, []
        except LayerError as e:
            if opts.embedding_layer is not None:
                raise
            note = f"No feature-space map: {e}"
    elif opts.embedding:
        note = f"No feature-space map: it needs at least {MIN_IMAGES} images, the data have {len(source)}."
    ticks = opts.progress
    if callable(ticks):
        ticks = lambda done, total: opts.progress("Predicting", done / max(total, 1))  # noqa: E731
    result = evaluate_model(model, source, names, progress=ticks, **common)
    return result, None, [note] if note else []


def _gallery(source, result, conf, explainer, examples: int, size: tuple[int, int, int]) -> Gallery:
    """Read a confusion's most confident examples again and explain both classes on them."""
    from explain.dataset.evaluation import load_rows

    share = f"{conf.count / result.support[conf.true_index]:.1%} of the {conf.true_name} images"
    imgs, ex = load_rows(source, result.source_indices, conf.examples[:examples], size)
    labels = tuple(f"{result.image_ids[i]} · {result.top_k_probabilities[i, 0]:.0%} {conf.predicted_name}" for i in ex)
    if explainer is not None and len(imgs):
        a_true, a_pred = explainer(imgs, conf.true_index), explainer(imgs, conf.predicted_index)
        maps = (a_true.heatmap, a_pred.heatmap, a_true.flat, a_pred.flat)
    else:
        zeros = np.zeros(imgs.shape[:3], np.float32)
        maps = (zeros, zeros, np.ones(len(imgs), bool), np.ones(len(imgs), bool))
    return Gallery(conf, share, imgs, labels, *maps)


def _top_k_examples(source, result, chosen, size) -> tuple[np.ndarray, tuple[str, ...], str]:
    """The images whose top-k predictions to show: the chosen ones, else a few misclassified."""
    from explain.dataset.evaluation import load_rows

    if chosen:
        caption = "The images chosen with --images, with the model's most probable classes."
        return np.stack([img for _, img in chosen]), tuple(p.name for p, _ in chosen), caption
    x, picks = load_rows(source, result.source_indices, _pick_examples(result, 6), size)
    names = result.class_names
    wrong = result.y_true != result.y_pred
    titles = tuple(f"{result.image_ids[i]} · true: {names[result.y_true[i]]}{' ✗' if wrong[i] else ''}" for i in picks)
    caption = (
        "Misclassified images where the model hesitated most (lowest top probability; one per true class "
        "first), with its most probable classes. Choose other images with --images."
        if wrong.any()
        else "No image was misclassified: the first images of the data."
    )
    return x, titles, caption


def _top_k(model, source, result, chosen, size, k: int, preprocess: str) -> TopK:
    """The top-k images (:func:`_top_k_examples`) with the model's probabilities for them."""
    from explain.models.predict import predict

    x, titles, caption = _top_k_examples(source, result, chosen, size)
    predictions = predict(model, x, result.class_names, k=k, preprocess=preprocess)
    return TopK(x, np.stack([p.probabilities for p in predictions]), titles, caption, k)


def _method_label(explainer) -> str | None:
    """The heatmaps' method for people (:func:`~explain.attribution.method_label`): ``"gradcam @ conv2d_1"``,
    ``"saliency"`` or None."""
    from explain.attribution import method_label

    if explainer is None:
        return None
    return method_label(explainer.name, explainer.layer.name if explainer.layer is not None else None)


def compute_report(model, source, *, card=None, model_path: str | os.PathLike | None = None, **options) -> ReportData:
    """Evaluate ``model`` on ``source`` and compute everything the report shows, in memory.

    Every input is checked (the chosen images are read, the heatmap method is built, the data
    classes are matched to the model's) before the long prediction pass.

    Args:
        model: a Keras classifier taking raw pixels.
        source: the data (:func:`explain.dataset.evaluation.open_data`).
        card: the :class:`~explain.models.ModelCard`; default read from ``model_path``.
        model_path: the model file, for the model card.
        **options: the fields of :class:`ReportOptions` (``images``, ``confusions``,
            ``examples``, ``top_k``, ``batch_size``, ``layer``, ``image_size``, ``progress``,
            ``embedding``, ``embedding_layer``, ``embedding_method``).

    Returns:
        A :class:`ReportData`, for :func:`render_report`.

    Raises:
        ExplainError: bad data, image, layer or model.
        ValueError: bad numeric arguments; model outputs that are not a classifier's.
        TypeError: an unknown keyword.
    """
    from explain.dataset.evaluation import classification_metrics, model_input_size, top_confusions
    from explain.images import load_image
    from explain.models.card import load_model_card, training_strip

    opts = ReportOptions(**options)
    card = card or load_model_card(model_path, model)
    size = model_input_size(model, source, opts.image_size)
    chosen = [(Path(p), load_image(p, target_size=size[:2], channels=size[2])) for p in opts.images or ()]
    explainer, method_note = _heatmap_method(model, opts.layer, card.preprocessing)
    if opts.embedding:
        from explain.dataset.embedding import check_method

        check_method(opts.embedding_method)
    result, emb, embedding_notes = _evaluate_and_embed(model, source, card, opts, size)
    top = top_confusions(result, opts.confusions)
    return ReportData(
        evaluation=result,
        metrics=classification_metrics(result),
        galleries=tuple(_gallery(source, result, c, explainer, opts.examples, size) for c in top),
        heatmap_method=explainer.name if explainer is not None else None,
        method_label=_method_label(explainer),
        top_k=_top_k(model, source, result, chosen, size, opts.top_k, card.preprocessing),
        notes=(
            *card.notes,
            *(emb.notes if emb else result.notes),
            *embedding_notes,
            *([method_note] if method_note else []),
        ),
        card=card,
        input_size=size,
        embedding=emb,
        look_alikes=_look_alikes(source, emb, explainer, size) if emb is not None else None,
        audit=_audit(model, source, card, opts, size) if opts.audit else None,
        comparison=_comparison(model, source, card, opts) if opts.compare else None,
        concepts=concepts_section(model, source, card, opts, result),
        strip=training_strip(card),
    )


def _comparison(model, source, card, opts: ReportOptions):
    """Every attribution method on ``opts.compare`` images of the data, scored and ranked."""
    from explain.dataset.compare import compare_methods

    progress = opts.progress
    if callable(progress):
        progress = lambda method, done, total: opts.progress(f"Ranking the methods ({method})", done / max(total, 1))  # noqa: E731
    return compare_methods(
        model, source, images=opts.compare, layer=opts.layer, preprocess=card.preprocessing,
        class_names=card.known_class_names, image_size=opts.image_size, batch_size=min(opts.batch_size, 64),
        progress=progress,
    )  # fmt: skip


def _audit(model, source, card, opts: ReportOptions, size: tuple[int, int, int]) -> AuditSection:
    """Explain every image for its true class, cluster each class's heatmaps, keep the most distinct classes'
    prototypes; the rows go to a temporary file, removed after."""
    import tempfile

    from explain.dataset.audit import DEFAULT_METHOD, prototype_pictures
    from explain.dataset.explanations import attribute_dataset
    from explain.dataset.spray import spray

    progress = opts.progress
    if callable(progress):
        progress = lambda done, total: opts.progress("Explaining every image (audit)", done / max(total, 1))  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "rows.parquet"
        attribute_dataset(
            model, source, DEFAULT_METHOD, out=table, preprocess=card.preprocessing,
            class_names=card.known_class_names, batch_size=min(opts.batch_size, 128), progress=progress,
            image_size=opts.image_size, target="true",
        )  # fmt: skip
        result = spray(table, projection=None)
        shown = tuple(c.name for c in result.most_distinct(AUDIT_CLASSES))
        ids = [i for n in shown for k in result.by_class(n).clusters for i in k.prototypes]
        images, maps, captions = prototype_pictures(result, table, source, size, ids)
    return AuditSection(result, shown, images, maps, captions)


# -- render --------------------------------------------------------------------------------
@dataclass(frozen=True)
class RenderedReport:
    """The report's files, in memory (:func:`render_report`).

    Attributes:
        files: ``{file name: bytes}`` in writing order, ``report.html`` last.
        galleries: each confusion's gallery file name, most frequent first (None where no
            example could be read).
        notes: what a reader should know, as the page and ``metrics.json`` say it.
    """

    files: dict[str, bytes]
    galleries: tuple[str | None, ...]
    notes: tuple[str, ...]


def _gallery_name(k: int, g: Gallery) -> str:
    return f"confusion_{k:02d}_{slug(g.confusion.true_name)}_as_{slug(g.confusion.predicted_name)}.png"


def _gallery_pngs(data: ReportData) -> tuple[dict[str, bytes], list[str | None]]:
    """Each confusion's gallery PNG by file name, and the file of each confusion (None: no example)."""
    from explain.render.figures import confusion_gallery

    pngs: dict[str, bytes] = {}
    gallery_files: list[str | None] = []
    method = {"gradcam": "Grad-CAM", "saliency": "Saliency"}.get(data.heatmap_method, "")
    for k, g in enumerate(data.galleries, 1):
        if not len(g.images):
            gallery_files.append(None)
            continue
        shown = f"the {len(g.images)} most confident shown" if g.confusion.count > len(g.images) else "all shown"
        fig = confusion_gallery(
            g.images,
            g.true_maps,
            g.predicted_maps,
            true_name=g.confusion.true_name,
            predicted_name=g.confusion.predicted_name,
            labels=list(g.labels),
            true_flat=g.true_flat,
            predicted_flat=g.predicted_flat,
            method=method,
            title=f"{g.confusion} ({g.share}); {shown}",
        )
        gallery_files.append(_gallery_name(k, g))
        pngs[gallery_files[-1]] = _png(fig, dpi=90)
    return pngs, gallery_files


def _curves_png(card, model_name: str) -> tuple[bytes | None, str | None]:
    """The model card's training history as a PNG (None without one) and a note when it cannot be drawn."""
    from explain.render.figures import training_curves

    history = card.raw.get("history") if card.from_file else None
    if not isinstance(history, dict) or not history:
        return None, None
    best = card.raw.get("best_epoch")
    try:
        fig = training_curves(
            history,
            best_epoch=best if isinstance(best, int) else None,
            title=f"Training history of {model_name} (model card)",
        )
    except ValueError as e:
        return None, f"The model card's training history could not be drawn: {e}"
    return _png(fig), None


def _figures(data: ReportData, model_name: str) -> tuple[dict[str, bytes], list[str | None], list[str]]:
    """The report's PNGs by file name; the gallery file of each confusion (None: no example);
    and notes added while drawing."""
    from explain.render.figures import confusion_matrix_figure, per_class_accuracy_chart, top_k_grid

    r, names = data.evaluation, data.evaluation.class_names
    pngs = {
        PER_CLASS_PNG: _png(
            per_class_accuracy_chart(
                r.per_class_accuracy,
                names,
                support=r.support,
                overall=r.accuracy,
                title=f"Per-class accuracy on {r.data}, worst to best ({r.num_images:,} images)",
            )
        ),
        CONFUSION_PNG: _png(confusion_matrix_figure(r.confusion, names, title=f"Confusion matrix on {r.data}")),
    }
    galleries, gallery_files = _gallery_pngs(data)
    pngs.update(galleries)
    top = data.top_k
    pngs[TOP_K_PNG] = _png(top_k_grid(top.images, top.probabilities, names, k=top.k, titles=list(top.titles)))
    curves, note = _curves_png(data.card, model_name)
    if curves is not None:
        pngs[CURVES_PNG] = curves
    if data.strip is not None and data.strip.pixels is not None:
        from explain.render.pictures import encode_png

        pngs[STRIP_PNG] = encode_png(data.strip.pixels)
    pngs.update(_embedding_pngs(data))
    pngs.update(_audit_pngs(data.audit))
    pngs.update(_methods_pngs(data.comparison))
    pngs.update(concepts_pngs(data.concepts, _png))
    return pngs, gallery_files, [note] if note else []


def _methods_pngs(comparison) -> dict[str, bytes]:
    """The ranking figure and the gallery of the "Which method?" section."""
    if comparison is None or all(s.error is not None for s in comparison.scores):
        return {}
    from explain.dataset.compare import gallery_figure, ranking_figure

    return {
        METHODS_RANKING_PNG: _png(ranking_figure(comparison)),
        METHODS_GALLERY_PNG: _png(gallery_figure(comparison), dpi=90),
    }


def _audit_pngs(section: AuditSection | None) -> dict[str, bytes]:
    """The classes ranked by relevance in the border, and one row per cluster for each class shown."""
    if section is None:
        return {}
    from explain.dataset.audit import looks_figure
    from explain.render.figures import spray_clusters

    s = section.spray
    pngs = {AUDIT_LOOKS_PNG: _png(looks_figure(s))}
    for name in section.shown:
        fig = spray_clusters(s.by_class(name), section.images, section.maps, captions=section.captions, method=s.method)
        pngs[AUDIT_PNG.format(slug=slug(name))] = _png(fig, dpi=90)
    return pngs


def _embedding_pngs(data: ReportData) -> dict[str, bytes]:
    """The map and the look-alikes gallery, when the report has a map."""
    from explain.render.figures import embedding_map, look_alike_gallery

    emb, la = data.embedding, data.look_alikes
    if emb is None:
        return {}
    pngs = {EMBEDDING_PNG: _png(embedding_map(emb, thumbnails=la.thumbnails), dpi=100)}
    if len(la.images):
        method = {"gradcam": "Grad-CAM", "saliency": "Saliency"}.get(data.heatmap_method, "")
        titles = [
            (
                f"{method}: {emb.class_names[emb.y_true[r]]}\n(true class)",
                f"{method}: {emb.class_names[o]}\n(looks like{', predicted' if emb.y_pred[r] == o else ''})",
            )
            for r, o in zip(la.rows, la.looks_like, strict=True)
        ]
        fig = look_alike_gallery(
            la.images,
            (la.true_maps, la.other_maps),
            titles,
            list(la.labels),
            flat=(la.true_flat, la.other_flat),
            title=f"The {len(la.images)} images that look most like another class to the model (nearest neighbours "
            f"in the features of {emb.layer!r})",
        )
        pngs[LOOK_ALIKES_PNG] = _png(fig, dpi=90)
    return pngs


def _metrics_document(data: ReportData, model_label: str, gallery_files, notes) -> bytes:
    r = data.evaluation
    doc = {
        "model": model_label,
        "data": r.data,
        **data.metrics,
        "class_names": list(r.class_names),
        "top_confusions": [
            {
                "true": g.confusion.true_name,
                "predicted": g.confusion.predicted_name,
                "count": g.confusion.count,
                "gallery": f,
            }
            for g, f in zip(data.galleries, gallery_files, strict=True)
        ],
        "classes_without_images": list(r.classes_without_images),
        "skipped_files": [{"image": i, "reason": why} for i, why in r.skipped],
        "heatmap_method": data.heatmap_method,
        "embedding": _embedding_document(data),
        "audit": data.audit.spray.as_dict() if data.audit else None,
        "methods": data.comparison.as_dict() if data.comparison else None,
        "concepts": concepts_document(data.concepts),
        "training_strip": _strip_document(data.strip),
        "notes": list(notes),
    }
    return (json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode()


def _strip_document(strip) -> dict | None:
    """The training strip in ``metrics.json``: the file beside the page (None when it cannot be shown, with the
    note why), the card's name for it, the method and the epochs; None when the card names no strip."""
    if strip is None:
        return None
    return {
        "image": STRIP_PNG if strip.pixels is not None else None,
        "from_model_card": strip.name,
        "method": strip.method,
        "epochs": list(strip.epochs),
        "note": strip.note,
    }


def _embedding_document(data: ReportData) -> dict | None:
    emb, la = data.embedding, data.look_alikes
    if emb is None:
        return None
    names = emb.class_names
    return {
        "layer": emb.layer,
        "feature_shape": list(emb.feature_shape),
        "method": emb.method,
        "image": EMBEDDING_PNG,
        "look_alikes": [
            {"image": emb.image_ids[r], "true": names[emb.y_true[r]], "looks_like": names[o]}
            for r, o in zip(la.rows, la.looks_like, strict=True)
        ],
    }


def _summary(data: ReportData, model_name: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The summary table and the key figures at the top of the page."""
    from explain.models.preprocessing import DESCRIPTIONS

    r, card, (h, w, c) = data.evaluation, data.card, data.input_size
    arch = card.raw.get("architecture") if card.from_file else None
    skipped = f", {len(r.skipped)} unreadable skipped" if r.skipped else ""
    summary = [
        ("Model", model_name + (f" ({arch})" if arch else "")),
        ("Input", f"{h}x{w}x{c} ({'grayscale' if c == 1 else 'RGB'}), {len(r.class_names)} classes"),
        ("Preprocessing", f"{card.preprocessing}: {DESCRIPTIONS[card.preprocessing]}"),
        ("Trained on", card.dataset or "unknown (no model card)"),
        ("Data", f"{r.data}: {r.num_images:,} images{skipped}"),
        ("Heatmaps", data.method_label or "none"),
    ]
    kpis = [("accuracy", f"{r.accuracy:.1%}"), ("images", f"{r.num_images:,}")]
    if card.test_accuracy is not None:
        kpis.append(("test accuracy in the model card", f"{card.test_accuracy:.1%}"))
    if data.galleries:
        kpis.append(("most frequent confusion", f"{data.galleries[0].confusion.count:,}"))
    return summary, kpis


def _methods_files(comparison, pngs: dict[str, bytes]) -> dict[str, bytes]:
    if comparison is None:
        return {}
    from explain.dataset.compare import methods_csv

    files = {METHODS_CSV: methods_csv(comparison)}
    files.update({f: pngs[f] for f in (METHODS_RANKING_PNG, METHODS_GALLERY_PNG) if f in pngs})
    return files


def render_report(
    data: ReportData, *, model_path: str | os.PathLike | None = None, model_name: str = "model", command: str = ""
) -> RenderedReport:
    """Draw the report's figures and write its documents, in memory.

    Args:
        data: from :func:`compute_report`.
        model_path: the model file, named in the page and in ``metrics.json``.
        model_name: the model's name when there is no ``model_path``.
        command: the command line, printed in the page's footer.

    Returns:
        A :class:`RenderedReport`: the PNGs, CSVs, ``metrics.json`` and the self-contained HTML
        page as bytes.
    """
    name = Path(model_path).name if model_path else model_name
    pngs, gallery_files, drawing_notes = _figures(data, name)
    notes = [*data.notes, *drawing_notes]
    r = data.evaluation
    files: dict[str, bytes] = {
        PER_CLASS_PNG: pngs[PER_CLASS_PNG],
        CONFUSION_PNG: pngs[CONFUSION_PNG],
        CONFUSION_CSV: _confusion_csv(r),
        METRICS_JSON: _metrics_document(data, str(model_path) if model_path else name, gallery_files, notes),
        PREDICTIONS_CSV: _predictions_csv(r),
        **{f: pngs[f] for f in gallery_files if f},
        TOP_K_PNG: pngs[TOP_K_PNG],
        **{f: pngs[f] for f in (EMBEDDING_PNG, LOOK_ALIKES_PNG) if f in pngs},
        **{f: b for f, b in pngs.items() if f.startswith("audit_")},
        **_methods_files(data.comparison, pngs),
        **concepts_files(data.concepts, pngs),
        **({CURVES_PNG: pngs[CURVES_PNG]} if CURVES_PNG in pngs else {}),
        **({STRIP_PNG: pngs[STRIP_PNG]} if STRIP_PNG in pngs else {}),
    }
    summary, kpis = _summary(data, name)
    page = _html(
        title=f"Model report: {name} on {r.data}",
        summary=summary,
        kpis=kpis,
        notes=notes,
        metrics=data.metrics,
        result=r,
        pngs=pngs,
        confusions=[(str(g.confusion), g.share, f) for g, f in zip(data.galleries, gallery_files, strict=True)],
        method_label=data.method_label,
        top_k_caption=data.top_k.caption,
        has_curves=CURVES_PNG in pngs,
        files=[*files, HTML_FILE],
        command=command or f"write_report({name!r}, {r.data!r})",
        embedding=data.embedding,
        audit=data.audit,
        comparison=data.comparison,
        concepts=data.concepts,
        strip=data.strip,
    )
    files[HTML_FILE] = page.encode("utf-8")
    return RenderedReport(files, tuple(gallery_files), tuple(notes))


# -- save ----------------------------------------------------------------------------------
def save_report(files: dict[str, bytes], out_dir: str | os.PathLike) -> tuple[Path, ...]:
    """Write the rendered files into ``out_dir`` (created if missing), each atomically.

    Returns:
        The paths written, in order.

    Raises:
        OSError: a file could not be written (the files written before it stay complete).
    """
    from explain.io import atomic_path

    out_dir = Path(out_dir)
    written = []
    for name, data in files.items():
        with atomic_path(out_dir / name) as tmp:
            tmp.write_bytes(data)
        written.append(out_dir / name)
    return tuple(written)


def _check_out_dir(out_dir: str | os.PathLike) -> Path:
    """``out_dir`` as a Path; ExplainError when it is a file."""
    from explain.errors import ExplainError

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ExplainError(f"--out {out_dir} is a file; give a folder for the report.")
    return out_dir


def _saved(data: ReportData, rendered: RenderedReport, out_dir: Path, written: tuple[Path, ...]) -> Report:
    """What :func:`write_report` wrote, as a :class:`Report`."""
    return Report(
        out_dir=out_dir,
        files=written,
        evaluation=data.evaluation,
        confusions=tuple(g.confusion for g in data.galleries),
        galleries=tuple(out_dir / f for f in rendered.galleries if f),
        heatmap_method=data.heatmap_method,
        notes=rendered.notes,
    )


def write_report(
    model,
    source,
    out_dir: str | os.PathLike,
    *,
    model_path: str | os.PathLike | None = None,
    card=None,
    images: Sequence[str | os.PathLike] | None = None,
    confusions: int = 5,
    examples: int = 6,
    top_k: int = 5,
    batch_size: int = 256,
    layer: int | str | None = None,
    image_size: tuple[int, int] | None = None,
    progress: bool = True,
    embedding: bool = True,
    embedding_layer: int | str | None = None,
    embedding_method: str = "umap",
    audit: bool = False,
    compare: int = 0,
    concepts: Mapping[str, str | os.PathLike] | None = None,
    random_images: str | os.PathLike | None = None,
    concept_layers: Sequence[int | str] | None = None,
    craft: int = 0,
    command: str = "",
) -> Report:
    """Evaluate ``model`` on ``source`` and write the report files into ``out_dir``:
    :func:`compute_report`, then :func:`render_report`, then :func:`save_report`.

    Everything is computed and rendered before the first file is written, each file atomically
    (:func:`explain.io.atomic_path`): on any error ``out_dir`` is left as it was (not created).

    Args:
        model: a Keras classifier taking raw pixels.
        source: the data (:func:`explain.dataset.evaluation.open_data`).
        out_dir: the folder to write (created if missing).
        model_path: the model file, for the summary and the model card.
        card: the :class:`~explain.models.ModelCard` (its class names are matched to the
            data's; its preprocessing mode is applied); default read from ``model_path``.
            Without class names the data's classes are taken to be the model's outputs in order.
        images, confusions, examples, top_k, batch_size, layer, image_size, progress, embedding,
            embedding_layer, embedding_method, audit, compare, concepts, random_images, concept_layers, craft: what
            the report shows and how, as the fields of :class:`ReportOptions`.
        command: the command line, printed in the page's footer.

    Returns:
        A :class:`Report`.

    Raises:
        ExplainError: (DataError, ImageLoadError, LayerError, ModelLoadError) bad data, image,
            layer or model; ``out_dir`` is a file.
        ValueError: bad numeric arguments; model outputs that are not a classifier's.
        OSError: a file could not be written.
    """
    given = locals()  # the arguments; the ReportOptions among them go on to compute_report
    options = {f.name: given[f.name] for f in fields(ReportOptions)}
    out_dir = _check_out_dir(out_dir)
    data = compute_report(model, source, card=card, model_path=model_path, **options)
    rendered = render_report(data, model_path=model_path, model_name=getattr(model, "name", "model"), command=command)
    return _saved(data, rendered, out_dir, save_report(rendered.files, out_dir))


# -- in memory, for an interactive view ----------------------------------------------------
@dataclass(frozen=True)
class ReportView:
    """A report computed and rendered in memory, with what an interactive view shows of it
    (:func:`report_view`).

    Attributes:
        files: ``{file name: bytes}`` as :func:`render_report` gives them (``report.html`` last).
        accuracy: overall accuracy in [0, 1].
        num_images: the images evaluated.
        confusions: ``((label, gallery file name), ...)``, most frequent first, only those with a gallery.
        notes: what a user should know (the report's notes).
        map: the feature-space map's points (:func:`explain.dataset.embedding.map_points`), or
            None without an embedding.
    """

    files: dict
    accuracy: float
    num_images: int
    confusions: tuple[tuple[str, str], ...]
    notes: tuple[str, ...]
    map: dict | None


def report_view(model, source, *, card=None, progress=False, examples: int = 6, command: str = "") -> ReportView:
    """Compute and render the report of ``model`` on ``source`` in memory, and the points of its map.

    Args:
        model: a Keras classifier taking raw pixels.
        source: the data (:func:`explain.dataset.evaluation.open_data`); the map's thumbnails are
            read from it again.
        card: the :class:`~explain.models.ModelCard` (its preprocessing and class names).
        progress: ``progress(stage, fraction)`` with fraction in [0, 1]; False for none, True for
            bars on stderr.
        examples: examples per confusion gallery.
        command: what made the report, printed in the page's footer.

    Returns:
        A :class:`ReportView`.

    Raises:
        ExplainError: bad data or model (as :func:`compute_report`).
        ValueError: model outputs that are not a classifier's.
    """
    from explain.dataset.embedding import map_points

    data = compute_report(model, source, card=card, progress=progress, examples=examples)
    rendered = render_report(data, model_name=getattr(model, "name", "model"), command=command)
    galleries = zip(data.galleries, rendered.galleries, strict=True)
    return ReportView(
        files=rendered.files,
        accuracy=float(data.evaluation.accuracy),
        num_images=int(data.evaluation.num_images),
        confusions=tuple((str(g.confusion), f) for g, f in galleries if f),
        notes=tuple(rendered.notes),
        map=map_points(data.embedding, source, data.input_size) if data.embedding else None,
    )
