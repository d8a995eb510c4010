"""The ``gmx`` command line: encode, decode, info, bench, train.

A thin layer over the library: parse the arguments, call :mod:`gmcodec.codec`,
:mod:`gmcodec.container` or :mod:`gmcodec.bench` (reading inputs and writing outputs
atomically through :mod:`gmcodec.fileio`, fitting --bpp/--size with
:mod:`gmcodec.ratecontrol`) and print one summary line per file on stderr::

    gmx encode in.png out.gmx          gmx decode out.gmx back.png
    gmx info out.gmx -v                gmx bench kodak/ -o report/

Torch is imported only once a command needs the model, so ``gmx --help`` and ``gmx info``
start fast and work without it. Exit status: 0 ok, 1 a file failed, 2 usage, 130 interrupted.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn

import click
from click.core import ParameterSource
from PIL import Image

from . import __version__
from . import container as ct
from .constants import (
    DEFAULT_EFFORT,
    DEFAULT_QUALITY,
    EFFORT_MAX,
    EFFORT_MIN,
    QUALITY_MAX,
    QUALITY_MIN,
)
from .fileio import (
    STDIO,
    FileError,
    atomic_path,
    check_output,
    encode_image,
    fit_mode,
    open_image,
    output_format,
    read_input,
    write_output,
)
from .ratecontrol import RateFit, fit_rate

DEVICES = ("auto", "cpu", "cuda")
BENCH_CODECS = ("gmx", "jpeg", "webp", "avif")
"""Codec names ``gmx bench`` knows (mirror of ``gmcodec.bench.DEFAULT_CODECS``)."""

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

EXIT_STATUS = {
    EXIT_OK: "success",
    EXIT_FAILURE: "a file failed (each failure is one 'gmx: error:' line; the others are done)",
    EXIT_USAGE: "usage error (bad option or argument)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C); no partial output is left",
}

EXAMPLES: dict[str, list[tuple[str, str]]] = {
    "encode": [
        ("gmx encode photo.png", "writes photo.gmx at quality 75"),
        ("gmx encode photo.png small.gmx -q 40", "a lower quality, a smaller file"),
        ("gmx encode photo.png -e 3", "slower encode, smaller file at the same quality"),
        ("gmx encode photo.png --bpp 0.5", "the largest file of at most 0.5 bits per pixel"),
        ("gmx encode photo.png --size 50k --force", "at most 50,000 bytes, overwrite photo.gmx"),
        ("gmx encode *.png -o out/", "batch: one model load, out/<name>.gmx"),
        ("cat photo.png | gmx encode - - > photo.gmx", "stdin to stdout"),
    ],
    "decode": [
        ("gmx decode photo.gmx", "writes photo.png"),
        ("gmx decode photo.gmx photo.webp", "lossless WebP (format from the suffix)"),
        ("gmx decode *.gmx -o decoded/", "batch into a folder"),
        ("gmx decode - - < photo.gmx > photo.png", "stdin to stdout (PNG)"),
    ],
    "info": [
        ("gmx info photo.gmx", "summary line and Key: value lines"),
        ("gmx info -v photo.gmx", "also coder settings, tiles and skipped chunks"),
        ("gmx info --json *.gmx", "a JSON array, one object per file"),
        ("gmx info photo.gmx --bits-map bits.png -v", "where the bits go (loads the model)"),
    ],
    "bench": [
        ("gmx bench kodak/ -o report/", "all codecs at their default qualities"),
        ("gmx bench kodak/ --codecs gmx,jpeg --qualities 'gmx=25,75;jpeg=30,80'", ""),
    ],
    "train": [
        ("gmx train --help", "the training options (gmcodec.train)"),
    ],
}


# --------------------------------------------------------------------------- errors


class FatalError(Exception):
    """The command cannot go on (e.g. the model does not load); the message is one line."""


_EXPECTED_ERRORS = (OSError, ValueError, RuntimeError, MemoryError, EOFError, SyntaxError)
_EXPECTED_ERRORS += (FileError, FatalError, Image.DecompressionBombError)


def error_message(exc: BaseException, name: str | None = None) -> str:
    """A one-line message for exc (about the file ``name``), naming the class only if unexpected."""
    if isinstance(exc, Image.UnidentifiedImageError):
        return "not an image file that Pillow can read"
    if isinstance(exc, MemoryError):
        return "out of memory"
    if isinstance(exc, OSError) and exc.strerror:
        other = exc.filename is not None and os.fspath(exc.filename) != name
        return f"{exc.strerror}: {exc.filename}" if other else exc.strerror
    text = " ".join(str(exc).split()) or type(exc).__name__
    if not isinstance(exc, _EXPECTED_ERRORS):
        return f"{text} ({type(exc).__name__}, an internal error: please report it)"
    return text


# --------------------------------------------------------------------------- console


@dataclass
class Console:
    """Where the messages go: summaries and notes on stderr, errors always."""

    quiet: bool = False
    verbose: bool = False
    failures: int = 0

    def summary(self, line: str) -> None:
        """A per-file result line (silenced by --quiet)."""
        if not self.quiet:
            self._echo(line)

    def note(self, line: str) -> None:
        """A -v detail line."""
        if self.verbose and not self.quiet:
            self._echo(f"  {line}")

    def warn(self, name: str, message: str) -> None:
        """A warning about one file; it does not change the exit status."""
        if not self.quiet:
            self._echo(f"gmx: warning: {name}: {message}")

    def error(self, name: str | None, exc: BaseException) -> None:
        """Report a failure in one line (a traceback too with -v for internal errors)."""
        self.failures += 1
        where = f"{name}: " if name else ""
        self._echo(f"gmx: error: {where}{error_message(exc, name)}")
        if self.verbose and not isinstance(exc, _EXPECTED_ERRORS):
            self._echo(traceback.format_exc().rstrip())

    @property
    def exit_code(self) -> int:
        return EXIT_FAILURE if self.failures else EXIT_OK

    @staticmethod
    def _echo(line: str) -> None:
        stream = click.get_text_stream("stderr")
        prefix = "\r\x1b[K" if stream.isatty() else ""  # clear a progress bar's line
        click.echo(prefix + line, file=stream)


# --------------------------------------------------------------------------- option types


def _parse_size(text: str) -> int:
    """'50000', '50k', '1.5M', '64KiB' -> bytes (k, M, G are powers of 1000; Ki, Mi, Gi of 1024)."""
    units = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "ki": 2**10, "mi": 2**20, "gi": 2**30}
    s = text.strip().lower().removesuffix("b").rstrip()
    number = s.rstrip("kmgi")
    value, unit = float(number), s[len(number) :]
    if unit not in units or not 0 < value < math.inf:
        raise ValueError(text)
    return max(1, round(value * units[unit]))


class SizeType(click.ParamType):
    """A file size: bytes, or a number with k/M/G (1000) or Ki/Mi/Gi (1024)."""

    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return _parse_size(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a size such as 50000, 50k, 1.5M or 64Ki", param, ctx)


# --------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class Job:
    """One input and where its output goes ('-' is stdin or stdout)."""

    src: str
    dst: str
    problem: str = ""
    """Set when this job must fail without running (e.g. its output collides with another's)."""

    @property
    def name(self) -> str:
        return "<stdin>" if self.src == STDIO else self.src

    @property
    def out_name(self) -> str:
        return "<stdout>" if self.dst == STDIO else self.dst


def _is_dir_arg(path: str) -> bool:
    return path.endswith(("/", os.sep)) or os.path.isdir(path)


def _outputs_in(folder: str, sources: Sequence[str], suffix: str) -> list[str]:
    return [os.path.join(folder, Path(s).stem + suffix) for s in sources]


def plan_jobs(
    args: Sequence[str], output: str | None, suffix: str, is_input: Callable[[str], bool]
) -> list[Job]:
    """Pair inputs with outputs; raise click.UsageError for impossible combinations.

    Without -o, two arguments are IN OUT unless the second is itself an input (is_input); a
    last argument that is a folder receives every output; otherwise each output goes next to
    its input with ``suffix``.
    """
    sources, target = list(args), output
    if target is None and len(sources) == 2 and not is_input(sources[1]):
        sources, target = sources[:1], sources[1]
    elif target is None and len(sources) > 2 and _is_dir_arg(sources[-1]):
        sources, target = sources[:-1], sources[-1]
    _check_stdio(sources, target)
    if target is None:
        dsts = [str(Path(s).with_suffix(suffix)) for s in sources]
    elif target != STDIO and (len(sources) > 1 or _is_dir_arg(target)):
        dsts = _outputs_in(_make_folder(target), sources, suffix)
    else:
        dsts = [target]
    return _mark_collisions([Job(s, d) for s, d in zip(sources, dsts, strict=True)])


def _check_stdio(sources: Sequence[str], target: str | None) -> None:
    if STDIO in sources and len(sources) > 1:
        raise click.UsageError("'-' (stdin) can only be the only input")
    if target == STDIO and len(sources) > 1:
        raise click.UsageError("'-' (stdout) takes a single input")
    if sources == [STDIO] and target is None:
        raise click.UsageError("reading stdin needs an output: OUT, -o FILE, or - for stdout")
    if sources == [STDIO] and _is_dir_arg(target or ""):
        raise click.UsageError("reading stdin needs an output file name, not a folder")


def _make_folder(folder: str) -> str:
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise click.UsageError(f"several inputs need -o to be a folder; {folder} is a file")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise click.UsageError(f"cannot create the output folder {folder}: {e.strerror}") from e
    return folder


def _mark_collisions(jobs: list[Job]) -> list[Job]:
    """Fail every job whose output another job (earlier in the list) also writes."""
    seen: dict[str, str] = {}
    marked = []
    for job in jobs:
        key = os.path.normcase(os.path.abspath(job.dst)) if job.dst != STDIO else STDIO
        if key in seen:
            job = Job(job.src, job.dst, f"{job.dst} is also the output of {seen[key]}")
        seen.setdefault(key, job.src)
        marked.append(job)
    return marked


def _check_paths(job: Job, force: bool) -> None:
    """Refuse before any work: a job marked failed, or an output fileio.check_output refuses."""
    if job.problem:
        raise FileError(job.problem)
    check_output(job.src, job.dst, force)


def _looks_like_image(path: str) -> bool:
    Image.init()
    suffix = Path(path).suffix.lower()
    return suffix != ".gmx" and suffix in Image.registered_extensions()


def _looks_like_gmx(path: str) -> bool:
    return Path(path).suffix.lower() == ".gmx"


# --------------------------------------------------------------------------- the model


class LazyCodec:
    """Loads the model at the first file that needs it, once for the whole batch."""

    def __init__(self, device: str, limits: ct.Limits, console: Console) -> None:
        self.device, self.limits, self.console = device, limits, console
        self._codec: Any = None

    def get(self) -> Any:
        """The loaded gmcodec.codec.Codec; FatalError if it cannot be loaded."""
        if self._codec is None:
            start = time.perf_counter()
            try:
                from .codec import Codec

                self._codec = Codec.load(device=self.device, limits=self.limits)
            except (ImportError, *_EXPECTED_ERRORS) as e:
                raise FatalError(f"cannot load the model: {error_message(e)}") from e
            c = self._codec
            seconds = time.perf_counter() - start
            self.console.note(f"model {c.model_id} on {c.device}, loaded in {seconds:.2f} s")
        return self._codec


def _stage_note(stages: dict[str, float]) -> str:
    return "stages: " + ", ".join(f"{k} {v:.3f} s" for k, v in stages.items())


# --------------------------------------------------------------------------- encode / decode


@dataclass(frozen=True)
class EncodeSettings:
    quality: float
    bpp: float | None
    size: int | None
    strip: bool
    effort: int


@dataclass(frozen=True)
class IoSettings:
    """The options encode and decode share."""

    force: bool
    limits: ct.Limits
    console: Console
    codec: LazyCodec


def encode_one(job: Job, io_: IoSettings, enc: EncodeSettings) -> None:
    """Encode one file and print its summary line."""
    _check_paths(job, io_.force)
    img = open_image(read_input(job.src, io_.limits.max_file_bytes), io_.limits, enc.strip)
    codec = io_.codec.get()
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if enc.bpp is None and enc.size is None:
            data, stages = codec.encode_timed(
                img, enc.quality, timing=io_.console.verbose, effort=enc.effort
            )
            fit = None
        else:
            fit = _encode_to_rate(codec, img, enc, io_.console)
            data, stages = fit.data, {}
    seconds = time.perf_counter() - start
    for message in dict.fromkeys(str(w.message) for w in caught):
        io_.console.warn(job.name, message)
    write_output(job.dst, data, io_.force)
    bpp = 8 * len(data) / (img.width * img.height)
    line = f"{job.out_name}: {len(data):,} bytes, {bpp:.3f} bpp, {seconds:.2f} s"
    io_.console.summary(line + (_fit_summary(fit, enc) if fit else ""))
    if fit and fit.note:
        io_.console.warn(job.name, fit.note)
    if stages:
        io_.console.note(f"quality {enc.quality:g}, {_stage_note(stages)}")


def _encode_to_rate(codec: Any, img: Image.Image, enc: EncodeSettings, console: Console) -> RateFit:
    target = enc.size if enc.size is not None else enc.bpp * img.width * img.height / 8

    def encode(quality: float) -> bytes:
        data = codec.encode(img, quality, enc.effort)
        console.note(f"quality {quality:6.2f} -> {len(data):,} bytes")
        return data

    return fit_rate(encode, target)


def _fit_summary(fit: RateFit, enc: EncodeSettings) -> str:
    target = f"{enc.size:,} bytes" if enc.size is not None else f"{enc.bpp:g} bpp"
    return f", quality {fit.quality:.2f} (target {target}, {fit.encodes} encodes)"


def decode_one(job: Job, io_: IoSettings) -> None:
    """Decode one file and print its summary line."""
    _check_paths(job, io_.force)
    fmt = output_format(job.dst)
    data = read_input(job.src, io_.limits.max_file_bytes)
    ct.parse(data, io_.limits)  # a damaged file fails here, before the model loads
    codec = io_.codec.get()
    start = time.perf_counter()
    img, stages = codec.decode_timed(data, timing=io_.console.verbose)
    seconds = time.perf_counter() - start
    img, dropped = fit_mode(img, fmt)
    if dropped:
        io_.console.warn(job.name, f"{fmt} has no alpha channel: alpha dropped")
    write_output(job.dst, encode_image(img, fmt), io_.force)
    io_.console.summary(f"{job.out_name}: {img.width}x{img.height}, {seconds:.2f} s")
    if stages:
        io_.console.note(_stage_note(stages))


def run_jobs(jobs: Sequence[Job], work: Callable[[Job], None], console: Console, verb: str) -> int:
    """Run work on each job, reporting failures and going on; return the exit code."""
    try:
        with _progress(jobs, console, verb) as items:
            for job in items:
                try:
                    work(job)
                except FatalError:
                    raise
                except Exception as e:  # one line per failed file, never a traceback
                    console.error(job.name, e)
    except FatalError as e:
        console.error(None, e)
    return console.exit_code


@contextmanager
def _progress(jobs: Sequence[Job], console: Console, verb: str) -> Iterator[Any]:
    """A progress bar on stderr for several files (none for one file or with --quiet)."""
    if len(jobs) < 2 or console.quiet:
        yield jobs
        return
    with click.progressbar(
        jobs,
        label=f"{verb} {len(jobs)} files",
        file=click.get_text_stream("stderr"),
        show_pos=True,
        item_show_func=lambda job: job.name if job else None,
    ) as bar:
        yield bar


# --------------------------------------------------------------------------- click commands


class GmxGroup(click.Group):
    """The gmx group: Ctrl-C anywhere exits 130 (temp files are removed on the way out)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("gmx: interrupted", err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None


def version_text() -> str:
    """The lines of ``gmx --version``: gmcodec, the container format, torch, constriction."""

    def installed(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return "\n".join(
        [
            f"gmx (gmcodec) {__version__}",
            f"container format {ct.FORMAT_MAJOR}.{ct.FORMAT_MINOR}",
            f"torch {installed('torch')}",
            f"constriction {installed('constriction')}",
            f"python {sys.version.split()[0]}",
        ]
    )


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(version_text())
        ctx.exit(EXIT_OK)


def _epilog(command: str) -> str:
    """The EXAMPLES block of a command's --help."""
    rows = EXAMPLES[command]
    width = max(len(cmd) for cmd, _ in rows)
    lines = [f"  {cmd:<{width}}  {what}".rstrip() for cmd, what in rows]
    return "\b\nExamples:\n" + "\n".join(lines)


_GROUP_EPILOG = "\b\nExit status:\n" + "\n".join(
    f"  {code:<3}  {text}" for code, text in EXIT_STATUS.items()
)


@click.group(cls=GmxGroup, epilog=_GROUP_EPILOG, context_settings={"max_content_width": 100})
@click.option(
    "-V",
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Print the versions of gmcodec, the .gmx format, torch and constriction, and exit.",
)
def cli() -> None:
    """gmx: a learned image codec (GroupedMixer transformer entropy model).

    Files are .gmx containers; see docs/FORMAT.md for the format and docs/CLI.md for this
    command line.
    """


_LIMITS = ct.Limits()


def _effort_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``-e/--effort``: the encoder effort (gmcodec.refine), shared by encode and bench."""
    return click.option(
        "-e",
        "--effort",
        type=click.IntRange(EFFORT_MIN, EFFORT_MAX),
        default=DEFAULT_EFFORT,
        show_default=True,
        help=help_text,
    )


def _io_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options encode and decode share."""
    options = [
        click.option(
            "-o",
            "--output",
            metavar="OUT|DIR",
            type=click.Path(allow_dash=True),
            help="Output file, '-' for stdout, or a folder (needed for several inputs).",
        ),
        click.option("--force", is_flag=True, help="Overwrite existing output files."),
        click.option(
            "--device",
            type=click.Choice(DEVICES),
            default="auto",
            show_default=True,
            help="Where the model runs: auto = CUDA when available, else CPU.",
        ),
        click.option(
            "--max-pixels",
            type=click.IntRange(min=1),
            default=_LIMITS.max_pixels,
            show_default=True,
            help="Refuse images with more pixels than this (checked before allocating).",
        ),
        click.option(
            "--max-dimension",
            type=click.IntRange(min=1),
            default=_LIMITS.max_dimension,
            show_default=True,
            help="Refuse images wider or taller than this.",
        ),
        click.option("-v", "--verbose", is_flag=True, help="Also print model, stage times."),
        click.option("--quiet", is_flag=True, help="Print errors only (no summary lines)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _io_settings(
    device: str, max_pixels: int, max_dimension: int, verbose: bool, quiet: bool, force: bool
) -> IoSettings:
    if verbose and quiet:
        raise click.UsageError("-v/--verbose and --quiet exclude each other")
    limits = ct.Limits(max_pixels, max_dimension, _LIMITS.max_file_bytes)
    console = Console(quiet=quiet, verbose=verbose)
    return IoSettings(force, limits, console, LazyCodec(device, limits, console))


_IO_ARGUMENTS = click.argument(
    "paths", nargs=-1, required=True, metavar="IN... [OUT]", type=click.Path(allow_dash=True)
)


def _num(value: float) -> float | int:
    """75.0 -> 75, so that --help shows '75', not '75.0'."""
    return int(value) if float(value).is_integer() else value


@cli.command(epilog=_epilog("encode"))
@_IO_ARGUMENTS
@click.option(
    "-q",
    "--quality",
    type=click.FloatRange(_num(QUALITY_MIN), _num(QUALITY_MAX)),
    default=_num(DEFAULT_QUALITY),
    show_default=True,
    help="Quality, higher is better (stored in steps of 0.01).",
)
@click.option(
    "--bpp",
    type=click.FloatRange(min=0, min_open=True),
    help="Target bits per pixel: the largest file not above it (excludes -q, --size).",
)
@click.option(
    "--size",
    type=SizeType(),
    help="Target file size, e.g. 50000, 50k, 1.5M, 64Ki (excludes -q, --bpp).",
)
@_effort_option(
    "Encoder effort: 2-5 refine the latent for smaller files at the same quality "
    "(slower encode, same decode)."
)
@click.option("--strip", is_flag=True, help="Drop the ICC profile and EXIF (applies rotation).")
@_io_options
@click.pass_context
def encode(ctx: click.Context, paths: tuple[str, ...], output: str | None, **opts: Any) -> None:
    """Encode images (PNG, JPEG, WebP, TIFF, ...) to .gmx files.

    \b
    gmx encode IN [OUT]             OUT defaults to IN with the suffix .gmx
    gmx encode IN... -o DIR         several files, the model loaded once
    gmx encode - -                  stdin to stdout

    Without -o, two arguments are IN OUT unless the second is an image too; a last
    argument that is a folder receives all outputs; otherwise each .gmx goes next to its
    image. --bpp and --size search the quality (a safeguarded bisection, usually 3 to 5
    encodes, at most 13) for a file at most 2% below the target, never above it.
    """
    io_ = _io_settings(**{k: opts.pop(k) for k in _IO_KEYS})
    enc = EncodeSettings(strip=opts["strip"], effort=opts["effort"], **_rate_options(ctx, opts))
    jobs = plan_jobs(paths, output, ".gmx", _looks_like_image)
    _exit(run_jobs(jobs, lambda job: encode_one(job, io_, enc), io_.console, "encoding"))


_IO_KEYS = ("device", "max_pixels", "max_dimension", "verbose", "quiet", "force")


def _rate_options(ctx: click.Context, opts: dict[str, Any]) -> dict[str, Any]:
    """quality, bpp and size, refusing more than one of them."""
    defaults = (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)
    given = {
        "-q": ctx.get_parameter_source("quality") not in defaults,
        "--bpp": opts["bpp"] is not None,
        "--size": opts["size"] is not None,
    }
    chosen = [name for name, on in given.items() if on]
    if len(chosen) > 1:
        raise click.UsageError(f"{' and '.join(chosen)} exclude each other: give one")
    return {"quality": opts["quality"], "bpp": opts["bpp"], "size": opts["size"]}


@cli.command(epilog=_epilog("decode"))
@_IO_ARGUMENTS
@_io_options
def decode(paths: tuple[str, ...], output: str | None, **opts: Any) -> None:
    """Decode .gmx files to PNG (or JPEG, WebP, TIFF by the output suffix).

    \b
    gmx decode IN [OUT]             OUT defaults to IN with the suffix .png
    gmx decode IN... -o DIR         several files, the model loaded once
    gmx decode - -                  stdin to stdout (PNG)

    Argument rules as for encode (the second of two arguments is OUT unless it ends in
    .gmx). The ICC profile and EXIF stored in the file are written back; WebP is written
    lossless, JPEG at Pillow quality 95 (alpha dropped).
    """
    io_ = _io_settings(**{k: opts.pop(k) for k in _IO_KEYS})
    jobs = plan_jobs(paths, output, ".png", _looks_like_gmx)
    for job in jobs:
        if not job.problem and job.dst != STDIO and Path(job.dst).suffix:
            _check_output_suffix(job.dst)
    _exit(run_jobs(jobs, lambda job: decode_one(job, io_), io_.console, "decoding"))


def _check_output_suffix(dst: str) -> None:
    try:
        output_format(dst)
    except FileError as e:
        raise click.UsageError(f"{dst}: {e}") from None


def _exit(code: int) -> None:
    if code:
        raise click.exceptions.Exit(code)


# --------------------------------------------------------------------------- info


@cli.command(epilog=_epilog("info"))
@click.argument("files", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.option("-v", "--verbose", is_flag=True, help="Also coder settings, tiles, chunks.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (an array for several files).")
@click.option(
    "--bits-map",
    type=click.Path(dir_okay=False),
    metavar="PNG",
    help="Write a map of where the bits go (one FILE; loads the model; needs gmcodec.analysis).",
)
@click.option(
    "--device",
    type=click.Choice(DEVICES),
    default="auto",
    show_default=True,
    help="Where the model runs for --bits-map.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing --bits-map file.")
def info(
    files: tuple[str, ...], verbose: bool, as_json: bool, bits_map: str | None, **opts: Any
) -> None:
    """Describe .gmx files: a summary line, then aligned Key: value lines.

    Reads the container only (no torch, no weights), except for --bits-map.
    """
    if bits_map is not None and (len(files) != 1 or files[0] == STDIO):
        raise click.UsageError("--bits-map takes exactly one FILE (not stdin)")
    console = Console(verbose=verbose)
    described = []
    for path in files:
        try:
            described.append(describe_file(path))
        except Exception as e:
            console.error("<stdin>" if path == STDIO else path, e)
    _print_info(described, verbose, as_json)
    if bits_map is not None and described:
        _bits_map(files[0], bits_map, opts["device"], opts["force"], console)
    _exit(console.exit_code)


def describe_file(path: str) -> dict[str, Any]:
    """container.describe() of a file (or of stdin for '-')."""
    limits = ct.Limits()
    data = read_input(path, limits.max_file_bytes)
    return ct.describe(ct.parse(data, limits), len(data), path=path)


def _print_info(described: list[dict[str, Any]], verbose: bool, as_json: bool) -> None:
    if not described:
        return
    if as_json:
        payload = described[0] if len(described) == 1 else described
        click.echo(json.dumps(payload, indent=2))
    else:
        click.echo("\n\n".join(ct.format_info(d, verbose) for d in described))


def _bits_map(src: str, png: str, device: str, force: bool, console: Console) -> None:
    """Write the bits map with gmcodec.analysis (imported only here); -v prints group bits."""
    try:
        from . import analysis
    except ModuleNotFoundError as e:
        if e.name != f"{__package__}.analysis":
            raise
        console.error(None, FileError("--bits-map needs gmcodec.analysis, not in this install"))
        return
    job = Job(src, png)
    try:
        _check_paths(job, force)
        result = _write_bits_map(analysis, src, png, device, force)
        if console.verbose:  # the map's own analysis: no second decode of the streams
            click.echo(format_group_bits([g.as_dict() for g in result.groups]))
    except Exception as e:
        console.error(png, e)
        return
    console.summary(f"{png}: bits map written")


def _write_bits_map(analysis: Any, src: str, png: str, device: str, force: bool) -> Any:
    """analysis.write_bits_map into a temp .png beside png, then moved into place."""
    with atomic_path(png, ".png", force) as tmp_png:
        return analysis.write_bits_map(src, str(tmp_png), device=device)


def format_group_bits(groups: Sequence[dict[str, Any]]) -> str:
    """Aligned 'Group g: key value, ...' lines from analysis.group_bits()."""
    rows = []
    for i, entry in enumerate(groups):
        label = f"Group {entry.get('group', entry.get('index', i))}:"
        items = [(k, v) for k, v in entry.items() if k not in ("group", "index")]
        rest = ", ".join(f"{k} {_fmt_value(v)}" for k, v in items)
        rows.append((label, rest))
    width = max((len(label) for label, _ in rows), default=0)
    return "\n".join(f"{label:<{width}} {rest}" for label, rest in rows)


def _fmt_value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# --------------------------------------------------------------------------- bench, train


def parse_qualities(text: str | None) -> dict[str, list[float]]:
    """'gmx=10,25;jpeg=30,80' -> {'gmx': [10.0, 25.0], 'jpeg': [30.0, 80.0]}."""
    result: dict[str, list[float]] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(";"))):
        name, sep, values = part.partition("=")
        name = name.strip().lower()
        if not sep or name not in BENCH_CODECS:
            raise ValueError(f"{part!r}: expected CODEC=Q1,Q2,... with CODEC in {BENCH_CODECS}")
        try:
            result[name] = [float(v) for v in values.split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"{part!r}: qualities must be numbers") from None
        if not result[name]:
            raise ValueError(f"{part!r}: no qualities")
    return result


def _qualities_option(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    try:
        return parse_qualities(value)
    except ValueError as e:
        raise click.BadParameter(str(e), ctx, param) from None


def _codecs_option(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    names = tuple(n.strip().lower() for n in value.split(",") if n.strip())
    unknown = [n for n in names if n not in BENCH_CODECS]
    if unknown or not names:
        raise click.BadParameter(f"choose from {','.join(BENCH_CODECS)}", ctx, param)
    return names


@cli.command(epilog=_epilog("bench"))
@click.argument("image_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False))
@click.option(
    "-o",
    "--output",
    "report_dir",
    metavar="REPORT_DIR",
    type=click.Path(file_okay=False),
    default="bench-report",
    show_default=True,
    help="Folder for REPORT.md, results.json and rd.png.",
)
@click.option(
    "--codecs",
    default=",".join(BENCH_CODECS),
    show_default=True,
    callback=_codecs_option,
    help="Comma-separated codecs to compare.",
)
@click.option(
    "--qualities",
    callback=_qualities_option,
    metavar="CODEC=Q,...;...",
    help="Quality sweeps per codec, e.g. 'gmx=10,25,40;jpeg=30,60' (default: built in).",
)
@click.option(
    "--device",
    type=click.Choice(DEVICES),
    default="auto",
    show_default=True,
    help="Where gmx runs: auto = CUDA when available, else CPU.",
)
@click.option(
    "--anchors",
    type=click.Path(exists=True, file_okay=False),
    help="Folder of published RD curves (JSON) to compute BD-rates against.",
)
@click.option(
    "--profile-images",
    type=click.IntRange(min=1),
    help="Profile the stages on the first N images only (default: all).",
)
@_effort_option("gmx encoder effort (as gmx encode -e).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def bench(image_dir: str, report_dir: str, codecs: tuple[str, ...], **opts: Any) -> None:
    """Benchmark gmx against JPEG, WebP and AVIF on every PNG of DIR (rate, PSNR, MS-SSIM, time)."""
    from . import bench as bench_lib

    console = Console()
    try:
        bench_lib.run_bench(
            image_dir,
            codecs,
            opts["qualities"] or None,
            opts["device"],
            anchors_dir=opts["anchors"],
            out_dir=report_dir,
            progress=not opts["quiet"],
            profile_images=opts["profile_images"],
            command=shlex.join(["gmx", *sys.argv[1:]]),
            effort=opts["effort"],
        )
    except Exception as e:
        console.error(image_dir, e)
        _exit(console.exit_code)
    click.echo(f"report written to {os.path.join(report_dir, 'REPORT.md')}")
    click.echo(f"  (also results.json and rd.png in {report_dir})")


@cli.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
    epilog=_epilog("train"),
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def train(args: tuple[str, ...]) -> None:
    """Train a model: every argument goes to gmcodec.train (see gmx train --help)."""
    from .train import main as train_main

    try:
        train_main(list(args))
    except Exception as e:
        Console().error("train", e)
        hint = "gmx: for a traceback, run python -m gmcodec.train with these arguments"
        click.echo(hint, err=True)
        _exit(EXIT_FAILURE)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The ``gmx`` console script."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="gmx")
    raise SystemExit(EXIT_OK)  # cli.main exits itself in standalone mode


if __name__ == "__main__":
    main()
