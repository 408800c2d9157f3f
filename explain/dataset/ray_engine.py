"""The explanations of a whole data set on a Ray cluster (Ray Data), when one machine is not enough.

:func:`attribute_dataset_ray` gives the rows of :func:`~explain.dataset.explanations.attribute_dataset`
(same schema, same metadata, the same numbers to float rounding) with Ray Data
(https://docs.ray.io/en/latest/data/data.html):

1. the files' paths are the dataset (``ray.data.from_items``; local paths, or URIs of any file system
   pyarrow reads, as Ray Data's readers do);
2. ``map_batches`` runs :class:`RayExplainer`, an actor that holds ONE model: it reads each file of its batch,
   decodes it with explain's own decoder (:func:`explain.images.load_image`, the pixels the local engine sees)
   and explains the batch with the local engine's function (:func:`~explain.dataset.explanations.batch_step`).
   Reading in the actor rather than in Ray Data's reading tasks (``read_binary_files``) saves a worker process
   per block: on a 2-CPU machine those start-ups made the job 4 times slower than the local engine;
3. ``write_parquet`` writes the rows beside ``out``; the driver then sorts them by ``id`` and writes ``out``
   with the metadata, atomically.

What is sent to the workers: the model FILE's bytes (through Ray's object store) and plain settings
(method name, layer, class names, input size, the true class of each path). The model is opened on the
worker by :func:`explain.models.loading.load_model` in safe mode, so no pickled code and no custom
layer code travels: a model that needs ``--trust-code`` runs with the local engine only.

Ray connects to ``RAY_ADDRESS`` when it is set (a running cluster: ``ray start --head``), else starts a
local Ray on this machine. Ray is an optional extra: ``pip install -e ".[scale]"``. docs/scale.md gives
the cluster recipe.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from explain.data import DataSource, FolderSource, open_data
from explain.errors import ExplainError

__all__ = ["INSTALL", "RayExplainer", "attribute_dataset_ray", "connect"]

#: The install command the messages give.
INSTALL = 'pip install -e ".[scale]"'


def _import_ray():
    try:
        import ray
        import ray.data
    except ImportError:
        raise ExplainError(
            f"--engine ray needs Ray Data, which is not installed: {INSTALL} (or pip install 'ray[data]')."
        ) from None
    return ray


def _reachable(address: str, timeout: float = 5.0) -> str | None:
    """None when ``address`` (``host:port``, ``ray://host:port`` or ``auto``) accepts a TCP connection,
    else why not."""
    if address in ("auto", "local"):
        return None
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return f"not host:port ({address!r})"
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return None
    except OSError as e:
        return e.strerror or str(e)


def connect(num_cpus: int | None = None):
    """Connect to the Ray cluster at ``RAY_ADDRESS``, or start a local Ray; returns the ``ray`` module.

    Raises:
        ExplainError: Ray is not installed (the message gives :data:`INSTALL`); ``RAY_ADDRESS`` is set but
            nothing answers there (checked with a 5 s TCP connection first, so no long hang).
    """
    ray = _import_ray()
    if ray.is_initialized():
        return ray
    address = os.environ.get("RAY_ADDRESS", "").strip()
    if address:
        why = _reachable(address)
        if why:
            raise ExplainError(
                f"RAY_ADDRESS={address} is unreachable ({why}): start the cluster's head there with "
                f"`ray start --head`, or unset RAY_ADDRESS to run a local Ray on this machine."
            )
        ray.init(address=address, log_to_driver=False, logging_level="WARNING")
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    return ray


class RayExplainer:
    """A Ray Data actor holding one model: ``{"path"} batches -> rows of table_schema`` (pyarrow): it reads
    each file, decodes it with explain's decoder and explains the batch.

    Args:
        model: a one-element list holding the ObjectRef of the model file's bytes (a list, so Ray passes the
            reference and the actor fetches it once).
        suffix: the model file's suffix (``.keras``, ``.h5``), for the loader.
        settings: ``method``, ``layer``, ``preprocess``, ``batch_size``, ``method_kwargs``, ``class_names``,
            ``size`` ``(H, W)``, ``channels``, ``target``.
        labels: ``{path as Ray gives it: (id, true class as a model index or -1, path shown in the table)}``.
    """

    def __init__(self, model: list, suffix: str, settings: dict, labels: dict):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import ray

        from explain.dataset.embedding import feature_layer
        from explain.dataset.evaluation import _Plan
        from explain.dataset.explanations import _method, batch_step
        from explain.models.loading import load_model
        from explain.models.scores import score_head

        _one_thread_per_cpu(ray)
        data = ray.get(model[0])
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"model{suffix}"
            path.write_bytes(data)
            net = load_model(path)  # safe mode: no code runs
        s = settings
        explainer = _method(net, s["method"], s["layer"], s["batch_size"], s["preprocess"], s["method_kwargs"])
        info, _ = feature_layer(net)
        plan = _Plan(tuple(s["class_names"]), np.arange(len(s["class_names"])), [], tuple(s["size"]),
                     s["channels"], score_head(net, s["preprocess"]))  # fmt: skip
        self.step = batch_step(net, explainer, plan, info, s["preprocess"])
        self.size, self.channels, self.target, self.labels = tuple(s["size"]), s["channels"], s["target"], labels

    def __call__(self, batch: dict) -> object:
        from explain.dataset.explanations import batch_rows
        from explain.errors import ImageLoadError
        from explain.images import load_image

        images, ids, paths, true = [], [], [], []
        for path in batch["path"]:
            entry = self.labels.get(_key(str(path)))
            if entry is None:
                continue
            try:
                images.append(load_image(_read_bytes(str(path)), target_size=self.size, channels=self.channels))
            except (ImageLoadError, OSError):
                continue  # unreadable files have no row, as with the local engine
            ids.append(entry[0])
            true.append(entry[1])
            paths.append(entry[2])
        stack = np.stack(images) if images else np.zeros((0, *self.size, self.channels), np.uint8)
        return batch_rows(self.step, stack, np.asarray(ids, np.int64), paths, np.asarray(true, np.int64), self.target)


def _read_bytes(path: str) -> bytes:
    """A file's bytes: a local path, or a URI of any file system pyarrow knows (``s3://``, ``gs://``...)."""
    if "://" not in path:
        return Path(path).read_bytes()
    from pyarrow import fs

    filesystem, inner = fs.FileSystem.from_uri(path)
    with filesystem.open_input_stream(inner) as f:
        return f.read()


def _one_thread_per_cpu(ray) -> None:
    """TensorFlow in an actor uses as many threads as the CPUs Ray gave it, not every core of the machine."""
    import tensorflow as tf

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(max(1, int(cpus)))
        tf.config.threading.set_inter_op_parallelism_threads(max(1, int(cpus)))
    except RuntimeError:
        pass  # TensorFlow already started in this worker: keep its threads


def _key(path: str) -> str:
    """A path as a dictionary key: Ray may give local paths without their leading slash or scheme."""
    return path.split("://", 1)[-1].lstrip("/")


def attribute_dataset_ray(
    model_path: str | os.PathLike,
    data: str | os.PathLike | DataSource,
    *,
    out: str | os.PathLike,
    model=None,
    method: str = "gradcam",
    layer: int | str | None = None,
    preprocess: str = "raw",
    class_names: Sequence[str] | None = None,
    batch_size: int = 64,
    progress: bool | Callable[[int, int], None] = True,
    overwrite: bool = False,
    target: str = "pred",
    image_size: tuple[int, int] | None = None,
    actors: int | None = None,
    **method_kwargs,
) -> Path:
    """:func:`~explain.dataset.explanations.attribute_dataset` on Ray (the module docstring): the same table.

    Args:
        model_path: the model file (``.keras`` or ``.h5``), sent to the workers as bytes.
        data: a folder of class subfolders (every worker must see it: a local path for a local Ray, a shared
            file system on a cluster), or its :class:`~explain.data.FolderSource`.
        out: the Parquet file to write.
        model: the model already open in this process (else it is opened from ``model_path``).
        method, layer, preprocess, class_names, batch_size, overwrite, target, image_size, method_kwargs: as
            :func:`~explain.dataset.explanations.attribute_dataset`.
        progress: True shows Ray Data's progress bars; False hides them; a callable is called once at the end.
        actors: models held at once (default: one per CPU of the cluster), each with one CPU.

    Returns:
        ``out`` as a ``Path``, complete.

    Raises:
        ExplainError: Ray not installed or unreachable (:func:`connect`); data that is not a folder; a model
            folder (SavedModel: convert it first with ``python -m explain.convert``); as ``attribute_dataset``.
    """
    from explain.dataset.embedding import feature_layer
    from explain.dataset.evaluation import _plan
    from explain.dataset.explanations import TARGETS, _method, metadata
    from explain.models.loading import load_model

    out, model_path = Path(out), Path(model_path)
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}.")
    if out.exists() and not overwrite:
        raise ExplainError(f"{out} exists already: pass overwrite=True to replace it, or choose another file.")
    if not model_path.is_file():
        raise ExplainError(
            f"The Ray engine sends a model FILE to its workers; {model_path} is not one (a SavedModel folder: "
            f"convert it first with python -m explain.convert)."
        )
    source = data if isinstance(data, DataSource) else open_data(data)
    if not isinstance(source, FolderSource):
        raise ExplainError(
            f"The Ray engine reads image files: give a folder of class subfolders, not {source.name!r} "
            f"(built-in splits run with the local engine)."
        )
    model = model if model is not None else load_model(model_path)
    explainer = _method(model, method, layer, batch_size, preprocess, method_kwargs)
    info, _ = feature_layer(model)
    plan = _plan(model, source, class_names, image_size, preprocess, batch_size)
    meta = metadata(model, explainer, plan, info, method_kwargs, data, source, preprocess, target)
    settings = {
        "method": method, "layer": layer, "preprocess": preprocess, "batch_size": batch_size,
        "method_kwargs": method_kwargs, "class_names": list(plan.names), "size": list(plan.size),
        "channels": plan.channels, "target": target,
    }  # fmt: skip
    ray = connect()
    parts = out.with_name(out.name + ".ray")  # Ray's part files; removed whatever happens
    try:
        _run(ray, model_path, source, plan, settings, parts, batch_size, progress, actors)
        _assemble_sorted(parts, out, meta, batch_size)
    finally:
        shutil.rmtree(parts, ignore_errors=True)
    if callable(progress):
        progress(len(source), len(source))
    return out


def _labels(source: FolderSource, plan) -> dict[str, tuple[int, int, str]]:
    labels = np.asarray(source.labels)
    true = np.where(labels >= 0, plan.mapping[np.maximum(labels, 0)], -1)
    return {
        _key(str(Path(p).resolve())): (i, int(true[i]), source.image_id(i)) for i, p in enumerate(source.paths)
    }


def _run(ray, model_path: Path, source, plan, settings: dict, parts: Path, batch_size: int, progress, actors) -> None:
    """Read, explain and write the rows with Ray Data into the folder ``parts`` (replaced if present)."""
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = progress is True
    files = [str(Path(p).resolve()) for p in source.paths]
    model_ref = ray.put(model_path.read_bytes())
    cpus = int(ray.cluster_resources().get("CPU", 1))
    # the paths are the dataset; each actor reads its batch's files (through pyarrow's file systems, as Ray
    # Data reads): no reading task, so no worker process started per block on a small machine
    ds = ray.data.from_items([{"path": f} for f in files], override_num_blocks=max(1, min(2 * cpus, len(files))))
    ds = ds.map_batches(
        RayExplainer,
        fn_constructor_kwargs={
            "model": [model_ref], "suffix": model_path.suffix or ".keras", "settings": settings,
            "labels": _labels(source, plan),
        },
        batch_size=batch_size,
        batch_format="numpy",
        concurrency=max(1, actors or cpus),
        num_cpus=1,
    )  # fmt: skip
    shutil.rmtree(parts, ignore_errors=True)
    ds.write_parquet(str(parts))


def _assemble_sorted(parts: Path, out: Path, meta: dict, batch_size: int) -> None:
    """The parts' rows sorted by ``id``, written to ``out`` with the metadata, atomically."""
    import pyarrow.parquet as pq

    from explain.dataset.explanations import table_schema
    from explain.io import atomic_path

    schema = table_schema()
    files = sorted(parts.rglob("*.parquet"))
    tables = [pq.read_table(f).select(schema.names).cast(schema) for f in files]
    import pyarrow as pa

    table = pa.concat_tables(tables) if tables else schema.empty_table()
    table = table.sort_by("id").replace_schema_metadata({k: str(v) for k, v in meta.items()})
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp, row_group_size=max(batch_size, 1024))
