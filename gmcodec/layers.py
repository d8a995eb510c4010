"""Building blocks of the transforms: GDN and residual bottleneck blocks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    """A same-padded convolution; stride 2 halves the resolution."""
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


def deconv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    """A transposed convolution that doubles the resolution exactly."""
    return nn.ConvTranspose2d(
        cin, cout, kernel, stride=stride, padding=kernel // 2, output_padding=stride - 1
    )


class GDN(nn.Module):
    """Simplified generalized divisive normalization (L1 form) and its inverse.

    ``y_i = x_i / (beta_i + sum_j gamma_ij |x_j|)``; the inverse multiplies instead.
    ``beta`` and ``gamma`` are kept non-negative by squaring their raw parameters.
    """

    def __init__(self, channels: int, inverse: bool = False) -> None:
        super().__init__()
        self.inverse = inverse
        self.beta_raw = nn.Parameter(torch.ones(channels))
        self.gamma_raw = nn.Parameter(torch.eye(channels).mul(0.1**0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta = self.beta_raw.square() + 1e-6
        gamma = self.gamma_raw.square()[:, :, None, None]
        norm = F.conv2d(x.abs(), gamma.to(x.dtype), beta.to(x.dtype))
        return x * norm if self.inverse else x / norm


class ResBlock(nn.Module):
    """Residual bottleneck block (1x1 -> 3x3 -> 1x1), as in ELIC's transforms."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        mid = channels // 2
        self.body = nn.Sequential(
            nn.Conv2d(channels, mid, 1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(mid, mid, 3, padding=1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(mid, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)
