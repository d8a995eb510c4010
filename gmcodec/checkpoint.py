"""Resumable training checkpoints (kept out of git), sharded into files of bounded size.

A checkpoint is a folder: ``meta.json`` (config, step, elapsed time, run history) and
``shard-K.pt`` files holding the fp32 model, the optimizer state (moments in bf16) and, with
``--average``, the fp32 running average of the parameters, each file under ``max_bytes`` so it can
travel back from a GPU machine.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

MAX_SHARD_BYTES = 15 * 1024 * 1024


def _flatten(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer | None,
    averaged: dict[str, torch.Tensor] | None = None,
) -> dict[str, Any]:
    flat: dict[str, Any] = {
        f"model/{k}": v.detach().float().cpu() for k, v in model.state_dict().items()
    }
    for k, v in (averaged or {}).items():
        flat[f"avg/{k}"] = v.detach().float().cpu()
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
    averaged: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write the checkpoint folder atomically (a temp folder renamed into place).

    ``averaged``: the running parameter average (``WeightAverage.state_dict``), if any.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shards = _shards(_flatten(model, opt, averaged), max_bytes)
    for i, shard in enumerate(shards):
        torch.save(shard, tmp / f"shard-{i}.pt")
    (tmp / "meta.json").write_text(json.dumps({**meta, "shards": len(shards)}, indent=1))
    old = path.with_name(path.name + ".old")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def _read(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    meta = json.loads((path / "meta.json").read_text())
    flat: dict[str, Any] = {}
    for i in range(meta["shards"]):
        flat.update(torch.load(path / f"shard-{i}.pt", map_location="cpu", weights_only=True))
    return meta, flat


def _section(flat: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix) :]: v for k, v in flat.items() if k.startswith(prefix)}


def load(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, Any]]:
    """(meta, model state dict, flat optimizer entries) of a checkpoint folder."""
    meta, flat = _read(Path(path))
    return meta, _section(flat, "model/"), _section(flat, "opt/")


def load_averaged(path: str | Path) -> dict[str, torch.Tensor]:
    """The running parameter average saved in a checkpoint folder ({} if none or no folder)."""
    if not (Path(path) / "meta.json").exists():
        return {}
    return _section(_read(Path(path))[1], "avg/")


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
