"""Resumable training checkpoints (kept out of git), sharded into files of bounded size.

A checkpoint is a folder: ``meta.json`` (config, step, elapsed time, run history) and
``shard-K.pt`` files holding the fp32 model and the optimizer state (moments in bf16), each
file under ``max_bytes`` so it can travel back from a GPU machine.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

MAX_SHARD_BYTES = 15 * 1024 * 1024


def _flatten(model: torch.nn.Module, opt: torch.optim.Optimizer | None) -> dict[str, Any]:
    flat: dict[str, Any] = {
        f"model/{k}": v.detach().float().cpu() for k, v in model.state_dict().items()
    }
    if opt is not None:
        state = opt.state_dict()
        for pid, st in state["state"].items():
            for key, val in st.items():
                small = val.to(torch.bfloat16) if val.is_floating_point() and val.ndim else val
                flat[f"opt/{pid}/{key}"] = small.detach().cpu()
        flat["opt/param_groups"] = state["param_groups"]
    return flat


def _shards(flat: dict[str, Any], max_bytes: int) -> list[dict[str, Any]]:
    shards: list[dict[str, Any]] = [{}]
    size = 0
    for key, val in flat.items():
        n = val.numel() * val.element_size() if torch.is_tensor(val) else 4096
        if shards[-1] and size + n > max_bytes:
            shards.append({})
            size = 0
        shards[-1][key] = val
        size += n
    return shards


def save(
    path: str | Path,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer | None,
    meta: dict[str, Any],
    max_bytes: int = MAX_SHARD_BYTES,
) -> None:
    """Write the checkpoint folder atomically (a temp folder renamed into place)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shards = _shards(_flatten(model, opt), max_bytes)
    for i, shard in enumerate(shards):
        torch.save(shard, tmp / f"shard-{i}.pt")
    (tmp / "meta.json").write_text(json.dumps({**meta, "shards": len(shards)}, indent=1))
    old = path.with_name(path.name + ".old")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def load(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, Any]]:
    """(meta, model state dict, flat optimizer entries) of a checkpoint folder."""
    path = Path(path)
    meta = json.loads((path / "meta.json").read_text())
    flat: dict[str, Any] = {}
    for i in range(meta["shards"]):
        flat.update(torch.load(path / f"shard-{i}.pt", map_location="cpu", weights_only=True))
    model = {k[6:]: v for k, v in flat.items() if k.startswith("model/")}
    opt = {k[4:]: v for k, v in flat.items() if k.startswith("opt/")}
    return meta, model, opt


IMPLEMENTATION_FLAGS = ("foreach", "fused")
"""Param-group entries that choose how an optimizer steps, not what it has learned."""


def restore_optimizer(opt: torch.optim.Optimizer, flat: dict[str, Any]) -> None:
    """Load optimizer entries saved by ``save`` (moments back to the parameters' dtype).

    The implementation flags (``IMPLEMENTATION_FLAGS``) stay those ``opt`` was built with: a
    checkpoint written by PyTorch's default AdamW resumes in a fused one, and torch then places the
    ``step`` counters where the fused kernel needs them.
    """
    if "param_groups" not in flat:
        return
    state: dict[int, dict[str, torch.Tensor]] = {}
    params = [p for g in opt.param_groups for p in g["params"]]
    for key, val in flat.items():
        if key == "param_groups":
            continue
        pid, name = key.split("/", 1)
        p = params[int(pid)]
        val = val.to(p.device, p.dtype) if val.is_floating_point() and val.ndim else val
        state.setdefault(int(pid), {})[name] = val
    own = {k: opt.param_groups[0][k] for k in IMPLEMENTATION_FLAGS if k in opt.param_groups[0]}
    groups = [{**g, **own} for g in flat["param_groups"]]
    opt.load_state_dict({"state": state, "param_groups": groups})
