"""How far to trust a heatmap: faithfulness (:mod:`~explain.metrics.faithfulness`, deletion /
insertion) and the sanity check (:mod:`~explain.metrics.sanity`, model-parameter randomisation)."""

from explain.metrics.faithfulness import BASELINES, FaithfulnessScores, deletion_insertion
from explain.metrics.sanity import SANITY_THRESHOLD, SanityCheck, randomized_copy, sanity_check

__all__ = [
    "BASELINES",
    "SANITY_THRESHOLD",
    "FaithfulnessScores",
    "SanityCheck",
    "deletion_insertion",
    "randomized_copy",
    "sanity_check",
]
