"""gmcodec: a learned image codec with a GroupedMixer transformer entropy model.

The heavy parts (torch, the model) are imported lazily so that ``gmcodec.container`` and
``gmx info`` work without loading torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import pillow_plugin as _pillow_plugin  # noqa: F401
from .constants import DEFAULT_EFFORT

__version__ = "0.1.0"

if TYPE_CHECKING:
    from PIL import Image


def encode(
    image: Image.Image,
    quality: float | None = None,
    device: str = "auto",
    effort: int = DEFAULT_EFFORT,
) -> bytes:
    """Encode a PIL image to .gmx bytes.

    ``quality`` is 0..100 (higher is better); ``effort`` 1..5 spends encoder time on latent
    refinement for smaller files at the same quality (``gmcodec.refine``; 1 = none).
    """
    from .codec import encode as _encode

    return _encode(image, quality=quality, device=device, effort=effort)


def decode(data: bytes, device: str = "auto") -> Image.Image:
    """Decode .gmx bytes to a PIL image."""
    from .codec import decode as _decode

    return _decode(data, device=device)


def __getattr__(name: str) -> Any:
    raise AttributeError(f"module 'gmcodec' has no attribute {name!r}")


__all__ = ["__version__", "decode", "encode"]
