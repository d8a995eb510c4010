"""Pillow plugin for ``.gmx`` files, and the metadata policy of gmx's image outputs.

Importing ``gmcodec`` registers the format, so Pillow reads and writes ``.gmx`` like any other:

>>> import gmcodec  # noqa: F401
>>> from PIL import Image
>>> Image.new("RGB", (32, 32), "teal").save("teal.gmx", quality=60)  # doctest: +SKIP
>>> with Image.open("teal.gmx") as im:  # doctest: +SKIP
...     (im.format, im.size, im.mode) == ("GMX", (32, 32), "RGB")
True

Opening reads the container only (size, mode, ICC profile and EXIF, without torch); the model
decodes the pixels on the first access (``load()``). Set ``im.device`` before that to choose
``"auto"``, ``"cpu"`` or ``"cuda"``.

Save options: ``quality`` (0..100, default 75), ``effort`` (1..5, default 1, as
``gmx encode -e``), ``device``, ``icc_profile`` and ``exif``
(default: the image's own; pass ``None`` to leave them out).

Metadata policy: the ICC profile and EXIF travel with the pixels, unchanged. Pixels are
stored as they are, so the EXIF orientation tag keeps its meaning. Other metadata (XMP, text
chunks, comments, DPI) has no place in the format and is dropped. :func:`save_with_metadata`
writes decoded images to other formats under the same policy.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import IO, Any, NamedTuple

from PIL import Image, ImageFile, ImageOps

from . import container as ct
from .constants import DEFAULT_EFFORT
from .fileio import atomic_output

FORMAT = "GMX"
EXTENSION = ".gmx"
MIME_TYPE = "image/x-gmx"

EXIF_PREFIX = b"Exif\x00\x00"
"""Pillow keeps EXIF as in JPEG's APP1 segment, after this prefix; a ``.gmx`` stores it bare."""
_TIFF_HEADERS = (b"II*\x00", b"MM\x00*")
_ICC_SAFE_MODES = frozenset(
    {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "I", "F"}
    | {"I;16", "I;16B", "I;16L", "I;16N"}
)
_METADATA_KEYS = ("icc_profile", "exif", "xmp", "XML:com.adobe.xmp")
_ORIENTATION = 0x0112

# Pillow formats that can carry the metadata (all others lose it).
_ICC_FORMATS = frozenset({"AVIF", "GMX", "JPEG", "JPEG2000", "MPO", "PNG", "TIFF", "WEBP"})
_EXIF_FORMATS = frozenset({"AVIF", "GMX", "JPEG", "MPO", "PNG", "TIFF", "WEBP"})
_NO_ALPHA_FORMATS = frozenset({"JPEG", "MPO", "PPM", "EPS"})
_DEFAULT_PARAMS = {"JPEG": {"quality": 95}}


class GmxImageError(OSError):
    """A ``.gmx`` file that cannot be opened or decoded; the message says why."""


def _accept(prefix: bytes) -> bool:
    return prefix.startswith(ct.SIGNATURE)


class GmxImageFile(ImageFile.ImageFile):
    """A ``.gmx`` image: header parsed on open, pixels decoded by the model on ``load()``."""

    format = FORMAT
    format_description = "gmx learned image codec"
    device = "auto"
    """Device that ``load()`` decodes on: "auto", "cpu" or "cuda"."""

    def _open(self) -> None:
        assert self.fp is not None
        data = self.fp.read()
        try:
            f = ct.parse(data)
        except ct.ContainerError as e:
            raise GmxImageError(f"cannot open .gmx file: {e}") from e
        self._data = data
        self._mode = ("L" if f.image.channels == 1 else "RGB") + ("A" if f.alpha else "")
        self._size = (f.image.width, f.image.height)
        if f.icc_profile:
            self.info["icc_profile"] = f.icc_profile
        exif = pillow_exif(f.exif)  # also tolerates files that stored Pillow's "Exif" prefix
        if exif is not None:
            self.info["exif"] = exif

    def load(self) -> Any:
        if self._im is None:
            self._decode()
        return Image.Image.load(self)

    def _decode(self) -> None:
        from . import decode
        from .coder import DecodeError

        try:
            img = decode(self._data, device=self.device)
        except DecodeError as e:
            raise GmxImageError(f"cannot decode .gmx file: {e}") from e
        if img.mode != self.mode or img.size != self.size:  # the header promised otherwise
            raise GmxImageError(
                f"decoded {img.mode} {img.size}, header says {self.mode} {self.size}"
            )
        self.im = img.im
        self.readonly = 0
        self.tile = []
        self._data = b""
        if self._exclusive_fp and self.fp is not None:
            self.fp.close()
        self.fp = None


def container_exif(exif: Any) -> bytes | None:
    """EXIF as a ``.gmx`` stores it (from the TIFF header on, FORMAT.md 3.7), or None.

    Takes Pillow's ``info["exif"]`` (with or without the ``Exif`` prefix) or an ``Image.Exif``.
    """
    if isinstance(exif, Image.Exif):
        exif = exif.tobytes()
    if not exif:
        return None
    exif = bytes(exif)
    if exif.startswith(EXIF_PREFIX):
        exif = exif[len(EXIF_PREFIX) :]
    if not exif.startswith(_TIFF_HEADERS):
        warnings.warn("EXIF data without a TIFF header ignored", stacklevel=3)
        return None
    return exif


def pillow_exif(raw: bytes | None) -> bytes | None:
    """EXIF from a ``.gmx`` as Pillow keeps it in ``info["exif"]`` (with the ``Exif`` prefix)."""
    exif = container_exif(raw)
    return None if exif is None else EXIF_PREFIX + exif


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    """Pillow save handler: encode ``im`` and write the ``.gmx`` bytes to ``fp``."""
    from . import encode

    opts = im.encoderinfo
    icc = opts.get("icc_profile", im.info.get("icc_profile")) or None
    if icc is not None and im.mode not in _ICC_SAFE_MODES:  # e.g. a CMYK profile
        warnings.warn(f"ICC profile of a {im.mode} image dropped: pixels become RGB", stacklevel=2)
        icc = None
    exif = container_exif(opts.get("exif", im.info.get("exif")))
    src = im.copy()  # the codec reads the metadata from .info; do not touch the caller's image
    for key, value in (("icc_profile", icc), ("exif", exif)):
        src.info.pop(key, None)
        if value is not None:
            src.info[key] = value
    quality, device = opts.get("quality"), opts.get("device", "auto")
    fp.write(encode(src, quality, device, effort=opts.get("effort", DEFAULT_EFFORT)))


def register() -> None:
    """Register the GMX format with Pillow (done on ``import gmcodec``)."""
    Image.register_open(FORMAT, GmxImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, EXTENSION)
    Image.register_mime(FORMAT, MIME_TYPE)


# ---------------------------------------------------------------------------------------------
# Writing decoded images to any format


class MetadataWritten(NamedTuple):
    """What :func:`save_with_metadata` kept: ICC profile, EXIF, and whether it rotated pixels."""

    icc_profile: bool
    exif: bool
    oriented: bool


def strip_metadata(img: Image.Image) -> Image.Image:
    """A copy of ``img`` without ICC, EXIF or XMP, with the EXIF orientation applied to it.

    Rotating the pixels keeps the image upright once the orientation tag is gone; colours stay
    in the profile's space (converting would be lossy).
    """
    out = ImageOps.exif_transpose(img) if _orientation(img) not in (0, 1) else img.copy()
    for key in _METADATA_KEYS:
        out.info.pop(key, None)
    return out


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(_ORIENTATION, 1))
    except Exception:  # unreadable EXIF: treat as upright
        return 1


def _pillow_format(path: str | os.PathLike[str] | IO[bytes], fmt: str | None) -> str:
    if fmt:
        return fmt.upper()
    if not isinstance(path, str | os.PathLike):
        raise ValueError("format is needed when writing to a file object")
    ext = Path(path).suffix.lower()
    formats = Image.registered_extensions()
    if ext not in formats:
        raise ValueError(f"unknown image file extension {ext!r} (use .png, .jpg, .gmx, ...)")
    return formats[ext]


def save_with_metadata(
    img: Image.Image,
    path: str | os.PathLike[str] | IO[bytes],
    *,
    format: str | None = None,
    strip: bool = False,
    **params: Any,
) -> MetadataWritten:
    """Save ``img`` with its ICC profile and EXIF (``--strip``: without them).

    The format follows ``format`` or the file extension. Formats without EXIF (BMP, PPM, ...)
    and ``strip`` get the EXIF orientation applied to the pixels instead. A path is written
    atomically (temp file, then rename); a file object is written in place. ``params`` go to
    Pillow (JPEG defaults to quality 95).
    """
    fmt = _pillow_format(path, format)
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") and fmt in _NO_ALPHA_FORMATS:
        raise ValueError(f"{fmt} cannot store the alpha channel: write PNG, WebP or TIFF")
    keep_icc = not strip and fmt in _ICC_FORMATS and bool(img.info.get("icc_profile"))
    exif = None if strip or fmt not in _EXIF_FORMATS else container_exif(img.info.get("exif"))
    oriented = exif is None and _orientation(img) not in (0, 1)
    out = ImageOps.exif_transpose(img) if oriented else img.copy()
    for key in _METADATA_KEYS if strip else ():
        out.info.pop(key, None)
    out.info.pop("icc_profile", None)  # passed explicitly below, or not at all
    out.info.pop("exif", None)
    if keep_icc:
        params.setdefault("icc_profile", img.info["icc_profile"])
    if exif is not None:
        params.setdefault("exif", EXIF_PREFIX + exif)
    params = {**_DEFAULT_PARAMS.get(fmt, {}), **params}
    if isinstance(path, str | os.PathLike):
        with atomic_output(path, force=True) as fh:
            out.save(fh, format=fmt, **params)
    else:
        out.save(path, format=fmt, **params)
    return MetadataWritten(keep_icc, exif is not None, oriented)


register()
