"""Image-quality metrics, Bjontegaard rate differences and published RD anchors.

* :func:`psnr` and :func:`ms_ssim` compare two 8-bit images (``H x W`` or ``H x W x C``);
  :func:`mean_or_none` averages them over images where some may be missing.
* :func:`bd_rate` is the Bjontegaard rate difference of a *test* curve against an *anchor*
  curve: log-rate is interpolated as a function of quality with a piecewise cubic Hermite
  (PCHIP) interpolant and integrated over the quality interval both curves cover.
* :func:`load_anchors` reads published Kodak curves, one JSON file per codec, of the form
  ``{"name": ..., "description": ..., "results": {"bpp": [...], "psnr-rgb": [...], ...}}``.

Example::

    >>> rates, psnrs = [0.2, 0.4, 0.8], [30.0, 33.0, 36.0]
    >>> round(bd_rate(rates, psnrs, [r / 2 for r in rates], psnrs), 6)
    -50.0
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "MSSSIM_MIN_SIDE",
    "Anchor",
    "AnchorError",
    "bd_rate",
    "load_anchor",
    "load_anchors",
    "mean_or_none",
    "ms_ssim",
    "msssim_db",
    "mse",
    "pchip_integral",
    "pchip_integral_numpy",
    "psnr",
]

log = logging.getLogger(__name__)

MSSSIM_MIN_SIDE = 161
"""Smallest side (pixels) for 5-scale MS-SSIM with the default 11-tap window."""


# --------------------------------------------------------------------------- PSNR / MS-SSIM


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    """Reject arrays that are not two uint8 images of the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise TypeError(f"expected uint8 arrays, got {a.dtype} and {b.dtype}")
    if a.ndim not in (2, 3) or a.size == 0:
        raise ValueError(f"expected a non-empty HxW or HxWxC image, got shape {a.shape}")


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error over all pixels and channels of two uint8 images."""
    _check_pair(a, b)
    diff = a.astype(np.float64) - b.astype(np.float64)
    return float(np.mean(diff * diff))


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """PSNR in dB of two uint8 images, MSE taken over all channels; ``inf`` if identical."""
    err = mse(a, b)
    if err == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range * data_range / err)


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float | None:
    """MS-SSIM (pytorch_msssim, ``data_range=255``) of two uint8 images.

    Returns ``None`` when the image is smaller than :data:`MSSSIM_MIN_SIDE` on a side,
    where 5-scale MS-SSIM is undefined.
    """
    _check_pair(a, b)
    if min(a.shape[0], a.shape[1]) < MSSSIM_MIN_SIDE:
        return None
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    def to_tensor(x: np.ndarray) -> torch.Tensor:
        x = x[:, :, None] if x.ndim == 2 else x
        return torch.tensor(x, dtype=torch.float32).permute(2, 0, 1)[None]

    with torch.no_grad():
        value = _ms_ssim(to_tensor(a), to_tensor(b), data_range=255, size_average=True)
    return float(value)


def msssim_db(value: float) -> float:
    """MS-SSIM expressed in dB, ``-10 log10(1 - value)``; ``inf`` for a perfect score."""
    if value >= 1.0:
        return math.inf
    return -10.0 * math.log10(1.0 - value)


def mean_or_none(values: Iterable[float | None]) -> float | None:
    """Mean of the values that are not None, or None when there are none."""
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


# --------------------------------------------------------------------------- PCHIP / BD-rate


def _pchip_end_slope(h0: float, h1: float, d0: float, d1: float) -> float:
    """Shape-preserving three-point slope at an end point of a PCHIP interpolant."""
    slope = ((2.0 * h0 + h1) * d0 - h0 * d1) / (h0 + h1)
    if np.sign(slope) != np.sign(d0):
        return 0.0
    if np.sign(d0) != np.sign(d1) and abs(slope) > abs(3.0 * d0):
        return 3.0 * d0
    return slope


def _pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Node derivatives of the Fritsch-Carlson monotone cubic (as in scipy's PCHIP)."""
    h = np.diff(x)
    delta = np.diff(y) / h
    if len(x) == 2:
        return np.array([delta[0], delta[0]])
    slopes = np.zeros_like(y)
    for k in range(1, len(x) - 1):
        if delta[k - 1] * delta[k] > 0:
            w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
            slopes[k] = (w1 + w2) / (w1 / delta[k - 1] + w2 / delta[k])
    slopes[0] = _pchip_end_slope(h[0], h[1], delta[0], delta[1])
    slopes[-1] = _pchip_end_slope(h[-1], h[-2], delta[-1], delta[-2])
    return slopes


def _hermite_antiderivative(t: float, y0: float, y1: float, m0: float, m1: float) -> float:
    """Integral from 0 to ``t`` of the unit-interval cubic Hermite (``m`` scaled by width)."""
    t2, t3, t4 = t * t, t**3, t**4
    h00 = t - t3 + t4 / 2
    h10 = t2 / 2 - 2 * t3 / 3 + t4 / 4
    h01 = t3 - t4 / 2
    h11 = -t3 / 3 + t4 / 4
    return y0 * h00 + m0 * h10 + y1 * h01 + m1 * h11


def pchip_integral_numpy(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Exact integral over ``[lo, hi]`` of the PCHIP interpolant of strictly increasing ``x``."""
    slopes = _pchip_slopes(x, y)
    total = 0.0
    for k in range(len(x) - 1):
        a, b = max(lo, x[k]), min(hi, x[k + 1])
        if b <= a:
            continue
        w = x[k + 1] - x[k]
        args = (y[k], y[k + 1], slopes[k] * w, slopes[k + 1] * w)
        ta, tb = (a - x[k]) / w, (b - x[k]) / w
        total += w * (_hermite_antiderivative(tb, *args) - _hermite_antiderivative(ta, *args))
    return float(total)


def pchip_integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Integral over ``[lo, hi]`` of the PCHIP interpolant; scipy when installed, else numpy."""
    try:
        from scipy.interpolate import PchipInterpolator
    except ImportError:
        return pchip_integral_numpy(x, y, lo, hi)
    return float(PchipInterpolator(x, y).integrate(lo, hi))


def _log_rate_curve(rate: Sequence[float], dist: Sequence[float]) -> tuple[np.ndarray, ...]:
    """Quality values (sorted, unique) and mean log-rate at each, validated."""
    r, d = np.asarray(rate, dtype=np.float64), np.asarray(dist, dtype=np.float64)
    if r.shape != d.shape or r.ndim != 1:
        raise ValueError(f"rate and distortion must be equal-length 1-D, got {r.shape}, {d.shape}")
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(d)) and np.all(r > 0)):
        raise ValueError("rates must be positive and finite, qualities finite")
    qual, inverse = np.unique(d, return_inverse=True)
    log_rate = np.bincount(inverse, weights=np.log(r)) / np.bincount(inverse)
    if len(qual) < 2:
        raise ValueError("a curve needs at least two distinct quality values")
    return qual, log_rate


def rd_points(points: Iterable[Mapping[str, Any]]) -> tuple[list[float], list[float]]:
    """The (bpp, PSNR) lists of measured points, each a mapping with "bpp" and "psnr" keys.

    The shape ``bd_rate`` takes for one curve: ``bd_rate(*rd_points(a), *rd_points(b))``.
    """
    points = list(points)
    return [float(p["bpp"]) for p in points], [float(p["psnr"]) for p in points]


def bd_rate(
    rate_a: Sequence[float],
    dist_a: Sequence[float],
    rate_b: Sequence[float],
    dist_b: Sequence[float],
) -> float:
    """Bjontegaard rate difference, in percent, of test curve ``b`` against anchor ``a``.

    ``dist`` is a quality measure where higher is better (PSNR, MS-SSIM in dB). The result
    is the mean rate ratio ``b / a`` at equal quality over the quality range both curves
    cover, minus one: ``-10.0`` means ``b`` needs 10% fewer bits than ``a``. Points that share
    a quality value are merged (geometric mean of their rates).

    Raises:
        ValueError: if a curve is malformed or the quality ranges do not overlap.
    """
    qa, la = _log_rate_curve(rate_a, dist_a)
    qb, lb = _log_rate_curve(rate_b, dist_b)
    lo, hi = max(qa[0], qb[0]), min(qa[-1], qb[-1])
    if hi <= lo:
        raise ValueError(
            f"quality ranges do not overlap: [{qa[0]:.3f}, {qa[-1]:.3f}] "
            f"vs [{qb[0]:.3f}, {qb[-1]:.3f}]"
        )
    mean_diff = (pchip_integral(qb, lb, lo, hi) - pchip_integral(qa, la, lo, hi)) / (hi - lo)
    return float((math.exp(mean_diff) - 1.0) * 100.0)


# --------------------------------------------------------------------------- anchors

_BPP_KEYS = ("bpp", "rate")
_PSNR_KEYS = ("psnr-rgb", "psnr_rgb", "psnr")
_MSSSIM_KEYS = ("ms-ssim-rgb", "ms_ssim_rgb", "ms-ssim", "ms_ssim", "msssim")
_MSSSIM_DB_KEYS = ("ms-ssim-db-rgb", "ms_ssim_db_rgb", "ms-ssim-db", "ms_ssim_db")


class AnchorError(ValueError):
    """An anchor file that cannot be used as an RD curve."""


@dataclass(frozen=True)
class Anchor:
    """A published rate-distortion curve, points sorted by rate."""

    key: str
    """File stem, unique within a directory."""
    name: str
    bpp: tuple[float, ...]
    psnr: tuple[float, ...]
    ms_ssim: tuple[float, ...] | None = None
    description: str = ""
    path: str = ""

    def __post_init__(self) -> None:
        n = len(self.bpp)
        if n < 2 or len(self.psnr) != n:
            raise AnchorError(f"{self.key}: need >= 2 (bpp, psnr) pairs of equal length")
        if self.ms_ssim is not None and len(self.ms_ssim) != n:
            raise AnchorError(f"{self.key}: ms_ssim length {len(self.ms_ssim)} != {n}")


def _series(results: Mapping[str, Any], keys: Sequence[str]) -> list[float] | None:
    """The first of ``keys`` present in ``results`` as a list of floats (NaN for junk)."""
    for key in keys:
        if key in results and isinstance(results[key], list):
            return [_as_float(v) for v in results[key]]
    return None


def _as_float(value: Any) -> float:
    """``float(value)`` or NaN when it is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _results_table(doc: Any) -> Mapping[str, Any]:
    """The ``results`` mapping of an anchor document (dict of lists or list of points)."""
    if not isinstance(doc, Mapping):
        raise AnchorError("top level is not a JSON object")
    results = doc.get("results", doc)
    if isinstance(results, list) and all(isinstance(p, Mapping) for p in results):
        keys = {k for p in results for k in p}
        return {k: [p.get(k) for p in results] for k in keys}
    if not isinstance(results, Mapping):
        raise AnchorError("'results' is neither an object nor a list of points")
    return results


def _ms_ssim_series(results: Mapping[str, Any]) -> list[float] | None:
    """Linear MS-SSIM values, converted from dB when only a dB series is given."""
    linear = _series(results, _MSSSIM_KEYS)
    if linear is not None:
        return linear
    db = _series(results, _MSSSIM_DB_KEYS)
    return None if db is None else [1.0 - 10.0 ** (-v / 10.0) for v in db]


def load_anchor(path: str | Path) -> Anchor:
    """Read one anchor JSON file; points with a missing or non-finite value are dropped.

    Raises:
        AnchorError: if the file is unreadable or has fewer than two usable PSNR points.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AnchorError(f"{path.name}: cannot read JSON ({exc})") from exc
    results = _results_table(doc)
    bpp, psnr_ = _series(results, _BPP_KEYS), _series(results, _PSNR_KEYS)
    if bpp is None or psnr_ is None:
        raise AnchorError(f"{path.name}: no bpp or PSNR series")
    msssim = _ms_ssim_series(results)
    if len(bpp) != len(psnr_) or (msssim is not None and len(msssim) != len(bpp)):
        raise AnchorError(f"{path.name}: series lengths differ")
    keep = sorted(
        (i for i in range(len(bpp)) if bpp[i] > 0 and math.isfinite(bpp[i] + psnr_[i])),
        key=lambda i: bpp[i],
    )
    if msssim is not None and not all(math.isfinite(msssim[i]) for i in keep):
        msssim = None
    return Anchor(
        key=path.stem,
        name=str(doc.get("name") or path.stem),
        bpp=tuple(bpp[i] for i in keep),
        psnr=tuple(psnr_[i] for i in keep),
        ms_ssim=None if msssim is None else tuple(msssim[i] for i in keep),
        description=str(doc.get("description") or ""),
        path=str(path),
    )


def load_anchors(directory: str | Path) -> list[Anchor]:
    """Every usable ``*.json`` anchor in ``directory``, by file name; others are logged, skipped.

    Raises:
        FileNotFoundError: if ``directory`` is not a directory.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"anchor directory not found: {directory}")
    anchors = []
    for path in sorted(directory.glob("*.json")):
        try:
            anchors.append(load_anchor(path))
        except AnchorError as exc:
            log.warning("skipping anchor %s", exc)
    return anchors
