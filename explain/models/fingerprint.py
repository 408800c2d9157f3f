"""A model's identity as a short hash: the same weights and architecture give the same hash.

Results written to disk for a model (a data set's explanations as Parquet) carry it, so a file
computed with one model is never read, or resumed, as another's.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from explain._quiet import quiet_import

quiet_import()
import keras  # noqa: E402


def _canonical_names(config):
    """``config`` with every name (a ``"name"`` value, and each reference to it) replaced by its order of first
    appearance, so that a model built twice (``input_layer`` then ``input_layer_1``) has one config."""
    names: dict[str, str] = {}

    def collect(node):
        if isinstance(node, dict):
            if isinstance(node.get("name"), str):
                names.setdefault(node["name"], f"#{len(names)}")
            for v in node.values():
                collect(v)
        elif isinstance(node, list | tuple):
            for v in node:
                collect(v)

    def rename(node):
        if isinstance(node, dict):
            return {k: rename(v) for k, v in node.items()}
        if isinstance(node, list | tuple):
            return [rename(v) for v in node]
        return names.get(node, node) if isinstance(node, str) else node

    collect(config)
    return rename(config)


def model_hash(model: keras.Model) -> str:
    """A stable hash of ``model``'s architecture and weights.

    SHA-256 over the model's config (JSON, keys sorted, layer and model names replaced by their order of
    appearance: Keras numbers the names of a model built twice in one process apart) and every weight in
    order: its shape, dtype and bytes. Loading the same file twice, or building the same model twice with
    the same weights, gives the same hash; another weight value or another layer gives another. Reads
    every weight once (a 100 MB model: about 0.2 s).

    Args:
        model: a built Keras model.

    Returns:
        64 lowercase hexadecimal characters.
    """
    digest = hashlib.sha256()
    try:
        config = json.dumps(_canonical_names(model.get_config()), sort_keys=True, default=str)
    except (NotImplementedError, TypeError, ValueError):  # a subclassed model without a config
        config = type(model).__qualname__
    digest.update(config.encode("utf-8"))
    for w in model.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(w))
        digest.update(f"\0{value.shape}|{value.dtype}\0".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()
