"""A layer's place in a Keras graph: the call that belongs to a container's own graph."""

from __future__ import annotations

from explain._quiet import quiet_import
from explain.errors import LayerError

quiet_import()
import keras  # noqa: E402


def own_node(container: keras.Model, layer: keras.layers.Layer):
    """The call of ``layer`` that belongs to ``container``'s own graph.

    A layer's ``.output`` is not enough (docs/architecture.md, known traps): a nested ``Functional``
    model's ``.output`` is its inner graph's output, not connected to the outer inputs.
    """
    graph = container._functional if isinstance(container, keras.Sequential) else container
    in_graph = {id(n) for nodes in graph._nodes_by_depth.values() for n in nodes}
    nodes = [n for n in layer._inbound_nodes if id(n) in in_graph]
    if len(nodes) != 1:
        how = "is not connected to" if not nodes else f"is called {len(nodes)} times in"
        raise LayerError(f"Layer {layer.name!r} {how} the graph of {container.name!r}; its activations are ambiguous.")
    return nodes[0]


def single(tensors):
    tensors = list(tensors)
    return tensors[0] if len(tensors) == 1 else tensors
