"""Decoder fine-tuning: only decoder parameters move, crops stay aligned, runs resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gmcodec import checkpoint
from gmcodec.model import lambda_at
from gmcodec.tune_decoder import (
    LatentCropSampler,
    decoder_loss,
    decoder_parameters,
    lr_at,
    parse_args,
    reconstruction_mse,
    run,
)
from gmcodec.zoo import load_model, resolve, weights_dir

DECODER_PREFIXES = ("g_s.", "log_inv_gain")


def _args(data, ckpt, minutes=0.1):
    _, entry = resolve()
    init = weights_dir() / entry["file"]
    return parse_args(
        ["--data", str(data), "--ckpt", str(ckpt), "--minutes", str(minutes), "--init", str(init)]
        + ["--crop", "32", "--margin", "1", "--batch", "2", "--warmup", "2", "--lr", "1e-3"]
    )


def test_only_decoder_parameters_change_and_a_run_resumes(tiny_data, tmp_path):
    ckpt = tmp_path / "ckpt"
    first = run(_args(tiny_data, ckpt))
    assert first["steps"] >= 1
    start, _, _ = load_model()
    meta, state, opt = checkpoint.load(ckpt)
    before = {k: v.float() for k, v in start.state_dict().items()}
    moved = {k for k in state if not torch.equal(state[k], before[k])}
    assert moved and all(k.startswith(DECODER_PREFIXES) for k in moved)
    assert any(k.startswith("g_s.") for k in moved)
    assert any(k.endswith("exp_avg") for k in opt)
    second = run(_args(tiny_data, ckpt))
    meta2, _, _ = checkpoint.load(ckpt)
    assert second["start_step"] == first["steps"] == meta["step"]
    assert meta2["step"] == first["steps"] + second["steps"] and len(meta2["runs"]) == 2


def test_decoder_parameters_are_g_s_and_the_inverse_gains():
    model, _, _ = load_model()
    params = decoder_parameters(model)
    assert params[-1] is model.log_inv_gain
    assert (
        sum(p.numel() for p in params)
        == sum(p.numel() for p in model.g_s.parameters()) + model.log_inv_gain.numel()
    )


class _Fixed(torch.nn.Module):
    """A stand-in g_s that always outputs the same image."""

    def __init__(self, out: torch.Tensor) -> None:
        super().__init__()
        self.out = out

    def forward(self, _: torch.Tensor) -> torch.Tensor:
        return self.out


@pytest.mark.parametrize("margin", [0, 1])
def test_latent_crops_are_aligned_with_pixel_crops(margin):
    rng = np.random.default_rng(0)
    pairs = []
    for h, w in [(96, 160), (128, 80)]:
        x = torch.from_numpy(rng.integers(0, 256, (3, h, w), dtype=np.uint8))
        y = torch.nn.functional.avg_pool2d(x[None].float(), 16)[0].half()
        pairs.append((x, y))
    sampler = LatentCropSampler(pairs, 48, seed=1, margin=margin)
    for _ in range(5):
        xb, yb = sampler.batch(3)
        assert xb.shape == (3, 3, 48, 48) and yb.shape == (3, 3, 3 + 2 * margin, 3 + 2 * margin)
        pooled = torch.nn.functional.avg_pool2d(xb * 255.0, 16).half().float()
        centre = yb[..., margin : margin + 3, margin : margin + 3]
        assert torch.allclose(pooled, centre, atol=1e-3)


def test_the_loss_ignores_the_margin(monkeypatch):
    model, _, _ = load_model()
    y = torch.zeros(1, model.cfg.M, 5, 5)
    x_hat = torch.rand(1, 3, 80, 80)
    x_hat[..., 16:64, 16:64] = 0.5
    monkeypatch.setattr(model, "g_s", _Fixed(x_hat))
    x = torch.full((1, 3, 48, 48), 0.5)
    assert reconstruction_mse(model, x, y, torch.zeros(1), margin=1) < 1e-9  # exact centre
    whole = torch.full((1, 3, 80, 80), 0.5)
    assert reconstruction_mse(model, whole, y, torch.zeros(1), margin=0) > 1e-3  # edges count


def test_lambda_follows_the_trained_points_and_extrapolates_log_linearly():
    lambdas = (0.01, 0.02, 0.08)
    q = torch.tensor([-1.0, 0.0, 0.5, 1.0, 2.0, 3.0])
    got = lambda_at(lambdas, q)
    want = torch.tensor([0.005, 0.01, 0.01 * 2**0.5, 0.02, 0.08, 0.32])
    assert torch.allclose(got, want, rtol=1e-5)


def test_decoder_losses():
    mse = torch.tensor([1e-2, 1e-3])
    q = torch.tensor([0.0, 1.0])
    assert decoder_loss(mse, q, "psnr", (0.01, 0.02)).item() == pytest.approx(-25.0)
    rd = decoder_loss(mse, q, "rd", (0.01, 0.02)).item()
    assert rd == pytest.approx(255**2 * (0.01 * 1e-2 + 0.02 * 1e-3) / 2, rel=1e-5)


def test_crop_must_fit_some_image():
    x = torch.zeros(3, 32, 32, dtype=torch.uint8)
    with pytest.raises(ValueError, match="no training image"):
        LatentCropSampler([(x, torch.zeros(3, 2, 2).half())], 48, seed=0)
    with pytest.raises(ValueError, match="no training image"):
        LatentCropSampler([(x, torch.zeros(3, 2, 2).half())], 16, seed=0, margin=1)


def test_learning_rate_warms_up_then_decays_to_five_percent():
    a = parse_args(["--data", "x", "--ckpt", "y", "--minutes", "1", "--lr", "1e-3"])
    assert lr_at(a, 0, 0.0) < lr_at(a, 60, 0.0) == pytest.approx(1e-3)
    assert lr_at(a, 500, 1.0) == pytest.approx(5e-5)
    assert lr_at(a, 500, 0.5) == pytest.approx(1e-3 * (0.05 + 0.95 * 0.5))  # decays from the start
