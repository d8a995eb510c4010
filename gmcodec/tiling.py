"""Run a convolutional transform over a large image in overlapping tiles (bounded memory).

Each tile is processed with a halo of context on every side and only its core is kept, so the
result has no visible seams: the halo covers almost all of the transform's receptive field.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

TILE_PIXELS = 1024  # tile core, in image pixels (a multiple of 64)
HALO_PIXELS = 128  # context on each side, in image pixels (a multiple of 16)
TILE_ABOVE = 2048  # images with a side longer than this are processed in tiles


def _spans(size: int, tile: int) -> list[tuple[int, int]]:
    return [(a, min(a + tile, size)) for a in range(0, size, tile)]


def apply_tiled(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tile: int, halo: int, scale: float
) -> torch.Tensor:
    """``fn(x)`` computed tile by tile; ``fn`` maps [1, C, h, w] to [1, C', h*scale, w*scale].

    ``tile`` and ``halo`` are in units of x and must keep tile edges on the grid where
    ``fn``'s output is exactly ``scale`` times its input (multiples of 16 for g_a's input).
    """
    h, w = x.shape[-2:]
    out: torch.Tensor | None = None
    for y0, y1 in _spans(h, tile):
        for x0, x1 in _spans(w, tile):
            top, left = max(0, y0 - halo), max(0, x0 - halo)
            part = fn(x[..., top : min(h, y1 + halo), left : min(w, x1 + halo)])
            if out is None:
                out = part.new_empty(1, part.shape[1], round(h * scale), round(w * scale))
            rows = slice(round((y0 - top) * scale), round((y1 - top) * scale))
            cols = slice(round((x0 - left) * scale), round((x1 - left) * scale))
            out[
                ..., round(y0 * scale) : round(y1 * scale), round(x0 * scale) : round(x1 * scale)
            ] = part[..., rows, cols]
    assert out is not None
    return out


def needs_tiling(height: int, width: int) -> bool:
    """Whether an image of this size is transformed in tiles."""
    return max(height, width) > TILE_ABOVE


def analysis(g_a: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """g_a over a padded image x [1, 3, H, W], tiled when large."""
    if not needs_tiling(*x.shape[-2:]):
        return g_a(x)
    return apply_tiled(g_a, x, TILE_PIXELS, HALO_PIXELS, 1 / 16)


def synthesis(g_s: Callable[[torch.Tensor], torch.Tensor], y: torch.Tensor) -> torch.Tensor:
    """g_s over a latent y [1, M, H/16, W/16], tiled when the image is large."""
    if not needs_tiling(y.shape[-2] * 16, y.shape[-1] * 16):
        return g_s(y)
    return apply_tiled(g_s, y, TILE_PIXELS // 16, HALO_PIXELS // 16, 16)
