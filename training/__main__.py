"""CLI: ``python -m training {train,tune,evaluate} ...``.

    python -m training train --dataset fashion_mnist --out models/fashion_mnist_cnn.keras
    python -m training train --data photos/train --architecture transfer --base mobilenetv2 --out birds.keras
    python -m training tune --dataset fashion_mnist --learning-rates 1e-3 3e-4 --dropouts 0.2 0.4 --out tuned.keras
    python -m training evaluate models/fashion_mnist_cnn.keras --dataset fashion_mnist

``train`` is the default: ``python -m training --dataset fashion_mnist --out m.keras`` works too.
Errors a user can fix print one line on stderr and exit with code 2; nothing half-written
is left behind.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PROG = "python -m training"
COMMANDS = ("train", "tune", "evaluate")


def _data_args(p: argparse.ArgumentParser) -> None:
    from training.datasets import BUILTIN

    g = p.add_argument_group("data (one of --dataset or --data)")
    src = g.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", choices=sorted(BUILTIN), help="a built-in data set")
    src.add_argument("--data", metavar="DIR", help="a folder of class subfolders: DIR/<class>/*.jpg")
    g.add_argument("--data-dir", help="offline copy of a built-in data set (IDX files, or CIFAR-10 python batches)")
    g.add_argument("--val-dir", help="a separate validation folder (instead of --validation-split)")
    g.add_argument("--test-dir", help="an optional test folder with the same classes")
    g.add_argument("--validation-split", type=float, default=0.2, help="share held out for validation (default 0.2)")
    g.add_argument("--image-size", type=int, nargs=2, default=(150, 150), metavar=("H", "W"), help="folders only")
    g.add_argument("--color-mode", choices=("rgb", "grayscale"), default="rgb", help="folders only (default rgb)")
    g.add_argument("--batch-size", type=int, default=None, help="default 128 for built-in data, 32 for folders")
    g.add_argument("--limit", type=int, help="built-in data: use only the first N training images")
    g.add_argument("--seed", type=int, default=0, help="seeds the split, shuffling, weights and augmentation")


def _model_args(p: argparse.ArgumentParser) -> None:
    from training.architectures import ARCHITECTURES

    g = p.add_argument_group("model")
    g.add_argument("--architecture", default="small_cnn", choices=sorted(ARCHITECTURES))
    g.add_argument("--base", default="mobilenetv2", help="transfer: xception, mobilenetv2, efficientnetb0, resnet50")
    g.add_argument("--weights", default="imagenet", help="transfer: imagenet (needs internet), a weights file, or none")
    g.add_argument("--fine-tune-layers", type=int, default=0, help="transfer: unfreeze the top N base layers")
    g.add_argument("--rotation", type=float, default=0.0, help="augmentation: rotation as a fraction of 2*pi")
    g.add_argument("--shift", type=float, default=0.0, help="augmentation: translation as a fraction of the size")
    g.add_argument("--zoom", type=float, default=0.0, help="augmentation: zoom fraction")
    g.add_argument("--flip", choices=("horizontal", "vertical", "horizontal_and_vertical"), help="augmentation")
    g.add_argument("--optimizer", default="adam", choices=("adam", "sgd", "rmsprop"))
    g.add_argument("--epochs", type=int, default=10, help="most epochs (default 10)")
    g.add_argument("--patience", type=int, default=3, help="early-stopping patience on val_loss; 0 turns it off")
    g.add_argument(
        "--reduce-lr-patience", type=int, default=2, help="halve the learning rate after N flat epochs; 0: off"
    )
    g.add_argument(
        "--max-minutes", type=float, help="training-time budget: stop before an epoch that would end past it"
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Train image classifiers and write them with model cards.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train one model", description="Train one model; write .keras, .json, PNG.")
    _data_args(t)
    _model_args(t)
    t.add_argument("--learning-rate", type=float, default=1e-3)
    t.add_argument("--dropout", type=float, help="override the architecture's dropout rate")
    t.add_argument("--n-dense", type=int, help="override the architecture's dense units")
    t.add_argument("--resume", action="store_true", help="continue from the last checkpoint of this --out")
    t.add_argument("--explain-every", type=int, default=0, metavar="N",
                   help="every N epochs, Grad-CAM of fixed validation images to a PNG strip beside --out (0: off)")
    t.add_argument("--explain-images", type=int, default=8, help="images --explain-every explains (default 8)")
    t.add_argument("--tensorboard", metavar="DIR", help="with --explain-every: also write the maps to TensorBoard")
    t.add_argument("--out", required=True, help="the .keras file to write (card .json and curves .png beside it)")

    u = sub.add_parser("tune", help="grid search, then refit the best", description="Grid search with keras-tuner.")
    _data_args(u)
    _model_args(u)
    u.add_argument("--learning-rates", type=float, nargs="+", default=[1e-3, 3e-4])
    u.add_argument("--dropouts", type=float, nargs="+", default=[0.2, 0.4])
    u.add_argument("--dense-units", type=int, nargs="+", default=[64, 128])
    u.add_argument("--trial-epochs", type=int, default=3, help="epochs per grid point (default 3)")
    u.add_argument("--out", required=True, help="the best model's .keras; the grid's CSV and PNG go beside it")

    from explain.cli import MODEL_HELP, add_loading_arguments, add_preprocess_argument

    e = sub.add_parser("evaluate", help="evaluate a model", description="Evaluate a model on a test split.")
    e.add_argument("model", help=MODEL_HELP)
    src = e.add_mutually_exclusive_group(required=True)
    from training.datasets import BUILTIN

    src.add_argument("--dataset", choices=sorted(BUILTIN), help="a built-in data set's test split")
    src.add_argument("--data", metavar="DIR", help="a folder of class subfolders")
    e.add_argument("--data-dir", help="offline copy of a built-in data set")
    e.add_argument("--batch-size", type=int, default=128)
    add_preprocess_argument(e)
    add_loading_arguments(e)
    return p


def _prepare(args):
    from training.train import prepare_builtin, prepare_folder

    if args.dataset:
        return prepare_builtin(
            args.dataset,
            batch_size=args.batch_size or 128,
            validation_fraction=args.validation_split,
            seed=args.seed,
            data_dir=args.data_dir,
            limit=args.limit,
        )
    return prepare_folder(
        args.data,
        image_size=tuple(args.image_size),
        color_mode=args.color_mode,
        batch_size=args.batch_size or 32,
        validation_fraction=args.validation_split,
        val_dir=args.val_dir,
        test_dir=args.test_dir,
        seed=args.seed,
    )


def _common(args) -> dict:
    augmentation = {
        k: v
        for k, v in {"rotation": args.rotation, "shift": args.shift, "zoom": args.zoom, "flip": args.flip}.items()
        if v
    }
    arch_kwargs = {}
    if args.architecture == "transfer":
        weights = None if str(args.weights).lower() == "none" else args.weights
        arch_kwargs = {"base": args.base, "weights": weights, "fine_tune_layers": args.fine_tune_layers}
    return {
        "architecture": args.architecture,
        "epochs": args.epochs,
        "optimizer": args.optimizer,
        "augmentation": augmentation,
        "patience": args.patience,
        "reduce_lr_patience": args.reduce_lr_patience,
        "seed": args.seed,
        "max_minutes": args.max_minutes,
        "arch_kwargs": arch_kwargs,
    }


def _check(args, parser: argparse.ArgumentParser) -> None:
    if getattr(args, "batch_size", None) is not None and args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    if getattr(args, "epochs", 1) < 1:
        parser.error("--epochs must be at least 1")
    split = getattr(args, "validation_split", 0.2)
    if not 0 < split < 1:
        parser.error(f"--validation-split must be between 0 and 1, got {split}")
    if getattr(args, "dataset", None) and (getattr(args, "val_dir", None) or getattr(args, "test_dir", None)):
        parser.error("--val-dir and --test-dir go with --data (a folder), not with --dataset")
    if getattr(args, "out", None) and not args.out.endswith(".keras"):
        parser.error(f"--out must end in .keras, got {args.out}")


_FIT_ARGS = {
    "tune": ("learning_rates", "dropouts", "dense_units", "trial_epochs"),
    "train": ("learning_rate", "dropout", "n_dense", "resume", "explain"),
}
"""The arguments each fitting command passes on besides :func:`_common`'s."""


def _evaluate(args) -> int:
    from explain.cli import loading_options
    from training.evaluate import evaluate

    print(
        evaluate(
            args.model,
            dataset=args.dataset,
            folder=args.data,
            data_dir=args.data_dir,
            batch_size=args.batch_size,
            preprocess=args.preprocess,
            **loading_options(args),
        )
    )
    return 0


def _fit(args):
    """Run ``train`` or ``tune``; return the :class:`training.train.TrainingResult` written."""
    from training.train import train
    from training.tune import grid_search

    if args.command == "train":
        if args.explain_every < 0 or args.explain_images < 1:
            raise ValueError("--explain-every must be at least 0 and --explain-images at least 1.")
        if args.tensorboard and not args.explain_every:
            raise ValueError("--tensorboard writes the maps of --explain-every: give --explain-every N too.")
        args.explain = (
            {"every": args.explain_every, "images": args.explain_images, "tensorboard": args.tensorboard}
            if args.explain_every else None
        )

    data = _prepare(args)
    run = grid_search if args.command == "tune" else train
    result = run(data, args.out, **{name: getattr(args, name) for name in _FIT_ARGS[args.command]}, **_common(args))
    if args.command != "tune":
        return result
    print(f"Grid of {result.trials} combinations: {result.csv_path}, {result.chart_path}.")
    print(f"Best: {result.best}; refitted.")
    return result.training


def _run(args) -> int:
    if args.command == "evaluate":
        return _evaluate(args)
    training = _fit(args)
    test = f"test accuracy {training.test_accuracy:.2%}, " if training.test_accuracy is not None else ""
    print(
        f"Best validation accuracy {training.val_accuracy:.2%}, {test}after {training.epochs_run} epochs, "
        f"{training.training_time_s / 60:.1f} min of training.\n"
        f"Wrote {training.model_path}, {training.card_path} and {training.curves_path}."
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code (0 success, 2 user error, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in COMMANDS and argv[0] not in ("-h", "--help"):
        argv.insert(0, "train")  # `python -m training --dataset ... --out ...` means train
    from explain._quiet import quiet_import

    quiet_import()
    parser = _parser()
    args = parser.parse_args(argv)
    _check(args, parser)

    from training.architectures import WeightsError
    from training.datasets import DatasetError

    try:
        return _run(args)
    except (DatasetError, WeightsError, ValueError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"\n{PROG}: interrupted. The last finished epoch is checkpointed; run the same command "
            "with --resume to continue.",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
