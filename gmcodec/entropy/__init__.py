"""Entropy models: the factorized prior for z and the GroupedMixer for y."""

from .factorized import FactorizedPrior
from .grouped_mixer import GroupedMixer, build_entropy_model
from .groups import GroupLayout

__all__ = ["FactorizedPrior", "GroupLayout", "GroupedMixer", "build_entropy_model"]
