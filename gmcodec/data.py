"""Training data: a compact, git-ignored pack of the training corpus, and GPU-side cropping.

The pack holds each training photo downscaled (by up to 2x, keeping the short side >= the
crop size, which removes JPEG and sensor noise) and re-saved as JPEG q95 4:4:4, so the whole
corpus fits the 64 MiB that travels to a GPU machine. A fixed slice is held out for validation.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


def list_images(root: str | Path) -> list[Path]:
    """All image files under root, sorted (deterministic order)."""
    root = Path(root)
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def shrink(img: Image.Image, min_side: int, max_factor: float = 2.0) -> Image.Image | None:
    """Downscale by up to ``max_factor`` keeping the short side >= min_side (None if too small)."""
    short = min(img.size)
    if short < min_side:
        return None
    factor = min(max_factor, short / min_side)
    if factor <= 1.0:
        return img
    size = (round(img.width / factor), round(img.height / factor))
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def build_pack(
    src: str | Path,
    dst: str | Path,
    min_side: int = 256,
    val_every: int = 40,
    quality: int = 85,
    drop_every: int = 4,
) -> dict[str, int]:
    """Write dst/train/*.jpg and dst/val/*.jpg (every ``val_every``-th image) from src.

    Every ``drop_every``-th remaining image (counting from the 4th) is left out to fit the size
    budget (0 keeps all).
    """
    dst = Path(dst)
    counts = {"train": 0, "val": 0, "skipped": 0, "bytes": 0}
    for i, path in enumerate(list_images(src)):
        if drop_every and i % val_every and i % drop_every == drop_every - 1:
            counts["skipped"] += 1
            continue
        with Image.open(path) as im:
            img = shrink(im.convert("RGB"), min_side)
        if img is None:
            counts["skipped"] += 1
            continue
        split = "val" if i % val_every == 0 else "train"
        out = dst / split / f"{i:05d}.jpg"
        out.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=quality, subsampling=0)
        out.write_bytes(buf.getvalue())
        counts[split] += 1
        counts["bytes"] += len(buf.getvalue())
    return counts


def load_images(root: str | Path, device: torch.device, min_side: int) -> list[torch.Tensor]:
    """Decode every image under root once, as uint8 tensors [3, H, W] on ``device``."""
    images = []
    for path in list_images(root):
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
        if min(arr.shape[:2]) >= min_side:
            images.append(torch.from_numpy(arr.copy()).permute(2, 0, 1).to(device))
    if not images:
        raise ValueError(f"no images of at least {min_side}px found under {root}")
    return images


class CropSampler:
    """Random crops with random flips from images already on the training device."""

    def __init__(self, images: list[torch.Tensor], crop: int, seed: int = 0) -> None:
        self.images, self.crop = images, crop
        self.rng = random.Random(seed)

    def batch(self, size: int) -> torch.Tensor:
        """A float batch [size, 3, crop, crop] in [0, 1]."""
        crops = []
        for _ in range(size):
            img = self.images[self.rng.randrange(len(self.images))]
            top = self.rng.randrange(img.shape[1] - self.crop + 1)
            left = self.rng.randrange(img.shape[2] - self.crop + 1)
            c = img[:, top : top + self.crop, left : left + self.crop]
            if self.rng.random() < 0.5:
                c = c.flip(2)
            if self.rng.random() < 0.5:
                c = c.flip(1)
            crops.append(c)
        return torch.stack(crops).float().div_(255.0)
