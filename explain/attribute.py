"""CLI: explain one image's prediction with an attribution method.

    python -m explain.attribute MODEL IMAGE --method gradcam [--class K] [--layer L]
        [--out overlay.png] [--npy heatmap.npy] [--scores] [--cmap jet] [--alpha 0.5]

``--method all`` draws every method side by side. User errors print one line on stderr and
exit with code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from explain.cli import MODEL_HELP, add_model_arguments, fail, open_model

PROG = "python -m explain.attribute"


def _parser(methods: list[str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Write a heatmap overlay explaining one image's prediction.",
        epilog=f"example: {PROG} models/fashion_mnist_cnn.keras sample_images/fashion_mnist_9_ankle_boot.png "
        "--method gradcam --scores",
    )
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("image", help="an image file")
    p.add_argument(
        "--method", default="gradcam", choices=[*methods, "all"], help="attribution method (default gradcam)"
    )
    p.add_argument("--class", dest="class_index", help="class index or name to explain (default: the top prediction)")
    p.add_argument("--layer", help="target layer for CAM methods: index, name or nested path (default: last spatial)")
    p.add_argument("--out", type=Path, help="PNG to write (default: <image>_<method>.png)")
    p.add_argument("--npy", type=Path, help="also save the float32 (H, W) heatmap in [0, 1] (one method only)")
    p.add_argument("--scores", action="store_true", help="print the deletion and insertion AUC (Petsiuk et al. 2018)")
    p.add_argument("--cmap", default="jet", help="matplotlib colormap (default jet)")
    p.add_argument("--alpha", type=float, default=0.5, help="heatmap opacity in [0, 1] (default 0.5)")
    add_model_arguments(p)
    return p


def _fail(message: str) -> int:
    return fail(PROG, message)


def _class_index(value: str | None, class_names: tuple[str, ...]) -> int | None:
    if value is None:
        return None
    if value.strip().lstrip("-").isdigit():
        return int(value)
    if value in class_names:
        return class_names.index(value)
    raise ValueError(f"No class named {value!r}. Classes are: {', '.join(class_names)}.")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI. Returns the exit code: 0 on success, 2 on a user error."""
    from explain.attribution import METHODS

    parser = _parser(list(METHODS))
    args = parser.parse_args(argv)
    if not 0.0 <= args.alpha <= 1.0:
        parser.error(f"--alpha must be in [0, 1], got {args.alpha}")
    if args.method == "all" and args.npy:
        parser.error("--npy saves one heatmap: choose one --method")

    import matplotlib

    if args.cmap not in matplotlib.colormaps:
        parser.error(f"unknown colormap {args.cmap!r}; try jet, viridis, inferno or magma")

    from explain.errors import ExplainError
    from explain.images import load_image
    from explain.io import atomic_path, save_figure
    from explain.plots import attribution_panel, heatmap_overlay, lime_boundaries
    from explain.preprocessing import saturation_hint

    try:
        model, card = open_model(args, PROG)
        h, w, c = card.input_shape
        image = load_image(args.image, target_size=(h, w) if h and w else None, channels=c)
        class_index = _class_index(args.class_index, card.class_names)
        names = list(METHODS) if args.method == "all" else [args.method]
        results, explainers = [], {}
        for name in names:
            kwargs = {"layer": args.layer} if METHODS[name].needs_layer else {}
            kwargs["preprocess"] = card.preprocessing
            try:
                explainers[name] = METHODS[name](model, **kwargs)
                results.append(explainers[name](image, class_index))
            except ExplainError as e:
                if args.method != "all" or "convolutional layer" not in str(e):
                    raise
                print(f"{name}: skipped ({e})", file=sys.stderr)
        scores = None
        if args.scores:
            from explain.metrics import deletion_insertion

            scores = [
                deletion_insertion(model, image[None], r.heatmap, r.class_index, preprocess=card.preprocessing)
                for r in results
            ]
    except (ExplainError, ValueError) as e:
        return _fail(str(e))

    first = results[0]
    k = int(first.class_index[0])
    what = f"class {k} {card.class_names[k]!r}" if k < len(card.class_names) else f"class {k}"
    labels = []
    for i, r in enumerate(results):
        label = r.method + (f"\n@ {r.layer}" if r.layer else "")
        if scores:
            s = scores[i]
            label += "\nflat" if s.flat[0] else f"\ndeletion {s.deletion_auc[0]:.3f} insertion {s.insertion_auc[0]:.3f}"
        labels.append(label)
    title = f"{Path(args.image).name}: {what}, {first.score_kind} {first.score[0]:.3f}"
    if len(results) == 1 and first.method == "lime":
        from matplotlib.figure import Figure

        fig = Figure(figsize=(8.4, 4.4), layout="constrained")
        left, right = fig.subplots(1, 2)
        heatmap_overlay(
            image,
            first.heatmap[0],
            title=labels[0],
            cmap=args.cmap,
            alpha=args.alpha,
            flat=bool(first.flat[0]),
            ax=left,
        )
        lime = explainers["lime"]
        lime_boundaries(image, lime.segments[0], lime.weights[0], num_features=lime.num_features, ax=right)
        fig.suptitle(title, fontsize=10)
    elif len(results) == 1:
        fig = heatmap_overlay(
            image,
            first.heatmap[0],
            title=f"{title}\n{labels[0]}",
            cmap=args.cmap,
            alpha=args.alpha,
            flat=bool(first.flat[0]),
            colorbar=True,
        )
    else:
        fig = attribution_panel(
            image,
            [(lab, r.heatmap[0], bool(r.flat[0])) for lab, r in zip(labels, results, strict=True)],
            title=title,
            cmap=args.cmap,
            alpha=args.alpha,
        )
    out = args.out or Path(f"{Path(args.image).stem}_{args.method.replace('+', 'p')}.png")
    try:
        save_figure(fig, out)
        if args.npy:
            import numpy as np

            with atomic_path(args.npy) as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, first.heatmap[0].astype(np.float32))
    except OSError as e:
        return _fail(f"Cannot write {e.filename or out}: {e.strerror or e}.")
    if first.score_kind == "probability":
        print(
            "note: the model's last layer is not a Dense or Activation with softmax/sigmoid, so the "
            "pre-softmax score could not be recovered; probabilities are explained (gradients may saturate)."
        )
    hint = saturation_hint(float(first.score[0]), card.preprocessing) if first.score_kind == "logit" else None
    if hint and card.preprocessing_from == "assumed":
        print(hint)
    for lab, r in zip(labels, results, strict=True):
        flat = " (flat heatmap: no information)" if r.flat[0] else ""
        print(f"{lab.replace(chr(10), ': ')}{flat}")
    print(
        f"Explained {what} ({first.score_kind} {first.score[0]:.3f}). Wrote {out}"
        + (f" and {args.npy}" if args.npy else "")
        + "."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
