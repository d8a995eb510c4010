"""Rounding y around its predicted mean (coder id 2) against integer bins (coder id 1).

Usage: python scripts/mean_shift.py MODEL [--images DIR] [--q 0,2,4,6,7] [--limit N]
       python scripts/mean_shift.py --files [--images DIR] [--qualities 10,30,50,70,90]
                                    [--baseline-steps 8]

Coder id 1 codes y_hat = round(y_q) (integer bins) under N(mu, sigma). Coder id 2, as in
Minnen & Singh (2020), rounds the residual around the predicted mean:
y_hat = mu + round(y_q - mu), so the bins are centred on mu. Both use the same weights,
trained on integer y_hat; nothing is fine-tuned.

Without ``--files`` the script estimates: it runs the group loop (slot by slot, with the
context cache) both ways on the same latents of MODEL, the second feeding the shifted y_hat
back as context, with mu unquantized, and scores each with the model's likelihoods (bits of y
under N(mu, sigma) over unit bins, plus the bits of z) and the PSNR of g_s(y_hat * inv_gain).
With ``--files`` it encodes real files with the shipped default model, once per coder id
(id 1 with its format-1.1 mean grid of 1/8 or ``--baseline-steps``, id 2 with the default
1/64), decodes them, and scores file size and PSNR. Either way it prints per-quality means
and the BD-rate of id 2 against id 1.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image

from gmcodec.codec import Codec
from gmcodec.coder import CoderSettings
from gmcodec.data import list_images
from gmcodec.imageio import to_image, to_tensor
from gmcodec.metrics import bd_rate, psnr
from gmcodec.model import gaussian_likelihood
from gmcodec.tiling import synthesis
from gmcodec.train import load_any


@torch.no_grad()
def score(codec: Codec, x: torch.Tensor, q: float, shift: bool) -> tuple[float, float]:
    """(bits per pixel, PSNR dB) of x [1, 3, h, w] at model quality q, one rounding rule.

    y and z as the encoder makes them (``Codec.latent``, z clipped to the prior's range).
    """
    model, (h, w) = codec.model, x.shape[-2:]
    _, inv_gain = model.gains(torch.tensor([q]))
    y = codec.latent(x, q)
    z = model.h_a(y).round().clamp(-codec.z_range, codec.z_range)
    bits = -torch.log2(model.prior.likelihood(z)).sum().item()
    psi = model.h_s(z)
    mixer, hy, wy = model.entropy, *y.shape[-2:]
    layout = mixer.layout
    grid, psi_t, cache = layout.grid(hy, wy), mixer.psi_tokens(psi), mixer.new_cache()
    prev, decoded = None, []
    for g, y_g in enumerate(layout.split(y)):
        mu, sigma = mixer.step(g, prev, psi_t, grid, cache)
        y_hat = mu + torch.round(y_g - mu) if shift else torch.round(y_g)
        bits -= torch.log2(gaussian_likelihood(y_hat, mu, sigma)).sum().item()
        decoded.append(y_hat)
        prev = y_hat
    x_hat = synthesis(model.g_s, layout.merge(decoded, hy, wy) * inv_gain)[..., :h, :w]
    ref = np.asarray(to_image(x))
    return bits / (h * w), psnr(ref, np.asarray(to_image(x_hat)))


def score_file(
    codec: Codec, img: Image.Image, quality: float, s: CoderSettings
) -> tuple[float, float]:
    """(bits per pixel, PSNR dB) of a real file encoded with coder settings s, then decoded."""
    codec.settings = s
    data = codec.encode(img, quality)
    decoded = np.asarray(codec.decode(data).convert("RGB"))
    return 8 * len(data) / (img.width * img.height), psnr(np.asarray(img), decoded)


def run(paths: list, points: list[float], scorer) -> np.ndarray:
    """Mean (bpp, PSNR) [2 ways, len(points), 2] of ``scorer(img, point, way)`` over paths."""
    sums = np.zeros((2, len(points), 2))
    for path in paths:
        img = Image.open(path).convert("RGB")
        for k, point in enumerate(points):
            for i in range(2):
                sums[i, k] += scorer(img, point, i)
    return sums / len(paths)


def report(points: list[float], means: np.ndarray, label: str, count: int) -> None:
    """The per-point table and the BD-rate of the second way against the first."""
    base, shifted = means
    print(f"| {label} | integer bins bpp / PSNR | mean-centred bins bpp / PSNR |")
    print("| --- | --- | --- |")
    for k, point in enumerate(points):
        print(
            f"| {point:g} | {base[k, 0]:.4f} / {base[k, 1]:.2f} | {shifted[k, 0]:.4f} / "
            f"{shifted[k, 1]:.2f} |"
        )
    bd = bd_rate(base[:, 0], base[:, 1], shifted[:, 0], shifted[:, 1])
    print(f"BD-rate, mean-centred vs integer bins ({count} images): {bd:+.2f}%")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?", help="weights or checkpoint (estimates)")
    p.add_argument("--files", action="store_true", help="real files, the shipped default model")
    p.add_argument("--images", default="../shared/data/kodak")
    p.add_argument("--q", default="0,2,4,6,7", help="model qualities q (estimates)")
    p.add_argument("--qualities", default="10,30,50,70,90", help="gmx qualities (--files)")
    p.add_argument("--baseline-steps", type=int, default=8, help="id 1's mean grid (--files)")
    p.add_argument("--limit", type=int, default=None, help="first N images only")
    a = p.parse_args()
    if not a.files and a.model is None:
        p.error("give MODEL, or --files")
    torch.set_grad_enabled(False)
    paths = list_images(a.images)[: a.limit]
    if a.files:
        codec, points = Codec.load(device="cpu"), [float(v) for v in a.qualities.split(",")]
        ways = (CoderSettings(mean_steps=a.baseline_steps, coder_id=1), CoderSettings())
        print(f"model {codec.model_id}, real files, id 1 mean grid 1/{a.baseline_steps}")
        means = run(paths, points, lambda img, q, i: score_file(codec, img, q, ways[i]))
        report(points, means, "quality", len(paths))
        return
    codec = Codec(load_any(a.model), a.model, "", torch.device("cpu"))
    points = [float(v) for v in a.q.split(",")]
    means = run(paths, points, lambda img, q, i: score(codec, to_tensor(img), q, bool(i)))
    report(points, means, "q", len(paths))


if __name__ == "__main__":
    main()
