"""The GroupedMixer image codec model (transforms + hyperprior + GroupedMixer).

::

    x --g_a--> y --*gain(q)--> y_q --h_a--> z --Q--> z_hat --h_s--> psi
                               y_q --Q--> y_hat   (decoded: y_hat = mu_q + round(y_q - mu_q),
                                                   coder id 2; training: round(y_q) or centred)
    (y_hat, psi) --GroupedMixer--> mu, sigma           y_hat * inv_gain(q) --g_s--> x_hat

Variable rate: one gain vector and one inverse-gain vector per trained lambda (Cui et al.,
"Asymmetric gained deep image compression", 2021), interpolated geometrically in between,
so the quality q is a continuous value in [0, K-1].
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import ModelConfig
from .entropy import FactorizedPrior, build_entropy_model
from .transforms import analysis, hyper_analysis, hyper_synthesis, synthesis

_LOG2 = math.log(2.0)
MEAN_GRID = 64
"""Steps per unit of the quantized mean mu_q that coder id 2 centres its bins on."""


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """round(x) in the forward pass, identity gradient in the backward pass."""
    return x + (torch.round(x) - x).detach()


def centre(y: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """y_hat = mu_q + round(y_q - mu_q), mu_q = round(64 mu) / 64: what coder id 2 decodes.

    Straight-through: the gradient reaches y_q as identity and never mu (detached).
    """
    m = torch.round(mu.detach().float() * MEAN_GRID) / MEAN_GRID
    return m + ste_round(y - m)


def gaussian_likelihood(y: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Mass of the unit bin around y under N(mu, sigma)."""
    v = (y - mu).abs()
    upper = torch.special.ndtr((0.5 - v) / sigma)
    lower = torch.special.ndtr((-0.5 - v) / sigma)
    return (upper - lower).clamp_min(1e-9)


def _add_noise(t: torch.Tensor) -> torch.Tensor:
    """t + U(-1/2, 1/2), the training proxy of quantization, in float32."""
    t = t.float()
    return t + torch.empty_like(t).uniform_(-0.5, 0.5)


class GMModel(nn.Module):
    """Transforms g_a, g_s, h_a, h_s, the factorized prior of z and the GroupedMixer of y."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.g_a, self.g_s = analysis(cfg), synthesis(cfg)
        self.h_a, self.h_s = hyper_analysis(cfg), hyper_synthesis(cfg)
        self.prior = FactorizedPrior(cfg.Nz)
        self.entropy = build_entropy_model(cfg)
        k = len(cfg.lambdas)
        init = torch.linspace(math.log(0.5), math.log(4.0), k)[:, None].expand(k, cfg.M)
        self.log_gain = nn.Parameter(init.clone())
        self.log_inv_gain = nn.Parameter(-init.clone())

    @property
    def num_qualities(self) -> int:
        """K, the number of trained lambda points; q ranges over [0, K-1]."""
        return len(self.cfg.lambdas)

    def gains(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gain and inverse gain [B, M, 1, 1] for continuous qualities q [B].

        Inside [0, K-1] the log-gains are interpolated between the trained points; outside,
        the end segments are extrapolated linearly (used to widen the rate range slightly).
        """
        q = q.to(self.log_gain.device, torch.float32)
        lo = q.floor().clamp(0, self.num_qualities - 2).long()
        t = (q - lo)[:, None]

        def interp(table: torch.Tensor) -> torch.Tensor:
            mixed = (1 - t) * table[lo] + t * table[lo + 1]
            return mixed.exp()[:, :, None, None]

        return interp(self.log_gain), interp(self.log_inv_gain)

    def forward(
        self, x: torch.Tensor, q: torch.Tensor, noise: bool = True, centred: bool = False
    ) -> dict[str, torch.Tensor]:
        """Training pass: x [B, 3, H, W] in [0, 1], H and W multiples of 64; q [B].

        Returns x_hat and the bits of y and z per image. The context fed to the GroupedMixer
        is round(y_q) (straight-through gradient). The rate uses additive uniform noise
        (``noise=True``) or the rounded values (evaluation). ``centred``: g_s decodes, and the
        evaluation rate scores, y_hat = ``centre(y_q, mu)`` as coder id 2 does rather than
        round(y_q); the context stays round(y_q), since one pass cannot feed each group the
        centred y_hat of the groups before it.
        """
        gain, inv_gain = self.gains(q)
        y = self.g_a(x).float() * gain
        y_hat, z, mu, sigma = self.context_params(y)
        if centred:
            y_hat = centre(y, mu)
        y_r, z_r = (_add_noise(y), _add_noise(z)) if noise else (y_hat, torch.round(z).float())
        bits_y, bits_z = self.bits(y_r, z_r, mu, sigma)
        x_hat = self.g_s(y_hat * inv_gain)
        return {"x_hat": x_hat, "bits_y": bits_y, "bits_z": bits_z}

    def context_params(
        self, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(y_hat, z, mu, sigma) for gained latents y_q, rounding straight-through.

        z = h_a(y_q), psi = h_s(round(z)), y_hat = round(y_q); the GroupedMixer sees y_hat as
        context, the same values the decoder has.
        """
        z = self.h_a(y)
        psi = self.h_s(ste_round(z))
        y_hat = ste_round(y)
        mu, sigma = self.entropy(y_hat, psi)
        return y_hat, z, mu, sigma

    def bits(
        self, y_r: torch.Tensor, z_r: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Bits per image of y (at values y_r, under N(mu, sigma)) and of z (values z_r)."""
        bits_y = -torch.log(gaussian_likelihood(y_r, mu, sigma)).sum((1, 2, 3)) / _LOG2
        bits_z = -torch.log(self.prior.likelihood(z_r)).sum((1, 2, 3)) / _LOG2
        return bits_y, bits_z


def lambda_at(lambdas: tuple[float, ...], q: torch.Tensor) -> torch.Tensor:
    """lambda(q): log-linear between the trained points, extrapolated like the gain vectors."""
    table = torch.tensor(lambdas).log()
    lo = q.floor().clamp(0, len(lambdas) - 2).long()
    t = q - lo
    return ((1 - t) * table[lo] + t * table[lo + 1]).exp()
