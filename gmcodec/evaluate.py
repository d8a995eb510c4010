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
    model: GMModel, folder: str | Path, device: torch.device, qualities: list[float] | None = None
) -> list[dict[str, float]]:
    """Mean estimated bpp and PSNR-RGB per model quality q over the images in ``folder``.

    Bits are -log2 of the model's likelihoods of the rounded latents (what an ideal entropy
    coder would spend); ``gmx bench`` measures real file sizes.
    """
    qs = qualities if qualities is not None else list(range(model.num_qualities))
    images = [to_tensor(Image.open(p)) for p in list_images(folder)]
    points = []
    for q in qs:
        bpp = dist = 0.0
        for x in images:
            out = model(pad(x.to(device)), torch.tensor([float(q)], device=device), noise=False)
            h, w = x.shape[-2:]
            bpp += float(out["bits_y"] + out["bits_z"]) / (h * w)
            decoded = np.asarray(to_image(out["x_hat"][..., :h, :w].float().cpu()))
            dist += psnr(np.asarray(to_image(x)), decoded)
        points.append({"q": float(q), "bpp": bpp / len(images), "psnr": dist / len(images)})
    return points
