"""LIME for images: Ribeiro et al. 2016, "Why Should I Trust You?": Explaining the
Predictions of Any Classifier", KDD, https://arxiv.org/abs/1602.04938.

The image is cut into superpixels; ``num_samples`` copies with random subsets of them
hidden (painted ``hide_color``) go through the model; a weighted linear model from "which
superpixels were on" to the class probability gives each superpixel a weight. The heatmap
paints each superpixel with its weight.

This adapter wraps ``lime.lime_image.LimeImageExplainer`` and fixes its traps:

* the model is called in large batches (``batch_size``, default 256, not lime's 10)
  through one compiled function;
* grayscale models work (lime assumes RGB: the image is repeated to three channels for
  lime, and channel 0 goes back to the model);
* both the segmentation and the sampling are seeded, so the same ``seed`` gives the same
  map. Note that lime's ``SegmentationAlgorithm(..., random_seed=...)`` silently drops
  ``random_seed`` for quickshift with current scikit-image (the argument is now ``rng``),
  so ``rng`` is passed explicitly;
* segments are relabelled 0..n-1 (lime assumes that; ``slic`` starts at 1 by default).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from explain._quiet import quiet_import
from explain.attribution.base import Attribution, AttributionMethod, normalize_maps
from explain.errors import ExplainError

quiet_import()
import tensorflow as tf  # noqa: E402

SEGMENTATIONS = ("quickshift", "slic", "felzenszwalb")


def _segmentation_params(algo: str, height: int, width: int, seed: int) -> dict:
    """Parameters giving roughly 10-50 superpixels from 28x28 to 224x224 images."""
    side = min(height, width)
    if algo == "quickshift":
        # lime's defaults (kernel_size=4, max_dist=200, ratio=0.2) suit 224x224 images; on
        # small images they give a single segment, so the kernel shrinks with the image.
        return {
            "kernel_size": float(np.clip(4.0 * side / 224.0, 1.0, 4.0)),
            "max_dist": 200,
            "ratio": 0.2,
            "rng": int(seed),
        }
    if algo == "slic":
        return {"n_segments": 50, "compactness": 10.0, "start_label": 0}
    return {"scale": 100.0, "sigma": 0.5, "min_size": max(4, height * width // 100)}


class _Segmenter:
    """Calls lime's ``SegmentationAlgorithm`` on the image scaled to [0, 1] (scikit-image's
    colour conversions expect that for floats) and relabels segments to 0..n-1."""

    def __init__(self, algo: str, params: dict):
        from lime.wrappers.scikit_image import SegmentationAlgorithm

        self.algo = SegmentationAlgorithm(algo, **params)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        seg = self.algo(np.clip(np.asarray(image, np.float64) / 255.0, 0.0, 1.0))
        return np.unique(seg, return_inverse=True)[1].reshape(seg.shape).astype(np.int64)


def _silence_lime_bar() -> None:
    """lime 0.2 draws a tqdm bar per explained image, with no argument to turn it off (a data set's worth of
    bars on stderr); explain reports progress itself (``progress``), so lime's bars are turned off."""
    import functools

    import lime.lime_image
    from tqdm.auto import tqdm

    if not isinstance(lime.lime_image.tqdm, functools.partial):
        lime.lime_image.tqdm = functools.partial(tqdm, disable=True)


@dataclass(frozen=True)
class LimeAttribution(Attribution):
    """LIME's result: an :class:`~explain.attribution.base.Attribution` that also carries the
    superpixels and their weights, for drawing superpixel boundaries
    (:func:`explain.render.figures.lime_boundaries`).

    Attributes:
        segments: one int64 ``(H, W)`` array of superpixel labels ``0..n-1`` per image.
        weights: one float32 ``(n,)`` array per image: each superpixel's signed LIME weight
            (0 outside the explanation's ``num_features`` superpixels, or, with
            ``positive_only``, where the weight is not positive).
        num_features: how many superpixels the explanation keeps.
    """

    segments: tuple[np.ndarray, ...] = ()
    weights: tuple[np.ndarray, ...] = ()
    num_features: int = 0


class LIME(AttributionMethod):
    """LIME superpixel attribution.

    Args:
        model: a Keras classifier taking raw pixels ``(N, H, W, C)`` in [0, 255], with
            ``C`` 1 (grayscale) or 3 (RGB).
        layer: ignored (LIME is model-agnostic); accepted for the shared call shape.
        batch_size: perturbed images per model call (and per lime ``classifier_fn`` call).
        num_samples: perturbed images per explained image.
        segmentation: ``"quickshift"`` (lime's default), ``"slic"`` or ``"felzenszwalb"``.
        num_features: superpixels kept in the explanation (lime's ``num_features``); the
            others get weight 0.
        positive_only: keep only superpixels with a positive weight (the others are 0).
        hide_color: pixel value in [0, 255] painted over hidden superpixels; None paints
            each superpixel with its mean colour (lime's convention).
        seed: seeds both the segmentation and lime's sampling: the same seed gives the same
            map.
        progress: optional ``(done, total) -> None`` called after each model batch, where
            ``total = num_samples * N`` for a call on ``N`` images.
        segmentation_params: overrides for the scikit-image segmentation function's
            parameters (e.g. ``{"n_segments": 100}`` for slic).
        preprocess: the model's preprocessing mode (:mod:`explain.models.preprocessing`); the
            superpixels are hidden in raw pixels, then preprocessed for the model.

    A call returns a :class:`LimeAttribution`: the superpixels and weights of each image travel
    with the result, and the explainer keeps no per-call state, so one explainer can serve
    several callers (dashboard sessions). It has ``method="lime"``,
    ``layer=None``, and the same ``score`` / ``score_kind`` as every other method (the
    class's logit where the model has one), although LIME's linear model fits the class
    probability. The heatmap is the weight map scaled to [0, 1] by its min
    and max, so with signed weights a weight of 0 is not drawn as 0; use ``positive_only``
    for a map where 0 means "no evidence for the class".

    Raises:
        ExplainError: the model has several outputs, a non-classifier output, or neither 1
            nor 3 input channels.
        ValueError: unknown segmentation, or non-positive ``num_samples`` / ``batch_size``.
    """

    name = "lime"
    reference = "Ribeiro et al. 2016, https://arxiv.org/abs/1602.04938"

    def __init__(
        self,
        model,
        layer: int | str | None = None,
        batch_size: int = 256,
        num_samples: int = 1000,
        segmentation: str = "quickshift",
        num_features: int = 5,
        positive_only: bool = False,
        hide_color: float | None = 0,
        seed: int = 0,
        progress: Callable[[int, int], None] | None = None,
        segmentation_params: dict | None = None,
        preprocess: str = "raw",
    ):
        super().__init__(model, layer=None, batch_size=batch_size, preprocess=preprocess)
        if segmentation not in SEGMENTATIONS:
            raise ValueError(f"Unknown segmentation {segmentation!r}. Segmentations are: {', '.join(SEGMENTATIONS)}.")
        if int(num_samples) < 1 or self.batch_size < 1:
            raise ValueError(f"num_samples and batch_size must be positive, got {num_samples} and {batch_size}.")
        channels = self.input_shape[-1]
        if channels not in (1, 3):
            raise ExplainError(
                f"LIME needs a grayscale (1 channel) or RGB (3 channels) model; this model takes {channels} channels."
            )
        self.grayscale = channels == 1
        self.num_samples = int(num_samples)
        self.segmentation = segmentation
        self.num_features = int(num_features)
        self.positive_only = bool(positive_only)
        self.hide_color = hide_color
        self.seed = int(seed)
        self.progress = progress
        self.segmentation_params = dict(segmentation_params or {})

    # -- the model as lime sees it -------------------------------------------------
    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities for images as lime passes them.

        Args:
            images: ``(B, H, W, 3)`` raw pixels in [0, 255] (RGB even for a grayscale
                model; channel 0 is used then).

        Returns:
            float64 ``(B, classes)`` probabilities (two columns ``(1 - p, p)`` for a
            sigmoid model), computed ``batch_size`` images per compiled model call.
        """
        x = np.asarray(images, dtype=np.float32)
        if self.grayscale:
            x = x[..., :1]
        return self.head.predict_probabilities(x, self.batch_size)

    # -- the call ---------------------------------------------------------------------
    def _explain_one(self, image: np.ndarray, cls: int, classifier_fn) -> tuple[np.ndarray, np.ndarray]:
        from lime.lime_image import LimeImageExplainer

        _silence_lime_bar()
        h, w = image.shape[:2]
        params = _segmentation_params(self.segmentation, h, w, self.seed)
        params.update(self.segmentation_params)
        explainer = LimeImageExplainer(random_state=self.seed)
        explanation = explainer.explain_instance(
            image,
            classifier_fn,
            labels=(cls,),
            top_labels=None,
            hide_color=self.hide_color,
            num_features=self.num_features,
            num_samples=self.num_samples,
            batch_size=self.batch_size,
            segmentation_fn=_Segmenter(self.segmentation, params),
            random_seed=self.seed,
        )
        segments = np.asarray(explanation.segments, dtype=np.int64)
        weights = np.zeros(int(segments.max()) + 1, dtype=np.float32)
        for feature, weight in explanation.local_exp[cls]:
            weights[int(feature)] = weight
        if self.positive_only:
            weights = np.where(weights > 0, weights, 0.0).astype(np.float32)
        return segments, weights

    def _classes_and_scores(self, x: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The classes to explain (``-1`` resolved to the top prediction) and their scores."""
        classes, scores = [], []
        for s in range(0, len(x), self.batch_size):
            cls, score = self.pick(
                self.scores_from_input(tf.convert_to_tensor(x[s : s + self.batch_size])),
                tf.convert_to_tensor(idx[s : s + self.batch_size]),
            )
            classes.append(cls.numpy())
            scores.append(score.numpy())
        return np.concatenate(classes).astype(np.int64), np.concatenate(scores).astype(np.float32)

    def _counting_classifier(self, total: int) -> Callable[[np.ndarray], np.ndarray]:
        """:meth:`predict_proba`, reporting samples done out of ``total`` to ``progress``."""
        done = 0

        def classifier_fn(batch: np.ndarray) -> np.ndarray:
            nonlocal done
            out = self.predict_proba(batch)
            done += len(batch)
            if self.progress is not None:
                self.progress(done, total)
            return out

        return classifier_fn

    def _explain_all(self, images, class_index) -> tuple[np.ndarray, np.ndarray, list, list]:
        """``(classes int64 (N,), scores float32 (N,), segments [(H, W) int64], weights [(S,) float32])``."""
        x, idx = self._check(images, class_index)  # also refuses an empty batch
        classes, scores = self._classes_and_scores(x, idx)
        classifier_fn = self._counting_classifier(self.num_samples * len(x))
        segments, weights = [], []
        for image, cls in zip(x, classes, strict=True):
            rgb = np.repeat(image, 3, axis=-1) if self.grayscale else image
            seg, wts = self._explain_one(rgb, int(cls), classifier_fn)
            segments.append(seg)
            weights.append(wts)
        return classes, scores, segments, weights

    def raw_maps(
        self, images: np.ndarray, class_index: int | np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each image's superpixel weights painted on its superpixels, not normalised.

        Returns:
            ``(maps float32 (N, H, W) at input resolution, class_index int64 (N,), score float32 (N,))``;
            as :meth:`AttributionMethod.raw_maps <explain.attribution.base.AttributionMethod.raw_maps>`.
        """
        classes, scores, segments, weights = self._explain_all(images, class_index)
        maps = np.stack([w[seg] for seg, w in zip(segments, weights, strict=True)]).astype(np.float32)
        return maps, classes, scores

    def __call__(self, images: np.ndarray, class_index: int | np.ndarray | None = None) -> LimeAttribution:
        """Explain a batch, one image at a time: arguments and errors as
        :meth:`AttributionMethod.__call__ <explain.attribution.base.AttributionMethod.__call__>`.

        Returns:
            A :class:`LimeAttribution` (heatmap float32 ``(N, H, W)`` in [0, 1], with each
            image's superpixels and weights).
        """
        classes, scores, segments, weights = self._explain_all(images, class_index)
        heat, flat = normalize_maps(np.stack([w[seg] for seg, w in zip(segments, weights, strict=True)]))
        return LimeAttribution(
            heatmap=heat,
            class_index=classes,
            score=scores,
            method=self.name,
            layer=None,
            score_kind=self.score_kind,
            flat=flat,
            segments=tuple(segments),
            weights=tuple(weights),
            num_features=self.num_features,
            images=self.head.check_batch(images)[0],
        )
