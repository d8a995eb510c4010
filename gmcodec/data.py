"""Training data: a compact, git-ignored pack of the training corpus, and GPU-side cropping.

The pack holds each training photo downscaled (by up to 2x, keeping the short side >= the
crop size, which removes JPEG and sensor noise) and re-saved as JPEG q85 4:4:4; a byte budget
leaves out evenly spaced images so that the pack fits beside the repo in the 64 MiB that
travels to a GPU machine (``scripts/prepare_gpu.py``). A fixed slice is held out for validation.
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
    max_bytes: int | None = None,
) -> dict[str, int]:
    """Write dst/train/*.jpg and dst/val/*.jpg (every ``val_every``-th image) from src.

    With ``max_bytes``, evenly spaced training images are left out so that the pack fits it
    (validation images are always kept). Earlier ``*.jpg`` in dst/train and dst/val are removed.
    """
    encoded, too_small = _encode_all(src, min_side, quality)
    val = [(i, b) for i, b in encoded if i % val_every == 0]
    train = [(i, b) for i, b in encoded if i % val_every]
    if max_bytes is not None:
        room = max_bytes - sum(len(b) for _, b in val)
        if room < 0:
            raise ValueError(f"the validation images alone exceed {max_bytes} bytes")
        train = _evenly_within(train, room)
    counts = {"train": len(train), "val": len(val), "skipped": len(encoded) + too_small}
    counts["skipped"] -= counts["train"] + counts["val"]
    counts["bytes"] = sum(len(b) for _, b in train + val)
    dst = Path(dst)
    for split, items in (("train", train), ("val", val)):
        (dst / split).mkdir(parents=True, exist_ok=True)
        for old in (dst / split).glob("*.jpg"):
            old.unlink()
        for i, data in items:
            (dst / split / f"{i:05d}.jpg").write_bytes(data)
    return counts


def _encode_all(
    src: str | Path, min_side: int, quality: int
) -> tuple[list[tuple[int, bytes]], int]:
    """(index, JPEG bytes) of each image under src big enough to shrink; how many were not."""
    encoded, too_small = [], 0
    for i, path in enumerate(list_images(src)):
        with Image.open(path) as im:
            img = shrink(im.convert("RGB"), min_side)
        if img is None:
            too_small += 1
            continue
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=quality, subsampling=0)
        encoded.append((i, buf.getvalue()))
    return encoded, too_small


def _evenly_within(items: list[tuple[int, bytes]], room: int) -> list[tuple[int, bytes]]:
    """The most evenly spaced items (k of n at positions j * n // k) whose bytes fit ``room``."""
    n = len(items)
    for k in range(n, 0, -1):
        chosen = [items[j * n // k] for j in range(k)]
        if sum(len(b) for _, b in chosen) <= room:
            return chosen
    return []


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
