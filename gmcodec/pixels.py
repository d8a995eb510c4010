"""Pixel-mode policy: what any PIL image becomes before the model codes it.

The model codes 8-bit RGB. :func:`prepare` maps every Pillow mode onto that, keeping what the
format can carry and saying what it changed::

    1, L, I;16*, I     -> grayscale (channels 1; decoded as L)
    LA, La             -> grayscale + alpha (decoded as LA)
    P, PA              -> RGB or RGBA, or L / LA when every used palette colour is gray
    RGB, RGBX, YCbCr   -> RGB
    RGBA, RGBa         -> RGB + alpha (decoded as RGBA)
    CMYK, LAB, HSV     -> RGB, with a warning
    F                  -> refused (no meaningful 8-bit scale)

Alpha is kept losslessly (the container deflates it into its own chunk). A ``transparency``
entry (PNG tRNS on L, RGB or P images) becomes an alpha plane. 16-bit samples are reduced to
8 bits with a warning. Of a multi-frame image (GIF, APNG, multi-page TIFF) only the first frame
is coded, with a warning. Pixels are never rotated: the EXIF block, orientation tag included,
is carried so that a viewer shows the decoded image the way it showed the original. (Pillow
itself turns TIFF pixels upright on load and drops the TIFF orientation tag: same look.)

>>> from PIL import Image
>>> p = prepare(Image.new("LA", (3, 2), (90, 255)))
>>> p.rgb.mode, p.rgb.size, p.channels, len(p.alpha), p.warnings
('RGB', (3, 2), 1, 6, [])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

__all__ = ["PixelWarning", "Prepared", "prepare", "reduced_on_load"]

ORIENTATION_TAG = 0x0112
"""The EXIF tag viewers turn the image by."""
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")


class PixelWarning(UserWarning):
    """The coded image differs from the input in a way the user should hear about."""


@dataclass(frozen=True)
class Prepared:
    """An image ready for the model, and what the container should carry with it."""

    rgb: Image.Image
    """Mode RGB, the pixels the model codes (gray replicated into R, G and B)."""
    channels: int
    """1 (decoded as grayscale) or 3 (decoded as RGB)."""
    alpha: bytes | None
    """The 8-bit alpha plane, ``width * height`` bytes row-major, or None."""
    warnings: list[str] = field(default_factory=list)
    """One line each: what was converted, reduced or dropped."""
    icc_profile: bytes | None = None
    """The ICC profile still valid for the coded pixels (a CMYK profile is dropped)."""
    exif: bytes | None = None
    """The EXIF block to carry (its orientation tag tells viewers how to turn the image)."""


def prepare(img: Image.Image) -> Prepared:
    """Map img onto 8-bit RGB plus channel count and alpha; ValueError (one line) if refused."""
    notes: list[str] = []
    note = reduced_on_load(img)
    if note:
        notes.append(note)
    frame = _first_frame(img, notes)
    if frame.width < 1 or frame.height < 1:
        raise ValueError(f"image is empty ({frame.width}x{frame.height})")
    base = _base_image(frame, notes)
    # a CMYK profile does not describe the converted RGB pixels
    icc = None if frame.mode == "CMYK" else img.info.get("icc_profile") or None
    alpha = base.getchannel("A").tobytes() if base.mode in ("LA", "RGBA") else None
    channels = 1 if base.mode in ("L", "LA") else 3
    return Prepared(base.convert("RGB"), channels, alpha, notes, icc, _exif(img))


def reduced_on_load(img: Image.Image) -> str | None:
    """A warning if Pillow will cut img's 16-bit colour samples to 8 bits when it loads them.

    Pillow has no 16-bit RGB(A) mode: it reduces such PNG/TIFF samples while loading, so this
    can only be seen on an image that is opened but not yet loaded.
    """
    for tile in getattr(img, "tile", None) or ():
        args = tile[3]  # (codec, extents, offset, args): args is or starts with the rawmode
        rawmode = args[0] if isinstance(args, tuple) and args else args
        if isinstance(rawmode, str) and ";16" in rawmode and img.mode not in (*_SIXTEEN_BIT, "I"):
            return f"16-bit samples reduced to 8 bits (read as {img.mode})"
    return None


def _first_frame(img: Image.Image, notes: list[str]) -> Image.Image:
    """Frame 0 of a multi-frame image (with a note); img itself otherwise."""
    frames = getattr(img, "n_frames", 1)
    if frames <= 1:
        return img
    notes.append(f"image has {frames} frames: only the first is coded")
    current = img.tell()
    if current == 0:
        return img
    img.seek(0)
    first = img.copy()
    img.seek(current)
    return first


def _base_image(img: Image.Image, notes: list[str]) -> Image.Image:
    """img converted to L, LA, RGB or RGBA under the policy; ValueError if refused."""
    mode = img.mode
    if mode in ("L", "RGB") and "transparency" in img.info:
        return img.convert("LA" if mode == "L" else "RGBA")
    handler = _HANDLERS.get(mode)
    if handler is None:
        raise ValueError(f"unsupported pixel mode {mode!r}: convert the image to RGB first")
    return handler(img, notes)


def _same(img: Image.Image, notes: list[str]) -> Image.Image:
    return img


def _converter(target: str, note: str | None = None) -> Callable:
    """A handler converting to target with Pillow, adding note (formatted with the mode)."""

    def convert(img: Image.Image, notes: list[str]) -> Image.Image:
        if note:
            notes.append(note.format(mode=img.mode))
        return img.convert(target)

    return convert


def _from_palette(img: Image.Image, notes: list[str]) -> Image.Image:
    """P/PA -> RGB(A); L(A) when every palette colour the image uses is gray."""
    has_alpha = img.mode == "PA" or "transparency" in img.info
    full = img.convert("RGBA" if has_alpha else "RGB")
    rgb = np.asarray(full)[..., :3]
    if not ((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()):
        return full
    gray = full.getchannel("R")
    if not has_alpha:
        return gray
    return Image.merge("LA", (gray, full.getchannel("A")))


def _from_16bit(img: Image.Image, notes: list[str]) -> Image.Image:
    """I;16* or I (read as 16-bit samples) -> L, rounding v * 255 / 65535."""
    values = np.asarray(img).astype(np.int64)
    if img.mode == "I":
        low, high = int(values.min()), int(values.max())
        if low < 0 or high > 0xFFFF:
            raise ValueError(
                f"32-bit integer image has values {low}..{high}, outside the 16-bit range "
                "0..65535: refused"
            )
        notes.append("32-bit integer grayscale read as 16-bit samples and reduced to 8 bits")
    else:
        notes.append("16-bit grayscale reduced to 8 bits")
    eight = (values * 255 + 32767) // 65535
    return Image.fromarray(eight.astype(np.uint8), "L")


def _from_cmyk(img: Image.Image, notes: list[str]) -> Image.Image:
    """CMYK -> RGB with Pillow's plain formula (no colour management)."""
    dropped = "; its CMYK ICC profile is dropped" if img.info.get("icc_profile") else ""
    notes.append(f"CMYK converted to RGB without colour management (colours may shift){dropped}")
    return img.convert("RGB")


def _refuse_float(img: Image.Image, notes: list[str]) -> Image.Image:
    raise ValueError(
        "32-bit float images (mode F) are not supported: their value range is unknown; "
        "convert to 8- or 16-bit first"
    )


_HANDLERS: dict[str, Callable[[Image.Image, list[str]], Image.Image]] = {
    "L": _same,
    "LA": _same,
    "RGB": _same,
    "RGBA": _same,
    "1": _converter("L"),
    "La": _converter("LA"),
    "RGBa": _converter("RGBA"),
    "RGBX": _converter("RGB"),
    "YCbCr": _converter("RGB"),
    "P": _from_palette,
    "PA": _from_palette,
    "CMYK": _from_cmyk,
    "LAB": _converter("RGB", "{mode} converted to RGB"),
    "HSV": _converter("RGB", "{mode} converted to RGB"),
    "I": _from_16bit,
    "F": _refuse_float,
    **{mode: _from_16bit for mode in _SIXTEEN_BIT},
}


def _exif(img: Image.Image) -> bytes | None:
    """The EXIF block to carry, orientation tag included (Pillow applies and drops a TIFF's)."""
    raw = img.info.get("exif")
    return bytes(raw) if raw else None
