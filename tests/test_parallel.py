"""Data-parallel CPU training (gmcodec.parallel): two spawned ranks act as one training run."""

from __future__ import annotations

import json

import pytest
import torch

from gmcodec import checkpoint
from gmcodec.parallel import DesyncError, Group, launch
from gmcodec.train import main


def _collectives(out, group: Group) -> None:
    """Each rank's view of the collectives, written to out/rank{r}.json."""
    torch.manual_seed(group.rank)  # different weights until shared
    net = torch.nn.Linear(3, 2)
    group.share_weights(net)
    for p in net.parameters():
        p.grad = torch.full_like(p, float(group.rank + 1))
    net.bias.grad = None if group.rank == 1 else net.bias.grad  # counts as zero
    group.average_grads(net.parameters())
    result = {
        "weight_grad": net.weight.grad.unique().tolist(),
        "bias_grad": net.bias.grad.unique().tolist(),
        "leader": group.leader_values([0.5 + group.rank, 7.0]),
        "gathered": group.gather(torch.tensor([group.rank, 10 + group.rank])).tolist(),
    }
    group.check_in_sync(net)
    with torch.no_grad():
        net.weight[0, 0] += group.rank * 1e-3
    try:
        group.check_in_sync(net)
        result["desync"] = None
    except DesyncError as e:
        result["desync"] = str(e)
    (out / f"rank{group.rank}.json").write_text(json.dumps(result))


def test_two_ranks_average_gradients_follow_rank_0_and_detect_desync(tmp_path):
    launch(_collectives, 2, tmp_path)
    for rank in (0, 1):
        r = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert r["weight_grad"] == [1.5]  # (1 + 2) / 2
        assert r["bias_grad"] == [0.5]  # (1 + 0) / 2
        assert r["leader"] == [0.5, 7.0]
        assert r["gathered"] == [0, 10, 1, 11]
        assert r["desync"] is not None and "differ" in r["desync"]


def test_single_process_group_is_a_no_op():
    group, t = Group(), torch.tensor([1.0, 2.0])
    group.average([t])
    assert t.tolist() == [1.0, 2.0] and group.leader
    assert group.leader_values([3.0]) == [3.0] and group.gather(t) is t


def test_two_process_training_run_checkpoints_one_model(tiny_data, tmp_path):
    ckpt = tmp_path / "ckpt"
    argv = ["--data", str(tiny_data), "--ckpt", str(ckpt), "--minutes", "0.05", "--crop", "64"]
    argv += ["--batch", "1", "--device", "cpu", "--slices", "16,176", "--warmup", "2"]
    main([*argv, "--procs", "2", "--lambda-weighting", "relative", "--average", "0.9"])
    meta = checkpoint.load(ckpt)[0]
    run = meta["runs"][-1]
    assert run["procs"] == 2 and run["steps"] >= 1 and meta["step"] == run["steps"]
    assert any(v is not None for v in meta["lambda_ema"])
    assert run["average"] == 0.9 and checkpoint.load_averaged(ckpt)  # rank 0 kept the average
    with pytest.raises(SystemExit, match="--procs must be >= 1"):
        main([*argv, "--procs", "0"])
