"""Tests for gmcodec.container: the .gmx format 1.x reader and the 1.2 writer.

The 2.0 layout and what it shares with 1.x are tested in ``test_container_v2.py``. Hand-built
files use the helpers below, which frame chunks independently of the module under test, so that
the byte layout in docs/FORMAT.md is checked rather than assumed.
"""

from __future__ import annotations

import doctest
import json
import random
import re
import struct
import subprocess
import sys
import tracemalloc
import zlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from gmcodec import container
from gmcodec.container import (
    FORMAT_MAJOR,
    FORMAT_MINOR,
    LEGACY_VERSION,
    SIGNATURE,
    CoderInfo,
    ContainerError,
    GmxFile,
    ImageInfo,
    Limits,
    ModelInfo,
    Tile,
    deflate_alpha,
    describe,
    format_info,
    inflate_alpha,
    parse,
    read_file,
)

SHA = "0123456789abcdef" * 4


def serialize(f: GmxFile) -> bytes:
    """The 1.2 bytes of f: this file tests the 1.x layout."""
    return container.serialize(f, LEGACY_VERSION)


MODEL = ModelInfo("gm-small-v1", SHA)
CODER = CoderInfo(
    quality_centi=7500, num_scales=64, scale_min=0.11, scale_max=256.0, mean_steps=8,
    symbol_range=255,
)  # fmt: skip


def tile(x: int, y: int, w: int, h: int, seed: int = 0) -> Tile:
    """A tile with arbitrary but distinct checksums and stream."""
    words = bytes((seed + i) % 256 for i in range(4 * (seed % 3 + 1)))
    return Tile(
        x, y, w, h, z_checksum=seed * 7 + 1, group_checksums=(seed, 0xFFFFFFFF), words=words
    )


def small_file(**changes: object) -> GmxFile:
    """A 3x2 RGB image in two tiles."""
    f = GmxFile(ImageInfo(3, 2, 3), MODEL, CODER, (tile(0, 0, 2, 2, 1), tile(2, 0, 1, 2, 2)))
    return replace(f, **changes)


def rich_file() -> GmxFile:
    """A 4x4 grayscale image in four tiles, with every optional chunk and alpha."""
    image = ImageInfo(4, 4, 1, colorspace=1)
    tiles = tuple(tile(x, y, 2, 2, seed=x + y) for y in (0, 2) for x in (0, 2))
    alpha = deflate_alpha(bytes(range(16)), image)
    return GmxFile(
        image, MODEL, CODER, tiles, icc_profile=b"icc!" * 5, exif=b"Exif\0\0", alpha=alpha
    )


def chunk(kind: bytes, body: bytes) -> bytes:
    """Frame a chunk as FORMAT.md says: length, type, data, CRC-32 over type + data."""
    return struct.pack("<I", len(body)) + kind + body + struct.pack("<I", zlib.crc32(kind + body))


def split_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """Split a well-formed file into (type, data) pairs."""
    pos, chunks = 10, []
    while pos < len(data):
        (length,) = struct.unpack_from("<I", data, pos)
        chunks.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


VERSION = bytes(LEGACY_VERSION)


def join_chunks(chunks: list[tuple[bytes, bytes]], version: bytes = VERSION) -> bytes:
    """Inverse of split_chunks."""
    return SIGNATURE + version + b"".join(chunk(kind, body) for kind, body in chunks)


def head(width: int, height: int, channels: int = 3, version: bytes = VERSION) -> bytes:
    """HEAD data as FORMAT.md lays it out."""
    colorspace = 0 if channels == 3 else 1
    return version + struct.pack("<IIBBB", width, height, channels, 8, colorspace)


def with_chunk(data: bytes, index: int, kind: bytes, body: bytes) -> bytes:
    """Insert a (validly framed) chunk before chunk number index."""
    chunks = split_chunks(data)
    chunks.insert(index, (kind, body))
    return join_chunks(chunks)


def error_of(data: bytes, limits: Limits | None = None) -> str:
    """The one-line ContainerError message parse gives for data."""
    with pytest.raises(ContainerError) as info:
        parse(data, limits or Limits())
    message = str(info.value)
    assert message and "\n" not in message
    return message


# --- round trips ---------------------------------------------------------------------------------


def test_round_trip_preserves_every_field_with_optional_chunks() -> None:
    f = rich_file()
    assert parse(serialize(f)) == f


def test_round_trip_without_optional_chunks() -> None:
    f = small_file()
    g = parse(serialize(f))
    assert g == f
    assert (g.icc_profile, g.exif, g.alpha, g.skipped_chunks) == (None, None, None, ())


def test_round_trip_keeps_tile_order_and_streams() -> None:
    tiles = tuple(tile(x, 0, 1, 1, seed=10 - x) for x in range(5))
    f = GmxFile(ImageInfo(5, 1, 3), MODEL, CODER, tiles[::-1])
    assert parse(serialize(f)).tiles == tiles[::-1]


def test_serialize_is_deterministic_and_starts_with_signature_and_version() -> None:
    data = serialize(rich_file())
    assert data == serialize(rich_file())
    assert data[:10] == b"\x89GMX\r\n\x1a\n\x01\x02"
    assert LEGACY_VERSION == (1, 2)


def test_byte_layout_matches_format_doc() -> None:
    data = serialize(small_file())
    kinds = [kind for kind, _ in split_chunks(data)]
    assert kinds == [b"HEAD", b"MODL", b"CODR", b"DATA", b"DATA", b"IEND"]
    chunks = dict(split_chunks(data))
    assert chunks[b"HEAD"] == head(3, 2)
    assert chunks[b"MODL"] == bytes([11]) + b"gm-small-v1" + bytes.fromhex(SHA)
    assert chunks[b"CODR"] == struct.pack("<HHffBHB", 7500, 64, 0.11, 256.0, 8, 255, 0)
    first_data = split_chunks(data)[3][1]
    t = small_file().tiles[0]
    expected = struct.pack("<IIIIIHII", 0, 0, 2, 2, t.z_checksum, 2, 1, 0xFFFFFFFF)
    assert first_data == expected + struct.pack("<I", len(t.words) // 4) + t.words


FORMAT_DOC = Path(__file__).resolve().parents[1] / "docs" / "FORMAT.md"


def format_doc_example(index: int = 2) -> bytes:
    """The bytes of an example of FORMAT.md (hex in columns 8..52 of its lines).

    Index 1 is section 7's (format 2.0), index 2 appendix A.4's (format 1.2).
    """
    block = FORMAT_DOC.read_text().split("```\noffset  bytes\n")[index].split("```")[0]
    hex_column = (line[8:53].strip() for line in block.splitlines())
    zeros = {"00 x 32": "00 " * 32, "00 x 8": "00 " * 8}
    return bytes.fromhex(" ".join(zeros.get(h, h) for h in hex_column))


def test_the_example_in_the_format_doc_is_byte_exact() -> None:
    f = GmxFile(
        ImageInfo(1, 1, 1, colorspace=1),
        ModelInfo("m", "00" * 32),
        CoderInfo(5000, 64, 0.125, 32.0, 64, 255, coder_id=2),
        (Tile(0, 0, 1, 1, 0x12345678, (0xAABBCCDD,), b"\x01\x00\x00\x80"),),
    )
    expected = format_doc_example()
    assert len(expected) == 167
    assert serialize(f) == expected
    assert parse(expected) == f


def test_hand_built_version_1_0_file_parses() -> None:
    body = struct.pack("<IIIIIH", 0, 0, 1, 1, 5, 0) + struct.pack("<I", 1) + b"ABCD"
    data = join_chunks(
        [
            (b"HEAD", head(1, 1, channels=1, version=b"\x01\x00")),
            (b"MODL", b"\x01m" + bytes(32)),
            (b"CODR", struct.pack("<HHffBHB", 0, 2, 0.5, 2.0, 1, 1, 0)),
            (b"DATA", body),
            (b"IEND", b""),
        ],
        version=b"\x01\x00",
    )
    f = parse(data)
    assert f.version == (1, 0) and f.coder.coder_id == 0
    assert f.image == ImageInfo(1, 1, 1, colorspace=1)
    assert f.model == ModelInfo("m", "0" * 64)
    assert f.tiles == (Tile(0, 0, 1, 1, 5, (), b"ABCD"),)


def test_scale_bounds_are_rounded_to_the_stored_float32() -> None:
    assert CODER.scale_min == struct.unpack("<f", struct.pack("<f", 0.11))[0]
    assert CODER.scale_min != 0.11
    assert parse(serialize(small_file())).coder == CODER
    assert CODER.quality == 75.0


def test_numpy_like_integers_and_lists_are_normalised() -> None:
    class Index:
        def __index__(self) -> int:
            return 2

    t = Tile(0, 0, Index(), 2, 0, [1, 2], bytearray(b"1234"))
    assert t.width == 2 and type(t.width) is int
    assert t.group_checksums == (1, 2) and t.words == b"1234"
    assert ModelInfo("m", SHA.upper()).weights_sha256 == SHA


# --- damage --------------------------------------------------------------------------------------


def test_every_truncation_is_refused() -> None:
    data = serialize(rich_file())
    for size in range(len(data)):
        error_of(data[:size])


def test_every_truncation_says_truncated_or_names_the_problem() -> None:
    data = serialize(small_file())
    for size in range(1, len(data)):
        assert "truncated" in error_of(data[:size])


def test_every_single_bit_flip_is_refused() -> None:
    data = serialize(rich_file())
    for i in range(len(data)):
        for bit in range(8):
            damaged = bytearray(data)
            damaged[i] ^= 1 << bit
            error_of(bytes(damaged))


def test_crc_mismatch_names_the_chunk() -> None:
    data = bytearray(serialize(small_file()))
    data[-20] ^= 0x40  # inside the last DATA chunk's words
    assert error_of(bytes(data)).startswith("CRC mismatch in chunk DATA")


def test_damaged_version_byte_is_caught_by_the_copy_in_head() -> None:
    data = bytearray(serialize(small_file()))
    data[9] = 3
    assert "header damaged" in error_of(bytes(data))


def test_trailing_bytes_after_iend_are_refused() -> None:
    assert "after IEND" in error_of(serialize(small_file()) + b"\0")


def test_missing_iend_is_reported_as_truncation() -> None:
    data = serialize(small_file())[:-12]
    assert error_of(data) == "truncated file: nothing after chunk DATA, no IEND chunk"


def test_chunk_length_beyond_the_end_is_refused_before_slicing() -> None:
    data = bytearray(serialize(small_file()))
    data[10:14] = struct.pack("<I", 0xFFFFFFF0)
    assert error_of(bytes(data)).startswith("truncated file: chunk HEAD needs 4294967284 bytes")


def test_non_letter_chunk_type_is_refused() -> None:
    data = join_chunks([(b"HE1D", b"")])
    assert "invalid chunk type" in error_of(data)


# --- unknown chunks and versions -----------------------------------------------------------------


def test_unknown_critical_chunk_is_refused_as_needing_a_newer_gmx() -> None:
    data = with_chunk(serialize(small_file()), 3, b"FUTR", b"xyz")
    assert error_of(data) == "unknown critical chunk 'FUTR': file needs a newer gmx"


def test_unknown_optional_chunks_are_skipped_and_listed() -> None:
    data = with_chunk(serialize(small_file()), 1, b"teXt", b"hello")
    data = with_chunk(data, 6, b"zzZZ", b"")
    f = parse(data)
    assert f.skipped_chunks == (("teXt", 5), ("zzZZ", 0))
    assert replace(f, skipped_chunks=()) == small_file()


def test_newer_major_version_is_refused_naming_both_versions() -> None:
    chunks = split_chunks(serialize(small_file()))
    chunks[0] = (b"HEAD", head(3, 2, version=b"\x03\x01"))
    message = error_of(join_chunks(chunks, version=b"\x03\x01"))
    assert "3.1" in message and "2.0" in message and "newer gmx" in message


def test_major_version_zero_is_refused() -> None:
    data = bytearray(serialize(small_file()))
    data[8] = 0
    assert "unsupported GMX format 0.2" in error_of(bytes(data))


def test_newer_minor_version_is_accepted() -> None:
    chunks = split_chunks(serialize(small_file()))
    chunks[0] = (b"HEAD", head(3, 2, version=b"\x01\x07"))
    chunks.insert(2, (b"nwFt", b"new optional data"))
    f = parse(join_chunks(chunks, version=b"\x01\x07"))
    assert f.version == (1, 7)
    assert f.skipped_chunks == (("nwFt", 17),)
    assert serialize(f) == serialize(small_file())


# --- chunk order ---------------------------------------------------------------------------------


def test_head_must_come_first() -> None:
    chunks = split_chunks(serialize(small_file()))
    chunks[0], chunks[1] = chunks[1], chunks[0]
    assert error_of(join_chunks(chunks)) == "first chunk must be HEAD, found MODL"


def test_data_must_come_after_modl_and_codr() -> None:
    chunks = split_chunks(serialize(small_file()))
    chunks.insert(1, chunks.pop(3))
    assert error_of(join_chunks(chunks)) == "chunk DATA comes before MODL"


@pytest.mark.parametrize("kind", [b"MODL", b"CODR"])
def test_required_chunks_appear_exactly_once(kind: bytes) -> None:
    chunks = split_chunks(serialize(small_file()))
    present = [c for c in chunks if c[0] == kind]
    assert (
        error_of(join_chunks(chunks[:-1] + present + chunks[-1:]))
        == f"duplicate chunk {kind.decode()}"
    )
    missing = [c for c in chunks if c[0] != kind]
    assert f"{kind.decode()}" in error_of(join_chunks(missing))


def test_file_without_data_chunks_is_refused() -> None:
    chunks = [c for c in split_chunks(serialize(small_file())) if c[0] != b"DATA"]
    assert error_of(join_chunks(chunks)) == "missing chunk DATA"


def test_iend_must_be_empty() -> None:
    chunks = split_chunks(serialize(small_file()))
    chunks[-1] = (b"IEND", b"x")
    assert "IEND must be empty" in error_of(join_chunks(chunks))


def test_optional_chunks_may_appear_between_data_chunks() -> None:
    f = rich_file()
    chunks = split_chunks(serialize(f))
    chunks.append(chunks.pop(3))  # move iCCP after the DATA chunks, before IEND
    chunks[-1], chunks[-2] = chunks[-2], chunks[-1]
    assert parse(join_chunks(chunks)) == f


# --- inconsistent chunk contents -----------------------------------------------------------------


def test_word_count_inconsistent_with_chunk_length_is_refused() -> None:
    chunks = split_chunks(serialize(small_file()))
    body = bytearray(chunks[3][1])
    count_at = 22 + 4 * 2
    body[count_at : count_at + 4] = struct.pack("<I", 1000)
    chunks[3] = (b"DATA", bytes(body))
    assert "word count 1000 needs 4000 bytes" in error_of(join_chunks(chunks))


def test_group_count_inconsistent_with_chunk_length_is_refused() -> None:
    chunks = split_chunks(serialize(small_file()))
    body = bytearray(chunks[3][1])
    body[20:22] = struct.pack("<H", 9999)
    chunks[3] = (b"DATA", bytes(body))
    assert "9999 group checksums do not fit" in error_of(join_chunks(chunks))


def test_model_id_must_be_utf8() -> None:
    chunks = split_chunks(serialize(small_file()))
    chunks[1] = (b"MODL", b"\x02\xff\xfe" + bytes(32))
    assert error_of(join_chunks(chunks)) == "model id in chunk MODL is not valid UTF-8"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ((0, 2, 3), "image width is 0"),
        ((3, 2, 4), "channels must be 1 (grayscale) or 3 (RGB), got 4"),
    ],
)
def test_bad_head_fields_are_refused(fields: tuple[int, int, int], expected: str) -> None:
    chunks = split_chunks(serialize(small_file()))
    chunks[0] = (b"HEAD", VERSION + struct.pack("<IIBBB", *fields, 8, 0))
    assert expected in error_of(join_chunks(chunks))


def test_bad_coder_fields_in_a_file_are_refused() -> None:
    chunks = split_chunks(serialize(small_file()))
    chunks[2] = (b"CODR", struct.pack("<HHffBHB", 7500, 64, 2.0, 1.0, 8, 255, 0))
    assert "0 < scale_min < scale_max" in error_of(join_chunks(chunks))


def test_tiles_outside_the_image_are_refused_when_parsing() -> None:
    chunks = split_chunks(serialize(small_file()))
    chunks[0] = (b"HEAD", head(2, 2))
    assert "tile 1 (1x2 at 2,0) extends past the 2x2 image" in error_of(join_chunks(chunks))


# --- hostile input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (100000, 100000, "image width 100000 exceeds the limit of 65535"),
        (60000, 60000, "image 60000x60000 has 3600000000 pixels, over the limit of 268435456"),
    ],
)
def test_absurd_dimensions_are_refused_before_allocation(
    width: int, height: int, expected: str
) -> None:
    chunks = split_chunks(serialize(small_file()))
    chunks[0] = (b"HEAD", head(width, height))
    data = join_chunks(chunks)
    tracemalloc.start()
    try:
        message = error_of(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert message == expected
    assert peak < 1 << 20


def test_stricter_limits_refuse_a_valid_file() -> None:
    data = serialize(small_file())
    assert "over the limit of 5" in error_of(data, Limits(max_pixels=5))
    assert "width 3 exceeds the limit of 2" in error_of(data, Limits(max_dimension=2))
    assert error_of(data, Limits(max_file_bytes=10)).startswith("file too large")


def test_empty_input_is_refused() -> None:
    assert error_of(b"") == "empty file (0 bytes): not a .gmx file"


def test_random_bytes_are_refused() -> None:
    rng = random.Random(1234)
    for size in (1, 9, 10, 100, 4096):
        error_of(rng.randbytes(size))
        error_of(SIGNATURE + b"\x01\x00" + rng.randbytes(size))


def test_text_is_refused_as_text() -> None:
    assert error_of(b"hello world\n") == "not a .gmx file (looks like text)"


def test_png_bytes_are_refused_as_png() -> None:
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
    assert error_of(png) == "not a .gmx file (looks like PNG)"
    assert error_of(b"\xff\xd8\xff\xe0\x00\x10JFIF") == "not a .gmx file (looks like JPEG)"


def test_text_mode_transfer_damage_is_diagnosed() -> None:
    data = serialize(small_file())
    crlf_to_lf = data[:4] + b"\n\x1a\n" + data[8:]
    assert "text-mode transfer" in error_of(crlf_to_lf)
    seven_bit = bytes([data[0] & 0x7F]) + data[1:]
    assert "stripped the high bit" in error_of(seven_bit)


def test_alpha_round_trip_inflates_to_exactly_width_times_height() -> None:
    assert inflate_alpha(parse(serialize(rich_file()))) == bytes(range(16))


def test_alpha_inflate_bomb_is_bounded() -> None:
    packer = zlib.compressobj(9)
    block = bytes(1 << 20)
    bomb = b"".join(packer.compress(block) for _ in range(64)) + packer.flush()
    f = replace(rich_file(), alpha=bomb)  # 64 MiB of zeros for a 4x4 plane
    tracemalloc.start()
    try:
        with pytest.raises(ContainerError, match="inflates to more than 16 bytes"):
            inflate_alpha(f)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


@pytest.mark.parametrize(
    ("alpha", "expected"),
    [
        (zlib.compress(bytes(15)), "inflates to 15 bytes, not 16"),
        (zlib.compress(bytes(16))[:-3], "zlib stream ends early"),
        (zlib.compress(bytes(16)) + b"xx", "2 bytes after its zlib stream"),
        (b"not zlib", "corrupt zlib stream"),
    ],
)
def test_bad_alpha_streams_are_refused(alpha: bytes, expected: str) -> None:
    with pytest.raises(ContainerError, match=expected):
        inflate_alpha(replace(rich_file(), alpha=alpha))


def test_inflating_absent_alpha_is_an_error() -> None:
    with pytest.raises(ContainerError, match="no alpha plane"):
        inflate_alpha(small_file())


# --- the dataclasses refuse garbage --------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda: ImageInfo(0, 1, 3), "ImageInfo.width must be in 1.."),
        (lambda: ImageInfo(1, 1, 4), "channels must be 1"),
        (lambda: ImageInfo(1, 1, 3, bit_depth=16), "bit depth 16 unsupported"),
        (lambda: ImageInfo(1, 1, 3, colorspace=9), "unknown colorspace code 9"),
        (lambda: ImageInfo(1, 1, 1, colorspace=0), "colorspace RGB does not fit 1 channel"),
        (lambda: ModelInfo("", SHA), "model id must be 1..255 bytes"),
        (lambda: ModelInfo("x" * 256, SHA), "model id must be 1..255 bytes"),
        (lambda: ModelInfo("bad\x1b[2J", SHA), "non-printable"),
        (lambda: ModelInfo("m", "12"), "64 (or 16) hex digits"),
        (lambda: ModelInfo("m", "g" * 64), "64 (or 16) hex digits"),
        (lambda: ModelInfo("m", "0" * 32), "64 (or 16) hex digits"),
        (lambda: replace(CODER, quality_centi=10001), "quality_centi must be 0..10000"),
        (lambda: replace(CODER, scale_min=0.0), "0 < scale_min < scale_max"),
        (lambda: replace(CODER, scale_min=300.0), "0 < scale_min < scale_max"),
        (lambda: replace(CODER, scale_max=float("nan")), "must be finite"),
        (lambda: replace(CODER, scale_max=1e39), "does not fit in a float32"),
        (lambda: replace(CODER, num_scales=1), "num_scales must be in 2.."),
        (lambda: replace(CODER, mean_steps=0), "mean_steps must be in 1..255"),
        (lambda: replace(CODER, symbol_range=0), "symbol_range must be in 1..65535"),
        (lambda: replace(CODER, coder_id=3), "unknown entropy coder id 3"),
        (lambda: Tile(0, 0, 1, 1, 0, (), b"abc"), "not a whole number of 32-bit words"),
        (lambda: Tile(0, 0, 1, 1, -1, (), b""), "z_checksum must be in 0..4294967295"),
        (lambda: Tile(0, 0, 1, 1, 0, (1 << 32,), b""), "group checksum 0 must be in"),
        (lambda: Tile(0, 0, 1, True, 0, (), b""), "must be an integer, got bool"),
        (lambda: small_file(tiles=()), "at least one tile"),
        (lambda: small_file(version=(3, 0)), "major must be 1 or 2"),
    ],
)
def test_dataclasses_refuse_invalid_values(build: object, expected: str) -> None:
    with pytest.raises(ContainerError, match=re.escape(expected)):
        build()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("tiles", "expected"),
    [
        ((tile(0, 0, 2, 2), tile(2, 0, 2, 2)), "extends past the 3x2 image"),
        ((tile(0, 0, 2, 2),), "cover 4 pixels but the image has 6"),
        ((tile(0, 0, 3, 2), tile(0, 0, 1, 1)), "cover 7 pixels"),
        # Same total area as the image, but the 1x2 tile overlaps the 2x2 one and leaves a gap.
        ((tile(0, 0, 2, 2), tile(1, 0, 1, 2)), "overlap and leave gaps"),
    ],
)
def test_tiles_must_cover_the_image_exactly_once(tiles: tuple[Tile, ...], expected: str) -> None:
    with pytest.raises(ContainerError, match=expected):
        small_file(tiles=tiles)


def test_irregular_tilings_that_cover_the_image_are_accepted() -> None:
    image = ImageInfo(3, 3, 3)
    tiles = (
        tile(0, 0, 2, 1),
        tile(2, 0, 1, 2),
        tile(1, 2, 2, 1),
        tile(0, 1, 1, 2),
        tile(1, 1, 1, 1),
    )
    assert parse(serialize(GmxFile(image, MODEL, CODER, tiles))).tiles == tiles


def test_deflate_alpha_checks_the_plane_size() -> None:
    with pytest.raises(ContainerError, match="alpha plane has 3 bytes, expected 6"):
        deflate_alpha(b"abc", ImageInfo(3, 2, 3))


# --- files ---------------------------------------------------------------------------------------


def test_read_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "a.gmx"
    path.write_bytes(serialize(rich_file()))
    assert read_file(path) == rich_file()
    assert read_file(str(path)) == rich_file()


def test_read_file_checks_the_size_limit_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.gmx"
    path.write_bytes(serialize(small_file()))
    with pytest.raises(ContainerError, match="file too large"):
        read_file(path, Limits(max_file_bytes=20))


def test_read_file_turns_os_errors_into_container_errors(tmp_path: Path) -> None:
    with pytest.raises(ContainerError, match="cannot read .*missing.gmx.*No such file"):
        read_file(tmp_path / "missing.gmx")
    with pytest.raises(ContainerError, match="cannot read"):
        read_file(tmp_path)


# --- describe / format_info ----------------------------------------------------------------------


def test_describe_is_json_serialisable_and_complete() -> None:
    f = parse(with_chunk(serialize(rich_file()), 2, b"teXt", b"abc"))
    d = describe(f, file_size=1000, path="x.gmx")
    assert json.loads(json.dumps(d)) == d
    assert d["file"] == "x.gmx" and d["format"] == "GMX" and d["version"] == "1.2"
    assert (d["width"], d["height"], d["channels"], d["bit_depth"]) == (4, 4, 1, 8)
    assert d["colorspace"] == "grayscale"
    assert (d["model_id"], d["weights_sha256"], d["quality"]) == ("gm-small-v1", SHA, 75.0)
    assert d["coder"]["num_scales"] == 64 and d["coder"]["symbol_range"] == 255
    assert d["coder"]["mean_steps"] == 8 and d["coder"]["id"] == 0
    assert d["tiles"] == 4 and len(d["tile_streams"]) == 4
    assert d["tile_streams"][0] == {
        "x": 0, "y": 0, "width": 2, "height": 2, "groups": 2, "stream_bytes": 4,
    }  # fmt: skip
    assert (d["bytes"], d["bpp"]) == (1000, 500.0)
    assert (d["has_icc"], d["has_exif"], d["has_alpha"]) == (True, True, True)
    assert d["skipped_chunks"] == [{"type": "teXt", "bytes": 3}]


def test_describe_without_path_has_no_file_key() -> None:
    assert "file" not in describe(small_file(), 100)


def test_format_info_starts_with_a_summary_line_then_aligned_keys() -> None:
    f = GmxFile(ImageInfo(768, 512, 3), MODEL, CODER, (tile(0, 0, 768, 512),), version=(1, 2))
    text = format_info(describe(f, file_size=25166, path="file.gmx"))
    lines = text.splitlines()
    assert lines[0] == "file.gmx: GMX 1.2, 768x512 RGB, 0.512 bpp, model gm-small-v1, quality 75"
    assert "Weights SHA-256: " + SHA in text
    values_at = {len(line) - len(line.split(":", 1)[1].lstrip()) for line in lines[1:]}
    assert len(values_at) == 1, "values are aligned"
    assert "Tile 0" not in text and "Entropy coder" not in text


def test_format_info_verbose_adds_coder_tiles_and_skipped_chunks() -> None:
    f = parse(with_chunk(serialize(rich_file()), 2, b"teXt", b"abc"))
    text = format_info(describe(f, 1000), verbose=True)
    assert text.splitlines()[0].startswith("GMX 1.2, 4x4 grayscale+alpha, 500.000 bpp")
    for expected in (
        "constriction ANS",
        "64 scales, 0.11 .. 256",
        "Mean step",
        "1/8",
        "-255 .. 255",
        "Tile 3:          2x2 at (2, 2): 8 bytes, 2 groups",
        "teXt (3 bytes)",
        "1 skipped",
    ):
        assert expected in text


def test_module_docstring_example_round_trips() -> None:
    result = doctest.testmod(container)
    assert result.attempted > 0 and result.failed == 0


# --- format 2.0 ----------------------------------------------------------------------------------

SHA16 = SHA[:16]
VERSION2 = bytes([FORMAT_MAJOR, FORMAT_MINOR])


def tile2(x: int, y: int, w: int, h: int, seed: int = 0) -> Tile:
    """tile() as 2.0 stores it: one-byte z and group checks, and a tile checksum."""
    t = tile(x, y, w, h, seed)
    groups = tuple(c & 0xFF for c in t.group_checksums)
    return replace(t, z_checksum=t.z_checksum & 0xFF, group_checksums=groups,
                   tile_checksum=0x01020304 * (seed + 1))  # fmt: skip


def as_v2(f: GmxFile) -> GmxFile:
    """f with a 2.0 weights hash and 2.0 tiles."""
    tiles = tuple(tile2(t.x, t.y, t.width, t.height, seed=t.group_checksums[0]) for t in f.tiles)
    return replace(f, model=ModelInfo(f.model.model_id, SHA16), tiles=tiles)


def head2(
    width: int, height: int, version: bytes = VERSION2, model: bytes = b"gm-small-v1"
) -> bytes:
    """2.0 HEAD data of an RGB image with CODER, as FORMAT.md lays it out."""
    image = struct.pack("<IIBBB", width, height, 3, 8, 0)
    coder = struct.pack("<HHffBHB", 7500, 64, 0.11, 256.0, 8, 255, 0)
    return version + image + coder + bytes.fromhex(SHA16) + bytes([len(model)]) + model


def v2_chunks(f: GmxFile) -> list[tuple[bytes, bytes]]:
    return split_chunks(container.serialize(f))


def test_v2_is_what_the_writer_writes_by_default() -> None:
    data = container.serialize(as_v2(small_file()))
    assert data[:10] == SIGNATURE + b"\x02\x00" and (FORMAT_MAJOR, FORMAT_MINOR) == (2, 0)
    assert parse(data).version == (2, 0)


@pytest.mark.parametrize("build", [small_file, rich_file])
def test_v2_round_trip_preserves_every_field(build: Callable[[], GmxFile]) -> None:
    f = as_v2(build())
    assert parse(container.serialize(f)) == f


def test_v2_byte_layout_matches_format_doc() -> None:
    f = as_v2(small_file())
    chunks = v2_chunks(f)
    assert [kind for kind, _ in chunks] == [b"HEAD", b"DATA", b"DATA", b"IEND"]
    assert chunks[0][1] == head2(3, 2)
    t = f.tiles[0]
    fixed = struct.pack("<IIIIIBH", 0, 0, 2, 2, t.tile_checksum, t.z_checksum, 2)
    assert chunks[1][1] == fixed + bytes(t.group_checksums) + t.words


def test_the_2_0_example_in_the_format_doc_is_byte_exact() -> None:
    f = GmxFile(
        ImageInfo(1, 1, 1, colorspace=1),
        ModelInfo("m", "00" * 8),
        CoderInfo(5000, 64, 0.125, 32.0, 64, 255, coder_id=2),
        (Tile(0, 0, 1, 1, 0x78, (0xDD,), b"\x01\x00\x00\x80", tile_checksum=0x0BADF00D),),
    )
    expected = format_doc_example(1)
    assert len(expected) == 113 == len(format_doc_example(2)) - 54
    assert container.serialize(f) == expected
    assert parse(expected) == f


def test_v2_stores_the_hash_prefix_and_the_low_byte_of_each_check() -> None:
    f = small_file(tiles=tuple(replace(t, tile_checksum=9) for t in small_file().tiles))
    g = parse(container.serialize(f))
    assert g.model == ModelInfo("gm-small-v1", SHA16)
    assert g.model.matches(SHA) and not g.model.matches("f" * 64)
    assert [t.group_checksums for t in g.tiles] == [(1, 0xFF), (2, 0xFF)]
    assert [t.z_checksum for t in g.tiles] == [8, 15]


def test_v2_is_48_bytes_smaller_plus_3_per_tile_and_per_group() -> None:
    f = rich_file()
    f2 = replace(f, tiles=tuple(replace(t, tile_checksum=0) for t in f.tiles))
    saved = len(serialize(f)) - len(container.serialize(f2))
    assert saved == 48 + sum(3 + 3 * len(t.group_checksums) for t in f.tiles) == 48 + 4 * 9


def test_checks_compare_what_the_version_stored() -> None:
    crc = 0x12345678
    legacy = Tile(0, 0, 1, 1, crc, (crc,), b"")
    assert legacy.z_matches(crc) and legacy.group_matches(0, crc) and legacy.tile_matches(7)
    assert not legacy.group_matches(0, crc ^ 0x100)
    v2 = Tile(0, 0, 1, 1, crc & 0xFF, (crc & 0xFF,), b"", tile_checksum=crc)
    assert v2.z_matches(crc) and v2.group_matches(0, crc) and v2.tile_matches(crc)
    assert v2.group_matches(0, crc ^ 0x100), "only the low byte is stored"
    assert not v2.group_matches(0, crc ^ 1) and not v2.z_matches(crc ^ 1)
    assert not v2.tile_matches(crc ^ 0x100)


def test_v2_writer_needs_a_tile_checksum_and_the_legacy_one_a_full_hash() -> None:
    with pytest.raises(ContainerError, match="format 2.0 needs Tile.tile_checksum"):
        container.serialize(small_file())
    with pytest.raises(ContainerError, match="format 1.x needs the full SHA-256"):
        serialize(as_v2(small_file()))
    with pytest.raises(ContainerError, match=re.escape("writes format 2.0 or 1.2, not (1, 1)")):
        container.serialize(as_v2(small_file()), (1, 1))


def test_v2_every_truncation_and_single_bit_flip_is_refused() -> None:
    data = container.serialize(as_v2(rich_file()))
    for size in range(len(data)):
        error_of(data[:size])
    for i in range(len(data)):
        for bit in range(8):
            damaged = bytearray(data)
            damaged[i] ^= 1 << bit
            error_of(bytes(damaged))


@pytest.mark.parametrize("kind", [b"MODL", b"CODR"])
def test_v2_refuses_the_1x_model_and_coder_chunks(kind: bytes) -> None:
    chunks = v2_chunks(as_v2(small_file()))
    chunks.insert(1, (kind, b"x"))
    message = error_of(join_chunks(chunks, VERSION2))
    assert message == f"unknown critical chunk '{kind.decode()}': file needs a newer gmx"


def test_v2_needs_head_first_and_a_data_chunk() -> None:
    chunks = v2_chunks(as_v2(small_file()))
    assert error_of(join_chunks(chunks[1:], VERSION2)) == "first chunk must be HEAD, found DATA"
    no_data = [c for c in chunks if c[0] != b"DATA"]
    assert error_of(join_chunks(no_data, VERSION2)) == "missing chunk DATA"


def test_v2_damaged_version_byte_is_caught_by_the_copy_in_head() -> None:
    data = bytearray(container.serialize(as_v2(small_file())))
    data[9] = 1
    assert "chunk HEAD says format 2.0 but the file header says 2.1" in error_of(bytes(data))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (head2(3, 2)[:37], "chunk HEAD has 37 bytes, needs 38+"),
        (head2(3, 2) + b"!", "chunk HEAD has 50 bytes, expected 49"),
        (head2(3, 2, model=b"\xff\xfe"), "model id in chunk HEAD is not valid UTF-8"),
        (head2(3, 2, model=b""), "model id must be 1..255 bytes"),
        (head2(0, 2), "image width is 0"),
        (head2(70000, 2), "image width 70000 exceeds the limit"),
    ],
)
def test_v2_bad_head_is_refused(body: bytes, expected: str) -> None:
    chunks = v2_chunks(as_v2(small_file()))
    chunks[0] = (b"HEAD", body)
    assert expected in error_of(join_chunks(chunks, VERSION2))


def test_v2_inconsistent_tile_sizes_are_refused() -> None:
    chunks = v2_chunks(as_v2(small_file()))
    body = chunks[1][1]
    bad = [
        (body[:22], "has 22 bytes, needs 23+"),
        (body[:21] + struct.pack("<H", 9999) + body[23:], "9999 group checks do not fit"),
        (body + b"\0", "not whole 32-bit words"),
    ]
    for damaged, expected in bad:
        chunks[1] = (b"DATA", damaged)
        assert expected in error_of(join_chunks(chunks, VERSION2))


def test_checksum_seed_covers_head_rectangle_and_alpha_but_not_optional_chunks() -> None:
    f = as_v2(rich_file())
    t = f.tiles[1]
    seed = f.checksum_seed(t)
    assert seed == container.checksum_seed(f.image, f.model, f.coder, f.alpha, (2, 0, 2, 2))
    head_data = v2_chunks(f)[0][1]
    expected = zlib.crc32(
        f.alpha, zlib.crc32(struct.pack("<IIII", 2, 0, 2, 2), zlib.crc32(head_data))
    )
    assert seed == expected
    changed = [
        replace(f, coder=replace(CODER, quality_centi=7501)),
        replace(f, model=ModelInfo("gm-small-v2", SHA16)),
        replace(f, model=ModelInfo("gm-small-v1", "f" + SHA16[1:])),
        replace(f, alpha=None),
    ]
    assert all(g.checksum_seed(t) != seed for g in changed)
    assert f.checksum_seed(f.tiles[0]) != seed
    assert replace(f, icc_profile=None, exif=None).checksum_seed(t) == seed
    assert replace(f, model=ModelInfo("gm-small-v1", SHA)).checksum_seed(t) == seed


def test_v2_describe_reports_the_version_and_hash_prefix() -> None:
    f = parse(container.serialize(as_v2(small_file())))
    d = describe(f, 100)
    assert (d["version"], d["weights_sha256"]) == ("2.0", SHA16)
    assert f"Weights SHA-256: {SHA16}... (first 8 bytes)" in format_info(d)


# --- dependencies --------------------------------------------------------------------------------


def test_importing_the_container_loads_neither_torch_nor_numpy() -> None:
    code = (
        "import sys, gmcodec.container; "
        "print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
