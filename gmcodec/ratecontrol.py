"""Rate control: the quality that gives the largest file not above a target size.

``gmx encode --bpp/--size`` calls :func:`fit_rate` with a function that encodes the image at
a quality and returns the file's bytes::

    fit = fit_rate(lambda q: codec.encode(img, q), target_bytes=50_000)
    assert len(fit.data) <= 50_000 or not fit.within

Torch-free; the encoder is whatever callable it is given.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from .constants import QUALITY_MAX

__all__ = ["RATE_MAX_STEPS", "RATE_TOLERANCE", "RateFit", "fit_rate"]

RATE_TOLERANCE = 0.02
"""fit_rate stops once the file is at most this fraction below the target (never above)."""
RATE_MAX_STEPS = 12
"""fit_rate gives up after this many encodes (plus at most one at an end of the range)."""
_CENTI_MAX = round(QUALITY_MAX * 100)  # the file stores the quality in hundredths
_LOG_SIZE_PER_CENTI = math.log(2) / 3000
"""Typical slope of log(size) over the quality in hundredths: the size doubles per ~30."""


@dataclass(frozen=True)
class RateFit:
    """What --bpp/--size found: the file, its quality and how many encodes it took."""

    data: bytes = field(repr=False)
    quality: float
    encodes: int
    within: bool
    """The size is in [target * (1 - tolerance), target]."""
    note: str = ""


def fit_rate(
    encode: Callable[[float], bytes],
    target_bytes: float,
    tolerance: float = RATE_TOLERANCE,
    max_steps: int = RATE_MAX_STEPS,
) -> RateFit:
    """Search the quality (0..100 in steps of 0.01) for the largest file not over target_bytes.

    A safeguarded bisection: the quality interval known to hold the answer only shrinks.
    Each probe follows the secant of log(size) through the last two files (from one file, a
    typical slope), kept inside the interval; when the interval has not halved in two
    probes, the next probe is its midpoint. Needs the size to grow with the quality. Stops
    at the first file within ``tolerance`` below the target, else after ``max_steps``
    encodes; it then tries the end of the range that was never reached when no file fit,
    or when every file fit.
    """
    lo, hi = 0, _CENTI_MAX
    aim = (1 - tolerance / 2) * target_bytes
    best: tuple[int, bytes] | None = None
    tried: list[tuple[int, int]] = []  # (quality in hundredths, bytes)
    widths = [hi - lo]
    while len(tried) < max_steps and hi - lo > 1:
        stalled = len(widths) > 2 and widths[-1] > widths[-3] / 2
        centi = _next_probe(lo, hi, tried[-2:], aim, bisect=stalled)
        data = encode(centi / 100)
        tried.append((centi, len(data)))
        if len(data) > target_bytes:
            hi = centi
        else:
            lo, best = centi, (centi, data)
            if len(data) >= (1 - tolerance) * target_bytes:
                return RateFit(data, centi / 100, len(tried), True)
        widths.append(hi - lo)
    return _fit_ends(encode, target_bytes, tolerance, best, hi, len(tried))


def _next_probe(lo: int, hi: int, recent: list[tuple[int, int]], aim: float, bisect: bool) -> int:
    """The next quality (hundredths) to try, strictly inside (lo, hi)."""
    guess = (lo + hi) / 2
    if not bisect and recent:
        (q0, s0), (q1, s1) = recent[0], recent[-1]
        slope = math.log(s1 / s0) / (q1 - q0) if q1 != q0 and s1 != s0 else _LOG_SIZE_PER_CENTI
        guess = q1 + math.log(aim / s1) / slope if slope > 0 else guess
    return min(max(round(guess), lo + 1), hi - 1)


def _fit_ends(
    encode: Callable[[float], bytes],
    target_bytes: float,
    tolerance: float,
    best: tuple[int, bytes] | None,
    hi: int,
    steps: int,
) -> RateFit:
    """fit_rate's last word: try quality 0 (nothing fit) or 100 (everything fit)."""
    if best is None or hi == _CENTI_MAX:
        end = 0 if best is None else _CENTI_MAX
        data = encode(end / 100)
        steps += 1
        if len(data) <= target_bytes or best is None:
            best = (end, data)
    centi, data = best
    within = (1 - tolerance) * target_bytes <= len(data) <= target_bytes
    note = "" if within else _miss_note(len(data), centi, target_bytes, steps)
    return RateFit(data, centi / 100, steps, within, note)


def _miss_note(size: int, centi: int, target_bytes: float, steps: int) -> str:
    """Why the file of ``size`` bytes at quality ``centi`` / 100 is not within the tolerance."""
    if size > target_bytes:
        return f"the target is below the lowest rate ({size:,} bytes at quality 0)"
    if centi == _CENTI_MAX:
        return "the target is above the highest rate (quality 100)"
    return f"closest file below the target after {steps} encodes"
