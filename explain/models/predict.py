"""Class probabilities and the top-k predictions for images."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explain._quiet import quiet_import
from explain.models.scores import score_head
from explain.render.display import Displayable

quiet_import()
import keras  # noqa: E402


@dataclass(frozen=True)
class Prediction(Displayable):
    """The model's output for one image. In a notebook it shows its top-k bars.

    Attributes:
        probabilities: float32 ``(num_classes,)`` in [0, 1], summing to 1. A single sigmoid
            output ``p`` is expanded to two classes ``(1 - p, p)``.
        top_k: ``((class_index, class_name, probability), ...)`` most probable first.
        outputs_probabilities: False when the model outputs logits and explain applied the
            softmax (or sigmoid); decided once per model from its last layer
            (:mod:`explain.models.scores`).
        top_score: the top class's score: its logit where the model has logits (the
            pre-softmax score, for a binary model the logit of the class predicted, so >= 0),
            else its probability. Logits in the hundreds mean the model saw unscaled pixels.
        score_kind: ``"logit"`` or ``"probability"``: what ``top_score`` is.
    """

    probabilities: np.ndarray
    top_k: tuple[tuple[int, str, float], ...]
    outputs_probabilities: bool
    top_score: float = float("nan")
    score_kind: str = "logit"

    def figure(self, ax=None, *, title: str = ""):
        """The top-k classes as bars (:func:`explain.render.figures.top_k_bars`). Returns a ``Figure``."""
        from explain.render.figures import top_k_bars

        names = [f"class {i}" for i in range(len(self.probabilities))]
        for index, name, _ in self.top_k:
            names[index] = name
        return top_k_bars(self.probabilities, names, k=len(self.top_k), ax=ax, title=title)

    def as_dict(self) -> dict:
        """Plain types: ``{"top_k": [{"class_index", "class", "probability"}], "probabilities": (C,) array,
        "top_score", "score_kind", "outputs_probabilities"}`` (one row per class for a data frame)."""
        return {
            "top_k": [{"class_index": i, "class": n, "probability": float(p)} for i, n, p in self.top_k],
            "probabilities": self.probabilities,
            "top_score": float(self.top_score),
            "score_kind": self.score_kind,
            "outputs_probabilities": bool(self.outputs_probabilities),
        }


def predict(
    model: keras.Model,
    images: np.ndarray,
    class_names: list[str] | tuple[str, ...],
    k: int = 5,
    preprocess: str = "raw",
) -> list[Prediction]:
    """Predict class probabilities for a batch of images.

    Args:
        model: the classifier; raw pixels in.
        images: ``(N, H, W, C)`` or ``(H, W, C)``, raw pixels in [0, 255].
        class_names: one name per class (two for a single sigmoid output).
        k: how many top classes to list.
        preprocess: the model's preprocessing mode (:mod:`explain.models.preprocessing`), applied
            in front of the model.

    Returns:
        One :class:`Prediction` per image.

    Raises:
        ValueError: too few class names, or outputs that are not finite (e.g. NaN weights).
        ExplainError: the model's output is not ``(N, num_classes)``; an unknown
            preprocessing mode.
    """
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 3:
        x = x[None]
    head = score_head(model, preprocess)
    if len(class_names) < head.num_classes:
        raise ValueError(f"{len(class_names)} class names for {head.num_classes} classes.")
    scores, probs = head.predict_scores(x, batch_size=max(1, len(x)))
    result = []
    for p, z in zip(probs.astype(np.float32), scores, strict=True):
        top = np.argsort(-p, kind="stable")[: min(k, p.size)]
        top_k = tuple((int(i), str(class_names[i]), float(p[i])) for i in top)
        score = float(abs(z[0]) if z.size == 1 else z.max())
        result.append(Prediction(p, top_k, not head.outputs_logits, score, head.score_kind))
    return result
