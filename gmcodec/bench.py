"""Rate-distortion and speed benchmark of gmx against Pillow's JPEG, WebP and AVIF.

Every PNG of a directory is encoded and decoded at several qualities by each codec; rates
come from the real encoded sizes, quality is PSNR-RGB and MS-SSIM on the 8-bit RGB image::

    image dir --> [adapter.encode] --bytes--> [adapter.decode] --> PSNR, MS-SSIM, bpp, seconds
                                                                      |
    anchors/*.json ----------------------------------------------> BD-rates --> results.json
                                                                                REPORT.md, rd.png

Codecs are plugged in through :class:`CodecAdapter`; an adapter that also satisfies
:class:`ProfiledAdapter` (gmx) gets a per-stage time breakdown, a context-cache measurement
and a CUDA peak-memory reading. The files are written by :mod:`gmcodec.report`
(:func:`write_report` is importable from here too).

Example::

    results = run_bench("kodak", ["jpeg", "webp"], out_dir="report")
    assert set(results["codecs"]) == {"jpeg", "webp"}
"""

from __future__ import annotations

import datetime as _dt
import io
import resource
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol, TextIO, runtime_checkable

import numpy as np
from PIL import Image, features

from gmcodec import metrics
from gmcodec.constants import DEFAULT_EFFORT
from gmcodec.container import FORMAT_VERSION
from gmcodec.report import machine_info, render_markdown, write_report

__all__ = [
    "AVIF",
    "AVIF_QUALITIES",
    "DEFAULT_CODECS",
    "GMX_QUALITIES",
    "JPEG",
    "JPEG_QUALITIES",
    "WEBP",
    "WEBP_QUALITIES",
    "CodecAdapter",
    "GmxAdapter",
    "PillowAdapter",
    "ProfiledAdapter",
    "avif_available",
    "machine_info",
    "make_adapter",
    "render_markdown",
    "run_bench",
    "write_report",
]

# Quality sweeps; the Pillow ones span about 0.1 (0.2 for JPEG) to 2 bpp on Kodak.
GMX_QUALITIES: tuple[float, ...] = (10, 25, 40, 55, 70, 85, 95)
JPEG_QUALITIES: tuple[float, ...] = (5, 10, 20, 30, 45, 60, 75, 85)
WEBP_QUALITIES: tuple[float, ...] = (0, 5, 15, 30, 50, 70, 85, 92)
AVIF_QUALITIES: tuple[float, ...] = (10, 20, 30, 40, 50, 60, 72, 85)
DEFAULT_CODECS: tuple[str, ...] = ("gmx", "jpeg", "webp", "avif")
TEST_CODEC = "gmx"
"""The codec whose BD-rate against every other curve is reported."""


# --------------------------------------------------------------------------- adapters


@runtime_checkable
class CodecAdapter(Protocol):
    """A codec as the benchmark sees it: bytes out of an RGB image and back."""

    name: str
    default_qualities: tuple[float, ...]

    def encode(self, img: Image.Image, quality: float) -> bytes:
        """Compress an RGB image at ``quality`` (0..100, higher is better)."""
        ...

    def decode(self, data: bytes) -> Image.Image:
        """Reconstruct the image from :meth:`encode`'s bytes."""
        ...

    def settings(self) -> dict[str, Any]:
        """Encoder settings and versions to record in the report."""
        ...


@runtime_checkable
class ProfiledAdapter(CodecAdapter, Protocol):
    """A codec that can also break its time down by stage (gmx)."""

    device: str

    def encode_timed(self, img: Image.Image, quality: float) -> tuple[bytes, dict[str, float]]:
        """:meth:`encode` plus seconds per stage."""
        ...

    def decode_timed(self, data: bytes) -> tuple[Image.Image, dict[str, float]]:
        """:meth:`decode` plus seconds per stage."""
        ...

    def time_entropy_model(self, img: Image.Image, quality: float, use_cache: bool) -> float:
        """Seconds spent computing entropy-model parameters for one image."""
        ...

    def reset_peak_memory(self) -> None:
        """Start a new accelerator peak-memory window."""
        ...

    def peak_memory_bytes(self) -> int | None:
        """Accelerator peak memory since :meth:`reset_peak_memory`, or None on CPU."""
        ...


@dataclass(frozen=True)
class PillowAdapter:
    """A Pillow image format with fixed save options; qualities are rounded to integers."""

    name: str
    format: str
    options: Mapping[str, Any] = field(default_factory=dict)
    default_qualities: tuple[float, ...] = ()

    def encode(self, img: Image.Image, quality: float) -> bytes:
        """Save ``img`` as RGB in this format and return the file bytes."""
        buf = io.BytesIO()
        img.convert("RGB").save(buf, format=self.format, quality=round(quality), **self.options)
        return buf.getvalue()

    def decode(self, data: bytes) -> Image.Image:
        """Open and fully decode the file bytes to RGB."""
        with Image.open(io.BytesIO(data)) as img:
            return img.convert("RGB")

    def settings(self) -> dict[str, Any]:
        """Format, save options, Pillow and library versions."""
        libs = {"JPEG": "jpg", "WEBP": "webp", "AVIF": "avif"}
        lib = libs.get(self.format)
        return {
            "format": self.format,
            "options": dict(self.options),
            "pillow": Image.__version__,
            "library_version": features.version(lib) if lib else None,
        }


JPEG = PillowAdapter(
    "jpeg", "JPEG", MappingProxyType({"subsampling": 0, "optimize": True}), JPEG_QUALITIES
)
WEBP = PillowAdapter("webp", "WEBP", MappingProxyType({"method": 6}), WEBP_QUALITIES)
AVIF = PillowAdapter(
    "avif",
    "AVIF",
    MappingProxyType(
        {"codec": "aom", "speed": 6, "subsampling": "4:4:4", "advanced": {"tune": "psnr"}}
    ),
    AVIF_QUALITIES,
)


def avif_available() -> bool:
    """True when Pillow can write AVIF with libaom."""
    if not features.check("avif"):
        return False
    from PIL import AvifImagePlugin

    return bool(AvifImagePlugin._avif.encoder_codec_available("aom"))


class GmxAdapter:
    """Wraps :class:`gmcodec.codec.Codec`; synchronises CUDA so wall-clock timing is exact."""

    name = "gmx"

    def __init__(
        self, codec: Any, qualities: tuple[float, ...] = GMX_QUALITIES, effort: int = DEFAULT_EFFORT
    ) -> None:
        self.codec = codec
        self.default_qualities = qualities
        self.effort = effort

    @classmethod
    def load(cls, device: str = "auto", effort: int = DEFAULT_EFFORT) -> GmxAdapter:
        """Load the default gmx model on ``device`` ("auto", "cpu" or "cuda")."""
        from gmcodec.codec import Codec

        return cls(Codec.load(device=device), effort=effort)

    @property
    def device(self) -> str:
        """The torch device the model runs on, as a string."""
        return str(self.codec.device)

    def _on_cuda(self) -> bool:
        return self.codec.device.type == "cuda"

    def _sync(self) -> None:
        if self._on_cuda():
            import torch

            torch.cuda.synchronize(self.codec.device)

    def encode(self, img: Image.Image, quality: float) -> bytes:
        """Encode with all queued device work finished before and after."""
        self._sync()
        data = self.codec.encode(img, quality, self.effort)
        self._sync()
        return data

    def decode(self, data: bytes) -> Image.Image:
        """Decode with all queued device work finished before and after."""
        self._sync()
        img = self.codec.decode(data)
        self._sync()
        return img

    def encode_timed(self, img: Image.Image, quality: float) -> tuple[bytes, dict[str, float]]:
        """The codec's per-stage encode timing."""
        self._sync()
        return self.codec.encode_timed(img, quality, effort=self.effort)

    def decode_timed(self, data: bytes) -> tuple[Image.Image, dict[str, float]]:
        """The codec's per-stage decode timing."""
        self._sync()
        return self.codec.decode_timed(data)

    def time_entropy_model(self, img: Image.Image, quality: float, use_cache: bool) -> float:
        """Seconds of GroupedMixer parameter computation, with or without the context cache."""
        self._sync()
        return float(self.codec.time_entropy_model(img, quality, use_cache=use_cache))

    def reset_peak_memory(self) -> None:
        """Reset torch's CUDA peak-memory counter (no-op on CPU)."""
        if self._on_cuda():
            import torch

            torch.cuda.reset_peak_memory_stats(self.codec.device)

    def peak_memory_bytes(self) -> int | None:
        """torch.cuda.max_memory_allocated, or None on CPU."""
        if not self._on_cuda():
            return None
        import torch

        return int(torch.cuda.max_memory_allocated(self.codec.device))

    def settings(self) -> dict[str, Any]:
        """Model id, device, encoder effort and the container format the files are written in."""
        model_id = getattr(self.codec, "model_id", None)
        fmt = ".".join(map(str, FORMAT_VERSION))
        return {"model_id": model_id, "device": self.device, "effort": self.effort, "format": fmt}


def make_adapter(name: str, device: str = "auto", effort: int = DEFAULT_EFFORT) -> CodecAdapter:
    """The adapter for a codec name: "gmx", "jpeg", "webp" or "avif" (effort: gmx's)."""
    if name == "gmx":
        return GmxAdapter.load(device, effort)
    if name == "avif" and not avif_available():
        raise ValueError("codec 'avif' needs a Pillow built with libavif and libaom")
    builtin = {a.name: a for a in (JPEG, WEBP, AVIF)}
    if name not in builtin:
        raise ValueError(f"unknown codec {name!r}; choose from gmx, {', '.join(builtin)}")
    return builtin[name]


# --------------------------------------------------------------------------- progress


class _Progress:
    """A one-line text progress bar (disabled when ``stream`` is None)."""

    def __init__(self, total: int, stream: TextIO | None, width: int = 28) -> None:
        self.total, self.done, self.stream, self.width = max(total, 1), 0, stream, width
        self.start = time.perf_counter()

    def step(self, label: str) -> None:
        """Count one unit of work and redraw."""
        self.done += 1
        if self.stream is None:
            return
        filled = self.width * self.done // self.total
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.perf_counter() - self.start
        line = f"\r[{bar}] {self.done}/{self.total} {elapsed:6.1f}s {label[:40]:<40}"
        self.stream.write(line)
        self.stream.flush()

    def close(self) -> None:
        """End the line."""
        if self.stream is not None:
            self.stream.write("\n")
            self.stream.flush()


# --------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class _Image:
    name: str
    img: Image.Image
    pixels: np.ndarray


@dataclass(frozen=True)
class ImageResult:
    """One image coded at one quality."""

    image: str
    quality: float
    bytes: int
    bpp: float
    psnr: float
    ms_ssim: float | None
    encode_s: float
    decode_s: float


def _load_images(image_dir: str | Path) -> list[_Image]:
    """Every ``*.png`` in ``image_dir`` (sorted by name) as 8-bit RGB."""
    paths = sorted(p for p in Path(image_dir).iterdir() if p.suffix.lower() == ".png")
    if not paths:
        raise FileNotFoundError(f"no PNG images in {image_dir}")
    images = []
    for path in paths:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
        images.append(_Image(path.name, rgb, np.asarray(rgb)))
    return images


def measure(adapter: CodecAdapter, image: _Image, quality: float) -> ImageResult:
    """Encode, decode and score one image."""
    t0 = time.perf_counter()
    data = adapter.encode(image.img, quality)
    t1 = time.perf_counter()
    out = adapter.decode(data)
    t2 = time.perf_counter()
    pixels = np.asarray(out.convert("RGB"))
    if pixels.shape != image.pixels.shape:
        raise ValueError(f"{adapter.name} decoded {image.name} to shape {pixels.shape}")
    height, width = pixels.shape[:2]
    return ImageResult(
        image=image.name,
        quality=quality,
        bytes=len(data),
        bpp=8.0 * len(data) / (width * height),
        psnr=metrics.psnr(image.pixels, pixels),
        ms_ssim=metrics.ms_ssim(image.pixels, pixels),
        encode_s=t1 - t0,
        decode_s=t2 - t1,
    )


_POINT_KEYS = ("bpp", "psnr", "ms_ssim", "encode_s", "decode_s", "bytes")
"""The per-image fields that a curve point averages."""


def _mean_point(quality: float, rows: Sequence[ImageResult]) -> dict[str, Any]:
    """One curve point: every metric averaged over images (MS-SSIM over those that have it)."""
    means = {key: metrics.mean_or_none(getattr(r, key) for r in rows) for key in _POINT_KEYS}
    return {"quality": quality, **means}


def _max_rss_mb() -> float:
    """Peak resident set size of this process so far, MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _warm_up(adapter: CodecAdapter, image: _Image, qualities: Sequence[float]) -> None:
    """One untimed encode/decode so lazy initialisation is not billed to the first image."""
    adapter.decode(adapter.encode(image.img, qualities[len(qualities) // 2]))


def bench_codec(
    adapter: CodecAdapter,
    images: Sequence[_Image],
    qualities: Sequence[float],
    progress: _Progress,
) -> dict[str, Any]:
    """Curve points, per-image rows and memory of one codec over all images and qualities."""
    profiled = isinstance(adapter, ProfiledAdapter)
    if profiled:
        adapter.reset_peak_memory()
    _warm_up(adapter, images[0], qualities)
    points, rows = [], []
    for q in qualities:
        per_q = []
        for image in images:
            per_q.append(measure(adapter, image, q))
            progress.step(f"{adapter.name} q={q:g} {image.name}")
        points.append(_mean_point(q, per_q))
        rows.extend(asdict(r) for r in per_q)
    cuda = adapter.peak_memory_bytes() if profiled else None
    memory = {"max_rss_mb": _max_rss_mb(), "cuda_peak_mb": None if cuda is None else cuda / 2**20}
    return {"points": points, "per_image": rows, "memory": memory}


def _mean_dicts(dicts: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Key-wise mean of stage-time dictionaries (a missing key counts as zero)."""
    keys = sorted({k for d in dicts for k in d})
    return {k: float(np.mean([d.get(k, 0.0) for d in dicts])) for k in keys}


def profile_stages(
    adapter: ProfiledAdapter, images: Sequence[_Image], quality: float, progress: _Progress
) -> dict[str, Any]:
    """Mean seconds per image of each encode and decode stage at one quality."""
    adapter.decode_timed(adapter.encode_timed(images[0].img, quality)[0])
    enc, dec = [], []
    for image in images:
        data, enc_stages = adapter.encode_timed(image.img, quality)
        dec.append(adapter.decode_timed(data)[1])
        enc.append(enc_stages)
        progress.step(f"{adapter.name} stages {image.name}")
    return {"quality": quality, "encode": _mean_dicts(enc), "decode": _mean_dicts(dec)}


def profile_context_cache(
    adapter: ProfiledAdapter, images: Sequence[_Image], quality: float, progress: _Progress
) -> dict[str, Any]:
    """Mean entropy-model seconds per image with and without the context cache."""
    for use_cache in (True, False):
        adapter.time_entropy_model(images[0].img, quality, use_cache=use_cache)
    with_s, without_s = [], []
    for image in images:
        with_s.append(adapter.time_entropy_model(image.img, quality, use_cache=True))
        without_s.append(adapter.time_entropy_model(image.img, quality, use_cache=False))
        progress.step(f"{adapter.name} cache {image.name}")
    w, wo = float(np.mean(with_s)), float(np.mean(without_s))
    return {"quality": quality, "with_s": w, "without_s": wo, "speedup": wo / w if w else None}


# --------------------------------------------------------------------------- BD-rates


@dataclass(frozen=True)
class _Curve:
    bpp: list[float]
    psnr: list[float]
    ms_ssim: list[float] | None


def _codec_curve(points: Sequence[Mapping[str, Any]]) -> _Curve:
    """The (bpp, PSNR, MS-SSIM) curve of measured points; MS-SSIM only if every point has it."""
    msssim = [p["ms_ssim"] for p in points]
    return _Curve(
        [p["bpp"] for p in points],
        [p["psnr"] for p in points],
        None if any(v is None for v in msssim) else msssim,
    )


def _safe_bd_rate(anchor: _Curve, test: _Curve, on_msssim: bool) -> float | None:
    """BD-rate of ``test`` vs ``anchor`` (on MS-SSIM dB if ``on_msssim``); None if undefined."""
    if on_msssim:
        if anchor.ms_ssim is None or test.ms_ssim is None:
            return None
        a_dist = [metrics.msssim_db(v) for v in anchor.ms_ssim]
        t_dist = [metrics.msssim_db(v) for v in test.ms_ssim]
    else:
        a_dist, t_dist = anchor.psnr, test.psnr
    try:
        return metrics.bd_rate(anchor.bpp, a_dist, test.bpp, t_dist)
    except ValueError:
        return None


def bd_rates(
    curves: Mapping[str, _Curve], test: str, on_msssim: bool = False
) -> dict[str, float | None]:
    """BD-rate (percent) of curve ``test`` against every other curve."""
    if test not in curves:
        return {}
    return {
        name: _safe_bd_rate(curve, curves[test], on_msssim)
        for name, curve in curves.items()
        if name != test
    }


def _anchor_entry(anchor: metrics.Anchor) -> dict[str, Any]:
    """An anchor as recorded in results.json."""
    return {
        "name": anchor.name,
        "description": anchor.description,
        "file": Path(anchor.path).name,
        "bpp": list(anchor.bpp),
        "psnr": list(anchor.psnr),
        "ms_ssim": None if anchor.ms_ssim is None else list(anchor.ms_ssim),
    }


def _all_curves(
    codecs: Mapping[str, Sequence[Mapping[str, Any]]], anchors: Mapping[str, Mapping[str, Any]]
) -> dict[str, _Curve]:
    """Measured codecs by name, then anchors keyed ``anchor:<file stem>``."""
    curves = {name: _codec_curve(points) for name, points in codecs.items()}
    for key, a in anchors.items():
        curves[f"anchor:{key}"] = _Curve(a["bpp"], a["psnr"], a["ms_ssim"])
    return curves


# --------------------------------------------------------------------------- run


def _resolve(codecs: Sequence[str | CodecAdapter], device: str, effort: int) -> list[CodecAdapter]:
    """Adapters for codec names (adapters pass through); names must be unique."""
    adapters = [make_adapter(c, device, effort) if isinstance(c, str) else c for c in codecs]
    names = [a.name for a in adapters]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate codec names: {names}")
    return adapters


def _qualities(
    adapters: Sequence[CodecAdapter], given: Mapping[str, Sequence[float]]
) -> dict[str, tuple[float, ...]]:
    """Quality list per codec: ``given`` where set, else the adapter's defaults."""
    unknown = set(given) - {a.name for a in adapters}
    if unknown:
        raise ValueError(f"qualities given for codecs not benchmarked: {sorted(unknown)}")
    out = {a.name: tuple(given.get(a.name, a.default_qualities)) for a in adapters}
    empty = [name for name, qs in out.items() if not qs]
    if empty:
        raise ValueError(f"no qualities for codecs {empty}")
    return out


def _profile_count(adapters: Sequence[CodecAdapter], test: str, n_profile: int) -> int:
    """Progress units of the stage and cache passes."""
    profiled = any(a.name == test and isinstance(a, ProfiledAdapter) for a in adapters)
    return 2 * n_profile if profiled else 0


def _profile_test_codec(
    adapters: Sequence[CodecAdapter],
    test: str,
    images: Sequence[_Image],
    quality_of: Mapping[str, Sequence[float]],
    progress: _Progress,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Stage breakdown and context-cache timing of the test codec, at its middle quality."""
    adapter = next((a for a in adapters if a.name == test), None)
    if not isinstance(adapter, ProfiledAdapter):
        return None, None
    qs = quality_of[test]
    quality = qs[len(qs) // 2]
    stages = profile_stages(adapter, images, quality, progress)
    return stages, profile_context_cache(adapter, images, quality, progress)


def _device_of(adapters: Sequence[CodecAdapter]) -> str:
    """The accelerator device of the first profiled adapter, else "cpu"."""
    return next((a.device for a in adapters if isinstance(a, ProfiledAdapter)), "cpu")


def run_bench(
    image_dir: str | Path,
    codecs: Sequence[str | CodecAdapter] = DEFAULT_CODECS,
    qualities: Mapping[str, Sequence[float]] | None = None,
    device: str = "auto",
    anchors_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
    *,
    test_codec: str = TEST_CODEC,
    profile_images: int | None = None,
    command: str | None = None,
    effort: int = DEFAULT_EFFORT,
) -> dict[str, Any]:
    """Benchmark ``codecs`` on every PNG of ``image_dir``; write a report if ``out_dir`` is set.

    Args:
        codecs: codec names (see :func:`make_adapter`) or adapter objects.
        qualities: per-codec quality lists; missing codecs use their default qualities.
        device: torch device for gmx ("auto", "cpu", "cuda").
        anchors_dir: directory of published-curve JSON files (see :mod:`gmcodec.metrics`).
        progress: draw a progress bar on stderr.
        test_codec: codec whose BD-rate against every other curve is computed.
        profile_images: use only the first N images for the stage and cache passes.
        command: command line recorded in the report (default: ``sys.argv``).
        effort: gmx's encoder effort (``gmx encode -e``), when gmx is given by name.

    Returns:
        The results (plain Python data; :func:`write_report` maps non-finite floats to null).
    """
    adapters = _resolve(codecs, device, effort)
    quality_of = _qualities(adapters, qualities or {})
    images = _load_images(image_dir)
    anchors = metrics.load_anchors(anchors_dir) if anchors_dir is not None else []
    profile_set = images[:profile_images] if profile_images else images
    total = sum(len(q) for q in quality_of.values()) * len(images)
    bar = _Progress(
        total + _profile_count(adapters, test_codec, len(profile_set)),
        sys.stderr if progress else None,
    )
    runs = {a.name: bench_codec(a, images, quality_of[a.name], bar) for a in adapters}
    stages, cache = _profile_test_codec(adapters, test_codec, profile_set, quality_of, bar)
    bar.close()
    results = _assemble(adapters, images, anchors, runs, stages, cache, test_codec)
    results["image_dir"] = str(image_dir)
    results["command"] = command if command is not None else shlex.join(sys.argv)
    if out_dir is not None:
        write_report(results, out_dir)
    return results


def _assemble(
    adapters: Sequence[CodecAdapter],
    images: Sequence[_Image],
    anchors: Sequence[metrics.Anchor],
    runs: Mapping[str, Mapping[str, Any]],
    stages: dict[str, Any] | None,
    cache: dict[str, Any] | None,
    test: str,
) -> dict[str, Any]:
    """The results dictionary from the measured runs."""
    codecs = {name: run["points"] for name, run in runs.items()}
    anchor_entries = {a.key: _anchor_entry(a) for a in anchors}
    curves = _all_curves(codecs, anchor_entries)
    return {
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "test_codec": test,
        "device": _device_of(adapters),
        "images": [{"name": i.name, "width": i.img.width, "height": i.img.height} for i in images],
        "machine": machine_info(),
        "codecs": codecs,
        "settings": {a.name: a.settings() for a in adapters},
        "memory": {name: run["memory"] for name, run in runs.items()},
        "bd_rate_vs": bd_rates(curves, test),
        "bd_rate_msssim_vs": bd_rates(curves, test, on_msssim=True),
        "context_cache": cache,
        "stages": stages,
        "anchors": anchor_entries,
        "per_image": {name: run["per_image"] for name, run in runs.items()},
    }
