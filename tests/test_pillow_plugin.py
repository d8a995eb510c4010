"""The Pillow plugin: Image.open / Image.save of .gmx, and the ICC/EXIF metadata policy."""

from __future__ import annotations

import io
import subprocess
import sys
import warnings

import numpy as np
import pytest
from PIL import Image, ImageCms

import gmcodec
from gmcodec import container as ct
from gmcodec.pillow_plugin import (
    EXIF_PREFIX,
    GmxImageError,
    MetadataWritten,
    container_exif,
    pillow_exif,
    save_with_metadata,
    strip_metadata,
)

ORIENTATION = 0x0112


@pytest.fixture(scope="module")
def icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.fixture(scope="module")
def small(crop) -> Image.Image:
    """A 48x32 RGB crop: enough texture to code, cheap to encode."""
    return crop(48, 32)


@pytest.fixture(scope="module")
def tagged_jpeg(small, icc, tmp_path_factory) -> Image.Image:
    """A JPEG with an ICC profile and EXIF (orientation 6: rotate 90 degrees clockwise)."""
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    exif[0x010F] = "gmcodec test camera"  # Make
    path = tmp_path_factory.mktemp("jpeg") / "tagged.jpg"
    small.save(path, quality=95, exif=exif, icc_profile=icc)
    return Image.open(path)


@pytest.fixture(scope="module")
def tagged_gmx(tagged_jpeg, tmp_path_factory):
    path = tmp_path_factory.mktemp("gmx") / "tagged.gmx"
    tagged_jpeg.save(path, quality=40)
    return path


@pytest.fixture(scope="module")
def decoded(tagged_gmx) -> Image.Image:
    """tagged_gmx opened and decoded (shared: decoding is the slow part)."""
    im = Image.open(tagged_gmx)
    im.load()
    return im


def _reopen(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def test_importing_gmcodec_registers_extension_mime_and_formats():
    assert Image.registered_extensions()[".gmx"] == "GMX"
    assert Image.MIME["GMX"] == "image/x-gmx"
    assert "GMX" in Image.OPEN and "GMX" in Image.SAVE


def test_save_by_extension_then_open_round_trips(small, tmp_path):
    path = tmp_path / "x.gmx"
    small.save(path, quality=60)
    assert path.read_bytes() == gmcodec.encode(small, quality=60)
    with Image.open(path) as im:
        assert (im.format, im.size, im.mode) == ("GMX", small.size, "RGB")
        assert im.get_format_mimetype() == "image/x-gmx"
        pixels = np.asarray(im, dtype=np.float64)
    assert np.abs(pixels - np.asarray(small, dtype=np.float64)).mean() < 12


def test_save_passes_the_effort(small, tmp_path):
    path = tmp_path / "e.gmx"
    small.save(path, quality=60, effort=2)
    assert path.read_bytes() == gmcodec.encode(small, quality=60, effort=2)
    assert path.read_bytes() != gmcodec.encode(small, quality=60)


def test_save_with_format_gmx_to_a_file_object(small):
    buf = io.BytesIO()
    small.save(buf, format="GMX", quality=30)
    data = buf.getvalue()
    assert data.startswith(ct.SIGNATURE)
    assert ct.parse(data).coder.quality == 30


def test_open_reads_size_mode_and_metadata_without_torch(tagged_gmx):
    code = (
        "import sys, gmcodec; from PIL import Image\n"
        f"im = Image.open({str(tagged_gmx)!r})\n"
        "print(im.format, im.size, im.mode, 'icc_profile' in im.info, 'exif' in im.info)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["GMX (48, 32) RGB True True", "False"]


@pytest.mark.parametrize("mode", ["L", "RGBA", "LA"])
def test_grayscale_and_alpha_modes_survive(small, mode):
    src = small.convert(mode)
    buf = io.BytesIO()
    src.save(buf, format="GMX", quality=50)
    im = Image.open(io.BytesIO(buf.getvalue()))
    assert im.mode == mode  # from the header, before decoding
    im.load()
    assert im.mode == mode and im.size == src.size
    if "A" in mode:
        assert im.getchannel("A").tobytes() == src.getchannel("A").tobytes()


def test_icc_profile_of_a_png_round_trips(small, icc, tmp_path):
    png = tmp_path / "in.png"
    small.save(png, icc_profile=icc)
    with Image.open(png) as im:
        im.save(tmp_path / "x.gmx")
    with Image.open(tmp_path / "x.gmx") as im:
        assert im.info["icc_profile"] == icc
        save_with_metadata(im, tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as out:
        assert out.info["icc_profile"] == icc


def test_exif_of_a_jpeg_round_trips_with_orientation(tagged_jpeg, tagged_gmx):
    raw = ct.read_file(tagged_gmx).exif
    assert raw.startswith((b"II*\x00", b"MM\x00*"))  # stored bare, as FORMAT.md says
    assert EXIF_PREFIX + raw == tagged_jpeg.info["exif"]
    with Image.open(tagged_gmx) as im:
        assert im.info["exif"] == tagged_jpeg.info["exif"]
        assert im.getexif()[ORIENTATION] == 6
        assert im.info["icc_profile"] == tagged_jpeg.info["icc_profile"]


def test_exif_converts_between_pillow_and_container_forms(tagged_jpeg):
    pillow = tagged_jpeg.info["exif"]
    bare = container_exif(pillow)
    assert bare == pillow[len(EXIF_PREFIX) :] and container_exif(bare) == bare
    assert pillow_exif(bare) == pillow_exif(pillow) == pillow
    assert container_exif(None) is None and pillow_exif(b"") is None


def test_save_with_metadata_accepts_exif_without_prefix(tagged_gmx, tmp_path):
    img = gmcodec.decode(tagged_gmx.read_bytes())  # info["exif"] as the file stores it
    save_with_metadata(img, tmp_path / "out.jpg")
    with Image.open(tmp_path / "out.jpg") as out:
        assert out.getexif()[ORIENTATION] == 6


def test_files_written_by_gmcodec_encode_open_with_pillows_exif(tagged_jpeg):
    im = _reopen(gmcodec.encode(tagged_jpeg, quality=40))
    assert im.info["exif"] == tagged_jpeg.info["exif"]
    assert im.getexif()[ORIENTATION] == 6


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".gmx"])
def test_decoded_image_saved_with_metadata_keeps_icc_and_exif(decoded, tmp_path, suffix):
    out = tmp_path / f"out{suffix}"
    written = save_with_metadata(decoded, out)
    assert written == MetadataWritten(icc_profile=True, exif=True, oriented=False)
    with Image.open(out) as back:
        assert back.size == (48, 32)
        assert back.info["icc_profile"] == decoded.info["icc_profile"]
        assert back.getexif()[ORIENTATION] == 6
        assert back.getexif()[0x010F] == "gmcodec test camera"


def test_strip_drops_metadata_but_keeps_the_image_upright(decoded, tmp_path):
    written = save_with_metadata(decoded, tmp_path / "out.png", strip=True)
    assert written == MetadataWritten(icc_profile=False, exif=False, oriented=True)
    with Image.open(tmp_path / "out.png") as out:
        assert out.size == (32, 48)
        assert "icc_profile" not in out.info and "exif" not in out.info
        upright = decoded.transpose(Image.Transpose.ROTATE_270)
        assert np.array_equal(np.asarray(out), np.asarray(upright))
    assert decoded.size == (48, 32) and decoded.info["exif"]  # the source is untouched


def test_format_without_exif_gets_the_orientation_applied(decoded, tmp_path):
    written = save_with_metadata(decoded, tmp_path / "out.bmp")
    assert written.oriented and not written.exif
    with Image.open(tmp_path / "out.bmp") as out:
        assert out.size == (32, 48)


def test_strip_metadata_leaves_the_source_alone(tagged_jpeg):
    out = strip_metadata(tagged_jpeg)
    assert out.size == (32, 48) and "exif" not in out.info and "icc_profile" not in out.info
    assert tagged_jpeg.info["exif"] and tagged_jpeg.size == (48, 32)


def test_save_options_override_or_drop_the_images_metadata(tagged_jpeg, icc):
    buf = io.BytesIO()
    tagged_jpeg.save(buf, format="GMX", icc_profile=None, exif=None)
    f = ct.parse(buf.getvalue())
    assert f.icc_profile is None and f.exif is None
    exif = Image.Exif()
    exif[ORIENTATION] = 3
    plain = tagged_jpeg.copy()
    plain.info.clear()
    buf = io.BytesIO()
    plain.save(buf, format="GMX", icc_profile=icc, exif=exif)
    im = Image.open(io.BytesIO(buf.getvalue()))
    assert im.info["icc_profile"] == icc and im.getexif()[ORIENTATION] == 3


def test_exif_without_tiff_header_is_dropped_with_a_warning(small):
    buf = io.BytesIO()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        small.save(buf, format="GMX", exif=b"not exif at all")
    assert ct.parse(buf.getvalue()).exif is None
    assert any("TIFF header" in str(w.message) for w in caught)


def test_damaged_file_raises_oserror_with_the_reason(small):
    buf = io.BytesIO()
    small.save(buf, format="GMX")
    data = bytearray(buf.getvalue())
    data[-20] ^= 0xFF  # inside the last DATA chunk: CRC mismatch
    with pytest.raises(GmxImageError, match="CRC mismatch"):
        Image.open(io.BytesIO(bytes(data)))


def test_jpeg_output_refuses_alpha(small, tmp_path):
    with pytest.raises(ValueError, match="alpha"):
        save_with_metadata(small.convert("RGBA"), tmp_path / "x.jpg")
    assert not list(tmp_path.iterdir())  # nothing left behind


def test_unknown_extension_is_a_clear_error(small, tmp_path):
    with pytest.raises(ValueError, match="extension"):
        save_with_metadata(small, tmp_path / "x.unknown")
