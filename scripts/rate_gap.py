"""Where along the curve gmx lags: its rate over a reference's at equal PSNR, level by level.

Usage: python scripts/rate_gap.py RESULTS_JSON [--ref NAME ...] [--prev RESULTS_JSON]
    [--anchors DIR] [--step DB]

RESULTS_JSON is a `gmx bench` results.json. Each NAME is a codec it measured (avif, jpeg,
webp) or the key of a published anchor in --anchors (e.g. vtm,
compressai-bmshj2018-hyperprior_mse_cuda). BD-rate sums a whole curve into one number; this
prints gmx's rate / the reference's rate - 1 at PSNR levels every --step dB inside both
curves (log-rate interpolated linearly in PSNR between measured points), so that a change
which moves the low or the high rates shows where it acts. Each line ends with the BD-rate
of gmx against that reference. --prev adds the gmx curve of an earlier report (e.g. the
published one, `git show HEAD:docs/bench-results.json`) as one more reference, named by its
model: the new weights against the shipped ones, in real files.
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np

from gmcodec.metrics import bd_rate, load_anchors, rd_points


def rate_at(rates: list[float], psnrs: list[float], level: float) -> float:
    """The rate of a curve at PSNR ``level`` (log-rate linear in PSNR between points)."""
    order = np.argsort(psnrs)
    p, r = np.asarray(psnrs)[order], np.log(np.asarray(rates)[order])
    if not p[0] <= level <= p[-1]:
        raise ValueError(f"{level} dB is outside the curve's {p[0]:.2f}..{p[-1]:.2f} dB")
    return float(np.exp(np.interp(level, p, r)))


def gaps(test: tuple, ref: tuple, step: float) -> list[tuple[float, float]]:
    """(PSNR level, test rate / ref rate - 1) at multiples of ``step`` inside both curves."""
    lo = max(min(test[1]), min(ref[1]))
    hi = min(max(test[1]), max(ref[1]))
    levels = np.arange(math.ceil(lo / step) * step, hi + 1e-9, step)
    return [(float(v), rate_at(*test, v) / rate_at(*ref, v) - 1) for v in levels]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results")
    p.add_argument("--ref", action="append", help="reference curve (repeatable; default avif)")
    p.add_argument("--anchors", default="../shared/anchors/kodak")
    p.add_argument("--step", type=float, default=1.5, help="PSNR step, dB")
    p.add_argument("--prev", help="an earlier results.json: its gmx curve is one more reference")
    a = p.parse_args()
    bench = json.load(open(a.results))
    curves = {k: rd_points(v) for k, v in bench["codecs"].items()}
    curves |= {x.key: (list(x.bpp), list(x.psnr)) for x in load_anchors(a.anchors)}
    test = curves[bench["test_codec"]]
    refs = a.ref or ["avif"]
    if a.prev:
        prev = json.load(open(a.prev))
        codec = prev["test_codec"]  # gmx bench always names it (gmcodec.report reads it so)
        name = prev["settings"][codec]["model_id"]
        curves[name] = rd_points(prev["codecs"][codec])
        refs = [*refs, name]
    for name in refs:
        levels = ", ".join(f"{v:g} dB {g:+.0%}" for v, g in gaps(test, curves[name], a.step))
        print(f"{name}: {levels}; BD-rate {bd_rate(*curves[name], *test):+.2f}%")


if __name__ == "__main__":
    main()
