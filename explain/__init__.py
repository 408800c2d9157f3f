"""explain: see what a Keras image classifier sees, and why it decides.

The public API. The folders are the capabilities (docs/architecture.md): ``models`` (every model file,
the card, the layer table), ``features`` (activations, kernels, patterns), ``attribution`` (one file per
method), ``metrics``, ``dataset`` (evaluation, embedding, report), ``render`` (pictures and figures) and
``cli`` (``python -m explain`` lists the commands).
"""

from explain._quiet import quiet_import
from explain.cli import commands

quiet_import()
commands.install()  # python -m explain.layers etc. run explain/cli/<name>.py

from explain.attribution import (  # noqa: E402
    LIME,
    METHODS,
    RISE,
    AblationCAM,
    AttentionRollout,
    Attribution,
    AttributionMethod,
    EigenCAM,
    FasterScoreCAM,
    GradCAM,
    GradCAMPlusPlus,
    GradientInput,
    GradientSHAP,
    GuidedBackprop,
    GuidedGradCAM,
    HiResCAM,
    IntegratedGradients,
    KernelSHAP,
    LayerAttribution,
    LayerCAM,
    LimeAttribution,
    Occlusion,
    Saliency,
    ScoreCAM,
    SmoothGrad,
    SquareGrad,
    VarGrad,
    XGradCAM,
    get_method,
    method_label,
    methods_for,
)
from explain.callbacks import ExplainCallback  # noqa: E402
from explain.concepts import CraftResult, TCAVResult, craft, craft_concept_maps, tcav  # noqa: E402
from explain.dataset.audit import AuditResult, audit  # noqa: E402
from explain.dataset.compare import Comparison, compare_images, compare_methods  # noqa: E402
from explain.dataset.embedding import Embedding, LookAlike, embed, look_alikes  # noqa: E402
from explain.dataset.evaluation import (  # noqa: E402
    ArraySource,
    Confusion,
    DataSource,
    Evaluation,
    FolderSource,
    classification_metrics,
    evaluate_model,
    evaluation_from_predictions,
    load_builtin_split,
    match_classes,
    misclassified,
    model_input_size,
    open_data,
    top_confusions,
)
from explain.dataset.explanations import attribute_dataset  # noqa: E402
from explain.dataset.spray import SprayResult, spray  # noqa: E402
from explain.errors import (  # noqa: E402
    DataError,
    ExplainError,
    ImageLoadError,
    LayerError,
    ModelLoadError,
    NoSpatialLayerError,
)
from explain.features.activations import Activations, compute_activations, feature_model  # noqa: E402
from explain.features.patterns import FeaturePatterns, channel_responses, class_patterns, filter_patterns  # noqa: E402
from explain.images import load_image  # noqa: E402
from explain.metrics.faithfulness import deletion_insertion  # noqa: E402
from explain.metrics.mufidelity import mufidelity  # noqa: E402
from explain.metrics.road import road  # noqa: E402
from explain.metrics.sanity import sanity_check  # noqa: E402
from explain.metrics.stability import stability  # noqa: E402
from explain.models.card import ModelCard, imagenet_class_names, load_model_card, read_class_names  # noqa: E402
from explain.models.layers import LayerInfo, format_layer_table, get_layer, layer_table, resolve_layer  # noqa: E402
from explain.models.layouts import InputLayout, input_layout  # noqa: E402
from explain.models.legacy import convert_to_keras3  # noqa: E402
from explain.models.loading import load_model  # noqa: E402
from explain.models.predict import Prediction, predict  # noqa: E402
from explain.models.preprocessing import MODES as PREPROCESSING_MODES  # noqa: E402
from explain.models.preprocessing import from_raw_pixels, infer_preprocessing, preprocess  # noqa: E402
from explain.models.scores import ScoreHead, score_head  # noqa: E402
from explain.models.trust import load_trusted_code  # noqa: E402
from explain.render.display import show  # noqa: E402
from explain.render.figures import (  # noqa: E402
    activation_bars,
    attribution_panel,
    confusion_gallery,
    confusion_matrix_figure,
    embedding_map,
    feature_map_grid,
    heatmap_overlay,
    pattern_grid,
    per_class_accuracy_chart,
    top_k_bars,
    top_k_grid,
    training_curves,
)
from explain.render.pictures import feature_map_mosaic, overlay  # noqa: E402

__all__ = [
    "LIME",
    "METHODS",
    "PREPROCESSING_MODES",
    "RISE",
    "AblationCAM",
    "Activations",
    "ArraySource",
    "AttentionRollout",
    "Attribution",
    "AttributionMethod",
    "AuditResult",
    "Comparison",
    "Confusion",
    "CraftResult",
    "DataError",
    "DataSource",
    "EigenCAM",
    "Embedding",
    "Evaluation",
    "ExplainCallback",
    "ExplainError",
    "FasterScoreCAM",
    "FeaturePatterns",
    "FolderSource",
    "GradCAM",
    "GradCAMPlusPlus",
    "GradientInput",
    "GradientSHAP",
    "GuidedBackprop",
    "GuidedGradCAM",
    "HiResCAM",
    "ImageLoadError",
    "InputLayout",
    "IntegratedGradients",
    "KernelSHAP",
    "LayerAttribution",
    "LayerCAM",
    "LayerError",
    "LayerInfo",
    "LimeAttribution",
    "LookAlike",
    "ModelCard",
    "ModelLoadError",
    "NoSpatialLayerError",
    "Occlusion",
    "Prediction",
    "Report",
    "Saliency",
    "ScoreCAM",
    "ScoreHead",
    "SmoothGrad",
    "SprayResult",
    "SquareGrad",
    "TCAVResult",
    "VarGrad",
    "XGradCAM",
    "activation_bars",
    "attribute_dataset",
    "attribution_panel",
    "audit",
    "channel_responses",
    "class_patterns",
    "classification_metrics",
    "compare_images",
    "compare_methods",
    "compute_activations",
    "confusion_gallery",
    "confusion_matrix_figure",
    "convert_to_keras3",
    "craft",
    "craft_concept_maps",
    "deletion_insertion",
    "embed",
    "embedding_map",
    "evaluate_model",
    "evaluation_from_predictions",
    "feature_map_grid",
    "feature_map_mosaic",
    "feature_model",
    "filter_patterns",
    "format_layer_table",
    "from_raw_pixels",
    "get_layer",
    "get_method",
    "heatmap_overlay",
    "imagenet_class_names",
    "infer_preprocessing",
    "input_layout",
    "layer_table",
    "load_builtin_split",
    "load_image",
    "load_model",
    "load_model_card",
    "load_trusted_code",
    "look_alikes",
    "match_classes",
    "method_label",
    "methods_for",
    "misclassified",
    "model_input_size",
    "mufidelity",
    "open_data",
    "overlay",
    "pattern_grid",
    "per_class_accuracy_chart",
    "predict",
    "preprocess",
    "read_class_names",
    "resolve_layer",
    "road",
    "sanity_check",
    "score_head",
    "show",
    "spray",
    "stability",
    "tcav",
    "top_confusions",
    "top_k_bars",
    "top_k_grid",
    "training_curves",
    "write_report",
]


def __getattr__(name: str):
    # explain.dataset.report is also the CLI module run by ``python -m explain.report``; importing it here
    # eagerly would make runpy warn that it was imported before being run, so it loads on first use.
    if name in ("Report", "write_report"):
        from explain.dataset import report

        return getattr(report, name)
    raise AttributeError(f"module 'explain' has no attribute {name!r}")
