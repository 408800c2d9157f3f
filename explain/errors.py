"""The project's own exceptions. Each message says what was wrong and how to fix it."""

from __future__ import annotations


class ExplainError(ValueError):
    """Base class: a user-facing problem with an input (file, layer, argument)."""


class ImageLoadError(ExplainError):
    """An image file or byte string could not be turned into pixels."""


class ModelLoadError(ExplainError):
    """A model file could not be loaded safely: missing, empty, truncated, not a Keras model,
    or refused because loading it would run code (a Lambda layer, a custom class)."""


class LayerError(ExplainError):
    """A layer index or name does not exist, or the layer cannot be used as asked."""


class DataError(ExplainError):
    """A data set (a folder of class subfolders or a built-in split) cannot be used as asked."""
