"""The audit of a whole data set: every image explained (:mod:`explain.dataset.explanations`), then the
model's strategies per class (:mod:`explain.dataset.spray`), written to a folder with pictures.

``DIR`` receives:

- ``explanations.parquet``: one row per image (:func:`~explain.dataset.explanations.table_schema`) plus
  ``cluster`` (int32, numbered within its class, -1 for a class not audited) and ``share`` (float32, the
  relevance share in the border band or region);
- ``clusters.json``: :meth:`~explain.dataset.spray.SprayResult.as_dict` (per class: eigengap, clusters with
  size, accuracy, share, mean heatmap and prototype ids);
- ``clusters_<class>.png``: one row per cluster, its mean heatmap and its prototypes
  (:func:`~explain.render.figures.spray_clusters`); ``map_<class>.png``: the class's heatmaps in 2-D;
- ``looks.png``: the classes ranked by the share of relevance in the region (the usual Clever Hans looks
  at the frame, a watermark or a ruler).

The rows are computed once per (model, data, method, layer, target): a second audit into the same
folder reads them back and only re-runs the analysis (other ``--clusters``, ``--border``...). The
default method is saliency, not Grad-CAM: Grad-CAM averages the gradients over the whole feature map,
so on a head that flattens the map (every CNN of the Keras tutorials) it cannot localise a small mark
(see docs/scale.md and the planted test in tests/test_spray.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from explain.data import DataSource, open_data
from explain.dataset.evaluation import model_input_size
from explain.dataset.explanations import attribute_dataset, check_model
from explain.dataset.spray import SprayResult, read_table, resize_maps, spray, write_audit
from explain.errors import ExplainError
from explain.render.display import Displayable, html_table, png_img

__all__ = ["DEFAULT_METHOD", "ENGINES", "AuditResult", "audit", "audit_figures", "looks_figure", "prototype_pictures"]

#: The audit's default attribution method (module docstring says why not Grad-CAM).
DEFAULT_METHOD = "saliency"
#: Where the rows are computed: this process, or a Ray cluster (:mod:`explain.dataset.ray_engine`).
ENGINES = ("local", "ray")
TABLE = "explanations.parquet"


@dataclass(frozen=True)
class AuditResult(Displayable):
    """What :func:`audit` wrote. In a notebook it shows the classes' table and the cluster pictures it
    wrote for the most distinct classes (prototypes over their images).

    Attributes:
        spray: the analysis.
        out_dir: the folder.
        files: the files written, in order.
        reused: the rows were read back from an earlier audit of the same model, data and method.
    """

    spray: SprayResult
    out_dir: Path
    files: tuple[Path, ...]
    reused: bool

    def figure(self, ax=None, **options):
        """The analysis's figure (:meth:`SprayResult.figure`)."""
        return self.spray.figure(ax=ax, **options)

    def table(self):
        """The analysis's table (:meth:`SprayResult.table`)."""
        return self.spray.table()

    def _repr_html_(self) -> str:
        """The table, then the cluster pictures written for the three most distinct classes."""
        from explain.io import slug

        headers, rows = self.table()
        parts = [f"<p>Audit in {self.out_dir}{' (rows reused)' if self.reused else ''}</p>", html_table(headers, rows)]
        for c in (self.spray.most_distinct(3) or list(self.spray.classes[:1])):
            path = self.out_dir / f"clusters_{slug(c.name)}.png"
            if path.is_file():
                parts.append(png_img(path.read_bytes(), c.name))
        return "<div>" + "".join(parts) + "</div>"


def _reusable(table: Path, model, method: str, layer, target: str, data_name: str) -> bool:
    """An earlier audit's rows in ``table`` were made by this model with these settings.

    Raises:
        ExplainError: ``table`` holds another model's rows (its stored model hash): they are not replaced.
    """
    if not table.exists():
        return False
    try:
        meta = check_model(table, model)
    except ExplainError:
        raise ExplainError(
            f"{table} holds the explanations of another model (the model hash stored in it differs): choose "
            f"another output folder to keep them, or delete that file to audit this model there."
        ) from None
    same_layer = layer is None or meta.get("explain.layer") == str(layer)
    return (
        meta.get("explain.method") == method
        and meta.get("explain.target") == target
        and meta.get("explain.data") == data_name
        and same_layer
    )


def _check_classes(classes, names) -> None:
    """Refuse an unknown ``--class`` before the long pass over the data (spray checks again after)."""
    if not classes or not names:
        return
    unknown = [c for c in classes if c not in names and not str(c).isdigit()]
    if unknown:
        raise ExplainError(f"Unknown class {unknown[0]!r}: the classes are {', '.join(map(str, names))}.")


def audit(
    model,
    data: str | os.PathLike | DataSource,
    out_dir: str | os.PathLike,
    *,
    method: str = DEFAULT_METHOD,
    layer: int | str | None = None,
    target: str = "true",
    engine: str = "local",
    model_path: str | os.PathLike | None = None,
    preprocess: str = "raw",
    class_names=None,
    batch_size: int = 64,
    clusters: int | None = None,
    classes=None,
    border: float = 0.15,
    region=None,
    normalize: str = "sum",
    projection: str | None = "umap",
    seed: int = 0,
    progress: bool | Callable[[int, int], None] = True,
    figures: bool = True,
    image_size: tuple[int, int] | None = None,
) -> AuditResult:
    """Explain every image of ``data``, cluster the heatmaps of each class (SpRAy) and write ``out_dir``
    (the module docstring lists the files).

    Args:
        model: the Keras classifier (raw pixels in [0, 255]).
        data: a data spec or a :class:`~explain.data.DataSource`.
        out_dir: the folder to write (created).
        method, layer, target, preprocess, class_names, batch_size: as
            :func:`~explain.dataset.explanations.attribute_dataset`.
        engine: ``"local"`` or ``"ray"`` (:func:`explain.dataset.ray_engine.attribute_dataset_ray`, which needs
            ``model_path`` and a folder of images).
        model_path: the model file, sent to Ray's workers (``engine="ray"`` only).
        clusters, classes, border, region, normalize, projection, seed: as :func:`~explain.dataset.spray.spray`.
        progress: a tqdm bar (True), none (False), or ``(done, total)`` calls while explaining.
        figures: write the PNGs.
        image_size: ``(height, width)`` for a model that takes any size.

    Returns:
        An :class:`AuditResult`.

    Raises:
        ExplainError: as :func:`~explain.dataset.explanations.attribute_dataset` and
            :func:`~explain.dataset.spray.spray`; an unknown engine; Ray missing or unreachable; ``out_dir`` holds
            the audit of another model (its rows are never replaced).
        OSError: ``out_dir`` cannot be written.
    """
    if engine not in ENGINES:
        raise ExplainError(f"Unknown engine {engine!r}: choose one of {', '.join(ENGINES)}.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    source = data if isinstance(data, DataSource) else open_data(data)
    _check_classes(classes, class_names or getattr(source, "class_names", None))
    data_name = source.name if isinstance(data, DataSource) else os.fspath(data)
    table = out / TABLE
    reused = _reusable(table, model, method, layer, target, data_name)
    if not reused:
        options = {
            "method": method,
            "layer": layer,
            "out": table,
            "preprocess": preprocess,
            "class_names": class_names,
            "batch_size": batch_size,
            "progress": progress,
            "overwrite": True,
            "target": target,
            "image_size": image_size,
        }
        if engine == "ray":
            from explain.dataset.ray_engine import attribute_dataset_ray

            if model_path is None:
                raise ExplainError("The Ray engine sends the model FILE to its workers: give model_path.")
            attribute_dataset_ray(model_path, data, model=model, **options)
        else:
            attribute_dataset(model, source, **options)
    result = spray(table, clusters=clusters, classes=classes, border=border, region=region, normalize=normalize,
                   projection=projection, seed=seed)  # fmt: skip
    written = list(write_audit(result, table, out))
    if figures:
        written += audit_figures(result, table, source, out, model_input_size(model, source, image_size))
    return AuditResult(result, out, tuple(written), reused)


def prototype_pictures(
    result: SprayResult, table, source: DataSource, size: tuple[int, int, int], ids=None
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray], dict[int, str]]:
    """The prototypes' images, heatmaps (at the image size, scaled to [0, 1]) and captions.

    Args:
        result: the analysis.
        table: the table (path or ``pyarrow.Table``) it was made from.
        source: the data the table's ``id`` column indexes.
        size: the model's input ``(H, W, C)``.
        ids: the ids to draw (default: every cluster's prototypes).

    Returns:
        ``({id: uint8 (H, W, C)}, {id: float32 (H, W)}, {id: caption})``; unreadable images are left out.
    """
    import pyarrow.compute as pc

    table, _ = read_table(table)
    if ids is None:
        ids = sorted({i for c in result.classes for k in c.clusters for i in k.prototypes})
    ids = [int(i) for i in ids]
    rows = table.filter(pc.is_in(table.column("id"), value_set=_int_array(ids)))
    images, kept, _ = source.load(ids, size[:2], size[2])
    by_id = dict(zip(kept.tolist(), images, strict=True))
    maps, captions = {}, {}
    for r in rows.select(["id", "heatmap", "h", "w", "path"]).to_pylist():
        m = resize_maps(np.asarray(r["heatmap"], np.float32).reshape(1, r["h"], r["w"]), size[:2])[0]
        m = np.abs(m)
        top = float(m.max())
        maps[r["id"]] = m / top if top > 0 else m
        captions[r["id"]] = Path(r["path"]).name if r["path"] else f"#{r['id']}"
    return by_id, maps, captions


def _int_array(values):
    import pyarrow as pa

    return pa.array(values, pa.int64())


def audit_figures(
    result: SprayResult, table, source: DataSource, out_dir: Path, size: tuple[int, int, int]
) -> list[Path]:
    """Write ``clusters_<class>.png``, ``map_<class>.png`` (with a projection) and ``looks.png``; the images
    drawn at ``size`` ``(H, W, C)``, the model's input (as the rows were computed)."""
    from explain.io import save_figure, slug
    from explain.render.figures import spray_clusters, spray_map

    images, maps, captions = prototype_pictures(result, table, source, size)
    written = []
    for c in result.classes:
        fig = spray_clusters(c, images, maps, captions=captions, method=result.method)
        written.append(save_figure(fig, out_dir / f"clusters_{slug(c.name)}.png"))
        if c.coords is not None:
            written.append(save_figure(spray_map(c), out_dir / f"map_{slug(c.name)}.png"))
    written.append(save_figure(looks_figure(result), out_dir / "looks.png"))
    return written


def looks_figure(result: SprayResult):
    """The classes ranked by their mean share of relevance in the region, highest first (a ``Figure``)."""
    from explain.render.figures import ranked_bars

    ranked = result.looks_at_region()
    return ranked_bars(
        [c.name for c in ranked],
        [c.share for c in ranked],
        title=f"Share of relevance in the {result.region} (mean per class)",
        xlabel="share of |relevance|",
    )
