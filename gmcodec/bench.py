"""Rate-distortion and speed benchmark of gmx against Pillow's JPEG, WebP and AVIF.

Every PNG of a directory is encoded and decoded at several qualities by each codec; rates
come from the real encoded sizes, quality is PSNR-RGB and MS-SSIM on the 8-bit RGB image::

    image dir --> [adapter.encode] --bytes--> [adapter.decode] --> PSNR, MS-SSIM, bpp, seconds
                                                                      |
    anchors/*.json ----------------------------------------------> BD-rates --> results.json
                                                                                REPORT.md, rd.png

Codecs are plugged in through :class:`CodecAdapter`; an adapter that also satisfies
:class:`ProfiledAdapter` (gmx) gets a per-stage time breakdown, a context-cache measurement
and a CUDA peak-memory reading.

Example::

    results = run_bench("kodak", ["jpeg", "webp"], out_dir="report")
    assert set(results["codecs"]) == {"jpeg", "webp"}
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import math
import os
import platform
import resource
import shlex
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol, TextIO, runtime_checkable

import numpy as np
from PIL import Image, features

from gmcodec import metrics

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

    def __init__(self, codec: Any, qualities: tuple[float, ...] = GMX_QUALITIES) -> None:
        self.codec = codec
        self.default_qualities = qualities

    @classmethod
    def load(cls, device: str = "auto") -> GmxAdapter:
        """Load the default gmx model on ``device`` ("auto", "cpu" or "cuda")."""
        from gmcodec.codec import Codec

        return cls(Codec.load(device=device))

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
        data = self.codec.encode(img, quality)
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
        return self.codec.encode_timed(img, quality)

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
        """Model id and device."""
        return {"model_id": getattr(self.codec, "model_id", None), "device": self.device}


def make_adapter(name: str, device: str = "auto") -> CodecAdapter:
    """The adapter for a codec name: "gmx", "jpeg", "webp" or "avif"."""
    if name == "gmx":
        return GmxAdapter.load(device)
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


def _mean(values: Iterable[float | None]) -> float | None:
    """Mean of the non-None values, or None when there are none."""
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def _mean_point(quality: float, rows: Sequence[ImageResult]) -> dict[str, Any]:
    """One curve point: every metric averaged over images (MS-SSIM over those that have it)."""
    return {
        "quality": quality,
        "bpp": _mean(r.bpp for r in rows),
        "psnr": _mean(r.psnr for r in rows),
        "ms_ssim": _mean(r.ms_ssim for r in rows),
        "encode_s": _mean(r.encode_s for r in rows),
        "decode_s": _mean(r.decode_s for r in rows),
        "bytes": _mean(r.bytes for r in rows),
    }


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


# --------------------------------------------------------------------------- machine


def _cpu_model() -> str:
    """CPU model name from /proc/cpuinfo, else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """CPU, core counts, Python/torch versions and GPU name of this machine."""
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "pillow": Image.__version__,
        "torch": None,
        "torch_threads": None,
        "gpu": None,
    }
    try:
        import torch
    except ImportError:
        return info
    info["torch"], info["torch_threads"] = torch.__version__, torch.get_num_threads()
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


# --------------------------------------------------------------------------- run


def _resolve(codecs: Sequence[str | CodecAdapter], device: str) -> list[CodecAdapter]:
    """Adapters for codec names (adapters pass through); names must be unique."""
    adapters = [make_adapter(c, device) if isinstance(c, str) else c for c in codecs]
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

    Returns:
        The results (plain Python data; :func:`write_report` maps non-finite floats to null).
    """
    adapters = _resolve(codecs, device)
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


# --------------------------------------------------------------------------- report


def _json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as None and numpy scalars as Python numbers."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_report(results: Mapping[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write ``results.json``, ``REPORT.md`` and ``rd.png`` into ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "md": out / "REPORT.md", "png": out / "rd.png"}
    safe = _json_safe(results)
    paths["json"].write_text(json.dumps(safe, indent=1, allow_nan=False) + "\n")
    paths["md"].write_text(render_markdown(safe))
    plot_rd(safe, paths["png"])
    return paths


def _fmt(value: Any, digits: int = 3) -> str:
    """A table cell: fixed-point floats, a dash for None."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _md_curves(results: Mapping[str, Any]) -> str:
    """One table per codec: its mean rate-distortion curve and timings."""
    parts = ["## Rate-distortion (mean over images)\n"]
    headers = ("quality", "bpp", "PSNR dB", "MS-SSIM", "encode s", "decode s")
    for name, points in results["codecs"].items():
        rows = [
            (
                f"{p['quality']:g}",
                _fmt(p["bpp"], 4),
                _fmt(p["psnr"], 2),
                _fmt(p["ms_ssim"], 4),
                _fmt(p["encode_s"], 4),
                _fmt(p["decode_s"], 4),
            )
            for p in points
        ]
        parts.append(f"### {name}\n\n" + _table(headers, rows))
    return "\n".join(parts)


def _md_bd_rates(results: Mapping[str, Any]) -> str:
    """BD-rates of the test codec against every codec and anchor."""
    test = results["test_codec"]
    psnr_bd, msssim_bd = results["bd_rate_vs"], results["bd_rate_msssim_vs"]
    if not psnr_bd:
        return f"## BD-rate\n\nNo BD-rates: codec {test!r} was not benchmarked.\n"
    rows = [(n, _fmt(v, 2), _fmt(msssim_bd.get(n), 2)) for n, v in psnr_bd.items()]
    note = (
        f"Bjontegaard rate difference of **{test}** against each curve (PCHIP of log-rate, "
        "overlapping quality range); negative = fewer bits. MS-SSIM BD-rate is on MS-SSIM in "
        "dB. A dash means the curves do not overlap or lack the metric.\n\n"
    )
    return "## BD-rate\n\n" + note + _table(("vs", "BD-rate PSNR %", "BD-rate MS-SSIM %"), rows)


def _md_timing(results: Mapping[str, Any]) -> str:
    """Mean encode/decode seconds per image and peak memory, per codec."""
    rows = []
    for name, points in results["codecs"].items():
        mem = results["memory"][name]
        rows.append(
            (
                name,
                _fmt(_mean(p["encode_s"] for p in points), 4),
                _fmt(_mean(p["decode_s"] for p in points), 4),
                _fmt(mem["max_rss_mb"], 0),
                _fmt(mem["cuda_peak_mb"], 0),
            )
        )
    headers = ("codec", "encode s/img", "decode s/img", "peak RSS MiB*", "CUDA peak MiB")
    note = (
        "\nIn-process wall-clock after one warm-up encode/decode per codec, mean over all "
        "qualities and images. *Peak RSS is the process high-water mark after that codec "
        "ran (cumulative, in run order).\n"
    )
    return f"## Timing (device: {results['device']})\n\n" + _table(headers, rows) + note


def _md_profile(results: Mapping[str, Any]) -> str:
    """Context-cache timing and per-stage breakdown of the test codec."""
    cache, stages = results.get("context_cache"), results.get("stages")
    if cache is None and stages is None:
        return "## Profile\n\nNo profile (the test codec does not report stages).\n"
    parts = ["## Profile of " + results["test_codec"] + "\n"]
    if cache is not None:
        rows = [(_fmt(cache["with_s"], 4), _fmt(cache["without_s"], 4), _fmt(cache["speedup"], 2))]
        parts.append(
            f"### Context cache (entropy model, quality {cache['quality']:g}, s/img)\n\n"
            + _table(("with cache", "without cache", "speedup"), rows)
        )
    if stages is not None:
        keys = sorted(set(stages["encode"]) | set(stages["decode"]))
        rows = [
            (k, _fmt(stages["encode"].get(k), 4), _fmt(stages["decode"].get(k), 4)) for k in keys
        ]
        parts.append(
            f"### Stages (quality {stages['quality']:g}, s/img)\n\n"
            + _table(("stage", "encode", "decode"), rows)
        )
    return "\n".join(parts)


def _md_machine(results: Mapping[str, Any]) -> str:
    """Machine description, images and command line."""
    rows = [(k, _fmt(v)) for k, v in results["machine"].items()]
    images = results["images"]
    return (
        "## Machine\n\n"
        + _table(("key", "value"), rows)
        + f"\n## Images\n\n{len(images)} PNG images from `{results.get('image_dir', '?')}`.\n"
        + f"\n## Command\n\n```\n{results.get('command', '')}\n```\n"
    )


def render_markdown(results: Mapping[str, Any]) -> str:
    """REPORT.md text for JSON-safe results."""
    sections = [
        f"# gmx benchmark ({results.get('created', '')})\n\n![rate-distortion](rd.png)\n",
        _md_curves(results),
        _md_bd_rates(results),
        _md_timing(results),
        _md_profile(results),
        _md_machine(results),
    ]
    return "\n".join(sections)


def _finite_xy(bpp: Sequence[Any], psnr: Sequence[Any]) -> tuple[list[float], list[float]]:
    """Points of a curve with both coordinates present, sorted by rate."""
    pairs = sorted(
        (x, y) for x, y in zip(bpp, psnr, strict=True) if x is not None and y is not None
    )
    return [p[0] for p in pairs], [p[1] for p in pairs]


def plot_rd(results: Mapping[str, Any], path: str | Path) -> None:
    """bpp-vs-PSNR plot (900x600 px): measured codecs solid, published anchors dashed."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    measured, strong = [], colormaps["tab10"]
    for i, (name, points) in enumerate(results["codecs"].items()):
        xs, ys = _finite_xy([p["bpp"] for p in points], [p["psnr"] for p in points])
        test = name == results.get("test_codec")
        style = {"lw": 2.8 if test else 1.8, "ms": 5 if test else 4, "zorder": 4 if test else 3}
        ax.plot(xs, ys, "o-", color="black" if test else strong(i % 10), label=name, **style)
        measured += list(zip(xs, ys, strict=True))
    anchors, muted = results.get("anchors", {}), colormaps["tab20"]
    for i, anchor in enumerate(anchors.values()):
        xs, ys = _finite_xy(anchor["bpp"], anchor["psnr"])
        color = muted((2 * i + 1) % 20 if i < 10 else (2 * i) % 20)
        ax.plot(xs, ys, "--", lw=1.1, color=color, label=anchor["name"], zorder=2)
    _set_limits(ax, measured)
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel("PSNR-RGB (dB)")
    title = f"Rate-distortion, {len(results['images'])} images"
    ax.set_title(title + (" (dashed: published anchors)" if anchors else ""), fontsize=11)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(path)


def _set_limits(ax: Any, points: Sequence[tuple[float, float]]) -> None:
    """Zoom the axes onto the measured points, with a margin."""
    if not points:
        return
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    ax.set_xlim(0.0, max(xs) * 1.05)
    ax.set_ylim(min(ys) - 1.0, max(ys) + 1.0)
