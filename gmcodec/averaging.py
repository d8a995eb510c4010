"""Exponential moving average of the model's parameters during training (``--average``).

After every optimizer step ``theta_avg <- d * theta_avg + (1 - d) * theta`` for every parameter
``theta`` of the analysis/synthesis transforms g_a/g_s, the hyperprior h_a/h_s and the
GroupedMixer entropy model. With small batches the last iterate carries the noise of its last
few hundred steps; the average over ~1 / (1 - d) steps is a second candidate for export, which
``scripts/ship_check.py`` judges like any other. Buffers are not averaged: they are taken from
the model when the average is exported.
"""

from __future__ import annotations

import torch


class WeightAverage:
    """Running average of ``model``'s parameters with decay ``d`` per step."""

    def __init__(
        self, model: torch.nn.Module, decay: float, state: dict[str, torch.Tensor] | None = None
    ) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"averaging decay must be in (0, 1), got {decay}")
        self.decay = decay
        named = list(model.named_parameters())
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        state = state or {}
        self.avg = [
            state[n].to(p.device, p.dtype, copy=True) if n in state else p.detach().clone()
            for n, p in named
        ]

    @torch.no_grad()
    def update(self) -> None:
        """One step: move every average by ``1 - d`` towards its parameter (one fused call)."""
        torch._foreach_lerp_(self.avg, self.params, 1.0 - self.decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """{parameter name: averaged tensor}, what a checkpoint stores."""
        return dict(zip(self.names, self.avg, strict=True))


def load_average(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Replace ``model``'s parameters by the averaged ones in ``state`` (all must be present)."""
    names = {n for n, _ in model.named_parameters()}
    if missing := names - state.keys():
        raise KeyError(f"the average lacks {len(missing)} parameters, e.g. {min(missing)}")
    model.load_state_dict({k: v for k, v in state.items() if k in names}, strict=False)
