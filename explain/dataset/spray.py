"""The model's strategies across a data set: Spectral Relevance Analysis (SpRAy) and where the model looks.

Reads the table of :func:`~explain.dataset.explanations.attribute_dataset` (one heatmap per image), never
the model. Source: Lapuschkin, Wäldchen, Binder, Montavon, Samek & Müller 2019, "Unmasking Clever Hans
predictors and assessing what machines really learn", Nature Communications 10:1096,
https://arxiv.org/abs/1902.10178 (SpRAy, Section "Spectral relevance analysis"); the steps follow
CoRelAy (https://github.com/virelay/corelay), which does it for PyTorch.

For every class (the images the model assigned to it, each heatmap explaining that assignment):

1. **A common grid.** Each heatmap is resized to one grid (:func:`common_grid`: the table's largest map,
   at most :data:`GRID_MAX` cells a side; area-weighted when shrinking, bilinear when enlarging) and
   normalised on its own, as the paper does (:func:`normalize_maps`): by default divided by its total
   absolute relevance, so clustering compares *where* relevance lies, not how much there is.
2. **Spectral clustering** (scikit-learn's ``SpectralClustering`` on a precomputed affinity): the
   symmetrised k-nearest-neighbour connectivity graph of the grids (:data:`NEIGHBORS` neighbours).
   The number of clusters is the one after the largest **eigengap** of the graph's normalised
   Laplacian, searched from 2 to :data:`MAX_CLUSTERS` (the paper's criterion), unless given; the gap
   is reported (a large gap: clearly separate strategies).
3. **Per cluster**: its size, its accuracy (the share of its images whose true class is the class), its
   mean heatmap, and the :data:`PROTOTYPES` images nearest its centre (the mean of its grids).
4. **A 2-D map** of the class's grids (UMAP, t-SNE or PCA, as :func:`~explain.dataset.embedding.project`).

**Where the model looks** (:func:`relevance_share`): per image, the share of its absolute relevance that
lies in a region, by default a border band of width :data:`BORDER` (a fraction of each side) and
otherwise a rectangle ``(x0, y0, x1, y1)`` in fractions of the width and height. It is computed on the
raw map with each cell weighted by the fraction of it inside the region, so a 7x7 map and a 28x28
map of the same picture give the same share. Classes and clusters are ranked by their mean share: a
model that looks at the frame, a watermark or a ruler is the usual Clever Hans.

Memory is O(rows x grid cells) for the grids and O(rows x neighbours) for each class's graph: no step
builds a dense rows x rows matrix above :data:`DENSE_BELOW` rows a class.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from explain.errors import ExplainError
from explain.render.display import Displayable

__all__ = [
    "BORDER",
    "GRID_MAX",
    "MAX_CLUSTERS",
    "NORMALIZATIONS",
    "ClassAudit",
    "Cluster",
    "SprayResult",
    "common_grid",
    "normalize_maps",
    "parse_region",
    "read_table",
    "relevance_share",
    "resize_maps",
    "spray",
    "write_audit",
]

#: The common grid's largest side, in cells.
GRID_MAX = 32
#: The largest number of clusters the eigengap search considers.
MAX_CLUSTERS = 8
#: Neighbours per heatmap in the affinity graph.
NEIGHBORS = 10
#: Images shown per cluster: the nearest to its centre.
PROTOTYPES = 8
#: The default border band, as a fraction of each side.
BORDER = 0.15
#: How each heatmap is scaled before clustering (:func:`normalize_maps`), the default first.
NORMALIZATIONS = ("sum", "max", "l2", "none")
#: Fewest images a class needs to be clustered; smaller classes are one cluster.
MIN_ROWS = 12
#: Below this many rows a class's Laplacian spectrum is computed densely; above, with a sparse solver.
DENSE_BELOW = 2000


@dataclass(frozen=True)
class Cluster:
    """One strategy of one class: a cluster of its heatmaps.

    Attributes:
        index: the cluster's number within its class, 0 the largest.
        size: its images.
        accuracy: the share of its images (those with a known true class) that the model classifies
            correctly, in [0, 1]; None when none has a known true class.
        share: the mean relevance share in the region (:func:`relevance_share`), in [0, 1].
        mean_heatmap: float32 ``(gh, gw)``: the mean of its normalised grids, scaled to max 1 (0 if flat).
        prototypes: the ``id`` values of up to :data:`PROTOTYPES` images nearest its centre, nearest first.
    """

    index: int
    size: int
    accuracy: float | None
    share: float
    mean_heatmap: np.ndarray
    prototypes: tuple[int, ...]


@dataclass(frozen=True)
class ClassAudit:
    """SpRAy for one class.

    Attributes:
        index, name: the class (the model's class index and name).
        ids: int64 ``(n,)`` the ``id`` values of the class's rows, in table order.
        labels: int32 ``(n,)`` each row's cluster.
        shares: float32 ``(n,)`` each row's relevance share in the region.
        eigenvalues: the smallest eigenvalues of the graph's normalised Laplacian, ascending (empty when
            the class was too small to cluster).
        eigengap: the gap after the chosen number of clusters (``eigenvalues[k] - eigenvalues[k - 1]``);
            None when not clustered.
        clusters: the clusters, largest first.
        mean_heatmap: float32 ``(gh, gw)``: the class's mean normalised grid, scaled to max 1.
        share: the class's mean relevance share in the region.
        coords: float32 ``(n, 2)``, the 2-D map of its grids; None without a projection or under
            :data:`~explain.dataset.embedding.MIN_IMAGES` rows.
        notes: what was noticed (too few images, flat maps).
    """

    index: int
    name: str
    ids: np.ndarray
    labels: np.ndarray
    shares: np.ndarray
    eigenvalues: tuple[float, ...]
    eigengap: float | None
    clusters: tuple[Cluster, ...]
    mean_heatmap: np.ndarray
    share: float
    coords: np.ndarray | None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class SprayResult(Displayable):
    """SpRAy over a whole table: one :class:`ClassAudit` per class with rows. In a notebook it shows each
    class's clusters (their mean heatmaps) above a table of the classes.

    Attributes:
        classes: per class with at least one row, in class order.
        class_names: the model's classes.
        grid: ``(gh, gw)``, the common grid.
        region: ``"border 0.15 (51% of the image)"`` or ``"region x0,y0,x1,y1 (6% of the image)"``: what
            ``share`` measures (a share near the area's is relevance spread evenly).
        method: the attribution method that made the heatmaps (from the table's metadata, "" if none).
        projection: the 2-D map's method, or None.
    """

    classes: tuple[ClassAudit, ...]
    class_names: tuple[str, ...]
    grid: tuple[int, int]
    region: str
    method: str
    projection: str | None

    def figure(self, ax=None, *, max_classes: int = 8):
        """Each class's clusters as mean heatmaps, the most distinct classes first
        (:func:`explain.render.figures.spray_overview`). Returns a ``matplotlib.figure.Figure``."""
        from explain.render.figures import spray_overview

        return spray_overview(self, max_classes=max_classes, ax=ax)

    def table(self):
        """``(headers, rows)``: per class, its images, clusters, eigengap, relevance share in the region,
        and each cluster's size."""
        headers = ["class", "images", "clusters", "eigengap", f"share in {self.region}", "cluster sizes"]
        return headers, [
            [c.name, len(c.ids), len(c.clusters), np.nan if c.eigengap is None else c.eigengap, c.share,
             " / ".join(str(k.size) for k in c.clusters)]
            for c in self.classes
        ]

    def by_class(self, name_or_index: str | int) -> ClassAudit:
        """The audit of a class by name or index; ``KeyError`` naming the classes audited."""
        for c in self.classes:
            if name_or_index in (c.name, c.index):
                return c
        raise KeyError(f"No audit for class {name_or_index!r}; audited: {', '.join(c.name for c in self.classes)}.")

    def most_distinct(self, n: int | None = None) -> list[ClassAudit]:
        """Clustered classes by eigengap, largest first (the most clearly separate strategies)."""
        ranked = sorted((c for c in self.classes if c.eigengap is not None), key=lambda c: -c.eigengap)
        return ranked[:n] if n else ranked

    def looks_at_region(self) -> list[ClassAudit]:
        """Classes by mean relevance share in the region, highest first."""
        return sorted(self.classes, key=lambda c: -c.share)

    def clusters_at_region(self) -> list[tuple[ClassAudit, Cluster]]:
        """Every ``(class, cluster)`` by mean relevance share in the region, highest first."""
        pairs = [(c, k) for c in self.classes for k in c.clusters]
        return sorted(pairs, key=lambda p: -p[1].share)

    def as_dict(self) -> dict:
        """The ``clusters.json`` document: per class its eigengap, spectrum and clusters (size, accuracy,
        share, mean heatmap as nested lists rounded to 4 decimals, prototype ids)."""

        def heat(m: np.ndarray) -> list:
            return np.round(m.astype(float), 4).tolist()

        return {
            "method": self.method,
            "grid": list(self.grid),
            "region": self.region,
            "projection": self.projection,
            "classes": [
                {
                    "class": c.name,
                    "index": c.index,
                    "images": len(c.ids),
                    "eigengap": None if c.eigengap is None else round(c.eigengap, 6),
                    "eigenvalues": [round(v, 6) for v in c.eigenvalues],
                    "share": round(c.share, 6),
                    "mean_heatmap": heat(c.mean_heatmap),
                    "notes": list(c.notes),
                    "clusters": [
                        {
                            "cluster": k.index,
                            "size": k.size,
                            "accuracy": None if k.accuracy is None else round(k.accuracy, 6),
                            "share": round(k.share, 6),
                            "mean_heatmap": heat(k.mean_heatmap),
                            "prototypes": list(k.prototypes),
                        }
                        for k in c.clusters
                    ],
                }
                for c in self.classes
            ],
        }


# -- reading and resizing the maps -----------------------------------------------------------------
_COLUMNS = ("id", "true", "pred", "explained", "heatmap", "h", "w")


def read_table(table) -> tuple[object, dict[str, str]]:
    """A table of explanations and its ``explain.*`` metadata.

    Args:
        table: a Parquet path (local, or any filesystem URI pyarrow reads) or a ``pyarrow.Table``.

    Returns:
        ``(pyarrow.Table, metadata dict)``.

    Raises:
        ExplainError: the file is missing or not Parquet; a column of the table's schema is missing.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not isinstance(table, pa.Table):
        try:
            table = pq.read_table(table)
        except (OSError, pa.ArrowInvalid) as e:
            raise ExplainError(f"Cannot read {table} as Parquet ({e}): give the file explain.audit wrote.") from e
    missing = [c for c in _COLUMNS if c not in table.column_names]
    if missing:
        raise ExplainError(
            f"The table lacks the column(s) {', '.join(missing)}: it was not written by explain.attribute_dataset."
        )
    raw = table.schema.metadata or {}
    return table, {k.decode(): v.decode() for k, v in raw.items() if k.startswith(b"explain.")}


def common_grid(shapes: Sequence[tuple[int, int]], limit: int = GRID_MAX) -> tuple[int, int]:
    """The grid every map is resized to: the largest height and width among ``shapes``, each at most
    ``limit`` (``(7, 7)`` for Grad-CAM at a 7x7 layer, ``(28, 28)`` for saliency on 28x28 images,
    ``(32, 32)`` for saliency on 224x224)."""
    if not len(shapes):
        raise ExplainError("No heatmaps to audit: the table has no rows.")
    h = max(int(s[0]) for s in shapes)
    w = max(int(s[1]) for s in shapes)
    return min(h, limit), min(w, limit)


def _resize_matrix(src: int, dst: int) -> np.ndarray:
    """float64 ``(dst, src)``: row i gives output cell i as a weighted mean of input cells. Area
    weights (the overlap of cell intervals) when shrinking, linear interpolation at cell centres when
    enlarging; the identity when equal."""
    if src == dst:
        return np.eye(dst)
    m = np.zeros((dst, src))
    if dst < src:
        edges = np.linspace(0.0, src, dst + 1)
        for i in range(dst):
            lo, hi = edges[i], edges[i + 1]
            for j in range(int(np.floor(lo)), int(np.ceil(hi))):
                m[i, j] = min(hi, j + 1) - max(lo, j)
        return m / m.sum(axis=1, keepdims=True)
    centres = np.clip((np.arange(dst) + 0.5) * src / dst - 0.5, 0, src - 1)
    left = np.floor(centres).astype(int)
    right = np.minimum(left + 1, src - 1)
    frac = centres - left
    m[np.arange(dst), left] += 1 - frac
    m[np.arange(dst), right] += frac
    return m


def resize_maps(maps: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Maps ``(N, h, w)`` resized to ``(N, gh, gw)`` float32 (area-weighted down, bilinear up); linear, so
    relevance is neither created nor lost where shrinking."""
    maps = np.asarray(maps, np.float64)
    rows, cols = _resize_matrix(maps.shape[1], grid[0]), _resize_matrix(maps.shape[2], grid[1])
    return np.einsum("ih,nhw,jw->nij", rows, maps, cols, optimize=True).astype(np.float32)


def _coverage(cells: int, lo: float, hi: float) -> np.ndarray:
    """float64 ``(cells,)``: the fraction of each of ``cells`` equal cells on [0, 1] inside [lo, hi]."""
    edges = np.linspace(0.0, 1.0, cells + 1)
    inside = np.clip(np.minimum(edges[1:], hi) - np.maximum(edges[:-1], lo), 0.0, None)
    return inside * cells


def region_weights(h: int, w: int, border: float = BORDER, region: Sequence[float] | None = None) -> np.ndarray:
    """float64 ``(h, w)`` in [0, 1]: the fraction of each cell of an ``h x w`` map inside the region
    (``region = (x0, y0, x1, y1)`` in fractions), or inside the border band of width ``border``."""
    if region is not None:
        x0, y0, x1, y1 = region
        return np.outer(_coverage(h, y0, y1), _coverage(w, x0, x1))
    inner = np.outer(_coverage(h, border, 1 - border), _coverage(w, border, 1 - border))
    return 1.0 - inner


def relevance_share(
    maps: np.ndarray, border: float = BORDER, region: Sequence[float] | None = None
) -> np.ndarray:
    """The share of each map's absolute relevance inside a region.

    Args:
        maps: float ``(N, h, w)``, raw maps (any sign, any scale).
        border: the border band's width as a fraction of each side, in (0, 0.5); used without ``region``.
        region: ``(x0, y0, x1, y1)``, fractions of the width and height with ``0 <= x0 < x1 <= 1``
            (:func:`parse_region`); None for the border band.

    Returns:
        float32 ``(N,)`` in [0, 1]; 0 for a map without relevance.
    """
    maps = np.abs(np.asarray(maps, np.float64))
    weights = region_weights(maps.shape[1], maps.shape[2], border, region)
    total = maps.sum(axis=(1, 2))
    inside = np.einsum("nhw,hw->n", maps, weights)
    return np.where(total > 0, inside / np.where(total > 0, total, 1.0), 0.0).astype(np.float32)


def parse_region(text: str | Sequence[float] | None) -> tuple[float, float, float, float] | None:
    """``"x0,y0,x1,y1"`` (fractions of the width and height) as a tuple, checked; None stays None.

    Raises:
        ExplainError: not four numbers, or not ``0 <= x0 < x1 <= 1`` and ``0 <= y0 < y1 <= 1``.
    """
    if text is None:
        return None
    parts = text.split(",") if isinstance(text, str) else list(text)
    try:
        x0, y0, x1, y1 = (float(p) for p in parts)
    except (TypeError, ValueError):
        raise ExplainError(
            f"A region is four fractions x0,y0,x1,y1 (e.g. 0,0,0.25,0.25 for the top-left corner), got {text!r}."
        ) from None
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        raise ExplainError(
            f"A region needs 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 (fractions of the width and height), got {text!r}."
        )
    return x0, y0, x1, y1


def _check_border(border: float) -> float:
    if not 0 < border < 0.5:
        raise ExplainError(f"The border band is a fraction of each side in (0, 0.5), e.g. 0.15; got {border}.")
    return float(border)


def normalize_maps(maps: np.ndarray, how: str = "sum") -> np.ndarray:
    """Each map divided by its own scale (:data:`NORMALIZATIONS`): ``"sum"`` its total absolute relevance
    (a distribution of relevance over the grid, the default), ``"max"`` its largest absolute value,
    ``"l2"`` its Euclidean norm, ``"none"`` as it is. A map without relevance stays zero. float32, same shape.

    Raises:
        ExplainError: an unknown ``how``.
    """
    if how not in NORMALIZATIONS:
        raise ExplainError(f"Unknown normalisation {how!r}: choose one of {', '.join(NORMALIZATIONS)}.")
    maps = np.asarray(maps, np.float32)
    if how == "none":
        return maps
    a = np.abs(maps.reshape(len(maps), -1))
    scale = {"sum": lambda: a.sum(axis=1), "max": lambda: a.max(axis=1), "l2": lambda: np.sqrt((a * a).sum(axis=1))}
    s = scale[how]().reshape(-1, *([1] * (maps.ndim - 1)))
    return np.where(s > 0, maps / np.where(s > 0, s, 1.0), 0.0).astype(np.float32)


def _grids_and_shares(
    table, grid: tuple[int, int], border: float, region, normalize: str
) -> tuple[np.ndarray, np.ndarray]:
    """Every row's map on the common grid, normalised (:func:`normalize_maps`; float32 ``(N, gh, gw)``), and
    its relevance share (float32 ``(N,)``), one map shape at a time."""
    n = table.num_rows
    grids = np.zeros((n, *grid), np.float32)
    shares = np.zeros(n, np.float32)
    h = table.column("h").to_numpy()
    w = table.column("w").to_numpy()
    values = table.column("heatmap").combine_chunks()
    flat = values.flatten().to_numpy(zero_copy_only=False)
    offsets = values.offsets.to_numpy()
    for shape in sorted({(int(a), int(b)) for a, b in zip(h, w, strict=True)}):
        rows = np.flatnonzero((h == shape[0]) & (w == shape[1]))
        idx = offsets[rows][:, None] + np.arange(shape[0] * shape[1])[None, :]
        maps = flat[idx].reshape(len(rows), *shape)
        shares[rows] = relevance_share(maps, border, region)
        grids[rows] = normalize_maps(resize_maps(maps, grid), normalize)
    return grids, shares


# -- clustering --------------------------------------------------------------------------------------
def _affinity(x: np.ndarray, neighbors: int):
    """The symmetrised k-nearest-neighbour connectivity graph of the rows of ``x`` (sparse, 0/0.5/1)."""
    from sklearn.neighbors import kneighbors_graph

    a = kneighbors_graph(x, n_neighbors=min(neighbors, len(x) - 1), mode="connectivity", include_self=False)
    return (0.5 * (a + a.T)).tocsr()


def _spectrum(affinity, count: int, seed: int) -> np.ndarray:
    """The ``count`` smallest eigenvalues of the normalised graph Laplacian, ascending, in [0, 2]."""
    from scipy.sparse.csgraph import laplacian

    lap = laplacian(affinity, normed=True)
    n = lap.shape[0]
    count = min(count, n)
    if n < DENSE_BELOW or count >= n - 1:
        vals = np.linalg.eigvalsh(lap.toarray())
    else:
        from scipy.sparse.linalg import eigsh

        v0 = np.random.default_rng(seed).uniform(-1, 1, n)
        # shift-invert about -1 on -L, as scikit-learn's spectral_embedding: fast for the smallest ones
        vals = -eigsh(-lap, k=count, sigma=1.0, which="LM", v0=v0, return_eigenvectors=False)
    return np.clip(np.sort(vals)[:count], 0.0, 2.0)


def choose_clusters(eigenvalues: np.ndarray, max_clusters: int = MAX_CLUSTERS) -> tuple[int, float]:
    """The eigengap heuristic: the ``k`` in ``[2, max_clusters]`` with the largest gap
    ``eigenvalues[k] - eigenvalues[k - 1]`` (von Luxburg 2007, "A tutorial on spectral clustering",
    Section 8.3), and that gap."""
    ev = np.asarray(eigenvalues, np.float64)
    top = min(max_clusters, len(ev) - 1)
    if top < 2:
        return 1, 0.0
    gaps = ev[2 : top + 1] - ev[1:top]
    k = int(np.argmax(gaps)) + 2
    return k, float(gaps[k - 2])


def _cluster(x: np.ndarray, k: int, affinity, seed: int) -> np.ndarray:
    """int ``(n,)`` labels from scikit-learn's spectral clustering of ``affinity`` into ``k`` clusters,
    renumbered by size (0 the largest; ties by first appearance)."""
    from sklearn.cluster import SpectralClustering

    with warnings.catch_warnings():  # "Graph is not fully connected": a Clever Hans cluster may be apart
        warnings.simplefilter("ignore")
        labels = SpectralClustering(
            n_clusters=k, affinity="precomputed", assign_labels="cluster_qr", random_state=seed
        ).fit_predict(affinity)
    sizes = np.bincount(labels, minlength=k)
    first = np.array([np.flatnonzero(labels == c)[0] if sizes[c] else len(labels) for c in range(k)])
    order = sorted(range(k), key=lambda c: (-sizes[c], first[c]))
    renumber = np.empty(k, np.int32)
    renumber[order] = np.arange(k)
    return renumber[labels]


def _scaled(m: np.ndarray) -> np.ndarray:
    top = float(np.abs(m).max()) if m.size else 0.0
    return (m / top if top > 0 else np.zeros_like(m)).astype(np.float32)


def _clusters(x: np.ndarray, labels: np.ndarray, ids, correct, shares, grid) -> tuple[Cluster, ...]:
    out = []
    for c in range(int(labels.max()) + 1):
        members = np.flatnonzero(labels == c)
        centre = x[members].mean(axis=0)
        nearest = members[np.argsort(((x[members] - centre) ** 2).sum(axis=1), kind="stable")[:PROTOTYPES]]
        known = correct[members]
        known = known[known >= 0]
        out.append(
            Cluster(
                index=c,
                size=len(members),
                accuracy=float(known.mean()) if len(known) else None,
                share=float(shares[members].mean()),
                mean_heatmap=_scaled(centre.reshape(grid)),
                prototypes=tuple(int(i) for i in ids[nearest]),
            )
        )
    return tuple(out)


def _audit_class(
    index: int, name: str, grids, ids, correct, shares, *, clusters, max_clusters, neighbors, projection, seed
) -> ClassAudit:
    """SpRAy for the rows of one class (``grids`` float32 ``(n, gh, gw)`` normalised)."""
    from explain.dataset.embedding import MIN_IMAGES, project

    n, grid = len(grids), grids.shape[1:]
    x = grids.reshape(n, -1)
    notes = []
    flat = int((np.abs(x).sum(axis=1) == 0).sum())
    if flat:
        notes.append(f"{flat} of {n} heatmaps hold no relevance (all zero): they form their own cluster or none.")
    eigenvalues, gap = (), None
    if clusters is not None and n <= clusters:
        raise ExplainError(
            f"Class {name!r} has {n} image(s), not more than the {clusters} clusters asked for: ask for fewer "
            f"clusters, leave the number to the eigengap, or audit other classes only."
        )
    if n < MIN_ROWS and clusters is None:
        labels = np.zeros(n, np.int32)
        notes.append(f"{n} images: too few to cluster (at least {MIN_ROWS}); one cluster.")
    else:
        affinity = _affinity(x, neighbors)
        spectrum = _spectrum(affinity, max_clusters + 1, seed)
        k, gap = choose_clusters(spectrum, max_clusters)
        if clusters is not None:
            k = int(clusters)
            gap = float(spectrum[k] - spectrum[k - 1]) if k < len(spectrum) else None
        labels = _cluster(x, k, affinity, seed) if k > 1 else np.zeros(n, np.int32)
        eigenvalues = tuple(float(v) for v in spectrum)
    coords = None
    if projection and n >= MIN_IMAGES:
        coords, _, _ = project(x, projection, seed)
    return ClassAudit(
        index=index,
        name=name,
        ids=ids,
        labels=labels.astype(np.int32),
        shares=shares,
        eigenvalues=eigenvalues,
        eigengap=gap,
        clusters=_clusters(x, labels, ids, correct, shares, grid),
        mean_heatmap=_scaled(x.mean(axis=0).reshape(grid)),
        share=float(shares.mean()),
        coords=coords,
        notes=tuple(notes),
    )


def _class_names(meta: dict, explained: np.ndarray) -> tuple[str, ...]:
    try:
        names = tuple(json.loads(meta.get("explain.class_names", "[]")))
    except ValueError:
        names = ()
    top = int(explained.max()) + 1 if len(explained) else 0
    return names if len(names) >= top else tuple(str(i) for i in range(top))


def spray(
    table,
    *,
    clusters: int | None = None,
    classes: Sequence[str | int] | None = None,
    border: float = BORDER,
    region: Sequence[float] | str | None = None,
    grid: tuple[int, int] | None = None,
    normalize: str = "sum",
    max_clusters: int = MAX_CLUSTERS,
    neighbors: int = NEIGHBORS,
    projection: str | None = "umap",
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> SprayResult:
    """Spectral Relevance Analysis of a table of explanations (the module docstring gives the steps).

    Args:
        table: the Parquet file of :func:`~explain.dataset.explanations.attribute_dataset`, or a
            ``pyarrow.Table`` of its schema.
        clusters: clusters per class (>= 2); None chooses them by the eigengap.
        classes: the classes to audit (names or indices); None for every class with rows.
        border: the border band's width for :func:`relevance_share`, in (0, 0.5).
        region: ``(x0, y0, x1, y1)`` or ``"x0,y0,x1,y1"`` in fractions: measure the share there instead.
        grid: the common grid ``(gh, gw)``; None for :func:`common_grid`.
        normalize: how each map is scaled before clustering (:func:`normalize_maps`): ``"sum"``, ``"max"``,
            ``"l2"`` or ``"none"``.
        max_clusters: the eigengap search's upper bound (>= 2).
        neighbors: neighbours per map in the affinity graph (>= 2).
        projection: ``"umap"``, ``"tsne"``, ``"pca"`` or None (no 2-D maps: faster).
        seed: seeds the spectral solver, the cluster assignment and the projection.
        progress: called ``(classes done, classes in all)`` after each class.

    Returns:
        A :class:`SprayResult`.

    Raises:
        ExplainError: an unreadable table, no rows, an unknown class, ``clusters`` < 2, a bad border or region,
            an unknown projection.
    """
    table, meta = read_table(table)
    region = parse_region(region)
    border = _check_border(border)
    if clusters is not None and int(clusters) < 2:
        raise ExplainError(f"--clusters must be at least 2 (or left out to choose by the eigengap), got {clusters}.")
    if max_clusters < 2 or neighbors < 2:
        raise ExplainError(f"max_clusters and neighbors must be at least 2, got {max_clusters} and {neighbors}.")
    if projection is not None:
        from explain.dataset.embedding import check_method

        projection = check_method(projection)
    h, w = table.column("h").to_numpy(), table.column("w").to_numpy()
    grid = tuple(grid) if grid else common_grid(list(zip(h, w, strict=True)))
    grids, shares = _grids_and_shares(table, grid, border, region, normalize)
    ids = table.column("id").to_numpy().astype(np.int64)
    explained = table.column("explained").to_numpy().astype(np.int64)
    true = table.column("true").to_numpy().astype(np.int64)
    pred = table.column("pred").to_numpy().astype(np.int64)
    correct = np.where(true >= 0, (true == pred).astype(np.int8), -1)
    names = _class_names(meta, explained)
    chosen = _chosen_classes(classes, names, explained)
    audits = []
    for done, c in enumerate(chosen, 1):
        rows = np.flatnonzero(explained == c)
        audits.append(
            _audit_class(
                c, names[c], grids[rows], ids[rows], correct[rows], shares[rows],
                clusters=clusters, max_clusters=max_clusters, neighbors=neighbors, projection=projection, seed=seed,
            )
        )  # fmt: skip
        if progress:
            progress(done, len(chosen))
    area = float(region_weights(120, 120, border, region).mean())  # the region's share of the picture
    where = f"region {','.join(f'{v:g}' for v in region)}" if region else f"border {border:g}"
    where += f" ({area:.0%} of the image)"
    return SprayResult(tuple(audits), names, grid, where, meta.get("explain.method", ""), projection)


def _chosen_classes(classes, names: tuple[str, ...], explained: np.ndarray) -> list[int]:
    present = sorted(set(explained.tolist()))
    if not present:
        raise ExplainError("No heatmaps to audit: the table has no rows.")
    if classes is None:
        return present
    chosen = []
    for c in classes:
        idx = names.index(c) if c in names else (int(c) if str(c).lstrip("-").isdigit() else None)
        if idx is None or not 0 <= idx < len(names):
            raise ExplainError(f"Unknown class {c!r}: the classes are {', '.join(names)}.")
        if idx not in present:
            raise ExplainError(f"No image was predicted as {names[idx]!r}: it has no heatmaps to cluster.")
        chosen.append(idx)
    return chosen


# -- writing -----------------------------------------------------------------------------------------
def row_columns(result: SprayResult, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int32 cluster and float32 share for each ``id`` in ``ids`` (-1 and NaN for rows of classes not audited)."""
    cluster = np.full(len(ids), -1, np.int32)
    share = np.full(len(ids), np.nan, np.float32)
    position = {int(i): k for k, i in enumerate(ids)}
    for c in result.classes:
        at = np.array([position[int(i)] for i in c.ids], np.int64)
        cluster[at] = c.labels
        share[at] = c.shares
    return cluster, share


def write_audit(result: SprayResult, table, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``out_dir/explanations.parquet`` (the table's rows, metadata kept, plus ``cluster`` int32 and
    ``share`` float32) and ``out_dir/clusters.json`` (:meth:`SprayResult.as_dict`), each atomically.

    ``table`` may be ``out_dir/explanations.parquet`` itself: it is read whole before being replaced.

    Returns:
        ``(parquet path, json path)``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from explain.io import atomic_path

    table, _ = read_table(table)
    table = table.drop_columns([c for c in ("cluster", "share") if c in table.column_names])
    cluster, share = row_columns(result, table.column("id").to_numpy())
    table = table.append_column("cluster", pa.array(cluster, pa.int32()))
    table = table.append_column("share", pa.array(share, pa.float32()))
    out = Path(out_dir)
    parquet, doc = out / "explanations.parquet", out / "clusters.json"
    with atomic_path(parquet) as tmp:
        pq.write_table(table, tmp, row_group_size=65536)
    with atomic_path(doc) as tmp:
        tmp.write_text(json.dumps(result.as_dict(), indent=1), encoding="utf-8")
    return parquet, doc
