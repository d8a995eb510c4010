"""Factorized (non-parametric, per-channel) prior for the hyper-latent z.

Ballé et al. 2018, "Variational image compression with a scale hyperprior", appendix 6.1:
each channel has a learned monotone cumulative ``c(z)``; the likelihood of an integer bin is
``c(z + 1/2) - c(z - 1/2)``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class FactorizedPrior(nn.Module):
    """Per-channel learned density for z, with an integer PMF table for entropy coding."""

    def __init__(
        self,
        channels: int,
        filters: tuple[int, ...] = (3, 3, 3),
        init_scale: float = 10.0,
        z_range: int = 63,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.z_range = z_range
        dims = (1, *filters, 1)
        scale = init_scale ** (1 / (len(filters) + 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(filters) + 1):
            init = float(np.log(np.expm1(1 / scale / dims[i + 1])))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[i + 1], 1) - 0.5))
            if i < len(filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))

    def _logits_cdf(
        self, v: torch.Tensor, params: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Logit of c(v) for v of shape [channels, 1, n]; ``params`` overrides the weights."""
        p = params if params is not None else dict(self.named_parameters())
        n = len(self.matrices)
        for i in range(n):
            v = torch.matmul(F.softplus(p[f"matrices.{i}"].to(v.dtype)), v)
            v = v + p[f"biases.{i}"].to(v.dtype)
            if i < n - 1:
                v = v + torch.tanh(p[f"factors.{i}"].to(v.dtype)) * torch.tanh(v)
        return v

    def likelihood(self, z: torch.Tensor) -> torch.Tensor:
        """p(z) of each element of z [B, Nz, h, w] under the bin [z - 1/2, z + 1/2]."""
        b, c, h, w = z.shape
        v = z.float().permute(1, 0, 2, 3).reshape(c, 1, -1)
        with torch.autocast(z.device.type, enabled=False):  # CDF differences need float32
            lower = self._logits_cdf(v - 0.5)
            upper = self._logits_cdf(v + 0.5)
        sign = -torch.sign(lower + upper).detach()
        lik = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()
        return lik.clamp_min(1e-9).reshape(c, b, h, w).permute(1, 0, 2, 3)

    @torch.no_grad()
    def pmf_table(self) -> np.ndarray:
        """PMF over the integers [-z_range, z_range] per channel, float64, computed on the CPU.

        The tails beyond the range are folded into the end bins. Computing it in float64 on
        the CPU makes the table identical whichever device runs the rest of the model.
        """
        r = self.z_range
        edges = torch.arange(-r - 0.5, r + 1.0, 1.0, dtype=torch.float64)
        cpu = {n: p.detach().to("cpu", torch.float64) for n, p in self.named_parameters()}
        cdf = torch.sigmoid(self._logits_cdf(edges.expand(self.channels, 1, -1), cpu))[:, 0, :]
        pmf = cdf[:, 1:] - cdf[:, :-1]
        pmf[:, 0] += cdf[:, 0]
        pmf[:, -1] += 1 - cdf[:, -1]
        return pmf.clamp_min(0).numpy()
