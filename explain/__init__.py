"""explain: see what a Keras image classifier sees, and why it decides.

The public API; see DESIGN.md for the data flow
``image file -> images -> models -> activations -> plots -> app.py / CLIs``.
"""

from explain._quiet import quiet_import

quiet_import()

from explain.activations import compute_activations, feature_model  # noqa: E402
from explain.attribution import METHODS, Attribution, AttributionMethod, get_method  # noqa: E402
from explain.errors import ExplainError, ImageLoadError, LayerError, ModelLoadError  # noqa: E402
from explain.images import load_image  # noqa: E402
from explain.metrics import deletion_insertion, sanity_check  # noqa: E402
from explain.models import (  # noqa: E402
    LayerInfo,
    ModelCard,
    format_layer_table,
    get_layer,
    layer_table,
    load_model,
    load_model_card,
    resolve_layer,
)
from explain.plots import (  # noqa: E402
    activation_bars,
    attribution_panel,
    feature_map_grid,
    heatmap_overlay,
    top_k_bars,
)
from explain.predict import Prediction, predict  # noqa: E402

__all__ = [
    "METHODS",
    "Attribution",
    "AttributionMethod",
    "ExplainError",
    "ImageLoadError",
    "LayerError",
    "LayerInfo",
    "ModelCard",
    "ModelLoadError",
    "Prediction",
    "activation_bars",
    "attribution_panel",
    "compute_activations",
    "deletion_insertion",
    "feature_map_grid",
    "feature_model",
    "format_layer_table",
    "get_layer",
    "get_method",
    "heatmap_overlay",
    "layer_table",
    "load_image",
    "load_model",
    "load_model_card",
    "predict",
    "resolve_layer",
    "sanity_check",
    "top_k_bars",
]
