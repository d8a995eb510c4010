"""Tests of gmcodec.metrics: PSNR, MS-SSIM, BD-rate and anchor loading."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gmcodec import metrics

KODAK_ANCHORS = Path("/work/shared/anchors/kodak")

RATES = [0.12, 0.25, 0.5, 0.9, 1.6]
PSNRS = [27.0, 30.1, 33.4, 36.2, 39.5]


def _image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def test_psnr_of_identical_images_is_inf() -> None:
    a = _image((8, 8, 3))
    assert metrics.psnr(a, a.copy()) == math.inf


def test_psnr_matches_known_mse() -> None:
    a = np.full((4, 6, 3), 100, dtype=np.uint8)
    b = a.copy()
    b[..., 0] = 110  # error 10 on one channel of three: MSE = 100 / 3
    assert metrics.mse(a, b) == pytest.approx(100 / 3)
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(255**2 * 3 / 100))


def test_psnr_of_full_scale_error_is_zero_db() -> None:
    a, b = np.zeros((3, 3), np.uint8), np.full((3, 3), 255, np.uint8)
    assert metrics.psnr(a, b) == pytest.approx(0.0)


def test_psnr_rejects_mismatched_or_float_images() -> None:
    with pytest.raises(ValueError):
        metrics.psnr(_image((4, 4, 3)), _image((4, 5, 3)))
    with pytest.raises(TypeError):
        metrics.psnr(np.zeros((4, 4)), np.zeros((4, 4)))


def test_ms_ssim_is_none_below_161_pixels() -> None:
    a = _image((160, 300, 3))
    assert metrics.ms_ssim(a, a) is None


def test_ms_ssim_is_one_for_identical_and_lower_for_noisy() -> None:
    a = _image((161, 170, 3))
    noisy = np.clip(a.astype(int) + _image((161, 170, 3), seed=1) // 8, 0, 255).astype(np.uint8)
    assert metrics.ms_ssim(a, a) == pytest.approx(1.0, abs=1e-5)
    assert metrics.ms_ssim(a, noisy) < 0.999


def test_mean_or_none_skips_missing_values() -> None:
    assert metrics.mean_or_none([1.0, None, 3.0]) == pytest.approx(2.0)
    assert metrics.mean_or_none(iter([None, None])) is None


def test_bd_rate_of_a_curve_against_itself_is_zero() -> None:
    assert metrics.bd_rate(RATES, PSNRS, RATES, PSNRS) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(("factor", "expected"), [(0.5, -50.0), (2.0, 100.0)])
def test_bd_rate_of_scaled_rates(factor: float, expected: float) -> None:
    scaled = [r * factor for r in RATES]
    assert metrics.bd_rate(RATES, PSNRS, scaled, PSNRS) == pytest.approx(expected)


def test_bd_rate_sign_says_test_curve_b_needs_fewer_bits() -> None:
    better = [p + 1.0 for p in PSNRS]  # same rates, higher quality
    assert metrics.bd_rate(RATES, PSNRS, RATES, better) < 0
    assert metrics.bd_rate(RATES, better, RATES, PSNRS) > 0


def test_bd_rate_does_not_depend_on_point_order() -> None:
    order = [3, 0, 4, 1, 2]
    shuffled = ([RATES[i] for i in order], [PSNRS[i] for i in order])
    half = [r / 2 for r in RATES]
    assert metrics.bd_rate(*shuffled, half, PSNRS) == pytest.approx(-50.0)


def test_bd_rate_without_overlap_raises() -> None:
    with pytest.raises(ValueError, match="overlap"):
        metrics.bd_rate(RATES, PSNRS, RATES, [p + 20 for p in PSNRS])


def test_bd_rate_rejects_non_positive_rates() -> None:
    with pytest.raises(ValueError):
        metrics.bd_rate([0.0, 1.0], [30.0, 35.0], [0.5, 1.0], [30.0, 35.0])


def test_numpy_pchip_integral_matches_scipy() -> None:
    interpolate = pytest.importorskip("scipy.interpolate")
    rng = np.random.default_rng(0)
    for n in (2, 3, 5, 8):
        x = np.sort(rng.uniform(0, 10, n)) + np.arange(n)
        y = rng.normal(size=n)
        lo, hi = x[0] + 0.3 * (x[1] - x[0]), x[-1] - 0.1
        expected = interpolate.PchipInterpolator(x, y).integrate(lo, hi)
        assert metrics.pchip_integral_numpy(x, y, lo, hi) == pytest.approx(expected, rel=1e-10)


def test_load_anchor_skips_bad_points_and_converts_msssim_db(tmp_path: Path) -> None:
    doc = {
        "name": "X",
        "results": {
            "bpp": [0.4, 0.1, None, 0.8],
            "psnr-rgb": [32.0, 28.0, 30.0, "nan"],
            "ms-ssim-db-rgb": [10.0, 20.0, 15.0, 12.0],
        },
    }
    path = tmp_path / "x.json"
    path.write_text(json.dumps(doc))
    anchor = metrics.load_anchor(path)
    assert (anchor.key, anchor.name) == ("x", "X")
    assert anchor.bpp == (0.1, 0.4) and anchor.psnr == (28.0, 32.0)
    assert anchor.ms_ssim == pytest.approx((0.99, 0.9))


def test_load_anchors_skips_files_without_psnr(tmp_path: Path) -> None:
    (tmp_path / "good.json").write_text(json.dumps({"results": {"bpp": [1, 2], "psnr": [30, 33]}}))
    (tmp_path / "nopsnr.json").write_text(json.dumps({"results": {"bpp": [1, 2]}}))
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "one.json").write_text(json.dumps({"results": {"bpp": [1], "psnr": [30]}}))
    assert [a.key for a in metrics.load_anchors(tmp_path)] == ["good"]


def test_load_anchors_of_missing_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        metrics.load_anchors(tmp_path / "absent")


@pytest.mark.skipif(not KODAK_ANCHORS.is_dir(), reason="shared Kodak anchors not present")
def test_real_kodak_anchors_load_and_reproduce_published_bd_rates() -> None:
    anchors = {a.key: a for a in metrics.load_anchors(KODAK_ANCHORS)}
    assert {"vtm", "jpeg", "webp", "av1", "paper-hpcm2025-base"} <= set(anchors)
    assert all(list(a.bpp) == sorted(a.bpp) and len(a.bpp) >= 2 for a in anchors.values())
    vtm, hpcm = anchors["vtm"], anchors["paper-hpcm2025-base"]
    assert vtm.ms_ssim is not None and hpcm.ms_ssim is None
    # SOURCES.md: HPCM-Base is about -16% BD-rate against VTM.
    assert metrics.bd_rate(vtm.bpp, vtm.psnr, hpcm.bpp, hpcm.psnr) == pytest.approx(-16, abs=1)


def test_rd_points_feeds_bd_rate_with_one_curve_per_list():
    a = [
        {"q": 0, "bpp": 0.2, "psnr": 28.0},
        {"q": 1, "bpp": 0.5, "psnr": 31.0},
        {"q": 2, "bpp": 1.0, "psnr": 34.0},
    ]
    b = [dict(p, bpp=p["bpp"] * 0.9) for p in a]
    assert metrics.rd_points(a) == ([0.2, 0.5, 1.0], [28.0, 31.0, 34.0])
    assert metrics.bd_rate(*metrics.rd_points(a), *metrics.rd_points(b)) == pytest.approx(-10.0)


def test_rate_gap_compares_rates_at_equal_psnr():
    from rate_gap import gaps, rate_at

    ref = ([0.1, 0.2, 0.4, 0.8], [26.0, 29.0, 32.0, 35.0])
    test = ([0.3, 0.5, 1.0], [27.0, 30.0, 33.0])
    assert rate_at(*ref, 27.5) == pytest.approx(0.2 / 2**0.5)  # log-rate midway
    levels = gaps(test, ref, 1.5)
    assert [v for v, _ in levels] == [27.0, 28.5, 30.0, 31.5, 33.0]
    assert levels[0][1] == pytest.approx(0.3 / (0.1 * 2 ** (1 / 3)) - 1)
    assert levels[-1][1] == pytest.approx(1.0 / (0.4 * 2 ** (1 / 3)) - 1)
    with pytest.raises(ValueError, match="outside"):
        rate_at(*ref, 36.0)


def test_rate_gap_compares_with_the_previous_report_by_model(tmp_path):
    curve = [{"bpp": r, "psnr": d} for r, d in ((0.2, 28.0), (0.5, 31.0), (1.0, 34.0))]
    smaller = [dict(p, bpp=p["bpp"] * 0.9) for p in curve]

    def report(name: str, gmx: list, avif: list) -> Path:
        path = tmp_path / f"{name}.json"
        bench = {"codecs": {"gmx": gmx, "avif": avif}, "test_codec": "gmx"}
        bench["settings"] = {"gmx": {"model_id": name}}
        path.write_text(json.dumps(bench))
        return path

    old, new = report("gm-old", curve, smaller), report("gm-new", smaller, curve)
    script = Path(__file__).parents[1] / "scripts" / "rate_gap.py"
    anchors = tmp_path / "anchors"  # none: the references are the two reports' curves
    anchors.mkdir()
    cmd = [sys.executable, str(script), str(new), "--prev", str(old), "--anchors", str(anchors)]
    lines = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()
    assert lines[0].startswith("avif: 28.5 dB -10%") and lines[0].endswith("BD-rate -10.00%")
    assert lines[1].startswith("gm-old: ") and lines[1].endswith("BD-rate -10.00%")
