"""Every model file a user has, opened safely, and what the model is.

- :mod:`~explain.models.loading`: :func:`load_model` for every format (``.keras``, HDF5 written by
  Keras 2 or 3, Keras 2 SavedModel folders and zips, keras-hub), Git LFS pointers, the activation budget;
- :mod:`~explain.models.legacy`: Keras 2 files converted to Keras 3 in memory;
- :mod:`~explain.models.config_scan`: the architecture check before anything is built;
- :mod:`~explain.models.trust`: the user's own code, by explicit trust;
- :mod:`~explain.models.budget`: config bombs (declared weights against the weights file);
- :mod:`~explain.models.card`: the model card, class names;
- :mod:`~explain.models.layers`: the layer table, layers named by ``int | str``;
- :mod:`~explain.models.graph`: a layer's call in a container's own graph;
- :mod:`~explain.models.layouts`, :mod:`~explain.models.preprocessing`: input layouts and scalings,
  applied in front of the model;
- :mod:`~explain.models.scores`, :mod:`~explain.models.predict`: logits or probabilities, the top k.
"""

from explain.models.card import ModelCard, imagenet_class_names, load_model_card, read_class_names
from explain.models.layers import LayerInfo, format_layer_table, get_layer, layer_table, resolve_layer
from explain.models.loading import LFS_POINTER, check_not_lfs_pointer, load_model

__all__ = [
    "LFS_POINTER",
    "LayerInfo",
    "ModelCard",
    "check_not_lfs_pointer",
    "format_layer_table",
    "get_layer",
    "imagenet_class_names",
    "layer_table",
    "load_model",
    "load_model_card",
    "read_class_names",
    "resolve_layer",
]
