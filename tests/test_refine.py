"""Encoder effort (latent refinement): better loss, ordinary files, deterministic, bounded."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from gmcodec import refine
from gmcodec.cli import cli
from gmcodec.imageio import to_tensor


def _latent(codec, img: Image.Image, q: float) -> tuple[torch.Tensor, torch.Tensor]:
    x = to_tensor(img)
    with torch.no_grad():
        return x, codec.latent(x, q)


def test_refinement_lowers_the_true_loss(codec, crop):
    x, y0 = _latent(codec, crop(128, 96), 3.0)
    y, info = refine.refine_latent(codec.model, x, y0, 3.0, steps=8)
    assert info.steps == 8
    assert info.loss_after < info.loss_before
    assert y.shape == y0.shape and not torch.equal(y.round(), y0.round())


def test_refinement_for_bins_centred_on_the_mean_scores_that_rounding(codec, crop):
    x, y0 = _latent(codec, crop(128, 96), 3.0)
    _, integer = refine.refine_latent(codec.model, x, y0, 3.0, steps=0)
    y, centred = refine.refine_latent(codec.model, x, y0, 3.0, steps=8, centred=True)
    assert centred.loss_before < integer.loss_before  # the centred rounding of the same y0
    assert centred.loss_after < centred.loss_before


def test_the_codec_refines_for_the_rounding_its_coder_uses(codec, crop, monkeypatch):
    import gmcodec.codec as codec_module

    seen, real = [], codec_module.refine_latent

    def spy(*args, **kwargs):
        seen.append(kwargs.get("centred"))
        return real(*args, **kwargs)

    monkeypatch.setattr(codec_module, "refine_latent", spy)
    codec.encode(crop(64, 64), 60, effort=2)
    assert seen == [codec.settings.centred] == [True]


def test_bf16_steps_report_full_precision_losses(codec, crop):
    x, y0 = _latent(codec, crop(64, 64), 3.0)
    _, full = refine.refine_latent(codec.model, x, y0, 3.0, steps=4, bf16=False)
    y, half = refine.refine_latent(codec.model, x, y0, 3.0, steps=4, bf16=True)
    assert half.loss_before == pytest.approx(full.loss_before, rel=1e-6)
    assert half.loss_after <= half.loss_before
    assert (half.loss_after < half.loss_before) == (not torch.equal(y, y0))


def test_zero_steps_returns_the_analysis_latent(codec, crop):
    x, y0 = _latent(codec, crop(64, 64), 5.0)
    y, info = refine.refine_latent(codec.model, x, y0, 5.0, steps=0)
    assert torch.equal(y, y0)
    assert info.loss_after == info.loss_before


def test_effort_file_decodes_to_the_encoders_reconstruction(codec, crop):
    img = crop(96, 80)
    fast, slow = codec.encode(img, 60, effort=1), codec.encode(img, 60, effort=2)
    assert fast != slow
    assert codec.encode(img, 60, effort=2) == slow  # deterministic
    decoded = np.asarray(codec.decode(slow))
    assert np.array_equal(decoded, np.asarray(codec.reconstruct(img, 60, effort=2)))


def test_effort_range_is_checked(codec, crop):
    with pytest.raises(ValueError, match="effort"):
        codec.encode(crop(64, 64), 50, effort=6)
    with pytest.raises(ValueError, match="effort"):
        refine.steps_for(0)
    assert [refine.steps_for(e) for e in range(1, 6)] == sorted(refine.EFFORT_STEPS.values())


def test_large_image_falls_back_with_a_warning(codec, crop, monkeypatch):
    img = crop(64, 64)
    monkeypatch.setattr(refine, "MAX_PIXELS", 64 * 64 - 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = codec.encode(img, 50, effort=3)
    assert any(issubclass(w.category, refine.EffortWarning) for w in caught)
    assert data == codec.encode(img, 50, effort=1)


def test_cli_effort(tmp_path, crop):
    src, out = tmp_path / "a.png", tmp_path / "a.gmx"
    crop(64, 64).save(src)
    res = CliRunner().invoke(cli, ["encode", str(src), str(out), "-e", "2", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert Image.open(io.BytesIO(_decode(tmp_path, out))).size == (64, 64)
    bad = CliRunner().invoke(cli, ["encode", str(src), str(tmp_path / "b.gmx"), "-e", "9"])
    assert bad.exit_code == 2 and "effort" in bad.output
    assert not (tmp_path / "b.gmx").exists()


def _decode(tmp_path, gmx) -> bytes:
    png = tmp_path / "back.png"
    res = CliRunner().invoke(cli, ["decode", str(gmx), str(png), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    return png.read_bytes()
