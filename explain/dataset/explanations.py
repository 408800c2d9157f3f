"""A whole data set's explanations as data: one Parquet row per image.

:func:`attribute_dataset` streams a data source through the model in order and in batches, as
:func:`~explain.dataset.evaluation.evaluate_model` and :func:`~explain.dataset.embedding.embed` read
it, and writes for each image its prediction, the raw map of an attribution method for the predicted
class, and the pooled features the embedding uses. The analyses over a whole data set (clustering
the heatmaps, where the model looks) read that table, not the model. This is the first step of
Spectral Relevance Analysis (Lapuschkin et al. 2019, "Unmasking Clever Hans predictors and assessing
what machines really learn", https://arxiv.org/abs/1902.10178): a heatmap for every image.

The table (:func:`table_schema`), one row per readable image, in data order:

============== =================== ==========================================================
column         type                what
============== =================== ==========================================================
``id``         int64               the image's index in the data source (its data order)
``path``       string, nullable    a folder's file path relative to its root; null otherwise
``true``       int32               the true class as an index of the MODEL's classes (data
                                   classes matched by name, as evaluation does); -1: unknown
``pred``       int32               the model's top prediction
``confidence`` float32 in [0, 1]   the probability of ``pred``
``explained``  int32               the class the heatmap explains: ``pred``, or with
                                   ``target="true"`` the true class where it is known
``heatmap``    list<float32>       the RAW map, row-major, ``h * w`` values: before upsampling
                                   to the input and before scaling to [0, 1] (see below)
``h``, ``w``   int32               the map's height and width
``features``   list<float32>       the pooled penultimate features, as the embedding's default
                                   layer gives them (spatial maps global-average-pooled)
============== =================== ==========================================================

The raw map is :meth:`AttributionMethod.raw_maps <explain.attribution.base.AttributionMethod.raw_maps>`:
for a class activation map (Grad-CAM, Grad-CAM++, Score-CAM) it is the ReLU'd weighted sum of the
target layer's feature maps at that layer's resolution (a 7x7 map for a 28x28 input after two
poolings), in the layer's own units; for an input-gradient method (saliency, SmoothGrad, Integrated
Gradients) and LIME it is at the input's resolution; for attention rollout at the token grid. Values
are left as the method gives them (unbounded, not normalised), so an analysis chooses its own
normalisation. Unreadable files are skipped: they have no row.

The file's schema metadata (bytes) says what made it: ``explain.model_hash``
(:func:`explain.models.fingerprint.model_hash`), ``explain.method``, ``explain.target``, ``explain.layer`` (empty for
methods without one), ``explain.method_params`` (JSON), ``explain.feature_layer``,
``explain.class_names`` (JSON), ``explain.data`` (the data spec or the source's name),
``explain.preprocess``, ``explain.version`` (:data:`VERSION`), and ``explain.images`` (the images in
the data, readable or not).

Memory stays flat in N: each batch is written as it is computed, to a numbered part file in the
folder ``<out>.partial/`` (each part written atomically). A killed run, called again with the same
arguments, continues after the last part written; the final file is assembled from the parts and
renamed into place only when every image is done (:mod:`explain.io`), so ``out`` is never half
written.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from explain._quiet import quiet_import
from explain.attribution import METHODS
from explain.attribution.base import AttributionMethod, _with_target
from explain.attribution.gradcam import GradCAM
from explain.data import DataSource, FolderSource, open_data
from explain.dataset.embedding import _joint_forward, feature_layer
from explain.dataset.evaluation import _Plan, _plan
from explain.errors import ExplainError, LayerError
from explain.features.activations import _symbolic_outputs
from explain.io import atomic_path
from explain.models.fingerprint import model_hash
from explain.models.layers import LayerInfo
from explain.models.layouts import to_grid
from explain.models.preprocessing import from_raw_pixels

quiet_import()
import tensorflow as tf  # noqa: E402

__all__ = ["VERSION", "attribute_dataset", "check_model", "read_metadata", "table_schema"]

#: The table's format version, stored as ``explain.version``.
VERSION = "1"
#: What a heatmap can explain: the predicted class, or the true class.
TARGETS = ("pred", "true")
_PART = "part-{start:010d}-{stop:010d}.parquet"
_META = "meta.json"


def table_schema():
    """The table's ``pyarrow.Schema`` (the module docstring), without metadata. pyarrow is imported here,
    on first use."""
    import pyarrow as pa

    return pa.schema(
        [
            ("id", pa.int64()),
            ("path", pa.string()),
            ("true", pa.int32()),
            ("pred", pa.int32()),
            ("confidence", pa.float32()),
            ("explained", pa.int32()),
            ("heatmap", pa.list_(pa.float32())),
            ("h", pa.int32()),
            ("w", pa.int32()),
            ("features", pa.list_(pa.float32())),
        ]
    )


def attribute_dataset(
    model,
    data: str | os.PathLike | DataSource,
    method: str = "gradcam",
    layer: int | str | None = None,
    *,
    out: str | os.PathLike,
    preprocess: str = "raw",
    class_names: Sequence[str] | None = None,
    batch_size: int = 64,
    progress: bool | Callable[[int, int], None] = True,
    overwrite: bool = False,
    image_size: tuple[int, int] | None = None,
    target: str = "pred",
    **method_kwargs,
) -> Path:
    """Explain every image of a data set and write the explanations to Parquet (module docstring).

    Args:
        model: a Keras classifier taking raw pixels ``(N, H, W, C)`` in [0, 255].
        data: a data spec (a folder of class subfolders, ``"fashion_mnist:test"``) or a
            :class:`~explain.data.DataSource`; read in order, ``batch_size`` images at a time.
        method: a registered attribution method (``explain.METHODS``), default ``"gradcam"``.
        layer: the target layer of a class activation map (index, name or nested path); None for the
            method's default. Ignored by methods without one.
        out: the Parquet file to write.
        preprocess: the model's preprocessing mode (:mod:`explain.models.preprocessing`).
        class_names: the model's classes, as for :func:`~explain.dataset.evaluation.evaluate_model`
            (None: the data's classes are the model's outputs in order).
        batch_size: images per batch, per compiled call and per Parquet row group (>= 1).
        progress: True for a tqdm bar on stderr, False for none, or a callable ``(images done,
            images in all)`` called after each batch is written.
        overwrite: replace an existing ``out`` (the old file stays until the new one is complete).
        image_size: ``(height, width)`` for a model that takes any size (as for ``evaluate_model``).
        target: the class each heatmap explains: ``"pred"``, the model's top prediction, or ``"true"``, the
            image's true class where the data gives it (the prediction otherwise), as Spectral Relevance
            Analysis asks: what in the images of a class makes the model say that class.
        **method_kwargs: passed to the method (``steps=`` for Integrated Gradients, ``num_samples=``
            for LIME, ...).

    Returns:
        ``out`` as a ``Path``, complete.

    Raises:
        ExplainError: an unknown method (the message names the registered ones); ``out`` exists and
            ``overwrite`` is False; ``<out>.partial/`` holds a run of another model, method, layer,
            data or preprocessing (the message says how to start over).
        LayerError, NoSpatialLayerError: a layer without feature maps for a class activation map; the
            model has none.
        DataError: as :func:`~explain.dataset.evaluation.evaluate_model` (no image readable, classes
            the model does not know).
        ValueError: ``batch_size < 1``; ``target`` not ``"pred"`` or ``"true"``.
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}.")
    out = Path(out)
    if out.exists() and not overwrite:
        raise ExplainError(f"{out} exists already: pass overwrite=True to replace it, or choose another file.")
    source = data if isinstance(data, DataSource) else open_data(data)
    explainer = _method(model, method, layer, batch_size, preprocess, method_kwargs)
    info, _ = feature_layer(model)
    plan = _plan(model, source, class_names, image_size, preprocess, batch_size)
    meta = metadata(model, explainer, plan, info, method_kwargs, data, source, preprocess, target)
    partial = _partial_folder(out, meta)
    step = batch_step(model, explainer, plan, info, preprocess)
    _stream(partial, source, plan, step, batch_size, progress, target)
    _assemble(partial, out, meta, batch_size)
    shutil.rmtree(partial, ignore_errors=True)
    return out


def metadata(model, explainer, plan: _Plan, info: LayerInfo, method_kwargs: dict, data, source, preprocess, target):
    """The file's ``explain.*`` metadata (the module docstring lists the keys), as strings."""
    return {
        "explain.model_hash": model_hash(model),
        "explain.method": explainer.name,
        "explain.target": target,
        "explain.layer": explainer.layer.name if explainer.layer is not None else "",
        "explain.method_params": json.dumps(method_kwargs, sort_keys=True, default=str),
        "explain.feature_layer": info.name,
        "explain.class_names": json.dumps(list(plan.names)),
        "explain.data": source.name if isinstance(data, DataSource) else os.fspath(data),
        "explain.preprocess": preprocess,
        "explain.version": VERSION,
        "explain.images": str(len(source)),
    }


def batch_step(model, explainer: AttributionMethod, plan: _Plan, info: LayerInfo, preprocess: str) -> Callable:
    """The function that explains one batch: :func:`_fused_gradcam` where it applies, else :func:`_two_passes`.
    Shared by the local engine and the Ray engine's actors (:mod:`explain.dataset.ray_engine`)."""
    return _fused_gradcam(model, explainer, plan, info, preprocess) or _two_passes(
        model, explainer, plan.head, info, preprocess
    )


def _method(model, name: str, layer, batch_size: int, preprocess: str, kwargs: dict) -> AttributionMethod:
    """The attribution method ``name`` built for ``model``; an unknown name is one line naming the known ones."""
    if name not in METHODS:
        raise ExplainError(f"Unknown method {name!r}. Methods are: {', '.join(METHODS)}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    return METHODS[name](model, layer, batch_size=batch_size, preprocess=preprocess, **kwargs)


def _two_passes(model, explainer: AttributionMethod, head, info: LayerInfo, preprocess: str) -> Callable:
    """``(float32 images (B, H, W, C), int64 classes (B,)) -> (float32 features (B, D), float32 probabilities
    (B, C), float32 raw maps (B, h, w), int64 classes explained (B,))``: the embedding's compiled forward pass, then
    the method's raw maps (:meth:`~explain.attribution.base.AttributionMethod.raw_maps`) for the given classes
    (-1: the predicted class). Any method."""
    forward = _joint_forward(model, head, info, preprocess)

    def step(images: np.ndarray, classes: np.ndarray):
        features, probs = forward(images)
        maps, explained, _ = explainer.raw_maps(images, np.where(classes >= 0, classes, np.argmax(probs, axis=1)))
        return features, probs, maps, explained

    return step


def _fused_gradcam(
    model, explainer: AttributionMethod, plan: _Plan, info: LayerInfo, preprocess: str
) -> Callable | None:
    """:func:`_two_passes` in ONE compiled forward pass for Grad-CAM and the CAMs that differ from it only in their
    channel weights or ``cam`` (Grad-CAM++, HiResCAM, XGrad-CAM, LayerCAM): the target layer's feature
    maps, the penultimate features and the scores come from one model, then one backward pass from the
    predicted class's score to the target layer. None for other methods, or where the features are not
    reachable from the target layer's model (a feature layer inside a nested model beside the target).

    Traced once for any batch size, so a row does not depend on the batch it was in, nor on where a resumed
    run started (a trace per batch shape can round differently)."""
    if not isinstance(explainer, GradCAM) or type(explainer)._raw_maps is not GradCAM._raw_maps:
        return None  # Guided Grad-CAM: its map is more than cam(a, grads)
    head = plan.head
    feats = to_grid(_symbolic_outputs(model, [info.name])[info.name], info.layout, info.grid)
    shared = feats is head.tensor  # the usual Dense head: its input is the feature layer
    try:
        end = head.tensor if shared else [head.tensor, feats]
        joint = from_raw_pixels(_with_target(model, explainer.layer.name.split("/"), end), preprocess)
    except (ValueError, LayerError):
        return None

    @tf.function(
        input_signature=[tf.TensorSpec((None, *plan.size, plan.channels), tf.float32), tf.TensorSpec((None,), tf.int64)]
    )
    def run(x, classes):
        with tf.GradientTape() as tape:
            tape.watch(x)  # records every op, frozen bases included (as activations_and_gradients)
            a, ends = joint(x, training=False)
            h, f = (ends, ends) if shared else ends
            scores = head.to_scores(h)
            probs = tf.cast(head.to_probabilities(scores), tf.float32)
            cls, score = head.pick(scores, classes)  # -1: the top prediction
        grads = tape.gradient(score, a)
        maps = explainer.cam(explainer._to_grid(a), explainer._to_grid(grads))
        f = tf.cast(f, tf.float32)
        if len(f.shape) > 2:
            f = tf.reduce_mean(f, axis=list(range(1, len(f.shape) - 1)))
        return f, probs, tf.cast(maps, tf.float32), cls

    return lambda images, classes: tuple(
        np.asarray(o) for o in run(tf.constant(images, tf.float32), tf.constant(classes, tf.int64))
    )


def _partial_folder(out: Path, meta: dict) -> Path:
    """``<out>.partial/``, created with ``meta.json``, or an earlier run's with the same metadata.

    Raises:
        ExplainError: the folder holds a run with other metadata (another model, method, ...).
    """
    partial = out.with_name(out.name + ".partial")
    meta_path = partial / _META
    if meta_path.exists():
        try:
            earlier = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            earlier = {}
        differ = [k.removeprefix("explain.") for k in meta if earlier.get(k) != meta[k]]
        if differ:
            raise ExplainError(
                f"{partial} holds an unfinished run for another {', '.join(differ)}: call again with the same "
                f"model and arguments to finish it, or delete {partial} to start over."
            )
        return partial
    partial.mkdir(parents=True, exist_ok=True)
    with atomic_path(meta_path) as tmp:
        tmp.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return partial


def _parts(partial: Path) -> list[tuple[int, int, Path]]:
    """The part files written, as ``(start, stop, path)`` in data order."""
    parts = []
    for p in partial.glob("part-*-*.parquet"):
        start, stop = p.stem.split("-")[1:3]
        parts.append((int(start), int(stop), p))
    return sorted(parts)


def _stream(
    partial: Path, source: DataSource, plan: _Plan, step: Callable, batch_size: int, progress, target: str
) -> None:
    """Explain the images after the last part written, one part file per batch."""
    from tqdm.auto import tqdm

    parts = _parts(partial)
    start = parts[-1][1] if parts else 0
    total = len(source)
    quiet = progress is not True
    bar = tqdm(total=total, initial=start, desc="Explaining", unit="img", disable=quiet, file=sys.stderr, leave=False)
    try:
        while start < total:
            stop = min(start + batch_size, total)
            images, idx, _failures = source.load(range(start, stop), plan.size, plan.channels)
            table = _rows(source, plan, step, images, idx, target)
            with atomic_path(partial / _PART.format(start=start, stop=stop)) as tmp:
                _write(table, tmp)
            bar.update(stop - start)
            start = stop
            if callable(progress):
                progress(stop, total)
    finally:
        bar.close()


def _rows(source: DataSource, plan: _Plan, step: Callable, images: np.ndarray, idx: np.ndarray, target: str):
    """One batch's rows as a pyarrow Table of :func:`table_schema` (no rows when no image was readable).

    ``images`` are uint8 ``(B, H, W, C)``, ``idx`` int64 ``(B,)`` their indices in ``source``; ``step`` is
    :func:`batch_step`'s.
    """
    labels = np.asarray(source.labels)[idx]
    true = np.where(labels >= 0, plan.mapping[np.maximum(labels, 0)], -1).astype(np.int64)
    paths = [source.image_id(int(i)) for i in idx] if isinstance(source, FolderSource) else [None] * len(idx)
    return batch_rows(step, images, idx, paths, true, target)


def batch_rows(step: Callable, images: np.ndarray, ids, paths: list, true: np.ndarray, target: str):
    """Rows of :func:`table_schema` for one batch.

    Args:
        step: :func:`batch_step`'s function.
        images: uint8 ``(B, H, W, C)`` at the model's input size.
        ids: int64 ``(B,)``, the images' indices in the data; paths: B strings or None.
        true: int64 ``(B,)``, true classes as model indices (-1: unknown).
        target: ``"pred"`` or ``"true"`` (:data:`TARGETS`).

    Returns:
        A ``pyarrow.Table`` (empty when B is 0).
    """
    import pyarrow as pa

    schema = table_schema()
    if not len(ids):
        return schema.empty_table()
    wanted = np.asarray(true, np.int64) if target == "true" else np.full(len(ids), -1, np.int64)
    features, probs, maps, explained = step(images.astype(np.float32), wanted)
    pred = np.argmax(probs, axis=1).astype(np.int64)
    b, h, w = maps.shape
    columns = {
        "id": pa.array(np.asarray(ids, np.int64), pa.int64()),
        "path": pa.array(list(paths), pa.string()),
        "true": pa.array(true, pa.int32()),
        "pred": pa.array(pred, pa.int32()),
        "confidence": pa.array(probs[np.arange(b), pred], pa.float32()),
        "explained": pa.array(explained, pa.int32()),
        "heatmap": _lists(maps.reshape(b, h * w)),
        "h": pa.array(np.full(b, h), pa.int32()),
        "w": pa.array(np.full(b, w), pa.int32()),
        "features": _lists(np.asarray(features, np.float32).reshape(b, -1)),
    }
    return pa.Table.from_pydict(columns, schema=schema)


def _lists(matrix: np.ndarray):
    """A float32 ``(B, D)`` matrix as a pyarrow ``list<float32>`` array of B rows."""
    import pyarrow as pa

    b, d = matrix.shape
    offsets = pa.array(np.arange(0, b * d + 1, d, dtype=np.int32), pa.int32())
    return pa.ListArray.from_arrays(offsets, pa.array(np.ascontiguousarray(matrix, np.float32).reshape(-1)))


def _write(table, path: Path, metadata: dict | None = None) -> None:
    import pyarrow.parquet as pq

    if metadata:
        table = table.replace_schema_metadata(metadata)
    pq.write_table(table, path)


def _assemble(partial: Path, out: Path, meta: dict, batch_size: int) -> None:
    """Concatenate the part files into ``out`` (one row group per part, one part in memory at a time),
    with the metadata, atomically."""
    import pyarrow.parquet as pq

    schema = table_schema().with_metadata({k: str(v) for k, v in meta.items()})
    with atomic_path(out) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for _, _, part in _parts(partial):
            table = pq.read_table(part)
            if table.num_rows:
                writer.write_table(table.cast(schema), row_group_size=max(batch_size, table.num_rows))


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``explain.*`` metadata of a table written by :func:`attribute_dataset`, as strings.

    Args:
        path: the Parquet file.

    Returns:
        ``{"explain.model_hash": ..., "explain.method": ..., ...}`` (the module docstring lists the keys).

    Raises:
        ExplainError: the file has no ``explain.version`` (not written by :func:`attribute_dataset`).
    """
    import pyarrow.parquet as pq

    raw = pq.read_schema(path).metadata or {}
    meta = {k.decode(): v.decode() for k, v in raw.items() if k.startswith(b"explain.")}
    if "explain.version" not in meta:
        raise ExplainError(f"{path} was not written by explain.attribute_dataset: it has no explain.* metadata.")
    return meta


def check_model(path: str | os.PathLike, model) -> dict[str, str]:
    """The table's metadata (:func:`read_metadata`), after checking that it was written for ``model``.

    Args:
        path: a Parquet file written by :func:`attribute_dataset`.
        model: the Keras model the table should belong to.

    Returns:
        The ``explain.*`` metadata.

    Raises:
        ExplainError: the file's ``explain.model_hash`` is not ``model``'s (another model, or other weights);
            the file was not written by :func:`attribute_dataset`.
    """
    meta = read_metadata(path)
    if meta.get("explain.model_hash") != model_hash(model):
        raise ExplainError(
            f"{path} holds the explanations of another model (model hash {meta.get('explain.model_hash', '?')[:12]}, "
            f"not {model_hash(model)[:12]}): write them for this model with explain.attribute_dataset."
        )
    return meta
