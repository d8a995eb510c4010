"""Where the bits of a ``.gmx`` file go: per group, per latent position, as a heat map.

The file's streams are decoded with the shared :func:`~gmcodec.codec.group_loop` (checksums
verified), and each decoded symbol is charged its information content ``-log2 P(symbol)``
under the model the coder used: the per-channel categorical PMFs for z, and for y the Gaussian
with mean offset ``mean_idx / mean_steps`` (0 with bins centred on the mean) and sigma
``table[scale_idx]``, quantized to unit bins in [-R, R] with the tails folded into the end
bins. The estimate ignores the coder's fixed-point rounding and the final ANS state it flushes
(up to 64 bits per tile), so it lands within about 1% of the real stream size plus that.

>>> from gmcodec import analysis  # doctest: +SKIP
>>> a = analysis.analyze("kodim23.gmx")  # doctest: +SKIP
>>> abs(a.total_bits - a.stream_bits) < 0.01 * a.stream_bits  # doctest: +SKIP
True
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import container as ct
from .codec import Codec, coder_settings, get_codec
from .coder import CoderSettings, GroupParams
from .fileio import atomic_output

MIN_PROBABILITY = 2.0**-24
"""Floor of a symbol's probability: constriction's models give every symbol at least this."""
LATENT_STRIDE = 16  # image pixels per latent position (one side)
Z_STRIDE = 4  # latent positions per hyper-latent position (one side)

Source = bytes | str | os.PathLike[str]


@dataclass(frozen=True)
class GroupBits:
    """Estimated bits of one group of y, summed over the file's tiles."""

    index: int
    slice: int
    phase: int
    channels: int
    elements: int
    bits: float

    @property
    def bits_per_element(self) -> float:
        return self.bits / self.elements if self.elements else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-able row: index, slice, phase, channels, elements, bits, bits_per_element."""
        return {
            "index": self.index,
            "slice": self.slice,
            "phase": self.phase,
            "channels": self.channels,
            "elements": self.elements,
            "bits": self.bits,
            "bits_per_element": self.bits_per_element,
        }


@dataclass(frozen=True)
class BitsAnalysis:
    """Bits of a ``.gmx`` file by group and by latent position (estimates, in bits).

    ``y_map`` and ``z_map`` cover the image's latent area, ``ceil(height/16) x ceil(width/16)``:
    ``y_map`` sums y's bits over channels and groups at each position; ``z_map`` spreads each
    hyper-latent position's bits evenly over the 4x4 latent positions it covers. Bits spent on
    latents of the padding beyond the image are in ``padding_bits``, not in the maps.
    """

    width: int
    height: int
    quality: float
    groups: tuple[GroupBits, ...]
    z_bits: float
    y_map: np.ndarray
    z_map: np.ndarray
    padding_bits: float
    stream_bits: int

    @property
    def y_bits(self) -> float:
        return sum(g.bits for g in self.groups)

    @property
    def total_bits(self) -> float:
        """Estimated size of the coded streams (y and z), to compare with ``stream_bits``."""
        return self.y_bits + self.z_bits


# ---------------------------------------------------------------------------------------------
# Information content of decoded symbols


def gaussian_bits(
    residual: np.ndarray, mean: np.ndarray, std: np.ndarray, symbol_range: int
) -> np.ndarray:
    """-log2 P(residual) under N(mean, std) quantized to integer bins in [-R, R], float64.

    The bin [r - 1/2, r + 1/2] is measured on the tail side of the mean (the Gaussian is
    symmetric), which keeps far-tail probabilities accurate; the end bins take the tails.
    """
    r = torch.from_numpy(np.asarray(residual, dtype=np.float64))
    a = (r - torch.from_numpy(np.asarray(mean, dtype=np.float64))).abs()
    s = torch.from_numpy(np.asarray(std, dtype=np.float64))
    upper = torch.special.ndtr((0.5 - a) / s)
    lower = torch.special.ndtr((-0.5 - a) / s)
    lower = torch.where(r.abs() >= symbol_range, torch.zeros_like(lower), lower)
    p = (upper - lower).clamp_min(MIN_PROBABILITY)
    return (-torch.log2(p)).numpy()


def categorical_bits(symbols: np.ndarray, pmf: np.ndarray) -> np.ndarray:
    """-log2 pmf[symbol] for symbols indexing one PMF row, float64."""
    p = np.maximum(pmf.astype(np.float64)[symbols], MIN_PROBABILITY)
    return -np.log2(p)


# ---------------------------------------------------------------------------------------------
# Decoding with accounting


def _read(source: Source) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    return Path(source).read_bytes()


@dataclass
class _TileBits:
    """Bits of one tile: per group (tokens x channels), and z per hyper-latent position."""

    groups: list[np.ndarray]
    z: np.ndarray  # [hz, wz]


def _tile_bits(codec: Codec, tile: ct.Tile, s: CoderSettings, seed: int) -> _TileBits:
    """Decode one tile with the codec's own decoding path, charging every symbol its bits."""
    table, layout = s.scale_table(), codec.model.entropy.layout
    bits: list[np.ndarray] = []

    def account(g: int, p: GroupParams, y_g: np.ndarray) -> None:
        mean, std = p.mean_idx / s.mean_steps, table[p.scale_idx]
        b = gaussian_bits((y_g - p.base) // p.unit, mean, std, s.symbol_range)
        bits.append(b.reshape(-1, layout.channels(g)))

    with torch.no_grad():
        z_np, _ = codec.decode_latents(tile, s, seed, account)
    z_bits = [
        categorical_bits(z + codec.z_range, pmf) for z, pmf in zip(z_np, codec.pmf, strict=True)
    ]
    hz, wz = -(-tile.height // 64), -(-tile.width // 64)
    return _TileBits(bits, np.stack(z_bits).sum(0).reshape(hz, wz))


def analyze(source: Source, device: str = "auto", codec: Codec | None = None) -> BitsAnalysis:
    """Decode the streams of a ``.gmx`` file (bytes or path) and account for every bit."""
    f = ct.parse(_read(source))
    codec = (codec or get_codec(device)).codec_for(f.model)
    s, layout = coder_settings(f.coder), codec.model.entropy.layout
    hy, wy = -(-f.image.height // LATENT_STRIDE), -(-f.image.width // LATENT_STRIDE)
    y_map, z_map = np.zeros((hy, wy)), np.zeros((hy, wy))
    group_sums, elements = np.zeros(layout.num_groups), np.zeros(layout.num_groups, np.int64)
    z_bits = mapped = 0.0
    for tile in f.tiles:
        tb = _tile_bits(codec, tile, s, f.checksum_seed(tile))
        for g, b in enumerate(tb.groups):
            group_sums[g] += b.sum()
            elements[g] += b.size
        z_bits += float(tb.z.sum())
        y_full = _merge(layout, tb.groups, Z_STRIDE * tb.z.shape[0], Z_STRIDE * tb.z.shape[1])
        z_full = np.kron(tb.z, np.full((Z_STRIDE, Z_STRIDE), 1.0 / Z_STRIDE**2))
        mapped += _paste(y_map, y_full, tile) + _paste(z_map, z_full, tile)
    groups = tuple(
        GroupBits(g, *layout.group(g), layout.channels(g), int(elements[g]), float(group_sums[g]))
        for g in range(layout.num_groups)
    )
    return BitsAnalysis(
        f.image.width,
        f.image.height,
        f.coder.quality,
        groups,
        z_bits,
        y_map,
        z_map,
        padding_bits=float(group_sums.sum()) + z_bits - mapped,
        stream_bits=8 * sum(len(t.words) for t in f.tiles),
    )


def _merge(layout: Any, groups: list[np.ndarray], hy: int, wy: int) -> np.ndarray:
    """Per-element bits of all groups -> bits per latent position [hy, wy] (channels summed)."""
    tokens = [torch.from_numpy(b)[None] for b in groups]
    return layout.merge(tokens, hy, wy)[0].sum(0).numpy()


def _paste(dst: np.ndarray, full: np.ndarray, tile: ct.Tile) -> float:
    """Add a tile's latent map, cropped to the tile's image area, into dst; return its sum."""
    top, left = tile.y // LATENT_STRIDE, tile.x // LATENT_STRIDE
    rows = min(-(-tile.height // LATENT_STRIDE), dst.shape[0] - top)
    cols = min(-(-tile.width // LATENT_STRIDE), dst.shape[1] - left)
    part = full[:rows, :cols]
    dst[top : top + rows, left : left + cols] += part
    return float(part.sum())


# ---------------------------------------------------------------------------------------------
# Public views


def group_bits(source: Source, device: str = "auto") -> list[dict[str, Any]]:
    """Per group of y: index, slice, phase, channels, elements, bits, bits_per_element."""
    return [g.as_dict() for g in analyze(source, device).groups]


def bits_map(source: Source, device: str = "auto", include_z: bool = True) -> np.ndarray:
    """Bits per latent position (16x16 pixels), ``[ceil(H/16), ceil(W/16)]``, float64.

    With ``include_z`` each hyper-latent position's bits are spread evenly over the 4x4
    latent positions it covers; otherwise the map holds y's bits only.
    """
    a = analyze(source, device)
    return a.y_map + a.z_map if include_z else a.y_map.copy()


_TABLE_ROW = "{:>5} {:>5} {:>5} {:>8} {:>10} {:>9} {:>6}"


def format_group_table(a: BitsAnalysis) -> str:
    """Aligned text table of each group's bits, z's bits and the total, for ``gmx info -v``."""
    share = 100 / (a.total_bits or 1.0)
    rows = [_TABLE_ROW.format("Group", "Slice", "Phase", "Channels", "Bits", "Bits/elem", "Share")]
    for g in a.groups:
        rows.append(
            _TABLE_ROW.format(
                g.index,
                g.slice,
                g.phase,
                g.channels,
                f"{g.bits:.0f}",
                f"{g.bits_per_element:.4f}",
                f"{g.bits * share:.1f}%",
            )
        )
    rows.append(
        _TABLE_ROW.format("z", "", "", "", f"{a.z_bits:.0f}", "", f"{a.z_bits * share:.1f}%")
    )
    off = 100 * (a.total_bits / a.stream_bits - 1) if a.stream_bits else 0.0
    rows.append(
        f"Estimated {a.total_bits:.0f} bits; coded stream {a.stream_bits} bits ({off:+.2f}%)"
    )
    return "\n".join(rows)


# ---------------------------------------------------------------------------------------------
# Heat map


FIGURE_WIDTH_PX = 900
_DPI = 100


def write_bits_map(
    gmx_path: Source, png_path: str | os.PathLike[str], device: str = "auto"
) -> BitsAnalysis:
    """Write a PNG: the decoded image beside a heat map of bits per latent position.

    The map includes z's share (see :func:`bits_map`); the colour bar is in bits per 16x16
    block. The PNG is about 900 px wide and palette-compressed; it is written atomically.
    """
    data = _read(gmx_path)
    codec = get_codec(device)
    a = analyze(data, codec=codec)
    img = codec.decode(data)
    name = Path(gmx_path).name if isinstance(gmx_path, str | os.PathLike) else "image"
    bpp = 8 * len(data) / (a.width * a.height)
    png = _render(a, img, f"{name}: quality {a.quality:g}, {len(data)} bytes, {bpp:.3f} bpp")
    with atomic_output(png_path, force=True) as fh:
        fh.write(png)
    return a


def _render(a: BitsAnalysis, img: Any, title: str) -> bytes:
    """The figure as PNG bytes (matplotlib's Agg canvas; pyplot's global state is not used)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("the bits map needs matplotlib: pip install matplotlib") from None
    from PIL import Image

    width_in = FIGURE_WIDTH_PX / _DPI
    panel = (width_in - 1.0) / 2  # room for the colour bar
    fig = Figure(figsize=(width_in, panel * a.height / a.width + 0.8), dpi=_DPI)
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.12]})
    extent = (0, a.width, a.height, 0)
    thumb = img.convert("RGB")
    thumb.thumbnail((int(panel * _DPI), int(panel * _DPI * a.height / a.width) + 1))
    left.imshow(thumb, extent=extent)
    left.set_title("decoded", fontsize=9)
    heat = right.imshow(
        a.y_map + a.z_map,
        cmap="inferno",
        interpolation="nearest",
        extent=(0, a.y_map.shape[1] * LATENT_STRIDE, a.y_map.shape[0] * LATENT_STRIDE, 0),
    )
    right.set_xlim(0, a.width)
    right.set_ylim(a.height, 0)
    z_share = 100 * a.z_bits / (a.total_bits or 1.0)
    right.set_title(f"bits per 16x16 block (y + z; z = {z_share:.1f}%)", fontsize=9)
    fig.colorbar(heat, ax=right, fraction=0.05, pad=0.02).set_label("bits", fontsize=8)
    for ax in (left, right):
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    out = Image.open(buf).convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE)
    buf = io.BytesIO()
    out.save(buf, format="PNG", optimize=True)
    return buf.getvalue()
