"""Seconds per training step on this machine, fp32 vs bf16 autocast (CPU, channels_last).

Usage: python scripts/cpu_speed.py [--batch 8] [--crop 128] [--steps 3]
"""

import argparse
import time

import torch

from gmcodec.config import ModelConfig
from gmcodec.model import GMModel
from gmcodec.train import rd_loss


def seconds_per_step(bf16: bool, batch: int, crop: int, steps: int) -> float:
    model = GMModel(ModelConfig()).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), 1e-4)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, crop, crop).contiguous(memory_format=torch.channels_last)
    start = 0.0
    for i in range(steps + 1):
        if i == 1:
            start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = rd_loss(model, x, gen)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) / steps


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--steps", type=int, default=3)
    a = p.parse_args()
    for bf16 in (False, True):
        print(f"bf16={bf16}: {seconds_per_step(bf16, a.batch, a.crop, a.steps):.2f} s/step")
