"""Concepts: what a model responds to, at the level people talk about it.

- :func:`tcav` tests whether a human concept, given as a folder of example images, drives a class
  (Kim et al. 2018, https://arxiv.org/abs/1711.11279).
- :func:`craft` finds a class's concepts by itself and ranks them by importance (Fel et al. 2023,
  https://arxiv.org/abs/2211.10154); :func:`craft_concept_maps` draws where each is in whole images.
- :mod:`~explain.concepts.outputs` writes their files (``tcav.json``, ``craft.json`` and the figures).
"""

from explain.concepts.craft import Concept, CraftResult, craft, craft_concept_maps
from explain.concepts.tcav import ClassTCAV, ConceptTCAV, LayerTCAV, TCAVResult, fit_cav, tcav

__all__ = [
    "ClassTCAV",
    "Concept",
    "ConceptTCAV",
    "CraftResult",
    "LayerTCAV",
    "TCAVResult",
    "craft",
    "craft_concept_maps",
    "fit_cav",
    "tcav",
]
