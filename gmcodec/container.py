"""The ``.gmx`` container, format 2.0 (and 1.x, read and on request written): bytes in, bytes out.

A ``.gmx`` file is an 8-byte signature, a two-byte version, then chunks, each framed as
``length | type | data | CRC-32`` (``docs/FORMAT.md`` gives the layout byte by byte)::

    2.0:  SIGNATURE  2 0  HEAD  [iCCP] [eXIf] [ALPH]  DATA ... DATA  IEND
    1.x:  SIGNATURE  1 m  HEAD  MODL  CODR  [iCCP] [eXIf] [ALPH]  DATA ... DATA  IEND

Format 2.0 carries what 1.x does in ~110 fewer bytes per file: one HEAD holds the image, model
and coder fields, the weights hash is the first 8 bytes of their SHA-256, and each tile keeps
one CRC-32 over the header, its rectangle, the alpha plane and all its decoded symbols
(:func:`checksum_seed`), plus one byte per group (the low byte of that group's CRC-32), which
still names the first group a mismatched decoder gets wrong.

This module knows nothing of models or tensors. It imports only the standard library, so that
``gmx info`` works without torch or numpy. Every reader check runs before anything large is
allocated; every failure raises :class:`ContainerError` with a one-line message.

Example, a full round trip:

>>> f = GmxFile(
...     ImageInfo(width=4, height=2, channels=3),
...     ModelInfo("gm-small-v1", "ab" * 8),
...     CoderInfo(quality_centi=7500, num_scales=64, scale_min=0.11, scale_max=256.0,
...               mean_steps=8, symbol_range=255),
...     tiles=(Tile(0, 0, 4, 2, z_checksum=7, group_checksums=(1, 2), words=b"\\1\\0\\0\\0",
...                 tile_checksum=0xDEADBEEF),),
... )
>>> data = serialize(f)
>>> data[:10] == SIGNATURE + bytes([FORMAT_MAJOR, FORMAT_MINOR])
True
>>> parse(data) == f
True
"""

from __future__ import annotations

import math
import operator
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CODERS",
    "COLORSPACES",
    "FORMAT_MAJOR",
    "FORMAT_MINOR",
    "FORMAT_VERSION",
    "LEGACY_VERSION",
    "SIGNATURE",
    "CoderInfo",
    "ContainerError",
    "GmxFile",
    "ImageInfo",
    "Limits",
    "ModelInfo",
    "Tile",
    "checksum_seed",
    "deflate_alpha",
    "describe",
    "format_info",
    "inflate_alpha",
    "parse",
    "read_file",
    "serialize",
]

SIGNATURE = b"\x89GMX\r\n\x1a\n"
FORMAT_MAJOR = 2
FORMAT_MINOR = 0
FORMAT_VERSION = (FORMAT_MAJOR, FORMAT_MINOR)
"""The version :func:`serialize` writes by default."""
LEGACY_VERSION = (1, 2)
"""The newest 1.x version, which :func:`serialize` writes on request (for 1.x readers)."""

COLORSPACES = {0: "RGB", 1: "grayscale"}
"""Colorspace codes of HEAD; 0 needs 3 channels, 1 needs 1 channel."""
CODERS = {
    0: "constriction ANS, 32-bit words, float32 entropy parameters",
    1: "constriction ANS, 32-bit words, float64 entropy parameters",
    2: "constriction ANS, 32-bit words, float64 entropy parameters, bins centred on the mean",
}
"""Entropy-coder ids of CODR."""

_U32_MAX = 0xFFFF_FFFF
_PREAMBLE_SIZE = len(SIGNATURE) + 2
_U32 = struct.Struct("<I")
_F32 = struct.Struct("<f")
_CHUNK_HEADER = struct.Struct("<I4s")  # data length, type
_HEAD = struct.Struct("<BBIIBBB")  # major, minor, width, height, channels, bit_depth, colorspace
_CODR = struct.Struct("<HHffBHB")  # quality_centi, num_scales, scale_min, scale_max,
#                                    mean_steps, symbol_range, coder_id
_TILE = struct.Struct("<IIIIIH")  # x, y, width, height, z_checksum, group count
_HEAD2 = struct.Struct("<BBIIBBBHHffBHB8sB")  # _HEAD fields, _CODR fields, weights hash, id size
_TILE2 = struct.Struct("<IIIIIBH")  # x, y, width, height, tile_checksum, z check, group count
_RECT = struct.Struct("<IIII")  # x, y, width, height
_SHA256_SIZE = 32
_HASH2_SIZE = 8
_CHECK2_MASK = 0xFF
_SINGLE_CHUNKS = frozenset({"HEAD", "MODL", "CODR", "ALPH", "iCCP", "eXIf"})
_OTHER_FORMATS = (
    (0, b"\x89PNG\r\n\x1a\n", "PNG"),
    (0, b"\xff\xd8\xff", "JPEG"),
    (0, b"GIF8", "GIF"),
    (0, b"\xff\x0a", "JPEG XL"),
    (0, b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (8, b"WEBP", "WebP"),
    (8, b"avif", "AVIF"),
    (8, b"heic", "HEIC"),
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
    (0, b"BM", "BMP"),
    (0, b"\x1f\x8b", "gzip"),
    (0, b"PK\x03\x04", "zip"),
)


class ContainerError(ValueError):
    """A ``.gmx`` file (or a value headed for one) is invalid; the message is one line."""


@dataclass(frozen=True)
class Limits:
    """Reader-side size limits, checked before any allocation."""

    max_pixels: int = 1 << 28
    max_dimension: int = 65535
    max_file_bytes: int = 1 << 32

    def exceeded(self, width: int, height: int) -> str | None:
        """Why an image of this size is over the limits, or None when it is within them."""
        if max(width, height) > self.max_dimension or width * height > self.max_pixels:
            return (
                f"image {width}x{height} exceeds the size limits ({self.max_dimension} px a "
                f"side, {self.max_pixels:,} pixels)"
            )
        return None


# ---------------------------------------------------------------------------------------------
# Field validation (shared by the dataclasses and the reader)


def _require(condition: bool, message: str) -> None:
    """Raise ContainerError(message) unless condition holds."""
    if not condition:
        raise ContainerError(message)


def _as_uint(label: str, value: Any, bits: int, minimum: int = 0) -> int:
    """Return value as a Python int in [minimum, 2**bits - 1] (numpy ints accepted)."""
    _require(
        hasattr(value, "__index__") and not isinstance(value, bool),
        f"{label} must be an integer, got {type(value).__name__}",
    )
    value = operator.index(value)
    maximum = (1 << bits) - 1
    _require(minimum <= value <= maximum, f"{label} must be in {minimum}..{maximum}, got {value}")
    return value


def _set_uint(obj: object, name: str, bits: int, minimum: int = 0) -> None:
    """Normalise the unsigned-integer field ``name`` of a frozen dataclass in place."""
    label = f"{type(obj).__name__}.{name}"
    object.__setattr__(obj, name, _as_uint(label, getattr(obj, name), bits, minimum))


def _set_f32(obj: object, name: str) -> None:
    """Round the float field ``name`` to the float32 the file will store."""
    label = f"{type(obj).__name__}.{name}"
    value = getattr(obj, name)
    _require(hasattr(value, "__float__"), f"{label} must be a number, got {type(value).__name__}")
    value = float(value)
    _require(math.isfinite(value), f"{label} must be finite, got {value}")
    try:
        (rounded,) = _F32.unpack(_F32.pack(value))
    except OverflowError:
        raise ContainerError(f"{label} {value} does not fit in a float32") from None
    object.__setattr__(obj, name, rounded)


def _set_optional_bytes(obj: object, name: str) -> None:
    """Normalise a ``bytes | None`` field (bytearray and memoryview accepted)."""
    value = getattr(obj, name)
    if value is not None:
        label = f"{type(obj).__name__}.{name}"
        _require(isinstance(value, bytes | bytearray | memoryview), f"{label} must be bytes")
        object.__setattr__(obj, name, bytes(value))


# ---------------------------------------------------------------------------------------------
# Chunk contents


@dataclass(frozen=True)
class ImageInfo:
    """Chunk HEAD: what the decoded image looks like."""

    width: int
    height: int
    channels: int
    bit_depth: int = 8
    colorspace: int = 0

    def __post_init__(self) -> None:
        _set_uint(self, "width", 32, minimum=1)
        _set_uint(self, "height", 32, minimum=1)
        for name in ("channels", "bit_depth", "colorspace"):
            _set_uint(self, name, 8)
        _require(
            self.channels in (1, 3),
            f"image channels must be 1 (grayscale) or 3 (RGB), got {self.channels}",
        )
        _require(self.bit_depth == 8, f"bit depth {self.bit_depth} unsupported: format 1 is 8-bit")
        _require(
            self.colorspace in COLORSPACES,
            f"unknown colorspace code {self.colorspace} (0 = RGB, 1 = grayscale)",
        )
        expected = 0 if self.channels == 3 else 1
        _require(
            self.colorspace == expected,
            f"colorspace {COLORSPACES[self.colorspace]} does not fit {self.channels} channel(s)",
        )


@dataclass(frozen=True)
class ModelInfo:
    """Chunk MODL (1.x) or HEAD (2.0): which model, and which exact weights, made the streams.

    ``weights_sha256`` is the SHA-256 of the weights as 64 hex digits (1.x), or its first 16
    (format 2.0 stores the first 8 bytes; the 2.0 writer truncates a full digest).
    """

    model_id: str
    weights_sha256: str

    def __post_init__(self) -> None:
        _require(isinstance(self.model_id, str), "ModelInfo.model_id must be a str")
        try:
            size = len(self.model_id.encode("utf-8"))
        except UnicodeEncodeError:
            raise ContainerError(f"model id {self.model_id!r} is not valid UTF-8") from None
        _require(1 <= size <= 255, f"model id must be 1..255 bytes of UTF-8, got {size}")
        _require(
            self.model_id.isprintable(),
            f"model id {self.model_id!r} contains non-printable characters",
        )
        sha = self.weights_sha256
        _require(isinstance(sha, str), "ModelInfo.weights_sha256 must be a str")
        sha = sha.lower()
        _require(
            len(sha) in (2 * _HASH2_SIZE, 2 * _SHA256_SIZE)
            and all(c in "0123456789abcdef" for c in sha),
            f"weights_sha256 must be 64 (or 16) hex digits, got {self.weights_sha256[:80]!r}",
        )
        object.__setattr__(self, "weights_sha256", sha)

    def matches(self, sha256: str) -> bool:
        """Whether weights whose SHA-256 is ``sha256`` (64 hex digits) are the ones named."""
        return sha256.lower().startswith(self.weights_sha256)


@dataclass(frozen=True)
class CoderInfo:
    """Chunk CODR: the entropy-coder settings the decoder must reproduce exactly.

    ``scale_min`` and ``scale_max`` are rounded to float32 on construction (the stored
    precision): build the sigma table from these fields, not from the values passed in.
    """

    quality_centi: int
    num_scales: int
    scale_min: float
    scale_max: float
    mean_steps: int
    symbol_range: int
    coder_id: int = 0

    def __post_init__(self) -> None:
        _set_uint(self, "quality_centi", 16)
        _require(
            self.quality_centi <= 10000,
            f"quality_centi must be 0..10000 (quality 0..100), got {self.quality_centi}",
        )
        _set_uint(self, "num_scales", 16, minimum=2)
        _set_f32(self, "scale_min")
        _set_f32(self, "scale_max")
        _require(
            0 < self.scale_min < self.scale_max,
            f"sigma range needs 0 < scale_min < scale_max, got {self.scale_min}..{self.scale_max}",
        )
        _set_uint(self, "mean_steps", 8, minimum=1)
        _set_uint(self, "symbol_range", 16, minimum=1)
        _set_uint(self, "coder_id", 8)
        _require(
            self.coder_id in CODERS,
            f"unknown entropy coder id {self.coder_id}: file needs a newer gmx",
        )

    @property
    def quality(self) -> float:
        """The quality setting, 0..100."""
        return self.quality_centi / 100


@dataclass(frozen=True)
class Tile:
    """Chunk DATA: one tile's rectangle, decode checksums and ANS stream.

    The checksums are CRC-32s of decoded symbols (``docs/FORMAT.md``): ``z_checksum`` of the
    hyper-latent, ``group_checksums`` of each latent group and ``tile_checksum`` of all of them
    in decoding order. Format 2.0 stores only the low byte of the first two kinds and needs
    ``tile_checksum``; 1.x stores them whole and has no ``tile_checksum`` (None). Compare
    decoded symbols with :meth:`z_matches`, :meth:`group_matches` and :meth:`tile_matches`,
    which know what was stored.
    """

    x: int
    y: int
    width: int
    height: int
    z_checksum: int
    group_checksums: tuple[int, ...]
    words: bytes
    tile_checksum: int | None = None

    def __post_init__(self) -> None:
        for name in ("x", "y", "z_checksum"):
            _set_uint(self, name, 32)
        if self.tile_checksum is not None:
            _set_uint(self, "tile_checksum", 32)
        _set_uint(self, "width", 32, minimum=1)
        _set_uint(self, "height", 32, minimum=1)
        checksums = tuple(
            _as_uint(f"group checksum {i}", value, 32)
            for i, value in enumerate(self.group_checksums)
        )
        _require(len(checksums) <= 0xFFFF, f"a tile has at most 65535 groups, got {len(checksums)}")
        object.__setattr__(self, "group_checksums", checksums)
        _require(isinstance(self.words, bytes | bytearray), "Tile.words must be bytes")
        object.__setattr__(self, "words", bytes(self.words))
        size = len(self.words)
        _require(size % 4 == 0, f"Tile.words has {size} bytes, not a whole number of 32-bit words")
        _require(size // 4 <= _U32_MAX, f"Tile.words has {size // 4} words, at most 2**32-1")

    def _stored(self, stored: int, crc: int) -> bool:
        mask = _U32_MAX if self.tile_checksum is None else _CHECK2_MASK
        return (stored ^ crc) & mask == 0

    def z_matches(self, crc: int) -> bool:
        """Whether ``crc``, the CRC-32 of the decoded z symbols, agrees with the file."""
        return self._stored(self.z_checksum, crc)

    def group_matches(self, g: int, crc: int) -> bool:
        """Whether ``crc``, the CRC-32 of group g's decoded symbols, agrees with the file."""
        return self._stored(self.group_checksums[g], crc)

    def tile_matches(self, crc: int) -> bool:
        """Whether ``crc``, the CRC-32 of all decoded symbols (z, then each group), agrees."""
        return self.tile_checksum is None or self.tile_checksum == crc


@dataclass(frozen=True)
class GmxFile:
    """A whole ``.gmx`` file. ``skipped_chunks`` and ``version`` are filled in by :func:`parse`.

    ``version`` is the version the file was read as. Equality ignores it: :func:`serialize`
    chooses the version it writes.
    """

    image: ImageInfo
    model: ModelInfo
    coder: CoderInfo
    tiles: tuple[Tile, ...]
    icc_profile: bytes | None = None
    exif: bytes | None = None
    alpha: bytes | None = None
    skipped_chunks: tuple[tuple[str, int], ...] = ()
    version: tuple[int, int] = field(default=FORMAT_VERSION, compare=False)

    def __post_init__(self) -> None:
        for name, kind in (("image", ImageInfo), ("model", ModelInfo), ("coder", CoderInfo)):
            _require(
                isinstance(getattr(self, name), kind), f"GmxFile.{name} must be a {kind.__name__}"
            )
        tiles = tuple(self.tiles)
        _require(all(isinstance(t, Tile) for t in tiles), "GmxFile.tiles must hold Tile objects")
        object.__setattr__(self, "tiles", tiles)
        _check_tiling(self.image, tiles)
        for name in ("icc_profile", "exif", "alpha"):
            _set_optional_bytes(self, name)
        skipped = tuple(
            (str(kind), _as_uint("chunk length", n, 32)) for kind, n in self.skipped_chunks
        )
        object.__setattr__(self, "skipped_chunks", skipped)
        version = tuple(_as_uint("version number", v, 8) for v in self.version)
        _require(len(version) == 2, f"version must be (major, minor), got {self.version}")
        _require(
            version[0] in (1, FORMAT_MAJOR), f"GmxFile.version major must be 1 or {FORMAT_MAJOR}"
        )
        object.__setattr__(self, "version", version)

    def checksum_seed(self, tile: Tile) -> int:
        """:func:`checksum_seed` for one of this file's tiles."""
        rect = (tile.x, tile.y, tile.width, tile.height)
        return checksum_seed(self.image, self.model, self.coder, self.alpha, rect)


def _check_tiling(image: ImageInfo, tiles: tuple[Tile, ...]) -> None:
    """Check the tiles lie inside the image and cover it exactly once, in O(len(tiles)).

    With every tile inside the image, toggle each tile's four corners in a set. The corners
    left over mark where the coverage count changes parity, so exactly the four image corners
    remain iff every pixel is covered an odd number of times; with the total tile area equal to
    the image area, that means exactly once.
    """
    _require(len(tiles) > 0, "a .gmx file needs at least one tile (DATA chunk)")
    width, height = image.width, image.height
    area, corners = 0, set()
    for i, t in enumerate(tiles):
        x1, y1 = t.x + t.width, t.y + t.height
        _require(
            x1 <= width and y1 <= height,
            f"tile {i} ({t.width}x{t.height} at {t.x},{t.y}) "
            f"extends past the {width}x{height} image",
        )
        area += t.width * t.height
        corners ^= {(t.x, t.y), (x1, t.y), (t.x, y1), (x1, y1)}
    _require(
        area == width * height,
        f"tiles cover {area} pixels but the image has {width * height}: overlap or gap",
    )
    _require(
        corners == {(0, 0), (width, 0), (0, height), (width, height)},
        "tiles overlap and leave gaps: they do not tile the image exactly",
    )


# ---------------------------------------------------------------------------------------------
# Writing


def _chunk(kind: str, body: bytes) -> bytes:
    """Frame one chunk: length, type, data, CRC-32 of type + data."""
    raw = kind.encode("ascii")
    _require(len(body) <= _U32_MAX, f"chunk {kind} too large: {len(body)} bytes")
    crc = zlib.crc32(body, zlib.crc32(raw))
    return _CHUNK_HEADER.pack(len(body), raw) + body + _U32.pack(crc)


def _image_fields(image: ImageInfo) -> tuple[int, ...]:
    """The image fields of HEAD, in file order (1.x HEAD offsets 2..12, the same in 2.0)."""
    return (image.width, image.height, image.channels, image.bit_depth, image.colorspace)


def _coder_fields(c: CoderInfo) -> tuple[int | float, ...]:
    """The coder fields in file order (1.x CODR; 2.0 HEAD offsets 13..28)."""
    fields = (c.quality_centi, c.num_scales, c.scale_min, c.scale_max, c.mean_steps)
    return (*fields, c.symbol_range, c.coder_id)


def _encode_head(image: ImageInfo) -> bytes:
    """HEAD data of 1.x; it repeats the version so that the version is CRC-protected."""
    return _HEAD.pack(*LEGACY_VERSION, *_image_fields(image))


def _encode_model(model: ModelInfo) -> bytes:
    """MODL data: u8 id length, utf-8 id, 32 raw bytes of SHA-256."""
    model_id = model.model_id.encode("utf-8")
    return bytes([len(model_id)]) + model_id + bytes.fromhex(model.weights_sha256)


def _encode_coder(c: CoderInfo) -> bytes:
    """CODR data, fields in dataclass order."""
    return _CODR.pack(*_coder_fields(c))


def _encode_tile(t: Tile) -> bytes:
    """DATA data: rectangle, z checksum, group checksums, word count, words."""
    groups = len(t.group_checksums)
    return b"".join(
        (
            _TILE.pack(t.x, t.y, t.width, t.height, t.z_checksum, groups),
            struct.pack(f"<{groups}I", *t.group_checksums),
            _U32.pack(len(t.words) // 4),
            t.words,
        )
    )


def _head2_data(image: ImageInfo, model: ModelInfo, coder: CoderInfo) -> bytes:
    """HEAD data of format 2.0: the 1.x HEAD and CODR fields, weights hash, model id."""
    model_id = model.model_id.encode("utf-8")
    digest = bytes.fromhex(model.weights_sha256)[:_HASH2_SIZE]
    fields = (*_image_fields(image), *_coder_fields(coder), digest, len(model_id))
    return _HEAD2.pack(*FORMAT_VERSION, *fields) + model_id


def checksum_seed(
    image: ImageInfo,
    model: ModelInfo,
    coder: CoderInfo,
    alpha: bytes | None,
    rect: tuple[int, int, int, int],
) -> int:
    """The CRC-32 a 2.0 tile checksum starts from, before the tile's symbols.

    It covers the HEAD data, the tile's rectangle (x, y, width, height) and the ALPH data, if
    any: an edit of any of them that recomputes the chunk CRCs still fails the tile checksum,
    where it would otherwise decode the intact symbols into another picture (``docs/FORMAT.md``
    section 3.2). The optional chunks are left out, so stripping metadata keeps a file valid.
    """
    crc = zlib.crc32(_head2_data(image, model, coder))
    crc = zlib.crc32(_RECT.pack(*rect), crc)
    return zlib.crc32(alpha or b"", crc)


def _encode_tile2(t: Tile) -> bytes:
    """DATA data of format 2.0: rectangle, tile CRC-32, z and group check bytes, words."""
    _require(t.tile_checksum is not None, "format 2.0 needs Tile.tile_checksum")
    groups = len(t.group_checksums)
    head = _TILE2.pack(
        t.x, t.y, t.width, t.height, t.tile_checksum, t.z_checksum & _CHECK2_MASK, groups
    )
    return head + bytes(c & _CHECK2_MASK for c in t.group_checksums) + t.words


def _chunks_of(f: GmxFile, major: int) -> Iterator[tuple[str, bytes]]:
    """Yield (type, data) of each chunk of f in format ``major``, in the order the writer uses."""
    if major == FORMAT_MAJOR:
        yield "HEAD", _head2_data(f.image, f.model, f.coder)
    else:
        _require(
            len(f.model.weights_sha256) == 2 * _SHA256_SIZE,
            "format 1.x needs the full SHA-256 of the weights",
        )
        yield "HEAD", _encode_head(f.image)
        yield "MODL", _encode_model(f.model)
        yield "CODR", _encode_coder(f.coder)
    for kind, body in (("iCCP", f.icc_profile), ("eXIf", f.exif), ("ALPH", f.alpha)):
        if body is not None:
            yield kind, body
    encode = _encode_tile2 if major == FORMAT_MAJOR else _encode_tile
    for tile in f.tiles:
        yield "DATA", encode(tile)
    yield "IEND", b""


def serialize(f: GmxFile, version: tuple[int, int] = FORMAT_VERSION) -> bytes:
    """Return the bytes of f as a file of ``version``: 2.0, or ``LEGACY_VERSION`` (1.2).

    ``f.version`` and skipped chunks are ignored. 1.2 stores whole CRC-32s, so it needs the
    tiles an encoder makes: a tile parsed from a 2.0 file keeps only their low bytes, and a
    1.2 file written from it fails its checksums when decoded.
    """
    _require(isinstance(f, GmxFile), f"serialize() needs a GmxFile, got {type(f).__name__}")
    version = tuple(version)
    writable = (FORMAT_VERSION, LEGACY_VERSION)
    _require(version in writable, f"serialize() writes format 2.0 or 1.2, not {version}")
    preamble = SIGNATURE + bytes(version)
    return preamble + b"".join(_chunk(kind, body) for kind, body in _chunks_of(f, version[0]))


def deflate_alpha(plane: bytes, image: ImageInfo) -> bytes:
    """Compress an 8-bit alpha plane (``width*height`` bytes, row-major) for ``GmxFile.alpha``."""
    expected = image.width * image.height
    _require(len(plane) == expected, f"alpha plane has {len(plane)} bytes, expected {expected}")
    return zlib.compress(bytes(plane), 9)


# ---------------------------------------------------------------------------------------------
# Reading: framing


def _sniff_format(data: bytes) -> str | None:
    """Name the well-known file format data starts with, if any."""
    for offset, magic, name in _OTHER_FORMATS:
        if data[offset : offset + len(magic)] == magic:
            return name
    return None


def _signature_damage(head: bytes) -> str:
    """Describe how a damaged ``.gmx`` signature differs from the real one."""
    if head[0] == 0x09:
        return "first byte 0x09, not 0x89: a 7-bit transfer stripped the high bit"
    if head[4:7] == b"\n\x1a\n":
        return "CR LF became LF: the file went through a text-mode transfer"
    if head[4:8] == b"\r\r\n\x1a":
        return "LF became CR LF: the file went through a text-mode transfer"
    return f"bytes are {head[:8].hex(' ')}, expected {SIGNATURE.hex(' ')}"


def _bad_signature(data: bytes) -> str:
    """One-line reason why data does not start with SIGNATURE."""
    if not data:
        return "empty file (0 bytes): not a .gmx file"
    if SIGNATURE.startswith(data):
        return f"truncated file: {len(data)} bytes, shorter than the 8-byte signature"
    if data[1:4] == b"GMX":
        return "damaged .gmx signature: " + _signature_damage(data)
    other = _sniff_format(data)
    if other is not None:
        return f"not a .gmx file (looks like {other})"
    if all(32 <= b < 127 or b in b"\t\r\n" for b in data[:64]):
        return "not a .gmx file (looks like text)"
    return f"not a .gmx file (starts with {data[:8].hex(' ')})"


def _read_version(data: bytes) -> tuple[int, int]:
    """Check the signature and return the (major, minor) version that follows it."""
    _require(data[: len(SIGNATURE)] == SIGNATURE, _bad_signature(data))
    _require(
        len(data) >= _PREAMBLE_SIZE,
        f"truncated file: {len(data)} bytes, the header alone is {_PREAMBLE_SIZE}",
    )
    major, minor = data[len(SIGNATURE)], data[len(SIGNATURE) + 1]
    _require(
        major <= FORMAT_MAJOR,
        f"file is GMX format {major}.{minor} but this gmx reads formats 1.x and "
        f"{FORMAT_MAJOR}.x (up to {FORMAT_MAJOR}.{FORMAT_MINOR}): file needs a newer gmx",
    )
    _require(
        major >= 1,
        f"unsupported GMX format {major}.{minor} (damaged header?): "
        f"this gmx reads 1.x and {FORMAT_MAJOR}.x",
    )
    return major, minor


def _chunk_type(raw: bytes, offset: int) -> str:
    """Decode a chunk type: four ASCII letters."""
    _require(
        raw.isalpha() and raw.isascii(),
        f"invalid chunk type {raw.hex(' ')} at offset {offset}: file damaged",
    )
    return raw.decode("ascii")


def _read_chunk(data: bytes, pos: int, after: str) -> tuple[str, bytes, int]:
    """Read and CRC-check the chunk at pos; return (type, data, position of the next chunk)."""
    left = len(data) - pos
    if left < _CHUNK_HEADER.size:
        cut = f"{left} stray bytes" if left else "nothing"
        raise ContainerError(f"truncated file: {cut} after {after}, no IEND chunk")
    length, raw = _CHUNK_HEADER.unpack_from(data, pos)
    kind = _chunk_type(raw, pos)
    start, left = pos + _CHUNK_HEADER.size, left - _CHUNK_HEADER.size
    _require(
        length + 4 <= left, f"truncated file: chunk {kind} needs {length + 4} bytes, {left} left"
    )
    body = data[start : start + length]
    (stored,) = _U32.unpack_from(data, start + length)
    _require(
        zlib.crc32(body, zlib.crc32(raw)) == stored,
        f"CRC mismatch in chunk {kind} at offset {pos}: file damaged",
    )
    return kind, body, start + length + 4


def _iter_chunks(data: bytes, pos: int) -> Iterator[tuple[str, bytes]]:
    """Yield (type, data) of each chunk before IEND; check IEND ends the file."""
    after = "the header"
    while True:
        kind, body, pos = _read_chunk(data, pos, after)
        if kind == "IEND":
            _require(not body, f"chunk IEND must be empty, has {len(body)} bytes")
            _require(pos == len(data), f"{len(data) - pos} unexpected bytes after IEND")
            return
        yield kind, body
        after = f"chunk {kind}"


# ---------------------------------------------------------------------------------------------
# Reading: chunk contents


def _check_limits(width: int, height: int, limits: Limits) -> None:
    """Refuse empty or oversized images before anything is allocated for them."""
    for name, value in (("width", width), ("height", height)):
        _require(value > 0, f"image {name} is 0")
        _require(
            value <= limits.max_dimension,
            f"image {name} {value} exceeds the limit of {limits.max_dimension}",
        )
    pixels = width * height
    _require(
        pixels <= limits.max_pixels,
        f"image {width}x{height} has {pixels} pixels, over the limit of {limits.max_pixels}",
    )


def _expect_size(kind: str, body: bytes, size: int) -> None:
    """Check a fixed-layout chunk has exactly size bytes."""
    _require(len(body) == size, f"chunk {kind} has {len(body)} bytes, expected {size}")


def _model_info(raw_id: bytes, digest: bytes, kind: str) -> ModelInfo:
    """ModelInfo from the raw UTF-8 id and weights digest of chunk ``kind``."""
    try:
        model_id = raw_id.decode("utf-8")
    except UnicodeDecodeError:
        raise ContainerError(f"model id in chunk {kind} is not valid UTF-8") from None
    return ModelInfo(model_id, digest.hex())


def _decode_model(body: bytes) -> ModelInfo:
    """Inverse of _encode_model."""
    _require(len(body) >= 1, "chunk MODL is empty")
    size = body[0]
    _expect_size("MODL", body, 1 + size + _SHA256_SIZE)
    return _model_info(body[1 : 1 + size], body[1 + size :], "MODL")


def _decode_tile2(body: bytes, index: int) -> Tile:
    """Inverse of _encode_tile2; index only names the tile in messages."""
    _require(
        len(body) >= _TILE2.size,
        f"chunk DATA (tile {index}) has {len(body)} bytes, needs {_TILE2.size}+",
    )
    x, y, width, height, tile_checksum, z_check, groups = _TILE2.unpack_from(body)
    words_at = _TILE2.size + groups
    _require(
        words_at <= len(body),
        f"tile {index}: {groups} group checks do not fit in its {len(body)}-byte DATA chunk",
    )
    words = body[words_at:]
    _require(
        len(words) % 4 == 0,
        f"tile {index}: {len(words)} stream bytes in chunk DATA, not whole 32-bit words",
    )
    try:
        return Tile(
            x, y, width, height, z_check, tuple(body[_TILE2.size : words_at]), words, tile_checksum
        )
    except ContainerError as e:
        raise ContainerError(f"tile {index}: {e}") from None


def _decode_tile(body: bytes, index: int) -> Tile:
    """Inverse of _encode_tile; index only names the tile in messages."""
    fixed = _TILE.size + 4
    _require(len(body) >= fixed, f"chunk DATA (tile {index}) has {len(body)} bytes, needs {fixed}+")
    x, y, width, height, z_checksum, groups = _TILE.unpack_from(body)
    words_at = _TILE.size + 4 * groups
    _require(
        words_at + 4 <= len(body),
        f"tile {index}: {groups} group checksums do not fit in its {len(body)}-byte DATA chunk",
    )
    checksums = struct.unpack_from(f"<{groups}I", body, _TILE.size)
    (count,) = _U32.unpack_from(body, words_at)
    words = body[words_at + 4 :]
    _require(
        len(words) == 4 * count,
        f"tile {index}: word count {count} needs {4 * count} bytes, chunk DATA has {len(words)}",
    )
    try:
        return Tile(x, y, width, height, z_checksum, checksums, words)
    except ContainerError as e:
        raise ContainerError(f"tile {index}: {e}") from None


class _Reader:
    """Collects the chunks of one file in order, enforcing the chunk-order rules."""

    def __init__(self, version: tuple[int, int], limits: Limits) -> None:
        self.version, self.limits = version, limits
        self.seen: set[str] = set()
        self.fields: dict[str, Any] = {"tiles": []}
        self.skipped: list[tuple[str, int]] = []

    def feed(self, kind: str, body: bytes) -> None:
        """Take the next chunk."""
        _require("HEAD" in self.seen or kind == "HEAD", f"first chunk must be HEAD, found {kind}")
        _require(not (kind in _SINGLE_CHUNKS and kind in self.seen), f"duplicate chunk {kind}")
        self.seen.add(kind)
        handler = self._handlers().get(kind)
        if handler is not None:
            handler(body)
        elif kind[0].isupper():
            raise ContainerError(f"unknown critical chunk '{kind}': file needs a newer gmx")
        else:
            self.skipped.append((kind, len(body)))

    @property
    def legacy(self) -> bool:
        """Whether the file is format 1.x (HEAD, MODL and CODR chunks)."""
        return self.version[0] == 1

    def _handlers(self) -> dict[str, Callable[[bytes], None]]:
        common = {
            "DATA": self._data,
            "ALPH": lambda body: self.fields.update(alpha=body),
            "iCCP": lambda body: self.fields.update(icc_profile=body),
            "eXIf": lambda body: self.fields.update(exif=body),
        }
        if not self.legacy:
            return {"HEAD": self._head2, **common}
        return {
            "HEAD": self._head,
            "MODL": lambda body: self.fields.update(model=_decode_model(body)),
            "CODR": self._codr,
            **common,
        }

    def _check_version(self, major: int, minor: int) -> None:
        _require(
            (major, minor) == self.version,
            f"chunk HEAD says format {major}.{minor} but the file header says "
            f"{self.version[0]}.{self.version[1]}: header damaged",
        )

    def _head(self, body: bytes) -> None:
        _expect_size("HEAD", body, _HEAD.size)
        major, minor, width, height, *rest = _HEAD.unpack(body)
        self._check_version(major, minor)
        _check_limits(width, height, self.limits)
        self.fields["image"] = ImageInfo(width, height, *rest)

    def _head2(self, body: bytes) -> None:
        _require(
            len(body) >= _HEAD2.size, f"chunk HEAD has {len(body)} bytes, needs {_HEAD2.size}+"
        )
        major, minor, width, height, *fields = _HEAD2.unpack_from(body)
        self._check_version(major, minor)
        _check_limits(width, height, self.limits)
        image, coder, (digest, size) = fields[:3], fields[3:10], fields[10:]
        _expect_size("HEAD", body, _HEAD2.size + size)
        self.fields["image"] = ImageInfo(width, height, *image)
        self.fields["coder"] = CoderInfo(*coder)
        self.fields["model"] = _model_info(body[_HEAD2.size :], digest, "HEAD")

    def _codr(self, body: bytes) -> None:
        _expect_size("CODR", body, _CODR.size)
        self.fields["coder"] = CoderInfo(*_CODR.unpack(body))

    def _data(self, body: bytes) -> None:
        for needed in ("MODL", "CODR") if self.legacy else ():
            _require(needed in self.seen, f"chunk DATA comes before {needed}")
        tiles = self.fields["tiles"]
        decode = _decode_tile if self.legacy else _decode_tile2
        tiles.append(decode(body, len(tiles)))

    def finish(self) -> GmxFile:
        """Check nothing required is missing and build the GmxFile."""
        for needed in ("HEAD", "MODL", "CODR", "DATA") if self.legacy else ("HEAD", "DATA"):
            _require(needed in self.seen, f"missing chunk {needed}")
        return GmxFile(**self.fields, skipped_chunks=tuple(self.skipped), version=self.version)


def _check_file_size(size: int, limit: int) -> None:
    """Refuse files over limit (Limits.max_file_bytes) bytes."""
    _require(size <= limit, f"file too large: {size} bytes, over the limit of {limit}")


def parse(data: bytes, limits: Limits = Limits()) -> GmxFile:
    """Parse and fully validate the bytes of a ``.gmx`` file."""
    if not isinstance(data, bytes):
        data = bytes(data)
    _check_file_size(len(data), limits.max_file_bytes)
    version = _read_version(data)
    reader = _Reader(version, limits)
    for kind, body in _iter_chunks(data, _PREAMBLE_SIZE):
        reader.feed(kind, body)
    return reader.finish()


def _read_bounded(path: str | os.PathLike[str], limit: int) -> bytes:
    """Read a file, refusing it as soon as it is known to exceed limit bytes."""
    with open(path, "rb") as fh:
        _check_file_size(os.fstat(fh.fileno()).st_size, limit)
        blocks, total = [], 0
        while block := fh.read(1 << 20):
            total += len(block)
            _check_file_size(total, limit)
            blocks.append(block)
    return b"".join(blocks)


def read_file(path: str | os.PathLike[str], limits: Limits = Limits()) -> GmxFile:
    """Read and parse a ``.gmx`` file; its size is checked before it is read."""
    try:
        data = _read_bounded(path, limits.max_file_bytes)
    except OSError as e:
        raise ContainerError(f"cannot read {os.fspath(path)!r}: {e.strerror or e}") from None
    return parse(data, limits)


def inflate_alpha(f: GmxFile, limits: Limits = Limits()) -> bytes:
    """Return the alpha plane (``width*height`` bytes); never inflates more than one extra byte."""
    _require(f.alpha is not None, "file has no alpha plane (no ALPH chunk)")
    _check_limits(f.image.width, f.image.height, limits)
    expected = f.image.width * f.image.height
    inflater = zlib.decompressobj()
    try:
        plane = inflater.decompress(f.alpha, expected + 1)
    except zlib.error as e:
        raise ContainerError(f"chunk ALPH: corrupt zlib stream ({e})") from None
    _require(len(plane) <= expected, f"chunk ALPH inflates to more than {expected} bytes: refused")
    _require(inflater.eof, f"chunk ALPH: zlib stream ends early ({len(plane)}/{expected} bytes)")
    _require(len(plane) == expected, f"chunk ALPH inflates to {len(plane)} bytes, not {expected}")
    extra = len(inflater.unused_data)
    _require(extra == 0, f"chunk ALPH has {extra} bytes after its zlib stream")
    return plane


# ---------------------------------------------------------------------------------------------
# Reporting (gmx info)


def describe(
    f: GmxFile, file_size: int, *, path: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """Return a JSON-able summary of f for ``gmx info --json`` (``path`` adds a "file" key)."""
    image, coder = f.image, f.coder
    summary: dict[str, Any] = {} if path is None else {"file": os.fspath(path)}
    summary |= {
        "format": "GMX",
        "version": f"{f.version[0]}.{f.version[1]}",
        "width": image.width,
        "height": image.height,
        "channels": image.channels,
        "bit_depth": image.bit_depth,
        "colorspace": COLORSPACES[image.colorspace],
        "model_id": f.model.model_id,
        "weights_sha256": f.model.weights_sha256,
        "quality": coder.quality,
        "coder": _describe_coder(coder),
        "tiles": len(f.tiles),
        "tile_streams": [_describe_tile(t) for t in f.tiles],
        "bytes": file_size,
        "bpp": 8 * file_size / (image.width * image.height),
        "has_icc": f.icc_profile is not None,
        "has_exif": f.exif is not None,
        "has_alpha": f.alpha is not None,
        "skipped_chunks": [{"type": kind, "bytes": n} for kind, n in f.skipped_chunks],
    }
    return summary


def _describe_coder(c: CoderInfo) -> dict[str, Any]:
    """The CODR settings as a JSON-able dict."""
    return {
        "id": c.coder_id,
        "name": CODERS[c.coder_id],
        "num_scales": c.num_scales,
        "scale_min": c.scale_min,
        "scale_max": c.scale_max,
        "mean_steps": c.mean_steps,
        "symbol_range": c.symbol_range,
    }


def _describe_tile(t: Tile) -> dict[str, int]:
    """One tile's rectangle and stream size as a JSON-able dict."""
    return {
        "x": t.x,
        "y": t.y,
        "width": t.width,
        "height": t.height,
        "groups": len(t.group_checksums),
        "stream_bytes": len(t.words),
    }


def _hash_text(sha: str) -> str:
    """The weights hash as `gmx info` shows it: a 2.0 file holds only the first 8 bytes."""
    return sha if len(sha) == 2 * _SHA256_SIZE else f"{sha}... (first {len(sha) // 2} bytes)"


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _summary_line(d: dict[str, Any]) -> str:
    """'file.gmx: GMX 1.2, 768x512 RGB, 0.512 bpp, model gm-small-v1, quality 75'."""
    prefix = f"{d['file']}: " if "file" in d else ""
    pixels = d["colorspace"] + ("+alpha" if d["has_alpha"] else "")
    return (
        f"{prefix}{d['format']} {d['version']}, {d['width']}x{d['height']} {pixels}, "
        f"{d['bpp']:.3f} bpp, model {d['model_id']}, quality {d['quality']:g}"
    )


def _basic_rows(d: dict[str, Any]) -> list[tuple[str, str]]:
    """The Key: value rows `gmx info` always prints."""
    rows = [
        ("Format version", d["version"]),
        ("Dimensions", f"{d['width']}x{d['height']}"),
        ("Channels", f"{d['channels']} ({d['colorspace']})"),
        ("Bit depth", str(d["bit_depth"])),
        ("Model", d["model_id"]),
        ("Weights SHA-256", _hash_text(d["weights_sha256"])),
        ("Quality", f"{d['quality']:g}"),
        ("File size", f"{d['bytes']} bytes"),
        ("Bits per pixel", f"{d['bpp']:.3f}"),
        ("Tiles", str(d["tiles"])),
        ("ICC profile", _yes_no(d["has_icc"])),
        ("EXIF", _yes_no(d["has_exif"])),
        ("Alpha", _yes_no(d["has_alpha"])),
    ]
    if d["skipped_chunks"]:
        rows.append(("Unknown chunks", f"{len(d['skipped_chunks'])} skipped"))
    return rows


def _verbose_rows(d: dict[str, Any]) -> list[tuple[str, str]]:
    """The extra rows of `gmx info -v`: coder settings, tiles, skipped chunks."""
    c = d["coder"]
    rows = [
        ("Entropy coder", f"{c['name']} (id {c['id']})"),
        ("Sigma table", f"{c['num_scales']} scales, {c['scale_min']:.6g} .. {c['scale_max']:.6g}"),
        ("Mean step", f"1/{c['mean_steps']}"),
        ("Symbol range", f"-{c['symbol_range']} .. {c['symbol_range']}"),
    ]
    for i, t in enumerate(d["tile_streams"]):
        rect = f"{t['width']}x{t['height']} at ({t['x']}, {t['y']})"
        rows.append((f"Tile {i}", f"{rect}: {t['stream_bytes']} bytes, {t['groups']} groups"))
    for chunk in d["skipped_chunks"]:
        rows.append(("Skipped chunk", f"{chunk['type']} ({chunk['bytes']} bytes)"))
    return rows


def format_info(d: dict[str, Any], verbose: bool = False) -> str:
    """Render a :func:`describe` dict: a summary line, then aligned ``Key: value`` lines."""
    rows = _basic_rows(d) + (_verbose_rows(d) if verbose else [])
    width = max(len(key) for key, _ in rows) + 1
    return "\n".join([_summary_line(d)] + [f"{key + ':':<{width}} {value}" for key, value in rows])
