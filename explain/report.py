"""A model report: which classes a model gets wrong and why, as figures, CSV, JSON and one HTML page.

    python -m explain.report MODEL DATA --out DIR [--images a.png b.png] [--confusions 5]
        [--examples 6] [--top-k 5] [--batch-size 256] [--layer L] [--image-size H W] [--no-progress]

DATA is a folder of class subfolders or a built-in split (``fashion_mnist:test``, ``mnist:test``,
``cifar10:test``). DIR receives:

* ``per_class_accuracy.png``: per-class accuracy, worst to best, with the percentage on each bar;
* ``confusion_matrix.png``: counts and row-normalised, side by side; ``confusion_matrix.csv``:
  class names as header and index, rows = true class;
* ``metrics.json``: precision, recall and F1 per class and overall accuracy (scikit-learn);
* ``confusion_01_<true>_as_<predicted>.png`` ...: the most frequent confusions, each a gallery of
  examples with Grad-CAM (Selvaraju et al. 2017) for the true and the predicted class side by
  side (saliency, Simonyan et al. 2013, for a model without a convolutional layer);
* ``top_k_predictions.png``: the top-k predictions for chosen images (default: a few misclassified);
* ``training_curves.png``: the model card's training history, when it has one;
* ``predictions.csv``: every image's true class, prediction and probability;
* ``report.html``: all of it in one self-contained page (images embedded), to e-mail.

Everything is computed before the first file is written, and every file is written atomically,
so a bad input or an interruption leaves DIR as it was. User errors print one line on stderr
and exit with code 2.
"""

from __future__ import annotations

import argparse
import base64
import csv
import datetime
import html
import io
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from explain.evaluation import Confusion, Evaluation

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from explain.cli import MODEL_HELP, add_model_arguments, fail, open_model

PROG = "python -m explain.report"

#: Names of the files every report writes (galleries and optional figures come on top).
PER_CLASS_PNG = "per_class_accuracy.png"
CONFUSION_PNG = "confusion_matrix.png"
CONFUSION_CSV = "confusion_matrix.csv"
METRICS_JSON = "metrics.json"
PREDICTIONS_CSV = "predictions.csv"
TOP_K_PNG = "top_k_predictions.png"
CURVES_PNG = "training_curves.png"
HTML_FILE = "report.html"


@dataclass(frozen=True)
class Report:
    """What :func:`write_report` wrote.

    Attributes:
        out_dir: the folder written to.
        files: every file written, ``report.html`` last.
        evaluation: the predictions and tallies (:class:`~explain.evaluation.Evaluation`).
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


def _slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()
    return s[:40] or "class"


def _png(fig, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _card_class_names(card) -> tuple[str, ...] | None:
    """The card's class names when they really name the classes (not ``"class i"``)."""
    return None if card.class_names_from == "indices" else tuple(card.class_names)


def _heatmap_method(model, layer, preprocess: str):
    """Grad-CAM at ``layer``; saliency when the model has no conv layer, or only 1x1 feature maps (and no
    layer was asked for)."""
    from explain.attribution import METHODS
    from explain.errors import ExplainError, LayerError

    try:
        return METHODS["gradcam"](model, layer=layer, preprocess=preprocess), None
    except LayerError as e:
        if layer is not None or "convolutional layer" not in str(e):
            raise
        # default_target_layer's two messages: no spatial layer at all, or only 1x1 ones.
        why = "only 1x1 feature maps at this image size" if "larger than 1x1" in str(e) else "no convolutional layer"
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
    from explain.evaluation import misclassified

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
) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f'<p class="sub">Generated {e(datetime.datetime.now().strftime("%Y-%m-%d %H:%M"))} by explain.report</p>',
        '<div class="kpi">' + "".join(f"<div><b>{e(v)}</b><span>{e(k)}</span></div>" for k, v in kpis) + "</div>",
        "<table>" + "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in summary) + "</table>",
    ]
    parts += [f'<p class="note">{e(n)}</p>' for n in notes]
    links = [("accuracy", "Per-class accuracy"), ("confusion", "Confusion matrix"), ("confusions", "Top confusions")]
    links += [("top-k", "Top-k predictions")] + ([("training", "Training curves")] if has_curves else [])
    parts.append("<nav>" + "".join(f'<a href="#{a}">{e(t)}</a>' for a, t in links) + "</nav>")

    parts.append('<h2 id="accuracy">Per-class accuracy</h2>')
    parts.append(_img(pngs[PER_CLASS_PNG], "per-class accuracy, worst to best"))
    rows = ["<table><tr><th>class</th><th>accuracy (recall)</th><th>precision</th><th>F1</th><th>images</th></tr>"]
    for name, m in metrics["per_class"].items():
        rows.append(
            f"<tr><td>{e(name)}</td><td class=n>{_fmt(m['recall'])}</td><td class=n>{_fmt(m['precision'])}</td>"
            f"<td class=n>{_fmt(m['f1-score'])}</td><td class=n>{m['support']:,}</td></tr>"
        )
    for key in ("macro avg", "weighted avg"):
        m = metrics[key]
        rows.append(
            f"<tr class=avg><td>{e(key)}</td><td class=n>{_fmt(m['recall'])}</td><td class=n>"
            f"{_fmt(m['precision'])}</td><td class=n>{_fmt(m['f1-score'])}</td><td class=n>{m['support']:,}</td></tr>"
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

    parts.append('<h2 id="confusions">Most frequent confusions</h2>')
    if not confusions:
        parts.append("<p>No image was misclassified.</p>")
    else:
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

    parts.append('<h2 id="top-k">Top-k predictions</h2>')
    parts.append(f"<p>{e(top_k_caption).replace('--images', '<code>--images</code>')}</p>")
    parts.append(_img(pngs[TOP_K_PNG], "top-k predictions"))

    if has_curves:
        parts.append('<h2 id="training">Training curves (from the model card)</h2>')
        parts.append(_img(pngs[CURVES_PNG], "training and validation curves"))

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
    return "\n".join(parts)


# -- the report ----------------------------------------------------------------------------
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
    command: str = "",
) -> Report:
    """Evaluate ``model`` on ``source`` and write the report files into ``out_dir``.

    Every input is checked (the chosen images are read, the heatmap method is built, the data
    classes are matched to the model's) before the long prediction pass, everything is
    computed before the first file is written, and each file is written atomically
    (:func:`explain.io.atomic_path`): on any error ``out_dir`` is left as it was (and is not
    created).

    Args:
        model: a Keras classifier taking raw pixels.
        source: the data (:func:`explain.evaluation.open_data`).
        out_dir: the folder to write (created if missing).
        model_path: the ``.keras`` file, for the summary and the model card.
        card: the :class:`~explain.models.ModelCard`; default read from ``model_path``. Its
            class names are matched to the data's; without a card the data's classes are taken
            to be the model's outputs in order.
        images: image files whose top-k predictions to show; default a few misclassified images.
        confusions: how many of the most frequent confusions get a gallery (>= 0).
        examples: images per gallery (>= 1).
        top_k: classes in the top-k bars (>= 1).
        batch_size: images per forward pass (>= 1).
        layer: Grad-CAM's target layer (index, name or nested path); default the last spatial one.
        image_size: ``(height, width)`` for a model that takes any size.
        progress: show a progress bar on stderr.
        command: the command line, printed in the page's footer.

    Returns:
        A :class:`Report`.

    Raises:
        ExplainError: (DataError, ImageLoadError, LayerError, ModelLoadError) bad data, image,
            layer or model; ``out_dir`` is a file.
        ValueError: bad numeric arguments; model outputs that are not a classifier's.
        OSError: a file could not be written.
    """
    from explain.errors import ExplainError
    from explain.evaluation import classification_metrics, evaluate_model, model_input_size, top_confusions
    from explain.images import load_image
    from explain.io import atomic_path
    from explain.models import load_model_card
    from explain.plots import (
        confusion_gallery,
        confusion_matrix_figure,
        per_class_accuracy_chart,
        top_k_grid,
        training_curves,
    )
    from explain.predict import predict
    from explain.preprocessing import DESCRIPTIONS

    for name, value, least in (("confusions", confusions, 0), ("examples", examples, 1), ("top_k", top_k, 1)):
        if value < least:
            raise ValueError(f"{name} must be at least {least}, got {value}.")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ExplainError(f"--out {out_dir} is a file; give a folder for the report.")
    card = card or load_model_card(model_path, model)
    h, w, c = model_input_size(model, source, image_size)
    chosen = [(Path(p), load_image(p, target_size=(h, w), channels=c)) for p in images or ()]
    explainer, method_note = _heatmap_method(model, layer, card.preprocessing)
    names_from_card = _card_class_names(card)

    result = evaluate_model(
        model,
        source,
        names_from_card,
        batch_size=batch_size,
        top_k=top_k,
        image_size=(h, w),
        progress=progress,
        preprocess=card.preprocessing,
    )
    names = result.class_names
    notes = [*card.notes, *result.notes] + ([method_note] if method_note else [])
    metrics = classification_metrics(result)
    top = top_confusions(result, confusions)

    pngs: dict[str, bytes] = {}
    pngs[PER_CLASS_PNG] = _png(
        per_class_accuracy_chart(
            result.per_class_accuracy,
            names,
            support=result.support,
            overall=result.accuracy,
            title=f"Per-class accuracy on {result.data}, worst to best ({result.num_images:,} images)",
        )
    )
    pngs[CONFUSION_PNG] = _png(
        confusion_matrix_figure(result.confusion, names, title=f"Confusion matrix on {result.data}")
    )

    method_label = {"gradcam": "Grad-CAM", "saliency": "saliency"}.get(explainer.name) if explainer else None
    if explainer is not None and explainer.name == "gradcam" and explainer.layer is not None:
        method_label += f" (layer {explainer.layer.name})"
    shown_confusions: list[tuple[str, str, str | None]] = []
    gallery_files: list[str] = []
    for k, conf in enumerate(top, 1):
        share = f"{conf.count / result.support[conf.true_index]:.1%} of the {conf.true_name} images"
        ex = conf.examples[:examples]
        imgs, kept, _ = source.load(result.source_indices[ex], (h, w), c)
        fname = None
        if len(kept):
            pos = {int(s): int(e) for s, e in zip(result.source_indices[ex], ex, strict=True)}
            ex = [pos[int(s)] for s in kept]
            labels = [
                f"{result.image_ids[i]} · {result.top_k_probabilities[i, 0]:.0%} {conf.predicted_name}" for i in ex
            ]
            if explainer is not None:
                a_true = explainer(imgs, conf.true_index)
                a_pred = explainer(imgs, conf.predicted_index)
                maps = (a_true.heatmap, a_pred.heatmap, a_true.flat, a_pred.flat)
            else:
                zeros = np.zeros(imgs.shape[:3], np.float32)
                maps = (zeros, zeros, np.ones(len(imgs), bool), np.ones(len(imgs), bool))
            fig = confusion_gallery(
                imgs,
                maps[0],
                maps[1],
                true_name=conf.true_name,
                predicted_name=conf.predicted_name,
                labels=labels,
                true_flat=maps[2],
                predicted_flat=maps[3],
                method={"gradcam": "Grad-CAM", "saliency": "Saliency"}.get(explainer.name, "") if explainer else "",
                title=f"{conf} ({share}); "
                + (f"the {len(ex)} most confident shown" if conf.count > len(ex) else "all shown"),
            )
            fname = f"confusion_{k:02d}_{_slug(conf.true_name)}_as_{_slug(conf.predicted_name)}.png"
            pngs[fname] = _png(fig, dpi=90)
            gallery_files.append(fname)
        shown_confusions.append((str(conf), share, fname))

    if chosen:
        x = np.stack([img for _, img in chosen])
        titles = [p.name for p, _ in chosen]
        caption = "The images chosen with --images, with the model's most probable classes."
    else:
        picks = _pick_examples(result, 6)
        x, kept, _ = source.load(result.source_indices[picks], (h, w), c)
        by_source = {int(result.source_indices[i]): i for i in picks}
        picks = [by_source[int(s)] for s in kept]
        titles = [
            f"{result.image_ids[i]} · true: {names[result.y_true[i]]}"
            + ("" if result.y_true[i] == result.y_pred[i] else " ✗")
            for i in picks
        ]
        caption = (
            "Misclassified images where the model hesitated most (lowest top probability; one per true class "
            "first), with its most probable classes. Choose other images with --images."
            if (result.y_true != result.y_pred).any()
            else "No image was misclassified: the first images of the data."
        )
    probs = np.stack([p.probabilities for p in predict(model, x, names, k=top_k, preprocess=card.preprocessing)])
    pngs[TOP_K_PNG] = _png(top_k_grid(x, probs, names, k=top_k, titles=titles))

    history = card.raw.get("history") if card.from_file else None
    has_curves = False
    if isinstance(history, dict) and history:
        best = card.raw.get("best_epoch")
        try:
            fig = training_curves(
                history,
                best_epoch=best if isinstance(best, int) else None,
                title=f"Training history of {Path(model_path).name if model_path else 'the model'} (model card)",
            )
            pngs[CURVES_PNG] = _png(fig)
            has_curves = True
        except ValueError as e:
            notes.append(f"The model card's training history could not be drawn: {e}")

    model_name = Path(model_path).name if model_path else getattr(model, "name", "model")
    metrics_doc = {
        "model": str(model_path) if model_path else model_name,
        "data": result.data,
        **metrics,
        "class_names": list(names),
        "top_confusions": [
            {"true": cf.true_name, "predicted": cf.predicted_name, "count": cf.count, "gallery": g}
            for cf, (_, _, g) in zip(top, shown_confusions, strict=True)
        ],
        "classes_without_images": list(result.classes_without_images),
        "skipped_files": [{"image": i, "reason": r} for i, r in result.skipped],
        "heatmap_method": explainer.name if explainer else None,
        "notes": notes,
    }
    files: dict[str, bytes] = {
        **{n: pngs[n] for n in (PER_CLASS_PNG, CONFUSION_PNG)},
        CONFUSION_CSV: _confusion_csv(result),
        METRICS_JSON: (json.dumps(metrics_doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode(),
        PREDICTIONS_CSV: _predictions_csv(result),
        **{g: pngs[g] for g in gallery_files},
        TOP_K_PNG: pngs[TOP_K_PNG],
        **({CURVES_PNG: pngs[CURVES_PNG]} if has_curves else {}),
    }

    arch = card.raw.get("architecture") if card.from_file else None
    trained_on = card.dataset or "unknown (no model card)"
    summary = [
        ("Model", model_name + (f" ({arch})" if arch else "")),
        ("Input", f"{h}x{w}x{c} ({'grayscale' if c == 1 else 'RGB'}), {len(names)} classes"),
        ("Preprocessing", f"{card.preprocessing}: {DESCRIPTIONS[card.preprocessing]}"),
        ("Trained on", trained_on),
        ("Data", f"{result.data}: {result.num_images:,} images"),
        ("Heatmaps", method_label or "none"),
    ]
    if result.skipped:
        summary[3] = ("Data", f"{result.data}: {result.num_images:,} images, {len(result.skipped)} unreadable skipped")
    kpis = [("accuracy", f"{result.accuracy:.1%}"), ("images", f"{result.num_images:,}")]
    if card.test_accuracy is not None:
        kpis.append(("test accuracy in the model card", f"{card.test_accuracy:.1%}"))
    if top:
        kpis.append(("most frequent confusion", f"{top[0].count:,}"))
    listed = [*files, HTML_FILE]
    page = _html(
        title=f"Model report: {model_name} on {result.data}",
        summary=summary,
        kpis=kpis,
        notes=notes,
        metrics=metrics,
        result=result,
        pngs=pngs,
        confusions=shown_confusions,
        method_label=method_label,
        top_k_caption=caption,
        has_curves=has_curves,
        files=listed,
        command=command or f"write_report({model_name!r}, {result.data!r})",
    )
    files[HTML_FILE] = page.encode("utf-8")

    written = []
    for name, data in files.items():
        with atomic_path(out_dir / name) as tmp:
            tmp.write_bytes(data)
        written.append(out_dir / name)
    return Report(
        out_dir=out_dir,
        files=tuple(written),
        evaluation=result,
        confusions=top,
        galleries=tuple(out_dir / g for g in gallery_files),
        heatmap_method=explainer.name if explainer else None,
        notes=tuple(notes),
    )


# -- CLI -----------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Evaluate a model on a data set and write a report: per-class accuracy, confusion matrix, "
        "metrics, the most frequent confusions with Grad-CAM, and one self-contained HTML page.",
        epilog=f"example: {PROG} models/fashion_mnist_cnn.keras fashion_mnist:test --out report/",
    )
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument(
        "data", help="a folder of class subfolders, or a built-in split: fashion_mnist:test, mnist:test, cifar10:test"
    )
    p.add_argument("--out", type=Path, default=Path("report"), help="folder to write (default: report)")
    p.add_argument("--images", nargs="+", metavar="IMAGE", help="images whose top-k predictions to show")
    p.add_argument("--confusions", type=int, default=5, help="most frequent confusions shown (default 5)")
    p.add_argument("--examples", type=int, default=6, help="images per confusion gallery (default 6)")
    p.add_argument("--top-k", type=int, default=5, help="classes in the top-k bars (default 5)")
    p.add_argument("--batch-size", type=int, default=256, help="images per forward pass (default 256)")
    p.add_argument("--layer", help="Grad-CAM target layer: index, name or nested path (default: last spatial)")
    p.add_argument(
        "--image-size", type=int, nargs=2, metavar=("H", "W"), help="for a model that accepts any image size"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_model_arguments(p)
    return p


def _fail(message: str) -> int:
    return fail(PROG, message)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI. Returns the exit code: 0 on success, 2 on a user error, 130 on Ctrl-C."""
    parser = _parser()
    args = parser.parse_args(argv)
    for flag, value, least in (
        ("--confusions", args.confusions, 0),
        ("--examples", args.examples, 1),
        ("--top-k", args.top_k, 1),
        ("--batch-size", args.batch_size, 1),
    ):
        if value < least:
            parser.error(f"{flag} must be at least {least}, got {value}")
    if args.image_size and min(args.image_size) < 1:
        parser.error(f"--image-size must be positive, got {args.image_size}")

    from explain.errors import ExplainError
    from explain.evaluation import open_data
    command = " ".join([PROG, *(sys.argv[1:] if argv is None else argv)])
    try:
        model, card = open_model(args, PROG)
        source = open_data(args.data)
        report = write_report(
            model,
            source,
            args.out,
            model_path=args.model,
            card=card,
            images=args.images,
            confusions=args.confusions,
            examples=args.examples,
            top_k=args.top_k,
            batch_size=args.batch_size,
            layer=args.layer,
            image_size=tuple(args.image_size) if args.image_size else None,
            progress=not args.no_progress,
            command=command,
        )
    except (ExplainError, ValueError) as e:
        return _fail(str(e))
    except OSError as e:
        return _fail(f"Cannot write {e.filename or args.out}: {e.strerror or e}.")
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted before the report was complete.", file=sys.stderr)
        return 130

    r = report.evaluation
    print(f"Accuracy {r.accuracy:.1%} on {r.num_images:,} images of {r.data}.")
    for note in report.notes:
        if note not in card.notes:  # those were printed when the model was opened
            print(f"Note: {note}")
    if report.confusions:
        print("Most frequent confusions:")
        for c in report.confusions:
            print(f"  {c}")
    print(f"Wrote {len(report.files)} files to {report.out_dir}; open {report.out_dir / HTML_FILE}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
