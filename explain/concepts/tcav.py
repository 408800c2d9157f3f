"""TCAV: Testing with Concept Activation Vectors.

Kim, Wattenberg, Gilmer, Cai, Wexler, Viegas & Sayres 2018, "Interpretability Beyond Feature
Attribution: Quantitative Testing with Concept Activation Vectors (TCAV)", ICML,
https://arxiv.org/abs/1711.11279. Reference implementation: https://github.com/tensorflow/tcav.

A concept is a folder of example images ("stripes"). At a layer ``l``:

1. The concept activation vector (CAV) ``v_C`` is the normal of a linear classifier separating the
   concept's activations ``f_l(x)`` from those of random images (scikit-learn's logistic regression on
   the flattened activations, trained on two thirds of the examples; its accuracy on the other third is
   reported as ``cav_accuracy``). ``v_C`` points towards the concept and has unit length.
2. The conceptual sensitivity of an image ``x`` of class ``k`` is the directional derivative
   ``S(x) = grad_{f_l} h_k(f_l(x)) . v_C`` of the class score ``h_k`` (the pre-softmax logit where the
   model has one).
3. The TCAV score is the fraction of the class's images with ``S(x) > 0``.
4. Statistical testing (the paper's section 3.3): the CAV is learnt ``runs`` times, each time against
   another random set, giving ``runs`` scores; a random-vs-random CAV (one more random set against
   each of those) gives the null distribution. A two-sided t-test (Student's, as the reference
   implementation's ``scipy.stats.ttest_ind``) compares the two; the concept is significant when
   ``p < alpha / number of concepts`` (Bonferroni).

The random sets are disjoint: the random folder is shuffled (seeded) and cut into ``runs + 1`` sets
``R_0 ... R_runs`` of equal size. Run ``i`` learns the concept against ``R_{i+1}``, and the null's CAV
``R_i`` against ``R_{i+1}``. The reference implementation keeps one random set as the null's "concept"
in every run; that conditions the whole null distribution on one set (on a model whose class gradients
barely vary, every null run then scores the same, and a random "concept" comes out significant), so here
each null run has its own.

"Significant" is the two-sided test's answer: a concept whose score is far BELOW the null's (it pushes
the class's score down) is significant too. :attr:`ConceptTCAV.direction` says which way.

Cost: one forward pass per concept and random image and layer, one forward and backward pass per class
image and layer; the CAVs are cheap. Memory: the flattened activations of the concept and random images
at one layer, and one batch of gradients.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from explain.concepts._latent import (
    MIN_CONCEPT_IMAGES,
    LatentModel,
    class_images,
    class_index_of,
    concept_files,
    read_concept_folder,
)
from explain.data import DataSource, open_data
from explain.errors import DataError, ExplainError
from explain.render.display import Displayable

#: Runs below this are refused: the paper's statistical test uses at least 10 random sets.
MIN_RUNS = 10


@dataclass(frozen=True)
class ConceptTCAV:
    """One concept at one layer for one class.

    Attributes:
        name: the concept's name.
        scores: float64 ``(runs,)``: the TCAV score (fraction in [0, 1]) against each random set.
        cav_accuracies: float64 ``(runs,)``: each CAV's held-out accuracy in [0, 1].
        p_value: the two-sided t-test's p-value of ``scores`` against the random-vs-random scores
            (1.0 when both are constant and equal).
        significant: ``p_value < alpha / number of concepts`` (Bonferroni).
        cavs: float32 ``(runs, D)``: the unit CAVs in the layer's flattened activation space.
    """

    name: str
    scores: np.ndarray
    cav_accuracies: np.ndarray
    p_value: float
    significant: bool
    cavs: np.ndarray

    @property
    def score_mean(self) -> float:
        return float(np.mean(self.scores))

    @property
    def score_std(self) -> float:
        return float(np.std(self.scores))

    @property
    def cav_accuracy(self) -> float:
        return float(np.mean(self.cav_accuracies))

    @property
    def direction(self) -> str:
        """``"drives"`` (significant, mean score above 0.5: the concept raises the class's score),
        ``"opposes"`` (significant, below 0.5) or ``"none"`` (not significant)."""
        if not self.significant:
            return "none"
        return "drives" if self.score_mean > 0.5 else "opposes"

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "score_mean": self.score_mean,
            "score_std": self.score_std,
            "p_value": float(self.p_value),
            "significant": bool(self.significant),
            "cav_accuracy": self.cav_accuracy,
            "direction": self.direction,
            "scores": [float(s) for s in self.scores],
            "cav_accuracies": [float(a) for a in self.cav_accuracies],
        }


@dataclass(frozen=True)
class LayerTCAV:
    """Every concept at one layer for one class, with the random-vs-random baseline's scores
    ``random_scores`` float64 ``(runs,)``."""

    layer: str
    concepts: tuple[ConceptTCAV, ...]
    random_scores: np.ndarray

    def as_dict(self) -> dict:
        return {
            "layer": self.layer,
            "concepts": [c.as_dict() for c in self.concepts],
            "random_score_mean": float(np.mean(self.random_scores)),
            "random_score_std": float(np.std(self.random_scores)),
        }


@dataclass(frozen=True)
class ClassTCAV:
    """TCAV for one class: its name and index, how many of its images were scored, one entry per layer."""

    class_name: str
    class_index: int
    images: int
    layers: tuple[LayerTCAV, ...]

    def as_dict(self) -> dict:
        return {"class": self.class_name, "images": self.images, "layers": [layer.as_dict() for layer in self.layers]}


@dataclass(frozen=True)
class TCAVResult(Displayable):
    """What :func:`tcav` returns. In a notebook it shows its bars (:func:`explain.render.figures.tcav_bars`)
    above a table of every class, layer and concept.

    Attributes:
        classes: one :class:`ClassTCAV` per class asked for, in order.
        runs: random sets per concept. random_set_size: images in each random set.
        alpha: the significance level before the Bonferroni correction. seed: the seed used.
        concept_images: ``{concept: number of images}``.
    """

    classes: tuple[ClassTCAV, ...]
    runs: int
    random_set_size: int
    alpha: float
    seed: int
    concept_images: Mapping[str, int]

    def figure(self, ax=None):
        """Each concept's mean TCAV score with its spread, significance marked, a panel per class
        (:func:`explain.render.figures.tcav_bars`). Returns a ``matplotlib.figure.Figure``."""
        from explain.render.figures import tcav_bars

        return tcav_bars(self, ax=ax)

    def table(self):
        """``(headers, rows)``: class, layer, concept, mean score, p-value, significant, direction, CAV accuracy."""
        headers = ["class", "layer", "concept", "TCAV score", "p-value", "significant", "direction", "CAV accuracy"]
        rows = []
        for c in self.classes:
            for layer in c.layers:
                for k in layer.concepts:
                    d = k.as_dict()
                    rows.append([c.class_name, layer.layer, k.name, d["score_mean"], d["p_value"],
                                 "yes" if d["significant"] else "no", d.get("direction", ""), d["cav_accuracy"]])
        return headers, rows

    def as_dict(self) -> dict:
        """``{"runs", "random_set_size", "alpha", "seed", "concept_images", "classes": [...]}``; each class as
        ``{"class", "images", "layers": [{"layer", "concepts": [{"name", "score_mean", "score_std", "p_value",
        "significant", "cav_accuracy", "scores"}], "random_score_mean", "random_score_std"}]}``."""
        return {
            "runs": self.runs,
            "random_set_size": self.random_set_size,
            "alpha": self.alpha,
            "seed": self.seed,
            "concept_images": dict(self.concept_images),
            "classes": [c.as_dict() for c in self.classes],
        }


def fit_cav(concept: np.ndarray, random: np.ndarray, seed: int) -> tuple[np.ndarray, float]:
    """A concept activation vector: the unit normal of a logistic regression separating two sets.

    scikit-learn's ``LogisticRegression`` (L2 penalty, ``C=1``, Newton-Cholesky solver, balanced class weights
    so sets of different sizes count equally, unpenalised intercept) trained on a stratified, seeded 2/3 of the examples
    (``train_test_split``); its accuracy on the other third is returned. The activations are first divided
    by their root mean square (one number for all of them, so the direction is unchanged): the penalty then
    weighs the same at every layer, whatever its scale (a random-weight network's deep activations are
    around 1e-9, where an unscaled penalty leaves ``w = 0``).

    The fit is done in the span of the training examples, which is exact and fast: with an L2 penalty the
    optimal weights lie in that span (the representer theorem). With the Gram matrix ``X X^T = U L U^T`` of
    the ``n`` training examples, the regression on their ``n`` coordinates ``X V = U L^(1/2)`` (``V = X^T U
    L^(-1/2)``, an orthonormal basis of the span) gives ``beta`` and the weights ``w = V beta``, with the
    same loss, penalty and predictions as a fit on all ``D`` features, at a cost of ``O(n^2 D)`` instead
    of iterations over ``D`` (a conv layer's ``D`` is tens of thousands).

    Args:
        concept: float ``(n_c, D)`` flattened activations of the concept's images.
        random: float ``(n_r, D)`` those of random images.
        seed: the seed of the split.

    Returns:
        ``(cav float32 (D,) of unit length pointing towards the concept, held-out accuracy in [0, 1])``.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    x = np.concatenate([concept, random]).astype(np.float64)
    y = np.r_[np.ones(len(concept)), np.zeros(len(random))]
    x = x / max(float(np.sqrt(np.mean(x**2))), np.finfo(np.float64).tiny)  # one scale: C means the same at any layer
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=1 / 3, stratify=y, random_state=seed)
    lam, u = np.linalg.eigh(x_train @ x_train.T)
    keep = lam > lam.max(initial=0.0) * 1e-12  # the span's dimensions (rank r <= n)
    u, scale = u[:, keep], np.sqrt(lam[keep])
    classifier = LogisticRegression(class_weight="balanced", solver="newton-cholesky", max_iter=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        classifier.fit(u * scale, y_train)
    w = x_train.T @ (u @ (classifier.coef_[0] / scale))
    norm = np.linalg.norm(w)
    cav = w / norm if norm > 0 else w
    accuracy = classifier.score((x_test @ x_train.T) @ u / scale, y_test)
    return cav.astype(np.float32), float(accuracy)


def t_test(scores: np.ndarray, null: np.ndarray) -> float:
    """The two-sided p-value of Student's t-test of ``scores`` against ``null`` (``scipy.stats.ttest_ind``,
    equal variances, as the reference implementation); 1.0 when both are constant and equal."""
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nearly constant scores: scipy warns, the p-value stands
        p = float(stats.ttest_ind(scores, null).pvalue)
    return 1.0 if not np.isfinite(p) else p


def random_sets(n: int, runs: int, seed: int) -> list[np.ndarray]:
    """``runs + 1`` disjoint, equal, seeded sets of indices into ``n`` random images.

    Raises:
        DataError: fewer than ``(runs + 1) * MIN_CONCEPT_IMAGES`` images.
    """
    size = n // (runs + 1)
    if size < MIN_CONCEPT_IMAGES:
        raise DataError(
            f"The random folder has {n} images; {runs} runs need at least {(runs + 1) * MIN_CONCEPT_IMAGES} "
            f"({runs + 1} disjoint random sets of {MIN_CONCEPT_IMAGES}: one per run, and one for the "
            f"random-vs-random baseline). Add random images{' or ask for fewer runs' if runs > MIN_RUNS else ''}."
        )
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(order[i * size : (i + 1) * size]) for i in range(runs + 1)]


def _flat(a: np.ndarray) -> np.ndarray:
    return a.reshape(len(a), -1)


def _layer_cavs(
    concept_acts: Mapping[str, np.ndarray], random_acts: np.ndarray, sets: list[np.ndarray], seed: int
) -> tuple[dict, dict, np.ndarray]:
    """``(cavs {concept: (runs, D)}, accuracies {concept: (runs,)}, null cavs (runs, D))`` at one layer."""
    cavs, accuracies = {}, {}
    runs = len(sets) - 1
    for name, acts in concept_acts.items():
        fitted = [fit_cav(acts, random_acts[sets[i + 1]], seed + i) for i in range(runs)]
        cavs[name] = np.stack([c for c, _ in fitted])
        accuracies[name] = np.array([a for _, a in fitted])
    null = np.stack([fit_cav(random_acts[sets[i]], random_acts[sets[i + 1]], seed + i)[0] for i in range(runs)])
    return cavs, accuracies, null


def tcav_scores(latent: LatentModel, images: np.ndarray, class_index: int, cavs: np.ndarray) -> np.ndarray:
    """The TCAV scores of many CAVs for one class: float64 ``(M,)``, the fraction of ``images`` (raw pixels
    ``(N, H, W, C)``) whose class score has a positive directional derivative along each of ``cavs``
    float32 ``(M, D)``. The gradients are streamed: one batch of them is held at a time."""
    positive = np.zeros(len(cavs))
    for start in range(0, len(images), latent.batch_size):
        _, grads = latent.activations_and_gradients(images[start : start + latent.batch_size], class_index)
        positive += (_flat(grads).astype(np.float64) @ cavs.T.astype(np.float64) > 0).sum(axis=0)
    return positive / len(images)


def _read_all(concepts, listed, random, random_files, latent, progress) -> tuple[dict, np.ndarray]:
    size, channels = latent.image_size, latent.channels
    pixels = {name: read_concept_folder(folder, f"concept {name!r}", size, channels, progress, listed[name])
              for name, folder in concepts.items()}
    return pixels, read_concept_folder(random, "random", size, channels, progress, random_files)


def _check_arguments(concepts, layers, classes, runs) -> None:
    if not concepts:
        raise ExplainError("TCAV needs at least one concept: a name and a folder of its images.")
    if not layers:
        raise ExplainError("TCAV needs at least one layer (an index, a name or a nested path).")
    if not classes:
        raise ExplainError("TCAV needs at least one class to test.")
    if int(runs) != runs or runs < MIN_RUNS:
        raise ExplainError(
            f"runs must be a whole number of at least {MIN_RUNS} (the paper's statistical test), got {runs}."
        )


def tcav(
    model,
    concepts: Mapping[str, str | os.PathLike],
    random: str | os.PathLike,
    layers: Sequence[int | str],
    classes: Sequence[str | int],
    data: str | os.PathLike | DataSource | None = None,
    *,
    runs: int = 10,
    seed: int = 0,
    alpha: float = 0.05,
    max_images: int = 200,
    preprocess: str = "raw",
    class_names: Sequence[str] | None = None,
    batch_size: int = 32,
    progress: Callable[[str, float], None] | None = None,
) -> TCAVResult:
    """Test whether human concepts drive classes: TCAV (Kim et al. 2018, https://arxiv.org/abs/1711.11279).

    Args:
        model: a Keras classifier taking raw pixels ``(N, H, W, C)`` in [0, 255].
        concepts: ``{name: folder of example images}``; any size and format, at least 10 readable images.
        random: a folder of random images, at least ``(runs + 1) * 10`` (cut into disjoint random sets).
        layers: the layers to test at (index, name or nested path), any layer with a fixed output size.
        classes: the classes to test (names, or indices).
        data: where each class's images come from (a folder of class folders, ``"name:split"`` or a
            :class:`~explain.data.DataSource`); its true labels pick them.
        runs: random sets per concept, >= 10. seed: seeds the random sets, the splits and the sample.
        alpha: significance level before the Bonferroni correction over the concepts.
        max_images: at most this many images per class are scored (a seeded sample).
        preprocess: the model's preprocessing mode. class_names: the model's class names (default: the
            data's). batch_size: images per compiled call.
        progress: called as ``progress(stage, fraction done in [0, 1])``.

    Returns:
        A frozen :class:`TCAVResult`.

    Raises:
        DataError: a missing concept or random folder, fewer than 10 images in one or unreadable images in
            it (listed), too few random images for the runs, data without images of a class.
        ExplainError: a class the model does not have; fewer than 10 runs; no concept, layer, class or data.
        LayerError: no such layer.
    """
    _check_arguments(concepts, layers, classes, runs)
    if data is None:
        raise ExplainError(
            "TCAV scores each class on its images: pass data= (a folder of class folders, a split such as "
            "'fashion_mnist:test', or a DataSource)."
        )
    runs = int(runs)
    latents = [LatentModel(model, layer, batch_size, preprocess) for layer in layers]
    source = data if isinstance(data, DataSource) else open_data(data)  # opened once for every class
    source_names = class_names or source.class_names
    targets = [class_index_of(c, source_names) for c in classes]
    listed = {n: concept_files(f, f"concept {n!r}") for n, f in concepts.items()}
    random_files = concept_files(random, "random")
    sets = random_sets(len(random_files), runs, seed)
    tick = _ticker(progress, sum(map(len, listed.values())) + len(random_files))
    pixels, random_pixels = _read_all(
        concepts, listed, random, random_files, latents[0], lambda k: tick("reading concept images", k)
    )
    per_class = [
        class_images(source, t, source_names, latents[0].image_size, latents[0].channels, max_images, seed)
        for t in targets
    ]
    by_layer = []
    with threadpool_limits(limits=1, user_api="blas"):  # small products: BLAS threads only spin (20-200x slower)
        for li, latent in enumerate(latents):
            by_layer.append(_one_layer(latent, pixels, random_pixels, sets, per_class, targets, seed))
            _report(progress, f"CAVs and scores at {latent.layer.name}", 0.5 + 0.5 * (li + 1) / len(latents))
    _report(progress, "done", 1.0)
    result = [
        _class_result(str(source_names[t]), t, len(per_class[ci][0]), by_layer, ci, runs, alpha, len(concepts))
        for ci, t in enumerate(targets)
    ]
    return TCAVResult(tuple(result), runs, len(sets[0]), alpha, seed, {n: len(p) for n, p in pixels.items()})


def _one_layer(latent, pixels, random_pixels, sets, per_class, targets, seed) -> tuple:
    """``(layer name, cavs, accuracies, scores per class)`` at one layer: activations, CAVs, TCAV scores."""
    acts = {name: _flat(latent.activations(p)) for name, p in pixels.items()}
    cavs, accuracies, null = _layer_cavs(acts, _flat(latent.activations(random_pixels)), sets, seed)
    stacked = np.concatenate([*cavs.values(), null])
    scored = [tcav_scores(latent, images, t, stacked) for (images, _), t in zip(per_class, targets, strict=True)]
    return latent.layer.name, cavs, accuracies, scored


def _class_result(name, index, n_images, by_layer, ci, runs, alpha, n_concepts) -> ClassTCAV:
    layers = []
    for layer_name, cavs, accuracies, scored in by_layer:
        scores = scored[ci]
        null = scores[-runs:]
        concepts = []
        for k, concept in enumerate(cavs):
            own = scores[k * runs : (k + 1) * runs]
            p = t_test(own, null)
            concepts.append(
                ConceptTCAV(concept, own, accuracies[concept], p, p < alpha / n_concepts, cavs[concept])
            )
        layers.append(LayerTCAV(layer_name, tuple(concepts), null))
    return ClassTCAV(name, index, n_images, tuple(layers))


def _report(progress, stage: str, fraction: float) -> None:
    if progress is not None:
        progress(stage, float(min(max(fraction, 0.0), 1.0)))


def _ticker(progress, total: int) -> Callable[[str, int], None]:
    done = [0]

    def tick(stage: str, k: int) -> None:
        done[0] += k
        _report(progress, stage, 0.5 * done[0] / max(total, 1))

    return tick
