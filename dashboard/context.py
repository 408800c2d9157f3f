"""The one thing every tab gets: :class:`Ctx`, what the sidebar chose and the model predicted."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Ctx:
    """The model and the image a tab explains, and the model's prediction for the image.

    Attributes:
        model: the loaded Keras model (shared by every session: only ever read).
        model_key: a cache key for the model with the user's input scaling and class names.
        card: the model card with the user's choices (``card.preprocessing``, ``card.class_names``).
        pixels: the image as the model takes it, float32 ``(H, W, C)`` raw pixels in [0, 255].
        image_key: a cache key for the image's pixels (its bytes' digest and size).
        image_name: the image's name as the sidebar shows it.
        pred: the model's :class:`explain.models.predict.Prediction` for the image.
    """

    model: object
    model_key: str
    card: object
    pixels: np.ndarray
    image_key: str
    image_name: str
    pred: object

    @property
    def preprocess(self) -> str:
        """The input scaling every computation is given (the card's, or the user's choice)."""
        return self.card.preprocessing

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.card.class_names)

    @property
    def top_class(self) -> int:
        """The index of the top prediction."""
        return int(self.pred.top_k[0][0])
