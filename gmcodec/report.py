"""The benchmark report: ``results.json``, ``REPORT.md`` and the ``rd.png`` plot.

:func:`gmcodec.bench.run_bench` measures; this module only renders what it measured::

    results = run_bench("kodak", ["jpeg", "webp"])
    paths = write_report(results, "report")      # {"json": ..., "md": ..., "png": ...}
    assert paths["md"].read_text().startswith("# gmx benchmark")

:func:`machine_info` describes the machine for the report; torch is imported only if it is
installed, to record its version and the GPU.
"""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gmcodec.metrics import mean_or_none

__all__ = ["machine_info", "plot_rd", "render_markdown", "write_report"]


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
        settings = results.get("settings", {}).get(name) or {}
        note = ", ".join(f"{k} {v}" for k, v in settings.items() if v is not None)
        parts.append(
            f"### {name}\n\n" + (f"Settings: {note}.\n\n" if note else "") + _table(headers, rows)
        )
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
                _fmt(mean_or_none(p["encode_s"] for p in points), 4),
                _fmt(mean_or_none(p["decode_s"] for p in points), 4),
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
