"""Rate, PSNR and encode time of each encoder effort (``gmx encode -e``) on real files.

Usage: python scripts/effort_sweep.py FOLDER [--efforts 1,2,3,4] [--qualities 10,40,70,95]
       [--limit N] [--device cpu] [--lr LR] [--json OUT.json]
       python scripts/effort_sweep.py FOLDER --memory-side 1024

Every image of FOLDER (the first N with --limit) is encoded at every quality and effort with
the default model, decoded from the bytes, and measured: mean bpp (file size), PSNR-RGB and
encode seconds per quality, and each effort's BD-rate against effort 1 on the same images.
Prints a markdown table. With --memory-side S it instead measures the peak memory (max RSS)
one refinement step adds on the first image resized to S x S. --lr overrides
refine.LEARNING_RATE (to tune it).
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
import torch
from PIL import Image

from gmcodec import refine
from gmcodec.codec import Codec
from gmcodec.data import list_images
from gmcodec.imageio import to_tensor
from gmcodec.metrics import bd_rate, psnr, rd_points


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def measure(codec: Codec, images: list[Image.Image], quality: float, effort: int) -> dict:
    """Mean bpp, PSNR and encode seconds of one (quality, effort) point."""
    bpp, dist, secs = [], [], []
    for img in images:
        start = time.perf_counter()
        data = codec.encode(img, quality, effort)
        secs.append(time.perf_counter() - start)
        back = codec.decode(data)
        bpp.append(8 * len(data) / (img.width * img.height))
        dist.append(psnr(np.asarray(img), np.asarray(back)))
    return {
        "effort": effort,
        "quality": quality,
        "bpp": float(np.mean(bpp)),
        "psnr": float(np.mean(dist)),
        "encode_s": float(np.mean(secs)),
    }


def table(points: list[dict], efforts: list[int]) -> str:
    """Markdown: one row per effort, BD-rate against effort 1."""
    rows = [
        "| effort | quality: bpp / PSNR dB | encode s/img | BD-rate vs effort 1 |",
        "| --- | --- | --- | --- |",
    ]
    base = [p for p in points if p["effort"] == efforts[0]]
    for e in efforts:
        pts = [p for p in points if p["effort"] == e]
        cells = ", ".join(f"{p['quality']:g}: {p['bpp']:.4f} / {p['psnr']:.2f}" for p in pts)
        secs = np.mean([p["encode_s"] for p in pts])
        bd = bd_rate(*rd_points(base), *rd_points(pts))
        rows.append(f"| {e} | {cells} | {secs:.2f} | {bd:+.2f}% |")
    return "\n".join(rows)


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def refine_memory(codec: Codec, img: Image.Image, side: int) -> str:
    """Max RSS before and after one refinement step on ``img`` resized to side x side."""
    x = to_tensor(img.resize((side, side))).to(codec.device)
    with torch.no_grad():
        y0 = codec.latent(x, 4.0)
    before = _max_rss_mb()
    refine.refine_latent(codec.model, x, y0, 4.0, steps=1)
    after = _max_rss_mb()
    return f"{side}x{side}: max RSS {before:.0f} MB before refinement, {after:.0f} MB after"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder")
    p.add_argument("--efforts", default="1,2,3,4")
    p.add_argument("--qualities", default="10,40,70,95")
    p.add_argument("--limit", type=int)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", dest="json_out")
    p.add_argument("--memory-side", type=int)
    p.add_argument("--lr", type=float, help="refinement learning rate (default: the shipped one)")
    args = p.parse_args()
    if args.lr is not None:
        refine.LEARNING_RATE = args.lr
    efforts = [int(v) for v in _floats(args.efforts)]
    codec = Codec.load(device=args.device)
    images = [Image.open(p).convert("RGB") for p in list_images(args.folder)[: args.limit]]
    if args.memory_side:
        print(refine_memory(codec, images[0], args.memory_side))
        return
    points = []
    for e in efforts:
        for q in _floats(args.qualities):
            points.append(measure(codec, images, q, e))
            print(json.dumps(points[-1]), flush=True)
    lr = refine.LEARNING_RATE
    print(
        f"\n{len(images)} images of {args.folder}, model {codec.model_id}, {args.device}, lr {lr}\n"
    )
    print(table(points, efforts))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"images": len(images), "lr": lr, "points": points}, f, indent=1)


if __name__ == "__main__":
    main()
