"""Attribution methods on one shared base, and the registry the CLI and the app read.

Every method is built as ``METHODS[name](model, layer=None, ...)`` and called on a batch
``(N, H, W, C)`` of raw pixels with an optional ``class_index``; it returns an
:class:`Attribution` whose ``heatmap`` is float32 ``(N, H, W)`` in [0, 1].
"""

from explain.attribution.ablation_cam import AblationCAM
from explain.attribution.attention_rollout import AttentionRollout
from explain.attribution.base import (
    Attribution,
    AttributionMethod,
    LayerAttribution,
    default_target_layer,
    normalize_maps,
)
from explain.attribution.eigencam import EigenCAM
from explain.attribution.faster_scorecam import FasterScoreCAM
from explain.attribution.gradcam import GradCAM
from explain.attribution.gradcam_plus_plus import GradCAMPlusPlus
from explain.attribution.gradient_input import GradientInput
from explain.attribution.gradient_shap import GradientSHAP
from explain.attribution.guided_backprop import GuidedBackprop
from explain.attribution.guided_gradcam import GuidedGradCAM
from explain.attribution.hirescam import HiResCAM
from explain.attribution.integrated_gradients import IntegratedGradients
from explain.attribution.kernel_shap import KernelSHAP, KernelShapAttribution
from explain.attribution.labels import method_label
from explain.attribution.layercam import LayerCAM
from explain.attribution.lime import LIME, LimeAttribution
from explain.attribution.occlusion import Occlusion
from explain.attribution.rise import RISE
from explain.attribution.saliency import Saliency
from explain.attribution.scorecam import ScoreCAM
from explain.attribution.smoothgrad import SmoothGrad
from explain.attribution.squaregrad import SquareGrad
from explain.attribution.vargrad import VarGrad
from explain.attribution.xgradcam import XGradCAM

#: name -> method class, in the order the CLI and the app show them.
METHODS: dict[str, type[AttributionMethod]] = {
    cls.name: cls
    for cls in (
        # class activation maps: gradient-weighted, then gradient-free
        GradCAM,
        GradCAMPlusPlus,
        HiResCAM,
        XGradCAM,
        LayerCAM,
        GuidedGradCAM,
        ScoreCAM,
        FasterScoreCAM,
        AblationCAM,
        EigenCAM,
        # input gradients
        Saliency,
        GradientInput,
        GuidedBackprop,
        SmoothGrad,
        SquareGrad,
        VarGrad,
        IntegratedGradients,
        GradientSHAP,
        # perturbation
        Occlusion,
        RISE,
        LIME,
        KernelSHAP,
        AttentionRollout,
    )
}


def methods_for(model) -> list[str]:
    """The registry names of the methods that apply to ``model`` (:meth:`AttributionMethod.applies_to`).

    Args:
        model: a Keras classifier.

    Returns:
        Names in registry order: every method, attention rollout only for a model with
        ``MultiHeadAttention`` layers in its graph.
    """
    return [name for name, cls in METHODS.items() if cls.applies_to(model)]


def get_method(name: str) -> type[AttributionMethod]:
    """The method class registered under ``name``.

    Args:
        name: a registry name, e.g. ``"gradcam"``, ``"gradcam++"``, ``"lime"`` (see ``METHODS``).

    Returns:
        The :class:`~explain.attribution.base.AttributionMethod` subclass.

    Raises:
        ValueError: unknown name; the message lists the valid ones.
    """
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"Unknown method {name!r}. Methods are: {', '.join(METHODS)}.") from None


__all__ = [
    "LIME",
    "METHODS",
    "RISE",
    "AblationCAM",
    "AttentionRollout",
    "Attribution",
    "AttributionMethod",
    "EigenCAM",
    "FasterScoreCAM",
    "GradCAM",
    "GradCAMPlusPlus",
    "GradientInput",
    "GradientSHAP",
    "GuidedBackprop",
    "GuidedGradCAM",
    "HiResCAM",
    "IntegratedGradients",
    "KernelSHAP",
    "KernelShapAttribution",
    "LayerAttribution",
    "LayerCAM",
    "LimeAttribution",
    "Occlusion",
    "Saliency",
    "ScoreCAM",
    "SmoothGrad",
    "SquareGrad",
    "VarGrad",
    "XGradCAM",
    "default_target_layer",
    "get_method",
    "method_label",
    "methods_for",
    "normalize_maps",
]
