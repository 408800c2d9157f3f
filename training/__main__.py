"""CLI: ``python -m training --dataset fashion_mnist --out models/fashion_mnist_cnn.keras``.

Errors a user can fix print one line on stderr and exit with code 2.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PROG = "python -m training"


def _parser() -> argparse.ArgumentParser:
    from training.architectures import ARCHITECTURES
    from training.datasets import BUILTIN

    p = argparse.ArgumentParser(prog=PROG, description="Train an image classifier and write it with its model card.")
    p.add_argument("--dataset", required=True, choices=sorted(BUILTIN), help="built-in data set")
    p.add_argument("--out", required=True, help="the .keras file to write (the model card goes beside it as .json)")
    p.add_argument("--architecture", default="small_cnn", choices=sorted(ARCHITECTURES))
    p.add_argument("--data-dir", help="offline: a folder with the four IDX files (train-images-idx3-ubyte.gz, ...)")
    p.add_argument("--epochs", type=int, default=10, help="most epochs (early stopping may end sooner; default 10)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument(
        "--validation-fraction", type=float, default=0.1, help="share of the training split held out (default 0.1)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, help="use only the first N training images (quick trials)")
    p.add_argument(
        "--max-minutes", type=float, help="training-time budget: stop before an epoch that would end past it"
    )
    return p


def _import_tensorflow_quietly() -> None:
    """TensorFlow's C++ start-up lines (CUDA probing) bypass TF_CPP_MIN_LOG_LEVEL: mute fd 2 meanwhile."""
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow

        tensorflow.config.list_physical_devices()  # the CUDA probe prints too
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code (0 success, 2 user error)."""
    _import_tensorflow_quietly()
    args = _parser().parse_args(argv)
    from training.datasets import DatasetError
    from training.train import train_builtin

    try:
        result = train_builtin(
            args.dataset,
            args.out,
            architecture=args.architecture,
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            validation_fraction=args.validation_fraction,
            seed=args.seed,
            data_dir=args.data_dir,
            limit=args.limit,
            max_minutes=args.max_minutes,
        )
    except (DatasetError, ValueError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; nothing was written.", file=sys.stderr)
        return 130
    print(
        f"Test accuracy {result.test_accuracy:.2%} (loss {result.test_loss:.4f}) after {result.epochs_run} epochs, "
        f"{result.training_time_s / 60:.1f} min of training.\nWrote {result.model_path} and {result.card_path}."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
