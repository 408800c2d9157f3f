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


class NoSpatialLayerError(LayerError):
    """The model has no layer a class activation map can be drawn at, so no default target layer.

    Raised by :func:`explain.attribution.default_target_layer`; the report, the CLI and the
    dashboard answer it with a gradient method (saliency) instead of Grad-CAM.

    Attributes:
        reason: ``NoSpatialLayerError.NO_SPATIAL`` (no layer with a height x width output at all)
            or ``NoSpatialLayerError.ONLY_1X1`` (every spatial layer is 1x1: the images are too
            small for the network, and a map there would be flat).
        last_layer: the last 1x1 spatial layer's name (``ONLY_1X1``), which can still be asked
            for explicitly; None for ``NO_SPATIAL``.
    """

    NO_SPATIAL = "no_spatial"
    ONLY_1X1 = "only_1x1"

    def __init__(self, message: str, reason: str, last_layer: str | None = None):
        if reason not in (self.NO_SPATIAL, self.ONLY_1X1):
            raise ValueError(f"Unknown reason {reason!r}; use {self.NO_SPATIAL!r} or {self.ONLY_1X1!r}.")
        super().__init__(message)
        self.reason = reason
        self.last_layer = last_layer

    def __reduce__(self):
        return type(self), (str(self), self.reason, self.last_layer)


class DataError(ExplainError):
    """A data set (a folder of class subfolders or a built-in split) cannot be used as asked."""
