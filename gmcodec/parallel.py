"""Data-parallel training on one machine's CPU: N processes, gradients averaged every step.

On the 2-core development machine a training process with two threads leaves the cores partly idle,
presumably in the many small operations of a step (the GroupedMixer's slots, the optimizer, the crop
sampler). Two independent single-thread processes run side by side at 1.49x the images per second
(session 16: 0.694 s per batch-4 step each, against 0.518 s for one two-thread process;
``docs/TRAINING.md``). ``gmcodec.train --procs N`` runs N such processes as one training run
(``--procs 2 --batch 2``: 0.447 s per batch-4 step, 1.16x): each rank draws its own crops and
lambdas, the gradients are averaged (one gloo all-reduce) before clipping and the AdamW step, so
every rank holds the same weights; rank 0 sets the learning rate, decides when the budget is spent
and writes checkpoints and logs.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


class DesyncError(RuntimeError):
    """The ranks' weights differ: averaged steps no longer act on one model."""


class Group:
    """The ranks of one training run; a single process is rank 0 of 1 (every method a no-op)."""

    def __init__(self, rank: int = 0, world: int = 1) -> None:
        self.rank, self.world = rank, world

    @property
    def leader(self) -> bool:
        """Whether this rank sets the schedule and writes checkpoints and logs."""
        return self.rank == 0

    def average(self, tensors: list[torch.Tensor]) -> None:
        """Average the tensors in place over the ranks (one all-reduce of their concatenation)."""
        if self.world == 1 or not tensors:
            return
        flat = torch.cat([t.detach().reshape(-1).float() for t in tensors])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for t in tensors:
            t.detach().copy_(flat[offset : offset + t.numel()].view_as(t))
            offset += t.numel()

    def average_grads(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Average the gradients; a parameter without one counts as a zero gradient."""
        if self.world == 1:
            return
        params = [p for p in params if p.requires_grad]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        self.average([p.grad for p in params])

    def share_weights(self, model: torch.nn.Module) -> None:
        """Give every rank rank 0's parameters and buffers (a fresh model's random init)."""
        if self.world == 1:
            return
        with torch.no_grad():
            for t in [*model.parameters(), *model.buffers()]:
                dist.broadcast(t.data, 0)

    def leader_values(self, values: list[float]) -> list[float]:
        """Rank 0's values, on every rank."""
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64)
        dist.broadcast(t, 0)
        return t.tolist()

    def gather(self, t: torch.Tensor) -> torch.Tensor:
        """The concatenation over the ranks (in rank order) of equally shaped tensors."""
        if self.world == 1:
            return t
        parts = [torch.empty_like(t) for _ in range(self.world)]
        dist.all_gather(parts, t.contiguous())
        return torch.cat(parts)

    def check_in_sync(self, model: torch.nn.Module) -> None:
        """Raise ``DesyncError`` unless every rank holds bit-identical weights."""
        if self.world == 1:
            return
        total = sum(p.detach().double().sum() for p in model.parameters())
        sums = self.gather(torch.tensor([float(total)], dtype=torch.float64))
        if not bool((sums == sums[0]).all()):
            raise DesyncError(f"ranks' weights differ (parameter sums {sums.tolist()})")


def launch(fn: Callable[..., Any], world: int, *args: Any) -> None:
    """Run ``fn(*args, group)`` in ``world`` spawned processes of cores // world threads each.

    The ranks meet through a file in a fresh temporary folder, not a TCP port picked in
    advance, which another process could take between the pick and the ranks' bind.
    """
    with tempfile.TemporaryDirectory(prefix="gmx-ranks-") as folder:
        store = f"file://{os.path.join(folder, 'store')}"
        mp.spawn(_entry, args=(world, store, fn, args), nprocs=world, join=True)


def _entry(rank: int, world: int, store: str, fn: Callable[..., Any], args: tuple) -> None:
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    dist.init_process_group("gloo", init_method=store, rank=rank, world_size=world)
    try:
        fn(*args, Group(rank, world))
    finally:
        dist.destroy_process_group()
