"""GroupedMixer: transformer entropy model with group-wise autoregression.

Li et al., "GroupedMixer: An Entropy Model with Group-wise Token-Mixers for Learned Image
Compression". ``y`` is split into ``G`` groups (see ``groups.GroupLayout``); slot ``g`` predicts
the Gaussian parameters ``(mu_g, sigma_g)`` of group ``g`` from

    input_g = E_start (g = 0) or proj_g(y_hat_{g-1})  +  proj(psi at the positions of g)  +  e_g

through ``depth`` blocks that alternate an inner-group and a causal cross-group token mixer.
Training runs all slots at once (teacher forcing); coding runs one slot per group with the
cross-group keys/values cached (the *context cache*).

With ``entropy="meanscale"`` the context path and the blocks are dropped: the parameters come
from the hyper features ``psi`` alone (the hyperprior-only baseline).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..config import ModelConfig
from .attention import MixerBlock
from .groups import GroupLayout

SCALE_MIN = 0.11
SCALE_MAX = 64.0
_LOG_MIN, _LOG_MAX = math.log(SCALE_MIN), math.log(SCALE_MAX)

Params = tuple[torch.Tensor, torch.Tensor]  # (mu, sigma)


class GroupedMixer(nn.Module):
    """Predicts ``mu, sigma`` of every element of y, group by group."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.layout = GroupLayout(cfg.slices, cfg.spatial_groups)
        g_count, d = self.layout.num_groups, cfg.d_model
        self.use_context = cfg.entropy == "mixer"
        self.psi_proj = nn.Linear(cfg.C, d)
        self.group_emb = nn.Parameter(torch.randn(g_count, d) * 0.02)
        n_ctx = g_count - 1 if self.use_context else 0
        self.ctx_proj = nn.ModuleList(nn.Linear(self.layout.channels(g), d) for g in range(n_ctx))
        depth = cfg.depth if self.use_context else 0
        self.blocks = nn.ModuleList(
            MixerBlock(d, cfg.heads, cfg.window, cfg.mlp_ratio) for _ in range(depth)
        )
        self.out_norm = nn.LayerNorm(d)
        self.out_proj = nn.ModuleList(
            nn.Linear(d, 2 * self.layout.channels(g)) for g in range(g_count)
        )

    def _slot_input(
        self, g: int, prev: torch.Tensor | None, psi_t: list[torch.Tensor]
    ) -> torch.Tensor:
        """Input tokens [B, T, d] of slot g; ``prev`` are the tokens of decoded group g-1."""
        x = self.psi_proj(psi_t[self.layout.group(g)[1]]) + self.group_emb[g]
        if self.use_context and g > 0:
            x = x + self.ctx_proj[g - 1](prev)
        return x

    def _head(self, g: int, x: torch.Tensor) -> Params:
        """Slot output [B, T, d] -> (mu_g, sigma_g), each [B, T, C_g].

        At least float32 (bf16 under autocast is promoted); float64 stays float64 (the coding
        path of coder ids 1 and 2).
        """
        with torch.autocast(x.device.type, enabled=False):
            out = self.out_proj[g](self.out_norm(x.to(torch.promote_types(x.dtype, torch.float32))))
        mu, raw = out.chunk(2, dim=-1)
        return mu, raw.clamp(_LOG_MIN, _LOG_MAX).exp()

    def psi_tokens(self, psi: torch.Tensor) -> list[torch.Tensor]:
        """Hyper features psi [B, C, Hy, Wy] as tokens, one tensor per spatial phase."""
        return [self.layout.phase_tokens(psi, s) for s in range(self.layout.spatial_groups)]

    def _run_slots(
        self,
        y_groups: list[torch.Tensor],
        psi_t: list[torch.Tensor],
        count: int,
        grid: tuple[int, int],
    ) -> torch.Tensor:
        """Run slots 0..count-1 together under the causal mask; returns [B, count, T, d]."""
        x = torch.stack(
            [self._slot_input(g, y_groups[g - 1] if g else None, psi_t) for g in range(count)],
            dim=1,
        )
        for block in self.blocks:
            x = block(x, *grid)
        return x

    def forward(self, y_hat: torch.Tensor, psi: torch.Tensor) -> Params:
        """Teacher-forced parameters for all of y: (mu, sigma), each [B, M, Hy, Wy]."""
        hy, wy = y_hat.shape[-2:]
        grid = self.layout.grid(hy, wy)
        y_groups = self.layout.split(y_hat)
        x = self._run_slots(y_groups, self.psi_tokens(psi), self.layout.num_groups, grid)
        params = [self._head(g, x[:, g]) for g in range(self.layout.num_groups)]
        mu = self.layout.merge([p[0] for p in params], hy, wy)
        sigma = self.layout.merge([p[1] for p in params], hy, wy)
        return mu, sigma

    def new_cache(self) -> list[dict[str, torch.Tensor]]:
        """An empty context cache: one key/value store per block."""
        return [{} for _ in self.blocks]

    def step(
        self,
        g: int,
        prev: torch.Tensor | None,
        psi_t: list[torch.Tensor],
        grid: tuple[int, int],
        cache: list[dict[str, torch.Tensor]],
    ) -> Params:
        """Parameters of group g from decoded group g-1 (``prev``) and the context cache."""
        x = self._slot_input(g, prev, psi_t)
        for block, store in zip(self.blocks, cache, strict=True):
            x = block.step(x, *grid, store)
        return self._head(g, x)

    def step_nocache(
        self, g: int, decoded: list[torch.Tensor], psi_t: list[torch.Tensor], grid: tuple[int, int]
    ) -> Params:
        """Same as ``step`` but recomputes slots 0..g from scratch (reference path)."""
        x = self._run_slots(decoded, psi_t, g + 1, grid)
        return self._head(g, x[:, g])


def build_entropy_model(cfg: ModelConfig) -> GroupedMixer:
    """The entropy model for y named by ``cfg.entropy``."""
    return GroupedMixer(cfg)
