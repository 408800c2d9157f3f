"""Which attribution method to trust on a model: every method run on one seeded sample of the data and
scored by the same faithfulness metrics, then ranked.

The maps of different methods on the same image often disagree; the metrics ask each map the same
questions (Hedström et al. 2023, "Quantus", https://arxiv.org/abs/2202.06861, group such metrics):

- deletion / insertion AUC (Petsiuk et al. 2018): does the class probability fall fast when the most
  relevant pixels are removed (lower is better), and rise fast when they are put back (higher is better)?
- MuFidelity (Bhatt et al. 2020): does the relevance of a random set of pixels predict how much the
  score drops when they are removed (a correlation; higher is better)?
- ROAD (Rong et al. 2022): deletion with the removed pixels filled in by noisy linear imputation, so that
  the model is not judged on images unlike any it has seen; most relevant first (lower is better) and
  least relevant first (higher is better);
- stability (Yeh et al. 2019; Bhatt et al. 2020): how far the map moves when the image moves by an
  imperceptible amount (lower is better);
- the sanity check (Adebayo et al. 2018): does the map change when the model's weights are random?

The ranking is the mean over the six faithfulness numbers of the method's rank on each (1 = best; a
method a metric could not score is ranked after those it scored), and a method that fails the sanity
check comes after every method that passes: a map that does not depend on what the model learned is not
an explanation of the model, however well it scores.

``explain.compare`` writes ``methods.csv`` (:data:`COLUMNS`, best first), ``ranking.png`` (each method's
rank on each metric), ``gallery.png`` (the same images under every method) and ``compare.json``.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from explain.data import DataSource, open_data
from explain.errors import ExplainError
from explain.render.display import Displayable

__all__ = [
    "BETTER",
    "COLUMNS",
    "Comparison",
    "MethodScores",
    "compare_images",
    "compare_methods",
    "faithfulness_scores",
    "gallery_figure",
    "rank_methods",
    "ranking_figure",
    "write_comparison",
]

#: The columns of ``methods.csv``, in order.
COLUMNS = (
    "method",
    "rank",
    "deletion",
    "insertion",
    "mufidelity",
    "road_morf",
    "road_lerf",
    "stability",
    "sanity_passed",
    "seconds_per_image",
)
#: Each faithfulness metric and which way is better.
BETTER = {
    "deletion": "lower",
    "insertion": "higher",
    "mufidelity": "higher",
    "road_morf": "lower",
    "road_lerf": "higher",
    "stability": "lower",
}
#: Images shown under every method in the gallery.
GALLERY_IMAGES = 6


@dataclass(frozen=True)
class MethodScores:
    """One method's scores on the sample: each a mean over the images it could score.

    Attributes:
        method: the registry name.
        deletion, insertion: deletion / insertion AUC in [0, 1] (lower / higher is better).
        mufidelity: MuFidelity, a correlation in [-1, 1] (higher is better).
        road_morf, road_lerf: ROAD's mean class probability over the removal fractions, in [0, 1], most /
            least relevant first (lower / higher is better).
        stability: the mean distance between the map of an image and of the image moved by a tiny amount,
            in [0, 1] (lower is better).
        sanity_passed: the map depends on the weights (sanity check); None when it was not run.
        seconds_per_image: the method's own time per image (after its one-off tracing), in seconds.
        rank: 1 for the method to trust most (:func:`rank_methods`); 0 before ranking.
        flat: the share of the sample's maps that were flat (constant: nothing to score), in [0, 1].
        error: why the method could not run on this model (its other fields are then NaN), else None.
    """

    method: str
    deletion: float = math.nan
    insertion: float = math.nan
    mufidelity: float = math.nan
    road_morf: float = math.nan
    road_lerf: float = math.nan
    stability: float = math.nan
    sanity_passed: bool | None = None
    seconds_per_image: float = math.nan
    rank: int = 0
    flat: float = math.nan
    error: str | None = None


@dataclass(frozen=True)
class Comparison(Displayable):
    """What :func:`compare_methods` found. In a notebook it shows the ranking (:func:`ranking_figure`)
    above a table of each method's rank and scores.

    Attributes:
        scores: one :class:`MethodScores` per method, best first (``rank`` 1, 2, ...; methods that could not
            run last).
        images: uint8 ``(n, H, W, C)``, the sample (n <= the images asked for).
        image_ids: one id per image (its file name, or ``#index`` in a built-in split).
        class_index: int64 ``(n,)``, the class explained: each image's top prediction.
        class_names: the model's class names.
        gallery: ``{method: float32 (g, H, W) heatmaps in [0, 1]}`` for the first ``g`` =
            :data:`GALLERY_IMAGES` images of the sample.
        data: the data's name; ``notes`` what a reader should know.
    """

    scores: tuple[MethodScores, ...]
    images: np.ndarray
    image_ids: tuple[str, ...]
    class_index: np.ndarray
    class_names: tuple[str, ...]
    gallery: dict = field(default_factory=dict)
    data: str = ""
    notes: tuple[str, ...] = ()

    def best(self) -> MethodScores:
        """The method ranked first."""
        return self.scores[0]

    def figure(self, ax=None):
        """Each method's rank on each metric as a coloured table, best method first
        (:func:`ranking_figure`); ``ax`` is not used (the table is a figure of its own).
        Returns a ``matplotlib.figure.Figure``."""
        return ranking_figure(self)

    def table(self):
        """``(headers, rows)``: rank, method, each metric (which way is better in its header), the sanity
        check and the seconds per image, best first."""
        headers = ["rank", "method", *(f"{m} ({BETTER[m]} is better)" for m in BETTER), "sanity", "s / image"]
        sanity = {True: "passed", False: "FAILED", None: ""}
        return headers, [
            [s.rank, s.method + ("" if s.error is None else f" ({s.error})"), *(getattr(s, m) for m in BETTER),
             sanity[s.sanity_passed], s.seconds_per_image]
            for s in self.scores
        ]

    def as_dict(self) -> dict:
        """A JSON-ready summary: the scores (NaN as None), the images, the classes, the notes."""
        rows = [
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(s).items()}
            for s in self.scores
        ]
        return {
            "data": self.data,
            "images": list(self.image_ids),
            "classes": [self.class_names[c] if 0 <= c < len(self.class_names) else str(c) for c in self.class_index],
            "better": BETTER,
            "methods": rows,
            "notes": list(self.notes),
        }


# -- the sample ------------------------------------------------------------------------------
def _sample(
    source: DataSource, n: int, seed: int, size: tuple[int, int, int]
) -> tuple[np.ndarray, list[str], list[str]]:
    """``n`` images drawn without replacement, seeded, in data order: ``(uint8 (n, H, W, C), ids, notes)``."""
    if n < 1:
        raise ValueError(f"images must be at least 1, got {n}.")
    total = len(source)
    if total == 0:
        raise ExplainError(f"{source.name} has no images.")
    picked = np.sort(np.random.default_rng(seed).choice(total, size=min(n, total), replace=False))
    images, kept, skipped = source.load(picked, size[:2], size[2])
    notes = [] if n <= total else [f"The data have {total} images, fewer than the {n} asked for: all are used."]
    if skipped:
        notes.append(f"{len(skipped)} unreadable file(s) left out; the first: {skipped[0][1]}")
    if len(kept) == 0:
        raise ExplainError(f"None of the {len(picked)} images drawn from {source.name} could be read.")
    return images, [source.image_id(int(i)) for i in kept], notes


# -- one method ------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Setting:
    """How every method is built and scored."""

    preprocess: str
    layer: int | str | None
    batch_size: int
    seed: int
    check_images: int  # images the stability and sanity checks use
    random_model: object = None  # the randomised copy every method's sanity check uses


def _build(name: str, model, setting: _Setting):
    from explain.attribution import METHODS, LayerAttribution

    cls = METHODS[name]
    kwargs = {"layer": setting.layer} if issubclass(cls, LayerAttribution) else {}
    return cls(model, preprocess=setting.preprocess, **kwargs), kwargs


def _timed(explainer, x: np.ndarray, cls: np.ndarray):
    """The method's maps and its seconds per image: one image first, untimed (tracing a compiled function
    costs seconds once), then the whole sample, timed."""
    explainer(x[:1], cls[:1])
    start = time.perf_counter()
    result = explainer(x, cls)
    return result, (time.perf_counter() - start) / len(x)


def _mean(values) -> float:
    values = np.asarray(values, np.float64)
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


def faithfulness_scores(
    model,
    explainer,
    x: np.ndarray,
    heat: np.ndarray,
    cls: np.ndarray,
    *,
    preprocess: str = "raw",
    batch_size: int = 64,
    seed: int = 0,
    check_images: int | None = None,
    deletion: bool = True,
) -> dict[str, float]:
    """The faithfulness metrics of one method's maps, each a mean over the images it could score.

    Args:
        model: the classifier.
        explainer: the method (an :class:`~explain.attribution.AttributionMethod`) that made ``heat``; stability
            explains again with it.
        x: float32 ``(n, H, W, C)`` raw pixels; ``heat``: its maps ``(n, H, W)``; ``cls``: int64 ``(n,)``.
        preprocess, batch_size, seed: as :func:`compare_methods`.
        check_images: stability on the first this many images whose map is not flat (None: all).
        deletion: compute deletion / insertion too.

    Returns:
        ``{"deletion", "insertion", "mufidelity", "road_morf", "road_lerf", "stability"}`` (without the first
        two when ``deletion`` is False); NaN where no image could be scored.

    Raises:
        ValueError: every map is flat (the metrics refuse it in one line).
    """
    from explain.metrics import deletion_insertion, mufidelity, road, stability

    common = dict(preprocess=preprocess, batch_size=batch_size)
    out = {}
    if deletion:
        di = deletion_insertion(model, x, heat, cls, **common)
        out.update(deletion=_mean(di.deletion_auc), insertion=_mean(di.insertion_auc))
    out["mufidelity"] = _mean(mufidelity(model, x, heat, cls, seed=seed, **common).correlation)
    roads = road(model, x, heat, cls, seed=seed, **common)
    out.update(road_morf=_mean(roads.morf), road_lerf=_mean(roads.lerf))
    informative = np.flatnonzero(~_flat(heat))[: len(x) if check_images is None else check_images]
    out["stability"] = _mean(stability(explainer, x[informative], cls[informative], seed=seed).average)
    return out


def _flat(heat: np.ndarray) -> np.ndarray:
    """bool ``(n,)``: maps that are constant (nothing to score)."""
    from explain.attribution import normalize_maps

    return normalize_maps(np.asarray(heat))[1]


def _score_method(
    name: str, model, x: np.ndarray, cls: np.ndarray, setting: _Setting
) -> tuple[MethodScores, np.ndarray]:
    """Run one method on the sample and score it: ``(scores, heatmaps float32 (n, H, W))``."""
    from explain.attribution import METHODS
    from explain.metrics import sanity_check

    explainer, kwargs = _build(name, model, setting)
    result, seconds = _timed(explainer, x, cls)
    heat, flat = result.heatmap, result.flat
    scores = {"flat": float(flat.mean()), "seconds_per_image": seconds}
    if flat.all():
        return MethodScores(name, **scores, error="every map was flat (constant): nothing to score"), heat
    scores |= faithfulness_scores(
        model, explainer, x, heat, cls, preprocess=setting.preprocess, batch_size=setting.batch_size,
        seed=setting.seed, check_images=setting.check_images,
    )  # fmt: skip
    k = setting.check_images
    check = sanity_check(
        METHODS[name], model, x[:k], cls[:k], seed=setting.seed, preprocess=setting.preprocess,
        random_model=setting.random_model, **kwargs,
    )  # fmt: skip
    scores["sanity_passed"] = bool(check.passed)
    return MethodScores(name, **scores), heat


# -- ranking ---------------------------------------------------------------------------------
def rank_methods(scores: Sequence[MethodScores]) -> tuple[MethodScores, ...]:
    """The methods ordered best first, each with its ``rank``.

    Each faithfulness metric of :data:`BETTER` ranks the methods (1 = best, ties share the lower rank; a
    method the metric could not score, NaN, comes after those it scored); a method's score is its mean rank
    over the metrics. Methods that pass the sanity check (or were not checked) come before those that fail
    it, and methods that could not run come last.

    Args:
        scores: one :class:`MethodScores` per method.

    Returns:
        The same scores, sorted, with ``rank`` 1..n.
    """
    scores = list(scores)
    if not scores:
        return ()
    ranks = np.zeros((len(scores), len(BETTER)))
    for j, (metric, better) in enumerate(BETTER.items()):
        values = np.array([getattr(s, metric) for s in scores], np.float64)
        key = np.where(np.isfinite(values), values if better == "lower" else -values, np.inf)
        ranks[:, j] = [1 + int((key < v).sum()) for v in key]
    mean_rank = ranks.mean(axis=1)
    order = sorted(
        range(len(scores)),
        key=lambda i: (scores[i].error is not None, scores[i].sanity_passed is False, mean_rank[i], scores[i].method),
    )
    return tuple(replace(scores[i], rank=r + 1) for r, i in enumerate(order))


def metric_ranks(scores: Sequence[MethodScores]) -> np.ndarray:
    """float64 ``(methods, metrics)``: each method's rank on each metric of :data:`BETTER` (NaN where it was
    not scored), for the ranking figure."""
    out = np.full((len(scores), len(BETTER)), np.nan)
    for j, (metric, better) in enumerate(BETTER.items()):
        values = np.array([getattr(s, metric) for s in scores], np.float64)
        key = values if better == "lower" else -values
        for i, v in enumerate(key):
            if np.isfinite(v):
                out[i, j] = 1 + int((key[np.isfinite(key)] < v).sum())
    return out


# -- the whole job ---------------------------------------------------------------------------
def compare_methods(
    model,
    data: str | os.PathLike | DataSource,
    *,
    methods: Sequence[str] | None = None,
    images: int = 100,
    seed: int = 0,
    layer: int | str | None = None,
    preprocess: str = "raw",
    class_names: Sequence[str] | None = None,
    image_size: tuple[int, int] | None = None,
    batch_size: int = 64,
    check_images: int = 8,
    progress: bool | Callable[[str, int, int], None] = True,
) -> Comparison:
    """Run every attribution method (or ``methods``) on a seeded sample of ``data``, score each, rank them.

    Each image is explained for the model's top prediction. Per method: its maps on the whole sample (timed
    after one untimed image, so tracing is not counted), deletion / insertion, MuFidelity and ROAD on the
    whole sample; stability and the sanity check (which explain again: many more passes) on the first
    ``check_images`` images. The module docstring says what each metric asks and how the ranking is made.

    Args:
        model: the Keras classifier (raw pixels in [0, 255]).
        data: a folder of class subfolders, a built-in split (``fashion_mnist:test``) or a
            :class:`~explain.data.DataSource`.
        methods: registry names (default: every method that applies to the model,
            :func:`~explain.attribution.methods_for`).
        images: how many images to draw (>= 1; all of them when the data have fewer).
        seed: seeds the sample and every random step (noise, masks, subsets).
        layer: the CAM methods' target layer (index, name or nested path); default each method's default.
        preprocess: the model's preprocessing mode (:mod:`explain.models.preprocessing`).
        class_names: the model's class names (default: the data's).
        image_size: ``(height, width)`` for a model that takes any size.
        batch_size: perturbed images per forward pass in the metrics.
        check_images: images the stability and sanity checks use (>= 1).
        progress: True for a tqdm bar over the methods on stderr, False for none, or a callable
            ``(method, done, total)`` called before each method and at the end (method ``""``).

    Returns:
        A :class:`Comparison`, best method first.

    Raises:
        ValueError: an unknown method name (the message lists them), ``images`` or ``check_images`` below 1.
        ExplainError: the data cannot be read or none of the sample could; a method that was asked for by
            name cannot explain this model (e.g. a CAM without a spatial layer: the message says which
            methods can). A method that was NOT named and cannot run is listed with its reason instead.
    """
    from explain.dataset.evaluation import model_input_size

    source = data if isinstance(data, DataSource) else open_data(data)
    _check_names(model, methods)
    size = model_input_size(model, source, image_size)
    x8, ids, notes = _sample(source, images, seed, size)
    result = compare_images(
        model, x8, ids, methods=methods, seed=seed, layer=layer, preprocess=preprocess,
        class_names=class_names or getattr(source, "class_names", None), batch_size=batch_size,
        check_images=check_images, progress=progress,
    )  # fmt: skip
    return replace(result, data=source.name, notes=tuple(notes) + result.notes)


def _check_names(model, methods) -> list[str]:
    """The methods to run: ``methods`` checked (an unknown name: one line listing them), or every method that
    applies to ``model``."""
    from explain.attribution import get_method, methods_for

    for name in methods or ():
        get_method(name)
    return list(methods) if methods else methods_for(model)


def compare_images(
    model,
    images: np.ndarray,
    image_ids: Sequence[str] | None = None,
    *,
    methods: Sequence[str] | None = None,
    seed: int = 0,
    layer: int | str | None = None,
    preprocess: str = "raw",
    class_names: Sequence[str] | None = None,
    batch_size: int = 64,
    check_images: int = 8,
    progress: bool | Callable[[str, int, int], None] = True,
) -> Comparison:
    """:func:`compare_methods` on images already read (the dashboard ranks the methods on one image).

    Args:
        model: the Keras classifier (raw pixels in [0, 255]).
        images: uint8 or float ``(n, H, W, C)`` raw pixels in [0, 255] at the model's input size.
        image_ids: one id per image (default ``#0``, ``#1``, ...).
        methods, seed, layer, preprocess, class_names, batch_size, check_images, progress: as
            :func:`compare_methods`.

    Returns:
        A :class:`Comparison` (``data`` empty).

    Raises:
        ValueError, ExplainError: as :func:`compare_methods`; images of the wrong shape.
    """
    from explain.models.scores import score_head

    if check_images < 1:
        raise ValueError(f"check_images must be at least 1, got {check_images}.")
    names = _check_names(model, methods)
    x8 = np.asarray(images)
    x, _ = score_head(model, preprocess).check_batch(x8.astype(np.float32))
    cls = score_head(model, preprocess).top_classes(x, batch_size)
    ids = list(image_ids) if image_ids is not None else [f"#{i}" for i in range(len(x))]
    from explain.metrics import randomized_copy

    random_model = randomized_copy(model, seed=seed)  # one copy for every method's sanity check
    setting = _Setting(preprocess, layer, batch_size, seed, min(check_images, len(x)), random_model)
    rows, gallery = _run_methods(model, names, x, cls, setting, named=bool(methods), progress=progress)
    known = tuple(class_names or [str(i) for i in range(int(cls.max()) + 1)])
    return Comparison(
        scores=rank_methods(rows),
        images=np.clip(x, 0, 255).astype(np.uint8),
        image_ids=tuple(ids),
        class_index=cls.astype(np.int64),
        class_names=known,
        gallery=gallery,
    )


def _run_methods(model, names, x, cls, setting: _Setting, *, named: bool, progress) -> tuple[list, dict]:
    """Each method run and scored in turn, with progress; a method that cannot explain the model is a row
    with its reason (or, when the user named it, the error)."""
    tick = _progress(progress, len(names))
    rows, gallery = [], {}
    for done, name in enumerate(names):
        tick(name, done)
        try:
            row, heat = _score_method(name, model, x, cls, setting)
        except ExplainError as e:  # a CAM without a spatial layer, a layer without fixed channels...
            if named:
                raise ExplainError(f"{name} cannot explain this model: {e}") from None
            rows.append(MethodScores(name, error=str(e)))
            continue
        rows.append(row)
        gallery[name] = heat[:GALLERY_IMAGES]
    tick("", len(names))
    return rows, gallery


def _progress(progress, total: int) -> Callable[[str, int], None]:
    """``(method, done)`` calls: a tqdm bar on stderr, the caller's callable, or nothing."""
    if callable(progress):
        return lambda method, done: progress(method, done, total)
    if not progress:
        return lambda method, done: None
    from tqdm import tqdm

    bar = tqdm(total=total, desc="Methods", unit="method", leave=False)

    def tick(method: str, done: int) -> None:
        bar.set_postfix_str(method)
        bar.update(done - bar.n)
        if done == total:
            bar.close()

    return tick


# -- the files -------------------------------------------------------------------------------
def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def methods_csv(result: Comparison) -> bytes:
    """``methods.csv``: a header of :data:`COLUMNS`, then one row per method, best first; an empty cell where
    a metric could not be computed."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for s in result.scores:
        writer.writerow([_csv_value(getattr(s, c)) for c in COLUMNS])
    return buffer.getvalue().encode()


def ranking_figure(result: Comparison):
    """Each method's rank on each metric, as a coloured table (1 = best, green), methods best first, the
    metric's value in each cell; the header says which way each metric is better. Returns a ``Figure``."""
    from explain.render.figures import method_ranking

    scored = [s for s in result.scores if s.error is None]
    values = np.array([[getattr(s, m) for m in BETTER] for s in scored], np.float64).reshape(len(scored), len(BETTER))
    labels = [f"{s.rank}. {s.method}" + ("" if s.sanity_passed is not False else "  (fails sanity)") for s in scored]
    headers = [f"{m.replace('_', ' ')}\n({BETTER[m]} is better)" for m in BETTER]
    return method_ranking(labels, headers, values, metric_ranks(scored), title=f"Which method to trust: {result.data}")


def gallery_figure(result: Comparison):
    """The gallery's images (a row each) under every method (a column each, best first). Returns a ``Figure``."""
    from explain.render.figures import method_gallery

    names = [s.method for s in result.scores if s.method in result.gallery]
    n = min(GALLERY_IMAGES, len(result.images))
    captions = [
        f"{_short_id(result.image_ids[i])}: {result.class_names[c] if c < len(result.class_names) else c}"
        for i, c in enumerate(result.class_index[:n])
    ]
    return method_gallery(result.images[:n], {m: result.gallery[m][:n] for m in names}, captions)


def _short_id(image_id: str) -> str:
    """An image id as a caption: a file's name (``shirt/0003.png`` -> ``0003.png``), a built-in split's index
    (``fashion_mnist:test #27`` -> ``#27``)."""
    return image_id.rsplit(" ", 1)[-1] if " #" in image_id else Path(image_id).name


def write_comparison(result: Comparison, out_dir: str | os.PathLike) -> tuple[Path, ...]:
    """Write ``methods.csv``, ``compare.json``, ``ranking.png`` and ``gallery.png`` into ``out_dir`` (created),
    each atomically. Returns the paths written.

    Raises:
        OSError: the folder cannot be written.
    """
    from explain.io import atomic_write, save_figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [
        atomic_write(out / "methods.csv", lambda p: p.write_bytes(methods_csv(result))),
        atomic_write(out / "compare.json", lambda p: p.write_text(json.dumps(result.as_dict(), indent=2))),
    ]
    if any(s.error is None for s in result.scores):
        written.append(save_figure(ranking_figure(result), out / "ranking.png"))
        written.append(save_figure(gallery_figure(result), out / "gallery.png"))
    return tuple(written)
