"""Train the image classifiers that the Keras tutorials build, and write a model card.

``python -m training --dataset fashion_mnist --out models/fashion_mnist_cnn.keras``
trains the demo model. ``training`` imports only ``explain``'s lowest floor (model loading
and preprocessing, for ``evaluate``); see docs/architecture.md.
"""

from training.datasets import Dataset, DatasetError, load_builtin

__all__ = ["Dataset", "DatasetError", "load_builtin"]
