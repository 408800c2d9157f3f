"""Train the image classifiers that the Keras tutorials build, and write a model card.

``python -m training --dataset fashion_mnist --out models/fashion_mnist_cnn.keras``
trains the demo model. ``training`` never imports ``explain`` (see DESIGN.md).
"""

from training.datasets import Dataset, DatasetError, load_builtin

__all__ = ["Dataset", "DatasetError", "load_builtin"]
