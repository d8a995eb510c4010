"""File handling for ``gmx``: bounded reads, atomic writes, opening and saving images.

Every read is refused past a size limit before it allocates; every write goes to a temp
file beside the target that is renamed into place only once it is complete, so an error or
Ctrl-C never leaves a partial output. '-' stands for stdin or stdout::

    data = read_input("in.png", ct.Limits().max_file_bytes)
    img = open_image(data, ct.Limits())
    write_output("out.png", encode_image(img, output_format("out.png")), force=False)

Torch-free: ``gmx info`` uses this module without loading the model.
"""

from __future__ import annotations

import io
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import click
from PIL import Image, ImageOps

from . import container as ct

__all__ = [
    "DECODE_FORMATS",
    "STDIO",
    "FileError",
    "atomic_output",
    "atomic_path",
    "check_output",
    "encode_image",
    "fit_mode",
    "open_image",
    "output_format",
    "read_input",
    "write_output",
]

STDIO = "-"
DECODE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
DECODE_FORMATS |= {".tif": "TIFF", ".tiff": "TIFF"}
_SAVE_OPTIONS: dict[str, dict[str, Any]] = {
    "PNG": {},
    "JPEG": {"quality": 95},
    "WEBP": {"lossless": True},
    "TIFF": {"compression": "tiff_adobe_deflate"},
}


class FileError(Exception):
    """One file failed; the message is one line and the other files go on."""


def _exists(path: str | os.PathLike[str]) -> FileError:
    """The error for an output that is there already and may not be replaced."""
    return FileError(f"{path} exists (use --force to overwrite)")


# --------------------------------------------------------------------------- atomic writes


def _temp_path(path: Path, suffix: str = ".tmp") -> tuple[int, Path]:
    """Create an empty, exclusive temp file beside path; return (fd, its path)."""
    for _ in range(8):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{suffix}")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
    raise FileError(f"cannot create a temporary file beside {path}")


def _commit(tmp: Path, path: Path, force: bool) -> None:
    """Move tmp to path; without force, never replace an existing file (even in a race)."""
    if force:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # fails if path exists: an atomic no-clobber rename
    except FileExistsError:
        raise _exists(path) from None
    except OSError:  # no hard links on this filesystem
        if os.path.lexists(path):
            raise _exists(path) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_output(path: str | os.PathLike[str], force: bool = False) -> Iterator[BinaryIO]:
    """A binary file that appears at path only if the block succeeds (temp, fsync, rename).

    On any exception, KeyboardInterrupt included, the temp file is removed and path is
    left as it was.
    """
    path = Path(path)
    fd, tmp = _temp_path(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        _commit(tmp, path, force)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


@contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str, force: bool = False) -> Iterator[Path]:
    """A temp path beside path, ending in suffix, for a writer that takes a file name.

    The file is created empty and exclusively; it is moved to path only if the block
    succeeds, and removed otherwise.
    """
    path = Path(path)
    fd, tmp = _temp_path(path, suffix)
    os.close(fd)
    try:
        yield tmp
        _commit(tmp, path, force)
    finally:
        tmp.unlink(missing_ok=True)


def write_output(dst: str, data: bytes, force: bool) -> None:
    """Write data to the file dst atomically, or to stdout when dst is '-'."""
    if dst != STDIO:
        with atomic_output(dst, force) as fh:
            fh.write(data)
        return
    stdout = click.get_binary_stream("stdout")
    try:
        stdout.write(data)
        stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        raise FileError("stdout was closed early (broken pipe)") from None


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that Python's exit-time flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


def check_output(src: str, dst: str, force: bool) -> None:
    """Refuse before any work: output = input, an existing output without force, a folder."""
    if dst == STDIO:
        if click.get_binary_stream("stdout").isatty():
            raise FileError("refusing to write binary data to a terminal (redirect stdout)")
        return
    if src != STDIO and _same_file(src, dst):
        raise FileError("input and output are the same file")
    if os.path.isdir(dst):
        raise FileError(f"output {dst} is a folder")
    if not force and os.path.lexists(dst):
        raise _exists(dst)


def _same_file(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


# --------------------------------------------------------------------------- reading


def read_input(src: str, max_bytes: int) -> bytes:
    """The bytes of the file src (or stdin for '-'), refused past max_bytes before reading."""
    if src == STDIO:
        data = click.get_binary_stream("stdin").read(max_bytes + 1)
        if not data:
            raise FileError("stdin is empty")
    else:
        with open(src, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > max_bytes:
                raise FileError(f"file too large: {size:,} bytes, over the limit of {max_bytes:,}")
            data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileError(f"input too large: over the limit of {max_bytes:,} bytes")
    return data


# --------------------------------------------------------------------------- images


def _check_dimensions(width: int, height: int, limits: ct.Limits) -> None:
    problem = limits.exceeded(width, height)
    if problem:
        raise FileError(f"{problem[:-1]}; see --max-dimension, --max-pixels)")


@contextmanager
def _own_size_limits() -> Iterator[None]:
    """Let our Limits, checked before decoding, replace Pillow's decompression-bomb guard."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def open_image(data: bytes, limits: ct.Limits, strip: bool = False) -> Image.Image:
    """Decode an image file's bytes with Pillow; its size is checked before the pixels load."""
    if data.startswith(ct.SIGNATURE):
        raise FileError("this is a .gmx file already (use gmx decode)")
    with _own_size_limits():
        img = Image.open(io.BytesIO(data))
        _check_dimensions(img.width, img.height, limits)
        img.load()
    if strip:
        img = ImageOps.exif_transpose(img)  # keep the look once the orientation tag is gone
        img.info.pop("icc_profile", None)
        img.info.pop("exif", None)
    return img


def output_format(dst: str) -> str:
    """Pillow's format name for an output path: from the suffix, PNG for stdout or none."""
    suffix = "" if dst == STDIO else Path(dst).suffix.lower()
    if suffix == "":
        return "PNG"
    if suffix not in DECODE_FORMATS:
        known = ", ".join(sorted(DECODE_FORMATS))
        raise FileError(f"cannot write {suffix} files; the output suffix must be one of {known}")
    return DECODE_FORMATS[suffix]


def fit_mode(img: Image.Image, fmt: str) -> tuple[Image.Image, bool]:
    """img in a mode fmt can store; True when an alpha channel had to go."""
    if fmt == "JPEG" and img.mode in ("RGBA", "LA"):
        return img.convert(img.mode[:-1]), True
    return img, False


def encode_image(img: Image.Image, fmt: str) -> bytes:
    """The bytes of img saved as fmt, with its ICC profile and EXIF when it has them."""
    options = dict(_SAVE_OPTIONS[fmt])
    for key in ("icc_profile", "exif"):
        if img.info.get(key):
            options[key] = img.info[key]
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **options)
    return buffer.getvalue()
