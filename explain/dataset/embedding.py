"""The whole data set as a map of the model's own feature space.

Each image goes once through the model (in order, in batches, as :func:`evaluate_model` reads
it); one compiled pass gives both its class probabilities and the activations of one layer,
by default the classifier head's input (the penultimate layer). Spatial activations are
global-average-pooled, so each image is one feature vector. The vectors are reduced with PCA
(to :data:`PCA_COMPONENTS` dimensions when they have more than :data:`PCA_ABOVE`) and projected to 2-D:

- ``"umap"``: UMAP, McInnes, Healy & Melville 2018, https://arxiv.org/abs/1802.03426
  (``umap-learn``), the default;
- ``"tsne"``: t-SNE, van der Maaten & Hinton 2008, https://jmlr.org/papers/v9/vandermaaten08a.html,
  with FFT-accelerated gradients (``openTSNE``, Poličar et al. 2019);
- ``"pca"``: the first two principal components, exact and instant.

Every method is seeded and deterministic, and no step builds an N x N matrix: neighbours are
found with a k-nearest-neighbour search (memory O(N k)). The standard pictures this follows are
TensorBoard's Embedding Projector and Karpathy's t-SNE of CNN codes.

Typical use::

    emb = embed(model, open_data("fashion_mnist:test"), card.class_names)
    embedding_map(emb).savefig("embedding.png")      # explain.render.figures
    for a in look_alikes(emb, 10):
        print(emb.image_ids[a.index], "looks like", emb.class_names[a.looks_like])
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from explain._quiet import quiet_import
from explain.dataset.evaluation import DataSource, Evaluation, _evaluation, _plan, _predict_source, load_rows
from explain.errors import DataError, ExplainError, LayerError
from explain.features.activations import _symbolic_outputs
from explain.models.graph import own_node, single
from explain.models.layers import LayerInfo, layer_table, resolve_layer
from explain.models.layouts import to_grid
from explain.models.preprocessing import from_raw_pixels
from explain.models.scores import _producer
from explain.render.display import Displayable

quiet_import()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

__all__ = ["METHODS", "Embedding", "LookAlike", "check_method", "embed", "feature_layer", "look_alikes", "project"]

#: Projection methods, the default first.
METHODS = ("umap", "tsne", "pca")
#: The fewest images a map is drawn for (UMAP and t-SNE need neighbours).
MIN_IMAGES = 10
#: Feature vectors longer than :data:`PCA_ABOVE` are reduced to this many principal components first.
PCA_COMPONENTS = 50
PCA_ABOVE = 256
#: UMAP's optimisation epochs: its own choice above 10,000 points, used below too (it would take
#: 500 there: 2.5 times the time for a map that no longer changes visibly).
UMAP_EPOCHS = 200
#: Neighbours kept per image, in feature space.
NEIGHBORS = 10
#: Layers that are the identity at inference; the default layer is looked for before them.
_IDENTITY_AT_INFERENCE = {
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
}
_OUTPUT_ACTIVATIONS = {"Activation", "Softmax"}


@dataclass(frozen=True)
class Embedding(Displayable):
    """A data set projected to 2-D from one layer's features. In a notebook it shows its map.

    Attributes:
        coordinates: float32 ``(N, 2)``, the map (arbitrary units: only distances matter).
        y_true, y_pred: int64 ``(N,)``: true class and top prediction (indices into ``class_names``).
        confidence: float32 ``(N,)`` in [0, 1], the top prediction's probability.
        image_ids: N labels (file paths, or ``"fashion_mnist:test #17"``).
        source_indices: int64 ``(N,)``: each image's index in the data source (to read it again).
        class_names: the model's classes.
        neighbors: int64 ``(N, k)``: each image's k nearest other images in feature space (after
            PCA), nearest first (rows of this result).
        layer: the layer the features come from (a name or nested path).
        feature_shape: that layer's output shape without the batch axis, e.g. ``(128,)`` or ``(7, 7, 64)``
            (feature maps as a grid, channels last: a channels-first or token layer as read for pooling).
        method: ``"umap"``, ``"tsne"`` or ``"pca"``.
        evaluation: the predictions as an :class:`~explain.dataset.evaluation.Evaluation` (the same pass).
        notes: what a user should know (pooling, PCA, skipped files, class matching).
    """

    coordinates: np.ndarray
    y_true: np.ndarray
    y_pred: np.ndarray
    confidence: np.ndarray
    image_ids: tuple[str, ...]
    source_indices: np.ndarray
    class_names: tuple[str, ...]
    neighbors: np.ndarray
    layer: str
    feature_shape: tuple[int, ...]
    method: str
    evaluation: Evaluation
    notes: tuple[str, ...] = ()

    @property
    def num_images(self) -> int:
        """N, the number of points."""
        return len(self.y_true)

    def figure(self, ax=None, *, title: str | None = None):
        """The map, a dot per image in its true class's colour, mistakes as crosses
        (:func:`explain.render.figures.embedding_map`). Returns a ``matplotlib.figure.Figure``."""
        from explain.render.figures import embedding_map

        return embedding_map(self, ax=ax, title=title)

    @property
    def misclassified(self) -> np.ndarray:
        """bool ``(N,)``: the top prediction is not the true class."""
        return self.y_true != self.y_pred

    @property
    def neighbor_agreement(self) -> np.ndarray:
        """float64 ``(N,)`` in [0, 1]: the share of each image's neighbours with its own true class."""
        return np.mean(self.y_true[self.neighbors] == self.y_true[:, None], axis=1)


@dataclass(frozen=True)
class LookAlike:
    """An image whose nearest neighbours in feature space are mostly of another class.

    Attributes:
        index: the image, a row of the :class:`Embedding`.
        looks_like: the class most of its neighbours have (an index into ``class_names``).
        share: the share of its neighbours with that class, in (0.5, 1].
    """

    index: int
    looks_like: int
    share: float


# -- the layer ------------------------------------------------------------------------------------
def _default_layer(model: keras.Model) -> str:
    """The classifier head's input: the layer that feeds the last ``Dense`` (or whatever layer
    classifies), looking past layers that are the identity at inference (``Dropout``), and inside
    a nested model that is itself the classifier (a ``keras.applications`` network with its top)."""
    top = [r for r in layer_table(model) if r.index is not None and r.type != "InputLayer"]
    names = [r.name for r in top]
    i = len(top) - 1
    while i >= 0 and top[i].type in _OUTPUT_ACTIVATIONS:
        i -= 1  # a separate softmax after the classifier's Dense
    if i < 0:
        raise LayerError(f"{model.name!r} has no layer that classifies; pass the layer to take features from.")
    classifier = model.get_layer(top[i].name)
    if isinstance(classifier, keras.Model):  # a whole network nested, its classifier inside it
        return f"{classifier.name}/{_default_layer(classifier)}"
    node_inputs = own_node(model, classifier).input_tensors
    producer = _producer(node_inputs[0]) if len(node_inputs) == 1 else None
    while producer is not None and type(producer).__name__ in _IDENTITY_AT_INFERENCE:
        producer = _producer(own_node(model, producer).input_tensors[0])
    if producer is None or producer.name not in names:
        raise LayerError(
            f"The classifier layer {top[i].name!r} of {model.name!r} takes the model's input (or several inputs): "
            "there is no feature layer before it. Pass the layer to take features from."
        )
    return producer.name


def feature_layer(model: keras.Model, layer: int | str | None = None) -> tuple[LayerInfo, list[str]]:
    """The layer an embedding takes its features from, and what a user should know about it.

    Args:
        model: the classifier.
        layer: an index, name or nested path (as in the layer table); None for the classifier
            head's input (the last layer before the final ``Dense``, ``Dropout`` skipped).

    Returns:
        ``(its row of the layer table, notes)``: a spatial layer is global-average-pooled
        (noted with its map size).

    Raises:
        LayerError: an unknown layer; the input layer; a layer whose output is not
            ``(batch, features)``, ``(batch, steps, features)`` or ``(batch, H, W, C)``.
    """
    info = resolve_layer(model, _default_layer(model) if layer is None else layer)
    if info.type == "InputLayer":
        raise LayerError(f"{info.name!r} is the input layer: its pixels are not features. Choose a later layer.")
    shape = info.feature_shape
    if len(shape) not in (1, 2, 3) or shape[-1] is None or shape[-1] < 2:
        raise LayerError(
            f"Layer {info.name!r} ({info.type}) has output shape {info.output_shape}, not a vector of at least 2 "
            "features per image (or feature maps to pool): choose a Dense, pooling or convolutional layer."
        )
    notes = []
    if len(shape) > 1:
        area = "x".join("?" if d is None else str(d) for d in shape[:-1])
        notes.append(
            f"Layer {info.name!r} gives {area} maps of {shape[-1]} channels: each channel is averaged over the "
            f"map (global average pooling), so each image is {shape[-1]} features."
        )
    return info, notes


def _joint_forward(model: keras.Model, head, info: LayerInfo, preprocess: str) -> Callable:
    """``images -> (float32 pooled features (B, D), float32 probabilities (B, C))`` in one
    compiled pass through ``model`` (the probabilities as the score head gives them); feature maps
    are pooled as a grid (channels first or tokens read by :func:`explain.models.layouts.to_grid`)."""
    feats = to_grid(_symbolic_outputs(model, [info.name])[info.name], info.layout, info.grid)
    joint = from_raw_pixels(keras.Model(single(model.inputs), [feats, head.tensor]), preprocess)

    @tf.function(reduce_retracing=True, autograph=False)
    def run(x):
        a, t = joint(x, training=False)
        a = tf.cast(a, tf.float32)
        if len(a.shape) > 2:
            a = tf.reduce_mean(a, axis=list(range(1, len(a.shape) - 1)))
        return a, tf.cast(head.to_probabilities(head.to_scores(t)), tf.float32)

    return lambda images: tuple(np.asarray(o) for o in run(tf.constant(images, tf.float32)))


# -- the projection --------------------------------------------------------------------------------
def _check_features(features: np.ndarray, data: DataSource, idx: np.ndarray, layer: str) -> None:
    bad = ~np.isfinite(features).all(axis=1)
    if bad.any():
        first = data.image_id(int(idx[int(np.argmax(bad))]))
        raise ExplainError(
            f"Layer {layer!r} gave NaN or infinite activations for {int(bad.sum())} of {len(bad)} images "
            f"(the first: {first}): check the input scaling (preprocessing) and the model's weights."
        )


def _reduce(features: np.ndarray, seed: int) -> tuple[np.ndarray, str | None]:
    """PCA to :data:`PCA_COMPONENTS` dimensions for features longer than :data:`PCA_ABOVE` (randomised SVD)."""
    n, d = features.shape
    if d <= PCA_ABOVE or n <= PCA_COMPONENTS:
        return features, None
    from sklearn.decomposition import PCA

    pca = PCA(n_components=PCA_COMPONENTS, svd_solver="randomized", random_state=seed)
    reduced = pca.fit_transform(features).astype(np.float32)
    kept = float(np.sum(pca.explained_variance_ratio_))
    return reduced, f"{d} features reduced to {PCA_COMPONENTS} principal components ({kept:.0%} of the variance)."


def _neighbors(x: np.ndarray, k: int) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(x) - 1)
    nn = NearestNeighbors(n_neighbors=k + 1).fit(x)
    idx = nn.kneighbors(x, return_distance=False)
    # Each point is normally its own nearest neighbour; drop it (or the last one, for duplicates).
    keep = idx != np.arange(len(x))[:, None]
    keep[keep.all(axis=1), -1] = False
    return idx[keep].reshape(len(x), k).astype(np.int64)


def _project_2d(x: np.ndarray, method: str, seed: int) -> np.ndarray:
    n = len(x)
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(x)
    if method == "tsne":
        from openTSNE import TSNE

        return np.asarray(TSNE(perplexity=min(30.0, (n - 1) / 3), random_state=seed, n_jobs=1).fit(x))
    import umap

    with warnings.catch_warnings():  # "n_jobs overridden by setting random_state": wanted, for determinism
        warnings.simplefilter("ignore")
        reducer = umap.UMAP(
            n_neighbors=min(15, n - 1),
            min_dist=0.1,
            n_epochs=UMAP_EPOCHS,
            random_state=seed,  # seeded: single-threaded, the same map every time
            n_jobs=1,
            low_memory=True,
        )
        return reducer.fit_transform(x)


def check_method(method: str) -> str:
    """``method`` lower-cased; an :class:`ExplainError` naming :data:`METHODS` when unknown."""
    name = str(method).strip().lower()
    if name not in METHODS:
        raise ExplainError(f"Unknown projection {method!r}: choose one of {', '.join(METHODS)}.")
    return name


def project(features: np.ndarray, method: str = "umap", seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Project feature vectors to 2-D.

    Args:
        features: float ``(N, D)``, N >= :data:`MIN_IMAGES`, finite.
        method: one of :data:`METHODS`.
        seed: the random seed (same seed, same map).

    Returns:
        ``(float32 coordinates (N, 2), int64 neighbours (N, k) in feature space, notes)``.

    Raises:
        ExplainError: an unknown method; fewer than :data:`MIN_IMAGES` rows.
    """
    method = check_method(method)
    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 2 or len(x) < MIN_IMAGES:
        raise ExplainError(f"A map needs at least {MIN_IMAGES} feature vectors (N, D), got shape {x.shape}.")
    reduced, note = _reduce(x, seed)
    coords = np.asarray(_project_2d(reduced, method, seed), dtype=np.float32)
    return coords, _neighbors(reduced, NEIGHBORS), [note] if note else []


def _stderr_step(stage: str, fraction: float) -> None:
    if fraction == 0.0:
        print(f"{stage}…", file=sys.stderr, flush=True)


# -- the whole job ----------------------------------------------------------------------------------
def embed(
    model: keras.Model,
    data: DataSource,
    class_names: Sequence[str] | None = None,
    *,
    layer: int | str | None = None,
    method: str = "umap",
    seed: int = 0,
    batch_size: int = 256,
    top_k: int = 5,
    image_size: tuple[int, int] | None = None,
    preprocess: str = "raw",
    progress: bool | Callable[[str, float], None] = True,
) -> Embedding:
    """Map a data set through one layer of ``model`` to 2-D, with its predictions.

    Args:
        model: a Keras classifier with one image input and one ``(batch, classes)`` output.
        data: the data set (:func:`explain.dataset.evaluation.open_data`), read in order, never
            shuffled; only ``batch_size`` images are in memory at a time (the features are
            ``N x D`` float32).
        class_names: the model's classes, as for :func:`~explain.dataset.evaluation.evaluate_model`.
        layer: where the features come from (see :func:`feature_layer`); None for the
            classifier head's input.
        method: ``"umap"`` (default), ``"tsne"`` or ``"pca"``.
        seed: the projection's random seed.
        batch_size, top_k, image_size, preprocess: as for ``evaluate_model``.
        progress: True for progress bars on stderr; a callable ``(stage, fraction in [0, 1])``
            (the dashboard's progress bar); False for none.

    Returns:
        An :class:`Embedding`; its ``evaluation`` is the data set's evaluation from the same pass.

    Raises:
        DataError: fewer than :data:`MIN_IMAGES` readable images; everything
            ``evaluate_model`` raises about the data.
        LayerError: a layer without features (:func:`feature_layer`).
        ExplainError: NaN or infinite activations; an unknown method.
        ValueError: model outputs that are not finite.
    """
    method = check_method(method)
    if len(data) < MIN_IMAGES:
        raise DataError(
            f"{data.name} has {len(data)} images; a map needs at least {MIN_IMAGES} (each point is placed by its "
            "neighbours). Use a larger data set."
        )
    info, notes = feature_layer(model, layer)
    plan = _plan(model, data, class_names, image_size, preprocess, batch_size)
    forward = _joint_forward(model, plan.head, info, preprocess)
    step = progress if callable(progress) else _stderr_step if progress else (lambda stage, fraction: None)
    ticks = (lambda done, total: step("Features", done / max(total, 1))) if callable(progress) else progress
    idx, (features, probs), skipped = _predict_source(plan, data, batch_size, ticks, forward)
    _check_features(features, data, idx, info.name)
    if not np.isfinite(probs).all():
        raise ValueError("The model's outputs are not finite (NaN or infinity): its weights may be broken.")
    evaluation = _evaluation(plan, data, idx, probs, skipped, top_k)
    if len(idx) < MIN_IMAGES:
        raise DataError(f"Only {len(idx)} images of {data.name} could be read; a map needs at least {MIN_IMAGES}.")
    step(f"Projecting {len(idx):,} points ({method})", 0.0)
    coords, neighbors, more = project(features, method, seed)
    step("Done", 1.0)
    return Embedding(
        coordinates=coords,
        y_true=evaluation.y_true,
        y_pred=evaluation.y_pred,
        confidence=evaluation.top_k_probabilities[:, 0].astype(np.float32),
        image_ids=evaluation.image_ids,
        source_indices=evaluation.source_indices,
        class_names=evaluation.class_names,
        neighbors=neighbors,
        layer=info.name,
        feature_shape=info.feature_shape,
        method=method,
        evaluation=evaluation,
        notes=(*evaluation.notes, *notes, *more),
    )


def look_alikes(emb: Embedding, n: int = 10) -> tuple[LookAlike, ...]:
    """The ``n`` images that look most like another class to the model: most of their nearest
    neighbours in feature space have another true class ("looks like a Shirt to the model").

    Ranked by that class's share of the neighbours, then by how confident the model is, then by
    row; an image is listed only when more than half of its neighbours agree on another class.

    Args:
        emb: an :class:`Embedding`.
        n: how many at most (>= 0).

    Returns:
        Up to ``n`` :class:`LookAlike`, most convincing first.
    """
    c = len(emb.class_names)
    k = emb.neighbors.shape[1]
    counts = np.zeros((emb.num_images, c), np.int64)
    np.add.at(counts, (np.arange(emb.num_images)[:, None], emb.y_true[emb.neighbors]), 1)
    counts[np.arange(emb.num_images), emb.y_true] = -1  # only other classes
    other = np.argmax(counts, axis=1)
    share = counts[np.arange(emb.num_images), other] / max(k, 1)
    rows = np.nonzero(share > 0.5)[0]
    order = sorted(rows, key=lambda i: (-share[i], -emb.confidence[i], i))[: max(0, int(n))]
    return tuple(LookAlike(int(i), int(other[i]), float(share[i])) for i in order)


#: Points on an interactive map at most: every mistake, then a seeded sample of the rest.
MAP_POINTS = 4000


def _thumbnail_uri(image: np.ndarray) -> str:
    """A ``data:image/png;base64,...`` URI of a uint8 image enlarged to at least 84 pixels."""
    import base64

    from explain.render.pictures import encode_png, enlarge

    return "data:image/png;base64," + base64.b64encode(encode_png(enlarge(image, 84, rgb=False))).decode("ascii")


def map_points(emb: Embedding, source: DataSource, size: tuple[int, int, int], max_points: int = MAP_POINTS) -> dict:
    """The map's points as chart columns, for an interactive map: every misclassified image first,
    then a seeded sample of the others, at most ``max_points`` (images that can no longer be read
    are left out).

    Args:
        emb: the data set's :class:`Embedding`.
        source: the data source it was computed on (the thumbnails are read from it again).
        size: ``(H, W, C)`` to read the images at (the report's ``input_size``).
        max_points: points kept at most (the mistakes first, all of them if they are more).

    Returns:
        A dict of equal-length lists, one item per point: ``x``, ``y`` (float map coordinates),
        ``row`` (int, the row of ``emb``), ``index`` (int, the image's index in ``source``),
        ``id`` (its label), ``true`` (its true class name), ``predicted`` (``"name (93%)"``),
        ``colour`` (the true class, or the predicted one for a mistake), ``mark``
        (``"correct"`` or ``"misclassified"``), ``image`` (a PNG ``data:`` URI thumbnail, at
        least 84 pixels); plus ``names`` (every class name) and ``caption`` (one line saying
        what the map shows).
    """
    wrong = np.nonzero(emb.misclassified)[0]
    right = np.nonzero(~emb.misclassified)[0]
    room = max(max_points - len(wrong), 0)
    rows = np.sort(np.concatenate([wrong[:max_points], np.random.default_rng(0).permutation(right)[:room]]))
    images, kept = load_rows(source, emb.source_indices, rows, size)
    rows = np.array(kept, np.int64)
    names = emb.class_names
    shown = np.where(emb.misclassified[rows], emb.y_pred[rows], emb.y_true[rows])
    return {
        "x": emb.coordinates[rows, 0].tolist(),
        "y": emb.coordinates[rows, 1].tolist(),
        "row": rows.tolist(),
        "index": emb.source_indices[rows].tolist(),
        "id": [emb.image_ids[r] for r in rows],
        "true": [names[t] for t in emb.y_true[rows]],
        "predicted": [f"{names[p]} ({c:.0%})" for p, c in zip(emb.y_pred[rows], emb.confidence[rows], strict=True)],
        "colour": [names[k] for k in shown],
        "mark": np.where(emb.misclassified[rows], "misclassified", "correct").tolist(),
        "image": [_thumbnail_uri(img) for img in images],  # a tooltip's picture
        "names": list(names),
        "caption": (
            f"{emb.num_images:,} images in the features of layer {emb.layer!r} ({emb.method.upper()})"
            + (f"; {len(rows):,} shown, every mistake among them" if len(rows) < emb.num_images else "")
            + ". Dots: true class; crosses: misclassified, in the colour of the predicted class."
        ),
    }
