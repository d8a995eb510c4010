"""What a bigger model would cost: size, CPU encode/decode time and CPU training step time.

Usage: python scripts/model_cost.py [--image examples/kodim23.png] [--repeat 2] [--train-steps 2]
(run it with the allocator settings of the CPU training runs, docs/TRAINING.md, for comparable
training-step times)

Each configuration below is built with random weights and run through the real codec
(``Codec.encode`` / ``Codec.decode``, quality 75) on one image, on the CPU. Times of the
transforms and of the GroupedMixer do not depend on the weights' values; the ANS coder's time
does a little (random weights give a different rate, printed as bpp), so read the timings as
the compute cost, not the codec's speed with trained weights. The training step is one
forward/backward/AdamW step on 4 random 256x256 crops, as in the CPU runs.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch
from PIL import Image

from gmcodec.codec import Codec
from gmcodec.config import ModelConfig
from gmcodec.model import GMModel
from gmcodec.train import seconds_per_step

CONFIGS = {
    "small (shipped: N=128, M=192, d=128, depth 2)": ModelConfig(),
    "medium (N=192, M=320, d=192, depth 2)": replace(
        ModelConfig(), N=192, M=320, slices=(16, 16, 32, 64, 192), d_model=192
    ),
    "large (N=192, M=320, d=256, depth 4, C=320)": replace(
        ModelConfig(), N=192, M=320, C=320, slices=(16, 16, 32, 64, 192), d_model=256, depth=4
    ),
}


def codec_seconds(model: GMModel, img: Image.Image, repeat: int) -> tuple[float, float, float]:
    """(encode s, decode s, bpp) of one image, best of ``repeat`` after a warm-up."""
    codec = Codec(model, "cost-probe", "00" * 32, torch.device("cpu"))
    data = codec.encode(img, 75)
    codec.decode(data)
    enc = dec = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        data = codec.encode(img, 75)
        t1 = time.perf_counter()
        codec.decode(data)
        t2 = time.perf_counter()
        enc, dec = min(enc, t1 - t0), min(dec, t2 - t1)
    return enc, dec, 8 * len(data) / (img.width * img.height)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image", default="examples/kodim23.png")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--train-steps", type=int, default=2)
    a = p.parse_args()
    img = Image.open(a.image).convert("RGB")
    torch.manual_seed(0)
    print(f"threads: {torch.get_num_threads()}, image {a.image} ({img.width}x{img.height})")
    print(
        "| model | parameters | fp16 MB | encode s | decode s | bpp (random weights) "
        "| train s/step |\n| --- | --- | --- | --- | --- | --- | --- |"
    )
    for name, cfg in CONFIGS.items():
        model = GMModel(cfg)
        params = sum(t.numel() for t in model.parameters())
        with torch.no_grad():
            enc, dec, bpp = codec_seconds(model, img, a.repeat)
        step = seconds_per_step(cfg, 4, 256, a.train_steps) if a.train_steps else float("nan")
        print(
            f"| {name} | {params / 1e6:.2f} M | {2 * params / 1e6:.1f} | {enc:.2f} | {dec:.2f} "
            f"| {bpp:.2f} | {step:.2f} |"
        )


if __name__ == "__main__":
    main()
