"""Shared fixtures: the shipped model on the CPU and small real images."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SAMPLE = Path(__file__).resolve().parent.parent / "examples" / "kodim23.png"


@pytest.fixture(scope="session")
def sample_image() -> Image.Image:
    """The Kodak image that ships in the repo (768x512 RGB)."""
    with Image.open(SAMPLE) as im:
        return im.convert("RGB")


@pytest.fixture(scope="session")
def crop(sample_image):
    """crop(w, h, x=0, y=0): a w x h region of the sample image."""

    def make(w: int, h: int, x: int = 200, y: int = 100) -> Image.Image:
        return sample_image.crop((x, y, x + w, y + h))

    return make


@pytest.fixture(scope="session")
def codec():
    """The default shipped model on the CPU."""
    from gmcodec.codec import Codec

    return Codec.load(device="cpu")


@pytest.fixture
def decode_elsewhere(tmp_path):
    """decode_elsewhere(data, env=None): the pixels a fresh Python process decodes from data.

    ``env`` replaces the child's environment (e.g. to cap its CPU kernels, scripts/cross_isa.py).
    """

    def run(data: bytes, env: dict[str, str] | None = None) -> np.ndarray:
        src, dst = tmp_path / "elsewhere.gmx", tmp_path / "elsewhere.npy"
        src.write_bytes(data)
        code = (
            "import sys, numpy as np, gmcodec; data = open(sys.argv[1], 'rb').read(); "
            "np.save(sys.argv[2], np.asarray(gmcodec.decode(data, 'cpu')))"
        )
        cmd = [sys.executable, "-c", code, str(src), str(dst)]
        subprocess.run(cmd, check=True, timeout=600, env=env)
        return np.load(dst)

    return run


@pytest.fixture
def tiny_data(tmp_path, crop):
    """A folder of three 96x80 training images (crops of the sample image)."""
    d = tmp_path / "data"
    d.mkdir()
    for i in range(3):
        crop(96, 80, x=100 * i, y=50).save(d / f"{i}.png")
    return d
