"""Training: a short run writes a checkpoint, and a second run resumes from it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gmcodec import checkpoint
from gmcodec.config import ModelConfig
from gmcodec.device import cpu_has_bf16, use_bf16
from gmcodec.train import lr_at, parse_args, run

TINY = ModelConfig(N=8, M=16, Nz=8, C=16, slices=(8, 8), d_model=16, heads=2, depth=1)
"""A model small enough for a CPU step in well under a second."""


def _args(data, ckpt, minutes=0.03, *extra):
    return parse_args(
        [
            "--data",
            str(data),
            "--ckpt",
            str(ckpt),
            "--minutes",
            str(minutes),
            "--crop",
            "64",
            "--batch",
            "2",
            "--device",
            "cpu",
            "--slices",
            "16,176",
            "--warmup",
            "2",
            *extra,
        ]
    )


def test_training_checkpoints_and_resumes_with_optimizer_state(tiny_data, tmp_path):
    ckpt = tmp_path / "ckpt"
    first = run(_args(tiny_data, ckpt))
    assert first["steps"] >= 1
    meta, state, opt = checkpoint.load(ckpt)
    assert meta["step"] == first["steps"] and len(meta["runs"]) == 1
    assert any(k.endswith("exp_avg") for k in opt)
    second = run(_args(tiny_data, ckpt))
    meta2, state2, _ = checkpoint.load(ckpt)
    assert second["start_step"] == first["steps"]
    assert meta2["step"] == first["steps"] + second["steps"] and len(meta2["runs"]) == 2
    changed = [not np.allclose(state[k].numpy(), state2[k].numpy()) for k in state]
    assert any(changed)
    log = json.loads((ckpt / "log.json").read_text())
    assert log["start_step"] == first["steps"]


def test_rd_loss_weights_each_image_by_its_lambda():
    from gmcodec.model import GMModel
    from gmcodec.train import rd_loss

    torch.manual_seed(0)
    model, x = GMModel(TINY).eval(), torch.rand(4, 3, 64, 64)
    weights = torch.arange(1.0, len(TINY.lambdas) + 1)
    runs = []
    for w in (None, weights):
        torch.manual_seed(1)  # the same rate noise in both
        runs.append(rd_loss(model, x, torch.Generator().manual_seed(3), None, w))
    plain, weighted = runs
    assert torch.equal(plain["idx"], weighted["idx"])
    assert torch.allclose(plain["per_image"], weighted["per_image"])
    per_image = plain["per_image"]
    assert plain["loss"].item() == pytest.approx(per_image.mean().item(), rel=1e-5)
    expect = (weights[weighted["idx"]] * per_image).mean().item()
    assert weighted["loss"].item() == pytest.approx(expect, rel=1e-5)
    assert weighted["loss"].item() != pytest.approx(plain["loss"].item(), rel=1e-3)


def test_lambda_weights_count_each_lambda_by_its_relative_loss():
    from gmcodec.train import LambdaWeights

    w = LambdaWeights([None] * 3, decay=0.5)
    assert torch.equal(w.table(), torch.ones(3))
    w.update(torch.tensor([0, 2]), torch.tensor([1.0, 4.0]))
    assert w.table().tolist() == pytest.approx([2.5, 1.0, 0.625])  # mean 2.5; lambda 1 unseen
    w.update(torch.tensor([2]), torch.tensor([2.0]))  # running mean 0.5 * 4 + 0.5 * 2
    assert w.ema == [1.0, None, 3.0]
    assert w.table().tolist() == pytest.approx([2.0, 1.0, 2.0 / 3.0])


def test_relative_lambda_weighting_resumes_its_running_means(tiny_data, tmp_path):
    ckpt = tmp_path / "ckpt"
    first = run(_args(tiny_data, ckpt, 0.03))  # relative is the default
    ema = checkpoint.load(ckpt)[0]["lambda_ema"]
    assert first["lambda_weighting"] == "relative" and len(ema) == len(TINY.lambdas)
    seen = [v for v in ema if v is not None]
    assert seen and all(v > 0 for v in seen)
    from gmcodec.train import lambda_weights

    args = _args(tiny_data, ckpt, 0.03, "--lambda-weighting", "relative")
    assert lambda_weights(args, checkpoint.load(ckpt)[0], len(ema)).ema == ema
    uniform = _args(tiny_data, ckpt, 0.03, "--lambda-weighting", "uniform")
    assert lambda_weights(uniform, {}, len(ema)) is None


def test_checkpoint_files_stay_under_the_shard_limit(tiny_data, tmp_path):
    ckpt = tmp_path / "ckpt"
    run(_args(tiny_data, ckpt, minutes=0.01))
    sizes = [p.stat().st_size for p in ckpt.glob("shard-*.pt")]
    assert sizes and max(sizes) < 16 * 1024 * 1024


def test_learning_rate_warms_up_then_decays():
    a = parse_args(
        ["--data", "x", "--ckpt", "y", "--minutes", "1", "--lr", "1e-3", "--warmup", "10"]
    )
    assert lr_at(a, 0, 0.0) < lr_at(a, 20, 0.1) == pytest.approx(1e-3)
    assert lr_at(a, 500, 0.75) < 1e-3
    assert lr_at(a, 900, 1.0) == pytest.approx(5e-5)
    assert lr_at(a, 500, a.decay_from) == pytest.approx(1e-3)  # flat until --decay-from


def test_seconds_per_step_times_real_optimizer_steps():
    from gmcodec.train import seconds_per_step

    seconds = seconds_per_step(TINY, batch=1, crop=64, steps=1)
    assert 0 < seconds < 60


def test_seconds_per_step_can_time_the_compiled_forward(monkeypatch):
    from gmcodec.train import seconds_per_step

    graphs, real_compile = [], torch.compile

    def aot_eager(gm, example_inputs):  # dynamo's path without needing a C++ compiler
        graphs.append(gm)
        return torch._dynamo.lookup_backend("aot_eager")(gm, example_inputs)

    monkeypatch.setattr(torch, "compile", lambda model: real_compile(model, backend=aot_eager))
    assert 0 < seconds_per_step(TINY, batch=1, crop=64, steps=1, compile=True) < 120
    assert graphs  # the timed steps ran the compiled forward


def test_bf16_auto_follows_the_cpu_flags(tmp_path):
    amx, plain = tmp_path / "amx", tmp_path / "plain"
    amx.write_text("flags\t\t: fpu sse2 avx512f amx_bf16 amx_tile\n")
    plain.write_text("flags\t\t: fpu sse2 avx2 fma\n")
    assert cpu_has_bf16(str(amx)) and not cpu_has_bf16(str(plain))
    assert not cpu_has_bf16(str(tmp_path / "missing"))


def test_bf16_modes_and_the_bare_flag():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert use_bf16(cpu, "on") and not use_bf16(cuda, "off") and use_bf16(cuda, "auto")
    with pytest.raises(ValueError, match="bf16 mode"):
        use_bf16(cpu, "maybe")
    base = ["--data", "x", "--ckpt", "y", "--minutes", "1"]
    assert parse_args(base).bf16 == "auto"
    assert parse_args([*base, "--bf16"]).bf16 == "on"
    assert parse_args([*base, "--bf16", "off"]).bf16 == "off"


def test_run_record_names_the_precision(tiny_data, tmp_path):
    record = run(_args(tiny_data, tmp_path / "ckpt", minutes=0.01))
    assert record["bf16"] == cpu_has_bf16()


def test_compiled_forward_takes_the_same_step_as_eager():
    """--compile's plumbing, traced by dynamo and AOT autograd (inductor's codegen is torch's)."""
    import copy

    from gmcodec.model import GMModel
    from gmcodec.train import train_step

    torch.manual_seed(0)
    eager = GMModel(TINY)
    compiled = copy.deepcopy(eager)
    x = torch.rand(2, 3, 64, 64)
    graphs = []

    def aot_eager(gm, example_inputs):  # records that the step went through dynamo
        graphs.append(gm)
        return torch._dynamo.lookup_backend("aot_eager")(gm, example_inputs)

    metrics = []
    for model, forward in ((eager, None), (compiled, torch.compile(compiled, backend=aot_eager))):
        opt = torch.optim.AdamW(model.parameters(), 1e-3)
        torch.manual_seed(1)
        gen = torch.Generator().manual_seed(2)
        metrics.append(train_step(model, opt, x, gen, 1.0, False, forward))
    assert graphs and metrics[1] == pytest.approx(metrics[0], rel=1e-4)
    for name, a in eager.state_dict().items():
        assert torch.allclose(a, compiled.state_dict()[name], atol=1e-5), name
    assert parse_args(["--data", "x", "--ckpt", "y", "--minutes", "1", "--compile"]).compile


def test_cpu_training_steps_use_the_math_attention_kernel():
    """The fused CPU attention kernel never runs in a CPU training step (gradient_attention)."""
    from torch.profiler import profile

    from gmcodec.model import GMModel
    from gmcodec.train import train_step

    model = GMModel(TINY)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    x = torch.rand(1, 3, 64, 64)
    with profile() as plain, torch.no_grad():  # outside the context: the fused kernel
        model(x, torch.zeros(1))
    with profile() as step:
        train_step(model, opt, x, torch.Generator().manual_seed(0), 1.0, False)
    names = {e.key for e in step.key_averages()}
    assert any("scaled_dot_product_flash" in e.key for e in plain.key_averages())
    assert "aten::_scaled_dot_product_attention_math" in names
    assert not any("flash" in name for name in names)


@pytest.mark.parametrize("foreach", [None, True])
def test_adamw_is_fused_and_resumes_an_unfused_checkpoint(tmp_path, foreach):
    """Checkpoints of PyTorch's default AdamW (training before session 13) or a foreach one
    resume in the fused one."""
    import copy

    from gmcodec.model import GMModel
    from gmcodec.train import adamw, train_step

    torch.manual_seed(0)
    model, x = GMModel(TINY), torch.rand(1, 3, 64, 64)
    old = torch.optim.AdamW(model.parameters(), 1e-3, weight_decay=0.0, foreach=foreach)
    train_step(model, old, x, torch.Generator().manual_seed(0), 1.0, False)
    checkpoint.save(tmp_path / "ckpt", model, old, {"step": 1})
    twin = copy.deepcopy(model)
    new = adamw(twin.parameters(), 1e-3, checkpoint.load(tmp_path / "ckpt")[2])
    assert all(g["fused"] and not g["foreach"] for g in new.param_groups)
    for net, opt in ((model, old), (twin, new)):  # the second step needs the restored moments
        torch.manual_seed(1)
        train_step(net, opt, x, torch.Generator().manual_seed(2), 1.0, False)
    for name, a in model.state_dict().items():  # moments round-trip through bf16; fresh: 2e-3
        assert torch.allclose(a, twin.state_dict()[name], atol=2e-5), name


def test_run_stats_summarizes_a_training_log(tmp_path):
    import run_stats

    paces = [0.5, 0.5, 2.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]  # s/step; one interval slowed
    elapsed = [50.0] + [50.0 + 100 * sum(paces[: i + 1]) for i in range(9)]
    records = [
        {"step": 100 * (i + 1), "elapsed_s": t, "loss": i + 1.0, "mse": 0.001 * (i + 1), "bpp": 1.0}
        for i, t in enumerate(elapsed)
    ]
    log = tmp_path / "run.log"
    log.write_text("\n".join(["compiling...", *map(json.dumps, records), "done"]))
    s = run_stats.stats(run_stats.entries(str(log)))
    assert s["steps"] == (100, 1000)
    assert s["median_s_per_step"] == pytest.approx(0.5)
    assert s["slowed_s"] == pytest.approx(150.0)  # the 2.0 s/step interval: 100 x 1.5 s
    assert s["loss_fifths"] == pytest.approx([1.5, 3.5, 5.5, 7.5, 9.5])
    assert s["mse"] == pytest.approx((0.0015, 0.0095))
    assert s["bpp"] == pytest.approx(1.0)


def test_weight_average_moves_by_one_minus_decay_per_step_and_resumes():
    from gmcodec.averaging import WeightAverage, load_average

    model = torch.nn.Linear(2, 1)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    avg = WeightAverage(model, 0.75)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(4.0)
    avg.update()  # 0.75 * start + 0.25 * (start + 4) = start + 1
    for n, v in avg.state_dict().items():
        assert torch.allclose(v, start[n] + 1.0)
    again = WeightAverage(model, 0.75, avg.state_dict())  # resumed, not reset to the weights
    assert all(torch.equal(again.state_dict()[n], v) for n, v in avg.state_dict().items())
    load_average(model, avg.state_dict())
    assert torch.allclose(model.weight, start["weight"] + 1.0)
    with pytest.raises(KeyError):
        load_average(model, {"weight": model.weight})
    with pytest.raises(ValueError):
        WeightAverage(model, 1.0)


def test_training_with_average_checkpoints_a_lagging_average(tiny_data, tmp_path):
    from gmcodec.train import main, weight_average

    ckpt = tmp_path / "ckpt"
    first = run(_args(tiny_data, ckpt, 0.03, "--average", "0.5"))
    assert first["average"] == 0.5 and first["steps"] >= 1
    _, state, _ = checkpoint.load(ckpt)
    averaged = checkpoint.load_averaged(ckpt)
    assert averaged.keys() <= state.keys() and len(averaged) > 10
    assert any(not torch.allclose(averaged[k], state[k]) for k in averaged)  # it lags the weights
    from gmcodec.train import resume

    model = resume(ckpt)[0]
    args = _args(tiny_data, ckpt, 0.03, "--average", "0.5")
    resumed = weight_average(args, model).state_dict()
    assert all(torch.equal(resumed[k], averaged[k]) for k in averaged)
    assert weight_average(_args(tiny_data, ckpt), model) is None  # off by default
    _export_averaged_matches(ckpt, averaged, tmp_path / "w")
    assert checkpoint.load_averaged(tmp_path / "none") == {}
    with pytest.raises(SystemExit, match="--average"):
        main(["--data", str(tiny_data), "--ckpt", str(ckpt), "--minutes", "1", "--average", "1"])


def _export_averaged_matches(ckpt, averaged, out):
    """scripts/export.py --averaged writes the average, not the last weights."""
    import subprocess
    import sys
    from pathlib import Path

    from gmcodec.zoo import model_from_file

    script = Path(__file__).parents[1] / "scripts" / "export.py"
    cmd = [sys.executable, str(script), str(ckpt), "avg", "--weights", str(out), "--averaged"]
    subprocess.run(cmd, check=True, capture_output=True)
    exported = dict(model_from_file(out / "avg.pt")[0].named_parameters())
    for k, v in averaged.items():
        assert torch.allclose(exported[k].float(), v, atol=2e-3, rtol=2e-3)


def test_centre_rounds_around_the_mean_grid_with_a_straight_through_gradient():
    from gmcodec.coder import CoderSettings
    from gmcodec.model import MEAN_GRID, centre

    assert MEAN_GRID == CoderSettings().mean_steps
    y = torch.tensor([0.30, 1.70, -2.45], requires_grad=True)
    mu = torch.tensor([0.40, 0.0, -0.20], requires_grad=True)
    y_hat = centre(y, mu)
    mu_q = torch.round(mu.detach() * 64) / 64
    assert torch.allclose(y_hat, mu_q + torch.round(y.detach() - mu_q))
    assert y_hat.tolist() == pytest.approx([0.40625, 2.0, -2.203125])  # mu on the 1/64 grid
    y_hat.sum().backward()
    assert y.grad.tolist() == [1.0, 1.0, 1.0] and mu.grad is None


def test_centred_training_decodes_the_centred_latent(tiny_data, tmp_path, monkeypatch):
    from gmcodec.model import GMModel
    from gmcodec.train import training_forward

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda m: real_compile(m, backend="eager"))

    args = _args(tiny_data, tmp_path / "ckpt", 0.03, "--centred")
    torch.manual_seed(0)
    model, x, q = GMModel(TINY).eval(), torch.rand(1, 3, 64, 64), torch.tensor([3.0])
    with torch.no_grad():
        centred = training_forward(model, args)(x, q, noise=False)["x_hat"]
        plain = model(x, q, noise=False)["x_hat"]
        assert torch.equal(centred, model(x, q, noise=False, centred=True)["x_hat"])
    assert not torch.equal(centred, plain)
    compiled = training_forward(model, _args(tiny_data, tmp_path, 0.03, "--centred", "--compile"))
    with torch.no_grad():
        assert torch.allclose(compiled(x, q, noise=False)["x_hat"], centred, atol=1e-6)
    assert training_forward(model, _args(tiny_data, tmp_path / "ckpt")) is None
    record = run(args)
    assert record["centred"] is True and record["steps"] >= 1
