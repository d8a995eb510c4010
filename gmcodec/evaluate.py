"""Rate-distortion estimate of a model on a folder of images (likelihood-based bits)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .data import list_images
from .imageio import pad, to_image, to_tensor
from .metrics import psnr
from .model import GMModel


@torch.no_grad()
def evaluate_rd(
    model: GMModel,
    folder: str | Path,
    device: torch.device,
    qualities: list[float] | None = None,
    centred: bool = False,
) -> list[dict[str, float]]:
    """Mean estimated bpp and PSNR-RGB per model quality q over the images in ``folder``.

    Bits are -log2 of the model's likelihoods of the rounded latents (what an ideal entropy
    coder would spend); ``gmx bench`` measures real file sizes. ``centred`` rounds y_q around
    the predicted mean, as coder id 2 does (``GMModel.forward``), else to integers.
    """
    qs = qualities if qualities is not None else list(range(model.num_qualities))
    images = [to_tensor(Image.open(p)) for p in list_images(folder)]
    points = []
    for q in qs:
        bpp = dist = 0.0
        q_t = torch.tensor([float(q)], device=device)
        for x in images:
            out = model(pad(x.to(device)), q_t, noise=False, centred=centred)
            h, w = x.shape[-2:]
            bpp += float(out["bits_y"] + out["bits_z"]) / (h * w)
            decoded = np.asarray(to_image(out["x_hat"][..., :h, :w].float().cpu()))
            dist += psnr(np.asarray(to_image(x)), decoded)
        points.append({"q": float(q), "bpp": bpp / len(images), "psnr": dist / len(images)})
    return points


@torch.no_grad()
def transform_ceiling(
    model: GMModel, paths: list[Path], device: torch.device, qualities: list[float]
) -> list[dict[str, float]]:
    """Mean PSNR-RGB of the transforms alone, per model quality q, over the images ``paths``.

    ``psnr_ae`` decodes the unquantized latent, g_s(g_a(x) * gain(q) * inv_gain(q)): the
    distortion floor of g_a/g_s that no entropy model or rate can lower. ``psnr_round`` decodes
    round(y) instead (y = g_a(x) * gain(q)), the reconstruction ``evaluate_rd`` scores.
    """
    gains = [model.gains(torch.tensor([float(q)], device=device)) for q in qualities]
    sums = np.zeros((len(qualities), 2))
    for path in paths:
        x = to_tensor(Image.open(path).convert("RGB"))
        h, w = x.shape[-2:]
        ref = np.asarray(to_image(x))
        features = model.g_a(pad(x.to(device))).float()  # g_a(x), shared by every q
        for k, (gain, inv_gain) in enumerate(gains):
            y = features * gain
            for i, latent in enumerate((y, torch.round(y))):
                x_hat = model.g_s(latent * inv_gain)[..., :h, :w].float().cpu()
                sums[k, i] += psnr(ref, np.asarray(to_image(x_hat)))
    means = sums / len(paths)
    return [
        {"q": float(q), "psnr_ae": float(ae), "psnr_round": float(rounded)}
        for q, (ae, rounded) in zip(qualities, means, strict=True)
    ]
