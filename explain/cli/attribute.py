"""CLI: explain one image's prediction with an attribution method.

    python -m explain.attribute MODEL IMAGE --method gradcam [--class K] [--layer L]
        [--out overlay.png] [--npy heatmap.npy] [--scores] [--more-scores] [--cmap jet] [--alpha 0.5]

``--method all`` draws every method side by side. User errors print one line on stderr and
exit with code 2. ``main`` runs four steps: parse the arguments, load the model and the
image, run the methods (and the scores), write the figure (and the ``.npy``).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from explain.cli import add_model_arguments, fail, model_parser, open_model

PROG = "python -m explain.attribute"


@dataclass
class _Run:
    """What one call computed: the results (one per method that ran), their deletion/insertion
    scores (or None without ``--scores``) and their other faithfulness scores (None without
    ``--more-scores``; ``{}`` for a flat map)."""

    results: list
    scores: list | None
    more: list | None = None


# -- parse ---------------------------------------------------------------------------------
def _parser(methods: list[str]) -> argparse.ArgumentParser:
    p = model_parser(
        PROG,
        "Write a heatmap overlay explaining one image's prediction.",
        "models/fashion_mnist_cnn.keras sample_images/fashion_mnist_9_ankle_boot.png --method gradcam --scores",
    )
    p.add_argument("image", help="an image file")
    p.add_argument(
        "--method", default="gradcam", choices=[*methods, "all"], help="attribution method (default gradcam)"
    )
    p.add_argument("--class", dest="class_index", help="class index or name to explain (default: the top prediction)")
    p.add_argument("--layer", help="target layer for CAM methods: index, name or nested path (default: last spatial)")
    p.add_argument("--out", type=Path, help="PNG to write (default: <image>_<method>.png)")
    p.add_argument("--npy", type=Path, help="also save the float32 (H, W) heatmap in [0, 1] (one method only)")
    p.add_argument("--scores", action="store_true", help="print the deletion and insertion AUC (Petsiuk et al. 2018)")
    p.add_argument(
        "--more-scores", action="store_true",
        help="also MuFidelity, ROAD (most / least relevant first) and stability: many more forward passes",
    )  # fmt: skip
    p.add_argument("--cmap", default="jet", help="matplotlib colormap (default jet)")
    p.add_argument("--alpha", type=float, default=0.5, help="heatmap opacity in [0, 1] (default 0.5)")
    add_model_arguments(p)
    return p


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """The checked arguments; a bad one exits 2 through ``parser.error``."""
    from explain.attribution import METHODS

    parser = _parser(list(METHODS))
    args = parser.parse_args(argv)
    if not 0.0 <= args.alpha <= 1.0:
        parser.error(f"--alpha must be in [0, 1], got {args.alpha}")
    if args.method == "all" and args.npy:
        parser.error("--npy saves one heatmap: choose one --method")

    from explain.render.pictures import colormap_lut

    try:
        colormap_lut(args.cmap)
    except ValueError:
        parser.error(f"unknown colormap {args.cmap!r}; try jet, viridis, inferno or magma")
    return args


# -- load ----------------------------------------------------------------------------------
def _class_index(value: str | None, class_names: tuple[str, ...]) -> int | None:
    if value is None:
        return None
    if value.strip().lstrip("-").isdigit():
        return int(value)
    if value in class_names:
        return class_names.index(value)
    raise ValueError(f"No class named {value!r}. Classes are: {', '.join(class_names)}.")


def _load(args: argparse.Namespace):
    """``(model, card, image uint8 (H, W, C), class index or None)``; raises ExplainError / ValueError."""
    from explain.images import load_image

    model, card = open_model(args, PROG)
    h, w, c = card.input_shape
    image = load_image(args.image, target_size=(h, w) if h and w else None, channels=c)
    return model, card, image, _class_index(args.class_index, card.class_names)


# -- run -----------------------------------------------------------------------------------
def _run(args: argparse.Namespace, model, card, image, class_index: int | None) -> _Run:
    """Run the chosen method (or all that apply to the model; with ``all`` a method that needs a
    convolutional layer is skipped on a model without one), then the scores when ``--scores`` asks
    for them."""
    from explain.attribution import METHODS, LayerAttribution, methods_for
    from explain.errors import NoSpatialLayerError

    names = methods_for(model) if args.method == "all" else [args.method]
    results, explainers = [], []
    for name in names:
        kwargs = {"layer": args.layer} if issubclass(METHODS[name], LayerAttribution) else {}
        try:
            explainers.append(METHODS[name](model, preprocess=card.preprocessing, **kwargs))
            results.append(explainers[-1](image, class_index))
        except NoSpatialLayerError as e:
            if args.method != "all":
                raise
            explainers.pop()  # never built
            print(f"{name}: skipped ({e})", file=sys.stderr)
    scores = None
    if args.scores or args.more_scores:
        from explain.metrics.faithfulness import deletion_insertion

        scores = [
            deletion_insertion(model, image[None], r.heatmap, r.class_index, preprocess=card.preprocessing)
            for r in results
        ]
    return _Run(results, scores, _more_scores(args, model, card, image, results, explainers))


def _more_scores(args, model, card, image, results, explainers) -> list | None:
    """MuFidelity, ROAD and stability per result (``{}`` for a flat map), with ``--more-scores``."""
    if not args.more_scores:
        return None
    from explain.dataset.compare import faithfulness_scores

    x = image[None].astype("float32")
    return [
        {} if r.flat[0] else faithfulness_scores(
            model, e, x, r.heatmap, r.class_index, preprocess=card.preprocessing, deletion=False
        )
        for r, e in zip(results, explainers, strict=True)
    ]  # fmt: skip


# -- write ---------------------------------------------------------------------------------
def _labels(run: _Run) -> list[str]:
    """One label per result (:func:`~explain.attribution.method_label`): the method and its layer, then
    (with ``--scores``) its AUCs on a second line."""
    from explain.attribution import method_label

    scores = run.scores or [None] * len(run.results)
    return [method_label(r.method, r.layer, s, sep="\n") for r, s in zip(run.results, scores, strict=True)]


def _figure(args: argparse.Namespace, image, run: _Run, labels: list[str], title: str):
    """One method: its overlay (LIME: beside its superpixels); several: side by side."""
    from explain.render.figures import attribution_panel, heatmap_overlay, picture_figure
    from explain.render.pictures import lime_picture, overlay, side_by_side

    first = run.results[0]
    style = {"cmap": args.cmap, "alpha": args.alpha, "flat": bool(first.flat[0])}
    if len(run.results) == 1 and first.method == "lime":
        shown = min(first.num_features, first.weights[0].size)
        pictures = [
            overlay(image, first.heatmap[0], **style),
            lime_picture(image, first.segments[0], first.weights[0], num_features=first.num_features),
        ]
        captions = [labels[0], f"LIME superpixels: green for, red against (top {shown})"]
        return picture_figure(side_by_side(pictures, captions), title=title)
    if len(run.results) == 1:
        return heatmap_overlay(image, first.heatmap[0], title=f"{title}\n{labels[0]}", colorbar=True, **style)
    maps = [(lab, r.heatmap[0], bool(r.flat[0])) for lab, r in zip(labels, run.results, strict=True)]
    return attribution_panel(image, maps, title=title, cmap=args.cmap, alpha=args.alpha)


def _out_path(args: argparse.Namespace) -> Path:
    """``--out``, else ``<image stem>_<method>.png`` in the current folder."""
    return args.out or Path(f"{Path(args.image).stem}_{args.method.replace('+', 'p')}.png")


def _write(args: argparse.Namespace, fig, heatmap) -> Path:
    """Save the figure (and ``--npy``: the float32 ``(H, W)`` heatmap), each atomically; return
    the PNG's path. Raises OSError."""
    from explain.io import atomic_path, save_figure

    out = _out_path(args)
    save_figure(fig, out)
    if args.npy:
        import numpy as np

        with atomic_path(args.npy) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, heatmap.astype(np.float32))
    return out


def _print_summary(args: argparse.Namespace, card, run: _Run, labels: list[str], what: str, out: Path) -> None:
    """The notes on the score explained, one line per method, and what was written."""
    from explain.models.preprocessing import saturation_hint

    first = run.results[0]
    if first.score_kind == "probability":
        print(
            "note: the model's last layer is not a Dense or Activation with softmax/sigmoid, so the "
            "pre-softmax score could not be recovered; probabilities are explained (gradients may saturate)."
        )
    hint = saturation_hint(float(first.score[0]), card.preprocessing) if first.score_kind == "logit" else None
    if hint and card.preprocessing_from == "assumed":
        print(hint)
    more = run.more or [None] * len(run.results)
    for lab, r, m in zip(labels, run.results, more, strict=True):
        flat = " (flat heatmap: no information)" if r.flat[0] and not run.scores else ""
        extra = (
            f" / MuFidelity {m['mufidelity']:.3f} (higher is better) / ROAD most relevant first "
            f"{m['road_morf']:.3f} (lower) / least relevant first {m['road_lerf']:.3f} (higher) / "
            f"stability {m['stability']:.3f} (lower)"
            if m
            else ""
        )
        print(f"{lab.replace(chr(10), ': ')}{flat}{extra}")
    print(
        f"Explained {what} ({first.score_kind} {first.score[0]:.3f}). Wrote {out}"
        + (f" and {args.npy}" if args.npy else "")
        + "."
    )


def main(argv: list[str] | None = None) -> int:
    """Run the CLI. Returns the exit code: 0 on success, 2 on a user error."""
    args = _parse(argv)

    from explain.errors import ExplainError

    try:
        model, card, image, class_index = _load(args)
        run = _run(args, model, card, image, class_index)
    except (ExplainError, ValueError) as e:
        return fail(PROG, str(e))

    first = run.results[0]
    k = int(first.class_index[0])
    what = f"class {k} {card.class_names[k]!r}" if k < len(card.class_names) else f"class {k}"
    labels = _labels(run)
    title = f"{Path(args.image).name}: {what}, {first.score_kind} {first.score[0]:.3f}"
    fig = _figure(args, image, run, labels, title)
    try:
        out = _write(args, fig, first.heatmap[0])
    except OSError as e:
        return fail(PROG, f"Cannot write {e.filename or _out_path(args)}: {e.strerror or e}.")
    _print_summary(args, card, run, labels, what, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
