"""Partition of the latent y into G = Kc * Ks groups of tokens.

A group ``g = (k, s)`` holds channel slice ``k`` of y at spatial phase ``s`` of each 2x2 block
(Ks = 4), or at every position (Ks = 1). Its tokens form a grid of ``T = Hb * Wb`` positions;
a token is the slice's channel vector at one position. Groups are coded slice by slice, and
inside a slice phase by phase, in the order of ``PHASES``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

PHASES = ((0, 0), (1, 1), (0, 1), (1, 0))  # (dy, dx): one diagonal, then the other


@dataclass(frozen=True)
class GroupLayout:
    """Channel slices and spatial phases of y, and the coding order of the groups."""

    slices: tuple[int, ...]
    spatial_groups: int

    @property
    def num_groups(self) -> int:
        return len(self.slices) * self.spatial_groups

    def group(self, g: int) -> tuple[int, int]:
        """(slice index k, phase index s) of group g."""
        return divmod(g, self.spatial_groups)

    def channels(self, g: int) -> int:
        """Number of channels C_g of group g."""
        return self.slices[self.group(g)[0]]

    def _channel_range(self, k: int) -> tuple[int, int]:
        start = sum(self.slices[:k])
        return start, start + self.slices[k]

    def _phase(self, s: int) -> tuple[int, int, int]:
        """(dy, dx, stride) of phase s."""
        if self.spatial_groups == 1:
            return 0, 0, 1
        dy, dx = PHASES[s]
        return dy, dx, 2

    def grid(self, hy: int, wy: int) -> tuple[int, int]:
        """Token grid (Hb, Wb) of every group for a latent of size (hy, wy)."""
        if self.spatial_groups == 1:
            return hy, wy
        if hy % 2 or wy % 2:
            raise ValueError(f"latent size {hy}x{wy} must be even for 2x2 phases")
        return hy // 2, wy // 2

    def phase_tokens(self, t: torch.Tensor, s: int) -> torch.Tensor:
        """Tokens [B, T, C] of a feature map t [B, C, Hy, Wy] at phase s."""
        dy, dx, st = self._phase(s)
        return t[:, :, dy::st, dx::st].flatten(2).transpose(1, 2)

    def tokens(self, y: torch.Tensor, g: int) -> torch.Tensor:
        """Tokens [B, T, C_g] of group g of y [B, M, Hy, Wy]."""
        k, s = self.group(g)
        a, b = self._channel_range(k)
        return self.phase_tokens(y[:, a:b], s)

    def split(self, y: torch.Tensor) -> list[torch.Tensor]:
        """All G groups of y as token tensors, in coding order."""
        return [self.tokens(y, g) for g in range(self.num_groups)]

    def merge(self, groups: list[torch.Tensor], hy: int, wy: int) -> torch.Tensor:
        """Inverse of split: token tensors back to a map [B, M, Hy, Wy]."""
        b = groups[0].shape[0]
        hb, wb = self.grid(hy, wy)
        out = groups[0].new_zeros(b, sum(self.slices), hy, wy)
        for g, tok in enumerate(groups):
            k, s = self.group(g)
            a, e = self._channel_range(k)
            dy, dx, st = self._phase(s)
            out[:, a:e, dy::st, dx::st] = tok.transpose(1, 2).reshape(b, e - a, hb, wb)
        return out
