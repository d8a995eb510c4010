"""Bit accounting of .gmx files: per group, per latent position, and the heat-map PNG."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from gmcodec import analysis
from gmcodec import container as ct
from gmcodec.codec import MismatchError


@pytest.fixture(scope="module")
def coded(codec, crop) -> bytes:
    """A 192x128 crop at quality 50: a stream of about 1 KB."""
    return codec.encode(crop(192, 128), 50)


@pytest.fixture(scope="module")
def result(codec, coded) -> analysis.BitsAnalysis:
    return analysis.analyze(coded, codec=codec)


ANS_FLUSH_BITS = 64  # the ANS coder's final state: up to two 32-bit words per tile's stream


def test_estimated_bits_are_within_one_percent_of_the_stream(result):
    # ~4,900 bits: the flush is ~1% on its own here (gm-small-v17: 53 bits over the estimate)
    assert result.stream_bits > 4000
    gap = abs(result.total_bits - result.stream_bits)
    assert gap < 0.01 * result.stream_bits + ANS_FLUSH_BITS


def test_group_rows_follow_the_models_layout(codec, coded, result, tmp_path):
    layout = codec.model.entropy.layout
    path = tmp_path / "x.gmx"
    path.write_bytes(coded)
    rows = analysis.group_bits(path, device="cpu")
    assert [r["index"] for r in rows] == list(range(layout.num_groups))
    for r in rows:
        assert (r["slice"], r["phase"]) == layout.group(r["index"])
        assert r["channels"] == layout.channels(r["index"])
        assert r["elements"] == r["channels"] * (128 // 32) * (192 // 32)  # 2x2 phases of 8x12
        assert r["bits"] >= 0 and r["bits_per_element"] == pytest.approx(r["bits"] / r["elements"])
    assert sum(r["bits"] for r in rows) == pytest.approx(result.y_bits)


def test_maps_cover_the_image_latent_area_and_add_up(codec, crop):
    data = codec.encode(crop(72, 40), 60)  # latent area 3x5 of a padded 4x8 latent
    a = analysis.analyze(data, codec=codec)
    assert a.y_map.shape == a.z_map.shape == (math.ceil(40 / 16), math.ceil(72 / 16))
    assert (a.y_map >= 0).all() and (a.z_map > 0).all()
    assert a.padding_bits > 0
    assert a.y_map.sum() + a.z_map.sum() + a.padding_bits == pytest.approx(a.total_bits)
    np.testing.assert_allclose(analysis.bits_map(data, device="cpu"), a.y_map + a.z_map)


def test_busy_regions_cost_more_bits_than_flat_ones(codec):
    rng = np.random.default_rng(0)
    pixels = np.full((64, 128, 3), 128, np.uint8)
    pixels[:, 64:] = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    a = analysis.analyze(codec.encode(Image.fromarray(pixels), 50), codec=codec)
    assert a.y_map[:, 4:].sum() > 5 * a.y_map[:, :4].sum()


def test_gaussian_bits_match_the_quantized_gaussian():
    r = np.array([0, 1, -3, 255, -255])
    bits = analysis.gaussian_bits(r, np.full(5, 0.25), np.full(5, 2.0), symbol_range=255)
    phi = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
    expected = [-math.log2(phi((v + 0.5 - 0.25) / 2) - phi((v - 0.5 - 0.25) / 2)) for v in r[:3]]
    np.testing.assert_allclose(bits[:3], expected, rtol=1e-9)
    assert bits[3] == bits[4] == pytest.approx(24)  # far tails: the coder's probability floor


def test_gaussian_bits_sum_to_one_in_probability_over_the_range():
    r = np.arange(-20, 21)
    bits = analysis.gaussian_bits(r, np.full(r.size, -0.375), np.full(r.size, 8.0), 20)
    assert np.exp2(-bits).sum() == pytest.approx(1.0, abs=1e-12)


def test_a_tampered_group_checksum_is_detected(codec, coded):
    f = ct.parse(coded)
    tile = f.tiles[0]
    sums = list(tile.group_checksums)
    sums[3] ^= 1
    data = ct.serialize(replace(f, tiles=(replace(tile, group_checksums=tuple(sums)),)))
    with pytest.raises(MismatchError, match="group 3"):
        analysis.analyze(data, codec=codec)


def test_group_table_lists_every_group_z_and_the_total(result):
    text = analysis.format_group_table(result)
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["Group", "Slice"]
    assert len(lines) == len(result.groups) + 3
    assert lines[-2].split()[0] == "z"
    assert f"coded stream {result.stream_bits} bits" in lines[-1]


def test_bits_map_png_is_small_and_about_900_px_wide(coded, tmp_path):
    src, png = tmp_path / "x.gmx", tmp_path / "map.png"
    src.write_bytes(coded)
    a = analysis.write_bits_map(src, png, device="cpu")
    assert a.stream_bits == 8 * len(ct.parse(coded).tiles[0].words)
    with Image.open(png) as im:
        assert im.format == "PNG" and 850 <= im.width <= 950 and im.height < im.width
    assert png.stat().st_size < 200_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.png", "x.gmx"]  # no temp file
