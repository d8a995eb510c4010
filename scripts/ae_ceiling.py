"""Distortion floor of the transforms: PSNR of g_s(g_a(x)) without quantization, per quality.

Usage: python scripts/ae_ceiling.py MODEL [MODEL ...] [--images DIR] [--q 0,2,4,6,7] [--limit N]

MODEL is exported weights (.pt) or a checkpoint folder. For each model and quality q, prints
the mean PSNR-RGB over the images of decoding the unquantized latent (the ceiling no rate can
pass) and of decoding round(y) (what the codec reconstructs). When the first saturates as q
grows, the high-rate end is limited by g_a/g_s, not by the entropy model.
"""

from __future__ import annotations

import argparse

import torch

from gmcodec.data import list_images
from gmcodec.evaluate import transform_ceiling
from gmcodec.train import load_any


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--images", default="../shared/data/kodak")
    p.add_argument("--q", default="0,2,4,6,7")
    p.add_argument("--limit", type=int, default=None, help="first N images only")
    a = p.parse_args()
    qs = [float(v) for v in a.q.split(",")]
    print("| model | q | PSNR unquantized | PSNR round(y) |\n| --- | --- | --- | --- |")
    paths = list_images(a.images)[: a.limit]
    for m in a.models:
        for pt in transform_ceiling(load_any(m), paths, torch.device("cpu"), qs):
            print(f"| {m} | {pt['q']:g} | {pt['psnr_ae']:.2f} | {pt['psnr_round']:.2f} |")


if __name__ == "__main__":
    main()
