"""How far to trust a heatmap: faithfulness (:mod:`~explain.metrics.faithfulness`, deletion /
insertion; :mod:`~explain.metrics.mufidelity`, the faithfulness correlation; :mod:`~explain.metrics.road`,
RemOve And Debias), stability under input noise (:mod:`~explain.metrics.stability`) and the sanity
check (:mod:`~explain.metrics.sanity`, model-parameter randomisation)."""

from explain.metrics.faithfulness import BASELINES, FaithfulnessScores, deletion_insertion
from explain.metrics.mufidelity import MuFidelityScores, mufidelity
from explain.metrics.road import RoadScores, linear_imputation, road
from explain.metrics.sanity import SANITY_THRESHOLD, SanityCheck, randomized_copy, sanity_check
from explain.metrics.stability import StabilityScores, stability

__all__ = [
    "BASELINES",
    "SANITY_THRESHOLD",
    "FaithfulnessScores",
    "MuFidelityScores",
    "RoadScores",
    "SanityCheck",
    "StabilityScores",
    "deletion_insertion",
    "linear_imputation",
    "mufidelity",
    "randomized_copy",
    "road",
    "sanity_check",
    "stability",
]
