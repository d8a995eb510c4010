"""Model configuration: a frozen, validated dataclass stored next to the weights."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class ModelConfig:
    """Architecture hyper-parameters of a GroupedMixer codec.

    Notation follows the paper: ``y`` has ``M`` channels, ``z`` has ``Nz`` channels, the
    hyper features ``psi`` have ``C`` channels; ``y`` is split into ``Kc`` channel slices
    (``slices``) and ``Ks = 4`` spatial groups (the phases of each 2x2 block), giving
    ``G = Kc * Ks`` groups coded in a fixed order.
    """

    N: int = 128
    M: int = 192
    Nz: int = 128
    C: int = 192
    slices: tuple[int, ...] = (16, 16, 32, 64, 64)
    spatial_groups: int = 4
    d_model: int = 128
    heads: int = 4
    depth: int = 2
    window: int = 8
    mlp_ratio: int = 2
    entropy: str = "mixer"  # "mixer" (GroupedMixer) or "meanscale" (hyperprior-only baseline)
    lambdas: tuple[float, ...] = (0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.05, 0.1, 0.2)
    q_low: float = -2.0  # the q that quality 0 maps to (below 0: extrapolated gain vectors)
    q_high: float | None = None  # the q that quality 100 maps to; None: K = len(lambdas)
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("N", "M", "Nz", "C", "d_model", "heads", "window", "mlp_ratio"):
            if getattr(self, name) < 1:
                raise ValueError(f"ModelConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.depth < 0:
            raise ValueError(f"ModelConfig.depth must be >= 0, got {self.depth}")
        if sum(self.slices) != self.M or min(self.slices) < 1:
            raise ValueError(f"slices {self.slices} must be positive and sum to M={self.M}")
        if self.spatial_groups not in (1, 4):
            raise ValueError(f"spatial_groups must be 1 or 4, got {self.spatial_groups}")
        if self.d_model % self.heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by heads={self.heads}")
        if self.entropy not in ("mixer", "meanscale"):
            raise ValueError(f"entropy must be 'mixer' or 'meanscale', got {self.entropy!r}")
        if len(self.lambdas) < 2 or list(self.lambdas) != sorted(self.lambdas):
            raise ValueError(f"lambdas must be >= 2 increasing values, got {self.lambdas}")
        if not -4.0 <= self.q_low <= 0.0:
            raise ValueError(f"q_low must be in [-4, 0], got {self.q_low}")
        k = len(self.lambdas)
        if self.q_high is not None and not k - 1 <= self.q_high <= k + 1:
            raise ValueError(f"q_high must be in [{k - 1}, {k + 1}], got {self.q_high}")

    @property
    def num_groups(self) -> int:
        """G = Kc * Ks."""
        return len(self.slices) * self.spatial_groups

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        d = dict(d)
        for key in ("slices", "lambdas"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)
