"""Analysis/synthesis transforms g_a, g_s and hyper transforms h_a, h_s.

::

    x [3, H, W] --g_a--> y [M, H/16, W/16] --h_a--> z [Nz, H/64, W/64]
    z_hat --h_s--> psi [C, H/16, W/16]          y_hat --g_s--> x_hat [3, H, W]
"""

from __future__ import annotations

from torch import nn

from .config import ModelConfig
from .layers import GDN, ResBlock, conv, deconv


def analysis(cfg: ModelConfig) -> nn.Sequential:
    """g_a: four stride-2 stages with GDN; residual blocks at the two lowest resolutions."""
    n, m = cfg.N, cfg.M
    return nn.Sequential(
        conv(3, n), GDN(n),
        conv(n, n), GDN(n),
        conv(n, n), ResBlock(n), GDN(n),
        conv(n, m), ResBlock(m),
    )  # fmt: skip


def synthesis(cfg: ModelConfig) -> nn.Sequential:
    """g_s: mirror of g_a with inverse GDN."""
    n, m = cfg.N, cfg.M
    return nn.Sequential(
        ResBlock(m), deconv(m, n),
        GDN(n, inverse=True), ResBlock(n), deconv(n, n),
        GDN(n, inverse=True), deconv(n, n),
        GDN(n, inverse=True), deconv(n, 3),
    )  # fmt: skip


def hyper_analysis(cfg: ModelConfig) -> nn.Sequential:
    """h_a: y -> z, two stride-2 stages."""
    n = cfg.N
    return nn.Sequential(
        conv(cfg.M, n, 3, 1), nn.LeakyReLU(0.1),
        conv(n, n), nn.LeakyReLU(0.1),
        conv(n, cfg.Nz),
    )  # fmt: skip


def hyper_synthesis(cfg: ModelConfig) -> nn.Sequential:
    """h_s: z_hat -> psi, the hyper features at the resolution of y."""
    n = cfg.N
    return nn.Sequential(
        deconv(cfg.Nz, n), nn.LeakyReLU(0.1),
        deconv(n, n * 3 // 2), nn.LeakyReLU(0.1),
        conv(n * 3 // 2, cfg.C, 3, 1),
    )  # fmt: skip
