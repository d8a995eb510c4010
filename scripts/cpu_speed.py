"""Seconds per training step on this machine, fp32 vs bf16 autocast (CPU, channels_last).

Usage: python scripts/cpu_speed.py [--batch 8] [--crop 128] [--steps 3]
"""

import argparse

from gmcodec.config import ModelConfig
from gmcodec.train import seconds_per_step

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--steps", type=int, default=3)
    a = p.parse_args()
    for bf16 in (False, True):
        seconds = seconds_per_step(ModelConfig(), a.batch, a.crop, a.steps, bf16)
        print(f"bf16={bf16}: {seconds:.2f} s/step")
