"""Seconds per training step on this machine, fp32 vs bf16 autocast (CPU, channels_last).

With --compile, also bf16 with the forward through torch.compile (``gmcodec.train --compile``).
Training steps use the math attention kernel on a CPU (``device.gradient_attention``);
--fused-attention times them with PyTorch's default (fused) CPU kernel instead, as before.
The optimizer is ``train.adamw`` (fused AdamW); --default-adamw times PyTorch's default AdamW
instead (on a CPU a loop over the parameters), which training used before session 13.

With --profile, the ops with the most self CPU time over one eager timing (warm-up step
included) in the precision ``gmcodec.train --bf16 auto`` picks on this CPU (bf16 only where it
has bf16 units), from torch.profiler.

With --weights, also the training loss of one fixed batch of validation crops under both
precisions, so that bf16's speed can be weighed against how closely it tracks fp32.

Usage: python scripts/cpu_speed.py [--batch 8] [--crop 128] [--steps 3] [--compile]
                                   [--fused-attention] [--default-adamw] [--profile]
                                   [--weights weights/MODEL.pt --data pack/val]
"""

import argparse
from contextlib import nullcontext

import torch

from gmcodec import train
from gmcodec.config import ModelConfig
from gmcodec.data import CropSampler, load_images
from gmcodec.device import use_bf16


def loss_by_precision(weights: str, data: str, batch: int, crop: int) -> None:
    """Print loss / bpp / MSE of one seeded batch in fp32 and under bf16 autocast."""
    model = train.load_any(weights).float().to(memory_format=torch.channels_last).train()
    sampler = CropSampler(load_images(data, torch.device("cpu"), crop), crop, 0)
    x = sampler.batch(batch).contiguous(memory_format=torch.channels_last)
    for bf16 in (False, True):
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
        torch.manual_seed(1)  # the rate's additive noise comes from the global generator
        with torch.no_grad(), train.gradient_attention(x.device), autocast:
            m = train.rd_loss(model, x, torch.Generator().manual_seed(1))
        print(f"bf16={bf16}: " + ", ".join(f"{k} {float(v):.5f}" for k, v in m.items()))


def profile_steps(batch: int, crop: int, steps: int) -> None:
    """Print the 8 ops with the most self CPU time over an eager ``seconds_per_step``, in the
    precision that training's ``--bf16 auto`` uses on this CPU."""
    bf16 = use_bf16(torch.device("cpu"))
    with torch.profiler.profile() as prof:
        train.seconds_per_step(ModelConfig(), batch, crop, steps, bf16=bf16)
    print(f"profile, bf16={bf16}:")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--weights", help="also compare the loss of one batch (exported or checkpoint)")
    p.add_argument("--data", default="pack/val", help="images for --weights")
    p.add_argument("--compile", action="store_true", help="also time bf16 with torch.compile")
    p.add_argument("--fused-attention", action="store_true", help="PyTorch's default kernel")
    p.add_argument("--default-adamw", action="store_true", help="AdamW before session 13")
    p.add_argument("--profile", action="store_true", help="top ops of the eager steps")
    a = p.parse_args()
    if a.fused_attention:  # train_step enters whatever context this returns
        train.gradient_attention = lambda device: nullcontext()
    if a.default_adamw:  # seconds_per_step builds its optimizer with train.adamw
        train.adamw = lambda params, lr: torch.optim.AdamW(params, lr, weight_decay=0.0)
    for bf16, compiled in ((False, False), (True, False), (True, True))[: 3 if a.compile else 2]:
        seconds = train.seconds_per_step(ModelConfig(), a.batch, a.crop, a.steps, bf16, compiled)
        print(f"bf16={bf16} compile={compiled}: {seconds:.3f} s/step")
    if a.profile:
        profile_steps(a.batch, a.crop, a.steps)
    if a.weights:
        loss_by_precision(a.weights, a.data, a.batch, a.crop)
