"""Config bombs: a model's config decides how much memory building it takes, so it is checked first.

A 1.5 MB ``.keras`` file whose config declares one ``Dense`` layer of 1,000,000 units asks for
gigabytes the moment Keras builds it, long before its weights are read (and found missing).
Every model file explain opens is checked before it is built:

1. what its weights file *holds* is read from the file's index without reading the data: the
   HDF5 datasets' shapes (``.keras``, ``.h5``), the checkpoint's variable shapes (SavedModel).
   A dataset that declares more bytes than the file stores for it (a sparse or compressed HDF5
   dataset; Keras writes neither) is refused on its own;
2. what its config *declares*: a Keras 3 config is built in a ``keras.StatelessScope`` whose
   variables are never initialised (:func:`declared_weights`: shapes only, no memory); a Keras 2
   config is built by ``tf_keras`` under :func:`allocation_guard`, a TensorFlow variable creator
   that sees each weight's shape before its memory is allocated;
3. a config that declares more than its weights file holds (beyond :data:`SLACK_BYTES` and
   :data:`SLACK_RATIO` for counters and seed states), or more than the memory budget
   (``--max-model-mb``, :func:`default_max_model_mb`), is refused with one line naming the
   largest layer.
"""

from __future__ import annotations

import copy
import math
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from explain._quiet import quiet_import
from explain.errors import ModelLoadError

quiet_import()
import keras  # noqa: E402

#: What a config may declare beyond what its weights file holds: seed-generator states and
#: counters that are not saved, rounding.
SLACK_BYTES = 1024**2
SLACK_RATIO = 1.05
#: The default budget never exceeds this (MB), whatever the machine has.
MAX_DEFAULT_MB = 4096


def default_max_model_mb() -> int:
    """The default memory budget for one model's weights, in MB: a quarter of the memory the
    machine has available now (``MemAvailable`` of ``/proc/meminfo``; the physical memory
    elsewhere), at most :data:`MAX_DEFAULT_MB`, at least 256."""
    available = None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if available is None:
        try:
            available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            available = 16 * 1024**3
    return int(max(256, min(MAX_DEFAULT_MB, available / 4 / 1024**2)))


def _size(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} bytes"


# ---------------------------------------------------------------------------------------------
# What a weights file holds
# ---------------------------------------------------------------------------------------------


def h5_weight_bytes(group, source: str) -> int:
    """Bytes of the weights an HDF5 file or group holds, from its datasets' shapes (no data read).

    Args:
        group: an open ``h5py.File`` or ``h5py.Group``.
        source: how messages name the file.

    Returns:
        The sum of the datasets' sizes in bytes.

    Raises:
        ModelLoadError: a dataset declares more bytes than the file stores for it.
    """
    import h5py

    total = 0

    def visit(name, obj):
        nonlocal total
        if not isinstance(obj, h5py.Dataset):
            return
        declared = int(obj.size) * obj.dtype.itemsize
        stored = obj.id.get_storage_size()
        if declared > stored + SLACK_BYTES and declared > SLACK_RATIO * stored:
            raise ModelLoadError(
                f"{source}: its weights file declares a dataset {name!r} of {_size(declared)} but stores "
                f"{_size(stored)} for it; reading it would allocate memory the file does not carry. Refusing it."
            )
        total += declared

    group.visititems(visit)
    return total


def checkpoint_weight_bytes(prefix: str, source: str) -> int:
    """Bytes of the variables a TensorFlow checkpoint (a SavedModel's ``variables/variables``)
    holds, from its index (no data read).

    Raises:
        ModelLoadError: the index declares more bytes than the data files hold.
    """
    import tensorflow as tf

    reader = tf.train.load_checkpoint(prefix)
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    total = sum(math.prod(shapes[k]) * max(dtypes[k].size, 1) for k in shapes)
    folder = os.path.dirname(prefix)
    stem = os.path.basename(prefix)
    stored = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder) if f.startswith(stem + ".data-"))
    if total > stored + SLACK_BYTES and total > SLACK_RATIO * stored:
        raise ModelLoadError(
            f"{source}: its checkpoint index declares {_size(total)} of variables, but its data files hold "
            f"{_size(stored)}; refusing it."
        )
    return total


# ---------------------------------------------------------------------------------------------
# What a config declares, and the check
# ---------------------------------------------------------------------------------------------


def check_declared(declared: list[tuple[str, int]], holds: int, max_mb: float, source: str) -> None:
    """Refuse a config that declares more than its weights file holds, or more than the budget.

    Args:
        declared: ``(layer path, bytes)`` per layer with weights.
        holds: bytes the weights file holds.
        max_mb: the memory budget for the weights, in MB.
        source: how messages name the file.

    Raises:
        ModelLoadError: one line naming the largest layer.
    """
    total = sum(b for _, b in declared)
    if not declared:
        return
    layer, biggest = max(declared, key=lambda d: d[1])
    largest = f"the largest layer, {layer!r}, {_size(biggest)}"
    if total > holds * SLACK_RATIO + SLACK_BYTES:
        raise ModelLoadError(
            f"{source}: its config declares {_size(total)} of weights ({largest}), but its weights file holds "
            f"{_size(holds)}; a config that asks for more memory than its weights carry is refused before "
            "anything is built (a config bomb). Re-save the model from the code that trained it."
        )
    if total > max_mb * 1024**2:
        raise ModelLoadError(
            f"{source}: the model declares {_size(total)} of weights ({largest}), more than the {max_mb:g} MB "
            f"allowed; pass --max-model-mb {math.ceil(total * 1.5 / 1024**2)} if this machine has the memory."
        )


def declared_weights(build: Callable[[], keras.Model]) -> list[tuple[str, int]]:
    """What a Keras 3 config declares, without allocating it.

    ``build`` runs in a ``keras.StatelessScope(initialize_variables=False)``: Keras creates every
    variable with its shape and initializer but no value (shapes flow symbolically), and they
    are never initialised. The model built is dropped.

    Args:
        build: builds the model from its config, e.g.
            ``lambda: keras.saving.deserialize_keras_object(deep_copy(config))`` (Keras's
            deserialisers pop keys from the config they are given: give them a copy).

    Returns:
        ``(layer path, bytes)`` per layer with weights, the path taken from the variables'
        paths (``"sequential/dense_1/kernel"`` -> ``"sequential/dense_1"``).
    """
    from keras.src.backend.common import global_state

    before = {id(v) for v in global_state.get_global_attribute("uninitialized_variables") or []}
    try:
        with keras.StatelessScope(initialize_variables=False):
            model = build()
        per_layer: dict[str, int] = {}
        for v in model.weights:
            path = v.path.rsplit("/", 1)[0] if "/" in v.path else v.path
            per_layer[path] = per_layer.get(path, 0) + math.prod(v.shape) * _itemsize(v.dtype)
        return list(per_layer.items())
    finally:  # the variables built here stay uninitialised; forget them
        kept = [v for v in global_state.get_global_attribute("uninitialized_variables") or [] if id(v) in before]
        global_state.set_global_attribute("uninitialized_variables", kept)


def _itemsize(dtype) -> int:
    import numpy as np

    try:
        return np.dtype(dtype).itemsize
    except TypeError:  # bfloat16, float8_*: NumPy knows them through ml_dtypes
        import ml_dtypes

        return np.dtype(getattr(ml_dtypes, str(dtype), "float32")).itemsize


def deep_copy(config: dict) -> dict:
    """A copy of a config for Keras's deserialisers, which pop keys from what they are given."""
    return copy.deepcopy(config)


@contextmanager
def allocation_guard(holds: int, max_mb: float, source: str) -> Iterator[None]:
    """Refuse, before its memory is allocated, each TensorFlow variable that would take the
    weights built so far past what the weights file holds or past the budget (for ``tf_keras``,
    Keras 2, which allocates as it builds).

    Args:
        holds: bytes the weights file holds.
        max_mb: the memory budget, in MB.
        source: how messages name the file.

    Raises:
        ModelLoadError: from inside the build, naming the layer whose weight crossed the line.
    """
    import tensorflow as tf

    per_layer: dict[str, int] = {}  # bytes declared so far, by layer

    def creator(next_creator, **kwargs):
        shape = kwargs.get("shape")
        if shape is not None and tf.TensorShape(shape).is_fully_defined():
            dtype = tf.as_dtype(kwargs.get("dtype") or tf.float32)
            scope = re.sub(r"(_\d+)?/$", "", tf.get_current_name_scope() + "/") or str(kwargs.get("name"))
            layer = scope.split("/")[-1] or str(kwargs.get("name"))
            per_layer[layer] = per_layer.get(layer, 0) + tf.TensorShape(shape).num_elements() * max(dtype.size, 1)
            check_declared(list(per_layer.items()), holds, max_mb, source)
        return next_creator(**kwargs)

    with tf.variable_creator_scope(creator):
        yield
