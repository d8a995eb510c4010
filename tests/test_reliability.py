"""Reliability: hostile .gmx files, odd input images, deterministic output, clean CLI failures.

The fuzz cases come from ``scripts/fuzz.py`` (seeded, so a failure names a reproducible case);
its long run is recorded in ``docs/RELIABILITY.md``.
"""

from __future__ import annotations

import faulthandler
import io
import os
import struct
import subprocess
import sys
import time
import tracemalloc
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

import cross_isa
import fuzz
from gmcodec import container as ct
from gmcodec.codec import Codec, MismatchError
from gmcodec.pixels import ORIENTATION_TAG, PixelWarning, prepare

ROOT = Path(__file__).resolve().parent.parent
CASE_SECONDS = 5.0
"""A damaged file is refused by the container: far below this, even on a loaded machine."""
WATCHDOG_SECONDS = 300
"""A case still running after this is a hang: the process dumps its stacks and exits."""


@contextmanager
def watchdog(seconds: float = WATCHDOG_SECONDS) -> Iterator[None]:
    """Turn a hang into a loud failure (stack dump and exit) instead of a stuck test run."""
    faulthandler.dump_traceback_later(seconds, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny images gain nothing from threads, and a busy machine makes them spin."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def seeds(codec) -> list[bytes]:
    return fuzz.seed_files(codec)


@pytest.fixture(scope="module")
def reference(codec, seeds) -> Callable[[int], tuple]:
    cache: dict[int, tuple] = {}

    def get(n: int) -> tuple:
        if n not in cache:
            cache[n] = fuzz.decode_with_symbols(codec, seeds[n])
        return cache[n]

    return get


def _run_cases(codec, seeds, reference, seed, indexes, kinds) -> list[dict]:
    results = []
    with watchdog():
        for i in indexes:
            kind, source, data, detail = fuzz.make_case(seed, i, seeds, kinds)
            result = fuzz.run_case(codec, data, lambda n=source: reference(n))
            results.append(result | {"i": i, "kind": kind, "detail": detail})
    return results


# --------------------------------------------------------------------------- hostile files


def test_damaged_files_are_refused_by_the_container_in_one_line(codec, seeds, reference):
    results = _run_cases(codec, seeds, reference, 2024, range(300), fuzz.DAMAGE_KINDS)
    assert {r["kind"] for r in results} == set(fuzz.DAMAGE_KINDS)
    for r in results:
        assert r["outcome"] == "refused" and r["error"] == "ContainerError", r
        assert r["seconds"] < CASE_SECONDS, r


def test_edits_behind_the_container_never_decode_other_symbols(codec, seeds, reference):
    results = _run_cases(codec, seeds, reference, 2024, range(40), fuzz.BEHIND_KINDS)
    for r in results:
        assert r["outcome"] not in fuzz.BAD_OUTCOMES, r
    assert any(r["error"] == "MismatchError" for r in results if r["outcome"] == "refused")


@pytest.mark.slow
def test_long_fuzz_of_edits_behind_the_container(codec, seeds, reference):
    results = _run_cases(codec, seeds, reference, 99, range(400), fuzz.KINDS)
    bad = [r for r in results if r["outcome"] in fuzz.BAD_OUTCOMES]
    assert not bad, bad[:5]


def test_empty_and_foreign_files_are_named(codec):
    cases = {
        b"": "empty file",
        b"\x89PNG\r\n\x1a\n" + bytes(40): "looks like PNG",
        b"hello world\n": "looks like text",
        ct.SIGNATURE[:5]: "truncated",
    }
    for data, words in cases.items():
        with pytest.raises(ct.ContainerError, match=words):
            codec.decode(data)


def _claiming(seed: bytes, width: int, height: int) -> bytes:
    """seed whose HEAD and tile both claim width x height, CRCs recomputed."""
    head = struct.pack("<II", width, height)
    data = fuzz._with_chunk(seed, b"HEAD", lambda b: b[:2] + head + b[10:])
    return fuzz._with_chunk(data, b"DATA", lambda b: struct.pack("<II", 0, 0) + head + b[16:])


@pytest.mark.parametrize("size", [(100_000, 100_000), (65536, 1), (0xFFFF_FFFF, 0xFFFF_FFFF)])
def test_absurd_header_fails_before_allocating(codec, seeds, size):
    data = _claiming(seeds[0], *size)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ct.ContainerError, match="exceeds the limit|over the limit"):
            codec.decode(data)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seconds < 1.0
    assert peak < 1 << 20


def test_size_limits_apply_before_decoding(codec, seeds):
    small = ct.Limits(max_pixels=1 << 20, max_dimension=2048)
    limited = Codec(codec.model, codec.model_id, codec.sha256, codec.device, limits=small)
    with pytest.raises(ct.ContainerError, match="4096 exceeds the limit of 2048"):
        limited.decode(_claiming(seeds[0], 4096, 16))
    with pytest.raises(ct.ContainerError, match="over the limit of 1048576"):
        limited.decode(_claiming(seeds[0], 2048, 1024))


def test_size_lie_inside_the_limits_is_caught_by_the_checksums(codec, seeds):
    with watchdog(), pytest.raises(MismatchError, match="checksum"):
        codec.decode(_claiming(seeds[0], 2048, 1536))


# --------------------------------------------------------------------------- odd images


def _ramp(size: tuple[int, int]) -> Image.Image:
    return Image.linear_gradient("L").resize(size)


def _with_alpha(img: Image.Image) -> Image.Image:
    out = img.copy()
    out.putalpha(_ramp(img.size))
    return out


def _gray_palette(img: Image.Image) -> Image.Image:
    p = Image.fromarray(np.asarray(img.convert("L")) // 32, "P")
    p.putpalette([36 * (v // 3) for v in range(24)])
    return p


def _with_transparency(img: Image.Image, value) -> Image.Image:
    out = img.copy()
    out.info["transparency"] = value
    return out


def _sixteen_bit(img: Image.Image, mode: str) -> Image.Image:
    values = np.asarray(img.convert("L")).astype(np.uint32) * 256 + 100
    if mode == "I":
        return Image.fromarray(values.astype(np.int32), "I")
    out = Image.new(mode, img.size)
    dtype = ">u2" if mode == "I;16B" else "<u2"
    out.frombytes(values.astype(dtype).tobytes())
    return out


def _saved(img: Image.Image, fmt: str, **options) -> Image.Image:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **options)
    return Image.open(io.BytesIO(buffer.getvalue()))


def _png16_rgb(img: Image.Image) -> Image.Image:
    """A 16-bit RGB PNG, opened but not loaded (Pillow reduces it to 8 bits on load)."""
    import zlib

    values = np.asarray(img).astype(">u2") * 257
    rows = b"".join(b"\0" + row.tobytes() for row in values)

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", img.width, img.height, 16, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
    png += chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    return Image.open(io.BytesIO(png))


def _animated(img: Image.Image) -> Image.Image:
    frames = [img.quantize(16), img.rotate(180).quantize(16), img.quantize(4)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    out = Image.open(io.BytesIO(buffer.getvalue()))
    out.seek(2)  # prepare() codes frame 0 whatever the current frame
    return out


# name -> (make from a 17x9 RGB crop, decoded mode, a word of the warning or None)
ODD_IMAGES: dict[str, tuple[Callable[[Image.Image], Image.Image], str, str | None]] = {
    "rgb_1x1": (lambda b: b.crop((0, 0, 1, 1)), "RGB", None),
    "rgb_odd_size": (lambda b: b, "RGB", None),
    "gray_1x1": (lambda b: b.crop((3, 3, 4, 4)).convert("L"), "L", None),
    "bilevel": (lambda b: b.convert("1", dither=Image.Dither.NONE), "L", None),
    "gray": (lambda b: b.convert("L"), "L", None),
    "gray_alpha": (lambda b: _with_alpha(b.convert("L")), "LA", None),
    "gray_alpha_premultiplied": (lambda b: _with_alpha(b.convert("L")).convert("La"), "LA", None),
    "gray_trns": (lambda b: _with_transparency(b.convert("L"), 128), "LA", None),
    "palette": (lambda b: b.quantize(16), "RGB", None),
    "palette_gray": (_gray_palette, "L", None),
    "palette_trns": (lambda b: _with_transparency(b.quantize(16), 3), "RGBA", None),
    "palette_alpha": (lambda b: b.quantize(16).convert("PA"), "RGBA", None),
    "rgb_trns": (lambda b: _with_transparency(b, b.getpixel((0, 0))), "RGBA", None),
    "rgba": (_with_alpha, "RGBA", None),
    "rgba_premultiplied": (lambda b: _with_alpha(b).convert("RGBa"), "RGBA", None),
    "rgbx": (lambda b: b.convert("RGBX"), "RGB", None),
    "ycbcr": (lambda b: b.convert("YCbCr"), "RGB", None),
    "cmyk": (lambda b: b.convert("CMYK"), "RGB", "CMYK"),
    "lab": (lambda b: b.convert("LAB"), "RGB", "LAB"),
    "hsv": (lambda b: b.convert("HSV"), "RGB", "HSV"),
    "gray16": (lambda b: _sixteen_bit(b, "I;16"), "L", "16-bit"),
    "gray16_big_endian": (lambda b: _sixteen_bit(b, "I;16B"), "L", "16-bit"),
    "int32": (lambda b: _sixteen_bit(b, "I"), "L", "16-bit"),
    "jpeg": (lambda b: _saved(b, "JPEG"), "RGB", None),
    "jpeg_gray": (lambda b: _saved(b.convert("L"), "JPEG"), "L", None),
    "jpeg_cmyk": (lambda b: _saved(b.convert("CMYK"), "JPEG"), "RGB", "CMYK"),
    "webp_alpha": (lambda b: _saved(_with_alpha(b), "WEBP", lossless=True), "RGBA", None),
    "tiff_gray16": (lambda b: _saved(_sixteen_bit(b, "I;16"), "TIFF"), "L", "16-bit"),
    "png_rgb16": (_png16_rgb, "RGB", "16-bit"),
    "gif_animated": (_animated, "RGB", "frames"),
}


@pytest.fixture
def base(crop) -> Image.Image:
    """A fresh 17x9 RGB image (a test may change it)."""
    return crop(17, 9)


def _alpha_of(img: Image.Image) -> bytes | None:
    """The alpha plane prepare() should keep: from A, or from a 'transparency' entry."""
    if img.mode in ("La", "RGBa"):
        return img.getchannel("a").tobytes()
    if img.mode in ("LA", "PA", "RGBA") or "transparency" in img.info:
        return img.convert("RGBA").getchannel("A").tobytes()
    return None


@pytest.mark.parametrize("name", ODD_IMAGES)
def test_prepare_maps_every_mode_under_the_policy(base, name):
    make, mode, warning = ODD_IMAGES[name]
    img = make(base)
    alpha = _alpha_of(img) if name != "gif_animated" else None
    p = prepare(img)
    assert p.rgb.mode == "RGB" and p.rgb.size == img.size
    assert p.channels == (1 if mode in ("L", "LA") else 3)
    assert p.alpha == alpha
    assert (mode in ("LA", "RGBA")) == (p.alpha is not None)
    if warning is None:
        assert p.warnings == []
    else:
        assert len(p.warnings) == 1 and warning in p.warnings[0]


@pytest.mark.parametrize("name", ODD_IMAGES)
def test_odd_images_round_trip_with_size_and_mode(codec, base, name):
    make, mode, warning = ODD_IMAGES[name]
    img = make(base)
    expected = prepare(make(base))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = codec.encode(img, 90)
    pixel_warnings = [str(w.message) for w in caught if w.category is PixelWarning]
    assert len(pixel_warnings) == (warning is not None)
    out = codec.decode(data)
    assert out.size == img.size and out.mode == mode
    if expected.alpha is not None:
        assert out.getchannel("A").tobytes() == expected.alpha  # alpha is lossless
    error = np.abs(np.asarray(out.convert("RGB"), float) - np.asarray(expected.rgb, float))
    assert error.mean() < 12, error.mean()


def test_sixteen_bit_samples_are_rounded_to_eight_bits():
    values = np.arange(0, 65536, 7, dtype=np.uint32)[:1024].reshape(32, 32)
    img = Image.new("I;16", (32, 32))
    img.frombytes(values.astype("<u2").tobytes())
    eight = np.asarray(prepare(img).rgb)[..., 0]
    np.testing.assert_array_equal(eight, np.round(values / 257).astype(np.uint8))


def test_gray_palette_keeps_its_gray_levels(base):
    img = _gray_palette(base)
    p = prepare(img)
    np.testing.assert_array_equal(np.asarray(p.rgb)[..., 1], np.asarray(img.convert("L")))


def test_cmyk_drops_its_profile_and_other_images_keep_theirs(base):
    cmyk = base.convert("CMYK")
    cmyk.info["icc_profile"] = b"not really a CMYK profile"
    p = prepare(cmyk)
    assert p.icc_profile is None and "ICC profile is dropped" in p.warnings[0]
    rgb = base.copy()
    rgb.info["icc_profile"] = b"an RGB profile"
    assert prepare(rgb).icc_profile == b"an RGB profile"


def test_multi_frame_image_keeps_its_current_frame(base):
    img = _animated(base)
    p = prepare(img)
    assert img.tell() == 2
    img.seek(0)
    assert p.rgb.tobytes() == img.convert("RGB").tobytes()


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda b: b.convert("F"), "mode F"),
        (lambda b: Image.fromarray(np.full((4, 5), -3, np.int32), "I"), "outside the 16-bit"),
        (lambda b: Image.fromarray(np.full((4, 5), 70000, np.int32), "I"), "outside the 16-bit"),
        (lambda b: Image.new("RGB", (0, 0)), "empty"),
    ],
    ids=["float", "int32_negative", "int32_over_16_bit", "empty"],
)
def test_unsupported_images_are_refused_in_one_line(codec, base, make, words):
    img = make(base)
    for call in (prepare, codec.encode):
        with pytest.raises(ValueError, match=words) as info:
            call(img)
        assert "\n" not in str(info.value)


def _exif_with_orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = value
    return exif.tobytes()


def test_exif_orientation_is_carried_and_pixels_stay_as_stored(codec, base):
    img = _saved(base, "JPEG", exif=_exif_with_orientation(6))
    out = codec.decode(codec.encode(img))
    assert out.size == img.size == (17, 9)  # not rotated
    assert out.getexif()[ORIENTATION_TAG] == 6
    assert ImageOps.exif_transpose(out).size == ImageOps.exif_transpose(img).size == (9, 17)


def test_tiff_orientation_is_applied_by_pillow_so_the_look_is_kept(codec, base):
    img = _saved(base, "TIFF", exif=_exif_with_orientation(8))
    out = codec.decode(codec.encode(img))
    assert out.size == (9, 17)  # Pillow turned the pixels upright and dropped the tag
    assert ImageOps.exif_transpose(out).size == (9, 17)


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("name", ["rgb_odd_size", "gray_alpha", "rgba", "jpeg"])
def test_encoding_is_byte_identical(codec, base, name):
    img = ODD_IMAGES[name][0](base)
    img.info["exif"] = _exif_with_orientation(3)
    assert codec.encode(img, 42.5) == codec.encode(img, 42.5)


@pytest.mark.slow
def test_encoding_in_a_fresh_process_is_byte_identical(codec, base, tmp_path):
    src, dst = tmp_path / "in.png", tmp_path / "out.gmx"
    _with_alpha(base).save(src)
    with Image.open(src) as img:
        here = codec.encode(img, 61)
    code = (
        "import sys; from PIL import Image; from gmcodec.codec import Codec; "
        "data = Codec.load(device='cpu').encode(Image.open(sys.argv[1]), 61); "
        "open(sys.argv[2], 'wb').write(data)"
    )
    subprocess.run([sys.executable, "-c", code, str(src), str(dst)], check=True, timeout=600)
    assert dst.read_bytes() == here


def test_a_file_decodes_on_a_cpu_with_an_older_instruction_set(
    codec, sample_image, decode_elsewhere
):
    """Another machine, simulated: decode in a process whose kernels are capped at SSE4.2.

    With float32 entropy parameters (coder id 0) most Kodak files at quality 90 made on an
    AVX-512 machine fail there (``scripts/cross_isa.py``, docs/RELIABILITY.md section 5).
    """
    data = codec.encode(sample_image, 90)
    elsewhere = decode_elsewhere(data, {**os.environ, **cross_isa.ISAS["sse42"]})
    # The symbols decoded (every group's checksum held); the float32 g_s may round a few
    # samples the other way.
    diff = elsewhere.astype(int) - np.asarray(codec.decode(data))
    assert np.abs(diff).max() <= 1 and np.count_nonzero(diff) < 1e-3 * diff.size


# --------------------------------------------------------------------------- the CLI, as a process


def _gmx(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "gmcodec.cli", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _assert_clean_failure(proc: subprocess.CompletedProcess, folder: Path, before: set) -> None:
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gmx: error:"), proc.stderr
    assert "Traceback" not in proc.stderr
    assert set(os.listdir(folder)) == before  # no output, no temp file


def test_cli_refuses_hostile_files_cleanly(seeds, tmp_path):
    hostile = {
        "empty.gmx": b"",
        "truncated.gmx": seeds[0][: len(seeds[0]) // 2],
        "flipped.gmx": fuzz.make_case(5, 1, seeds, ("flip1",))[2],
        "random.gmx": np.random.default_rng(0).bytes(700),
        "absurd.gmx": _claiming(seeds[0], 100_000, 100_000),
        "photo.gmx": (ROOT / "examples" / "kodim23.png").read_bytes(),
    }
    for name, data in hostile.items():
        (tmp_path / name).write_bytes(data)
    before = set(os.listdir(tmp_path))
    for name in hostile:
        proc = _gmx("decode", name, "out.png", cwd=tmp_path)
        _assert_clean_failure(proc, tmp_path, before)


def test_cli_refuses_non_images_and_truncated_images_cleanly(base, tmp_path):
    buffer = io.BytesIO()
    base.save(buffer, "PNG")
    png = buffer.getvalue()
    (tmp_path / "truncated.png").write_bytes(png[: len(png) // 2])
    (tmp_path / "notes.png").write_text("not an image\n")
    (tmp_path / "empty.png").write_bytes(b"")
    before = set(os.listdir(tmp_path))
    for name in ("truncated.png", "notes.png", "empty.png"):
        proc = _gmx("encode", name, "out.gmx", cwd=tmp_path)
        _assert_clean_failure(proc, tmp_path, before)


@pytest.mark.slow
def test_cli_refuses_a_float_image_with_the_reason(base, tmp_path):
    base.convert("F").save(tmp_path / "float.tif")
    before = set(os.listdir(tmp_path))
    proc = _gmx("encode", "float.tif", "out.gmx", "--device", "cpu", cwd=tmp_path, timeout=600)
    _assert_clean_failure(proc, tmp_path, before)
    assert "mode F" in proc.stderr
