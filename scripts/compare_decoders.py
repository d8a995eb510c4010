"""PSNR of two decoders g_s on the same latents (the encoder of the first model).

Usage: python scripts/compare_decoders.py FOLDER BASE NEW [--q -2,0,2,4,6,8] [--limit N]

BASE and NEW are exported weights (.pt) or checkpoint folders. Both reconstruct
round(g_a(x) * g(q)) computed with BASE's encoder, so when NEW only fine-tuned the decoder
(gmcodec.tune_decoder) the rates are identical and the table is the whole story: mean
PSNR-RGB (8-bit output) per q over the images of FOLDER, and NEW - BASE.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gmcodec.data import list_images
from gmcodec.imageio import pad, to_image, to_tensor
from gmcodec.metrics import psnr
from gmcodec.model import GMModel
from gmcodec.train import load_any


@torch.no_grad()
def compare(folder: str, base: GMModel, new: GMModel, qs: list[float], limit: int | None):
    """{q: (mean PSNR base, mean PSNR new)} over the images of ``folder``."""
    sums = {q: np.zeros(2) for q in qs}
    paths = list_images(folder)[:limit]
    for path in paths:
        x = to_tensor(Image.open(path).convert("RGB"))
        h, w = x.shape[-2:]
        ref = np.asarray(to_image(x))
        y = base.g_a(pad(x)).float()
        for q in qs:
            qt = torch.tensor([q])
            y_hat = torch.round(y * base.gains(qt)[0])
            for i, m in enumerate((base, new)):
                x_hat = m.g_s(y_hat * m.gains(qt)[1])[..., :h, :w]
                sums[q][i] += psnr(ref, np.asarray(to_image(x_hat)))
    return {q: tuple(v / len(paths)) for q, v in sums.items()}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("folder")
    p.add_argument("base")
    p.add_argument("new")
    p.add_argument("--q", default="-2,0,2,4,6,8")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--json", help="also write the table as JSON here")
    a = p.parse_args()
    qs = [float(v) for v in a.q.split(",")]
    table = compare(a.folder, load_any(a.base), load_any(a.new), qs, a.limit)
    print("| q | base PSNR dB | new PSNR dB | gain dB |\n| --- | --- | --- | --- |")
    for q, (b, n) in table.items():
        print(f"| {q:g} | {b:.3f} | {n:.3f} | {n - b:+.3f} |")
    gains = [n - b for b, n in table.values()]
    print(f"mean gain {np.mean(gains):+.3f} dB over {len(qs)} qualities")
    if a.json:
        Path(a.json).write_text(json.dumps({str(q): v for q, v in table.items()}, indent=1))


if __name__ == "__main__":
    main()
