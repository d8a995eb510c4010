"""Render the headline numbers of README.md and docs/BENCHMARKS.md from docs/bench-history.json.

Usage: python scripts/render_docs.py [--check]

Each generated block sits between ``<!-- gen:NAME -->`` and ``<!-- /gen:NAME -->`` lines; the
text around the blocks is hand-written and left alone. The blocks quote the newest entry of
the history (the shipped model's Kodak report, `scripts/bench_history.py`) and, for the table,
every entry. `scripts/publish_bench.py` runs this after each publish; --check only reports
whether the committed docs match the history (exit 1 if not).
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import bench_history
import training_chain

ROOT = bench_history.ROOT
Entry = dict[str, Any]
NAMES = {"jpeg": "Pillow JPEG 4:4:4", "webp": "WebP", "avif": "AVIF"}


def _wrap(text: str, indent: str = "") -> str:
    """`text` wrapped at 98 columns, continuation lines indented by `indent`."""
    return textwrap.fill(
        text, 98, subsequent_indent=indent, break_on_hyphens=False, break_long_words=False
    )


def _pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:+.{digits}f}%"


def _bits(key: str, bd: float) -> str:
    """BD-rate in words: "46.7% fewer bits than X" or "1.19x the bits of X"."""
    if bd < 0:
        return f"{-bd:.1f}% fewer bits than {NAMES[key]}"
    return f"{1 + bd / 100:.2f}x the bits of {NAMES[key]}"


def _cpu(entry: Entry) -> str:
    """The machine a report timed: its GPU when it ran on one, else its CPU."""
    return (entry["gpu"] or entry["cpu"] or "unknown CPU").replace("(R)", "")


def status(history: list[Entry]) -> str:
    """README's status sentences: what the shipped model beats and how fast it codes."""
    e = history[-1]
    verdict = "**AVIF is beaten.**" if e["bd"]["avif"] < 0 else "AVIF is not beaten yet."
    return _wrap(
        f"On the 24 Kodak images (PSNR-RGB, BD-rate) the shipped weights (`{e['model']}`) need "
        f"**{_bits('jpeg', e['bd']['jpeg'])}**, {_bits('webp', e['bd']['webp'])} and "
        f"{_bits('avif', e['bd']['avif'])}: {verdict} Speed on a 2-core {_cpu(e)}: "
        f"~{e['encode_s']:.2f} s to encode and ~{e['decode_s']:.2f} s to decode a 768x512 image "
        "in-process (`docs/BENCHMARKS.md`)."
    )


def weights(history: list[Entry]) -> str:
    """BENCHMARKS' weights line: the model id and its sha256 from weights/manifest.json."""
    model = history[-1]["model"]
    manifest = json.loads((ROOT / "weights" / "manifest.json").read_text())
    sha = manifest["models"].get(model, {}).get("sha256", "not in weights/")
    return f"Weights: `{model}` (sha256 `{sha[:8]}...`), the default model in `weights/`."


def _top(e: Entry) -> str:
    t, near = e["top"], e["jpeg_near_top"]
    jpeg = " and ".join(
        f"{p['bpp']:.3f} / {p['psnr']:.2f} (quality {p['quality']:g})" for p in near
    )
    return (
        f"gmx at quality {t['quality']:g} gives {t['bpp']:.3f} bpp / {t['psnr']:.2f} dB; the JPEG "
        f"points around that rate are {jpeg}."
    )


def _targets(e: Entry) -> str:
    """Whether the CPU targets hold: < 1 s each way (issue 2) and < 2 s to decode (issue 3)."""
    both = max(e["encode_s"], e["decode_s"]) < 1
    return (
        f"The < 1 s target of issue 2 is {'met' if both else 'missed'}, the < 2 s decode "
        f"target of issue 3 {'met' if e['decode_s'] < 2 else 'missed'}."
    )


def _rd_bullet(e: Entry) -> str:
    bd = e["bd"]
    return (
        f"- **Rate-distortion (`{e['model']}`, report below, all 24 Kodak images, PSNR-RGB):** "
        f"BD-rate **{_pct(bd['jpeg'], 2)}** vs Pillow JPEG 4:4:4 (optimize), "
        f"{_pct(bd['webp'])} vs WebP and **{_pct(bd['avif'])}** vs Pillow AVIF (libaom speed 6, "
        f"4:4:4, tune=psnr); {_pct(bd['bpg'])} vs the published BPG curve and {_pct(bd['vtm'])} "
        f"vs the published VTM curve. MS-SSIM BD-rate vs JPEG: {_pct(e['bd_msssim_jpeg'])}. "
        + _top(e)
    )


def _timing_bullet(e: Entry) -> str:
    return (
        f"- **CPU timings (report below):** **encode {e['encode_s']:.2f} s, decode "
        f"{e['decode_s']:.2f} s per 768x512 image** in-process on this 2-core {_cpu(e)}, mean "
        f"over the report's qualities; g_a took {e['transforms_s']:.3f} s of each encode at "
        f"quality 55. {_targets(e)} Earlier models' timings: History by model, below."
    )


def _cache_bullet(e: Entry) -> str:
    with_s, without_s = e["cache_s"]
    return (
        f"- **Context cache:** the GroupedMixer (float64) takes {with_s:.3f} s per Kodak "
        f"image with the cache and {without_s:.3f} s without (recomputing slots 0..g for every "
        f"group): **{without_s / with_s:.1f}x** on this CPU."
    )


def summary(history: list[Entry]) -> str:
    """BENCHMARKS' summary bullets for rate-distortion, CPU timings and the context cache."""
    bullets = (make(history[-1]) for make in (_rd_bullet, _timing_bullet, _cache_bullet))
    return "\n".join(_wrap(bullet, "  ") for bullet in bullets)


def _range_rows(e: Entry) -> list[str]:
    return [
        f"| {p['quality']:g} | {p['bpp']:.4f} | {p['psnr']:.2f} |" for p in e["range"]["points"]
    ]


def range_table(history: list[Entry]) -> str:
    """The quality-range section's command and table, from the newest entry that has one."""
    e = next(e for e in reversed(history) if e["range"])
    return "\n".join(
        [
            f"Measured with `{e['model']}`:",
            "",
            "```",
            e["range"]["command"],
            "```",
            "",
            "| quality | bpp | PSNR dB |",
            "| --- | --- | --- |",
            *_range_rows(e),
        ]
    )


def knob(history: list[Entry]) -> str:
    """BENCHMARKS' summary bullet for the span of the quality knob."""
    e = next(e for e in reversed(history) if e["range"])
    lo, hi = e["range"]["points"]
    want = "{:g}-{:g} bpp".format(*bench_history.KNOB_SPAN)
    misses = bench_history.knob_misses(e["range"])
    verdict = (
        f"SHORT of issue 3's {want}: {'; '.join(misses.values())}"
        if misses
        else f"covering issue 3's {want}"
    )
    return _wrap(
        f"- **Quality knob:** quality {lo['quality']:g}..{hi['quality']:g} spans "
        f"**{lo['bpp']:.4f}-{hi['bpp']:.4f} bpp** on Kodak (`{e['model']}`, Range of the "
        f"quality knob), {verdict}; the report's sweep is "
        f"{'' if history[-1]['monotonic'] else 'NOT '}monotonic (bpp rises at every step).",
        "  ",
    )


def _cell(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def _row(e: Entry) -> str:
    cache = e["cache_s"] or [None, None]
    cells = [
        f"`{e['model']}`",
        e["format"] or "–",
        _cpu(e),
        e["created"],
        *(_pct(e["bd"][k], 2) for k in ("jpeg", "webp", "avif", "vtm")),
        f"{e['encode_s']:.2f} / {e['decode_s']:.2f}",
        _cell(e["transforms_s"], ".3f"),
        f"{_cell(cache[0], '.3f')} / {_cell(cache[1], '.3f')}",
    ]
    return "| " + " | ".join(cells) + " |"


def history_table(history: list[Entry]) -> str:
    """One row per published report: BD-rates, timings and the machine they ran on."""
    head = (
        "| model | format | CPU | report | BD vs JPEG | vs WebP | vs AVIF | vs VTM | "
        "encode / decode s | g_a s | cache with / without s |"
    )
    return "\n".join([head, "|" + " --- |" * 11, *(_row(e) for e in history)])


def _chain(history: list[Entry]) -> list[training_chain.Totals]:
    """The chain's running totals; its newest model must be the shipped one."""
    totals = training_chain.cumulative(training_chain.load())
    shipped, published = [t for t in totals if t.model][-1].model, history[-1]["model"]
    if shipped != published:
        raise SystemExit(f"error: the chain ends at {shipped}, the history at {published}")
    return totals


def _cards(gpus: tuple[str, ...]) -> str:
    """The GPUs the chain ran on (one or more), as the training line names them."""
    if len(gpus) == 1:
        return f"one {gpus[0]} GPU"
    return f"{' and '.join(gpus)} GPUs, one at a time"


def _where(t: training_chain.Totals) -> str:
    """Where the chain up to `t` trained: its GPU minutes (if any), then its CPU hours."""
    cpu = f"about {t.cpu_hours:.1f} hours on a 2-core CPU"
    return f"{t.gpu_minutes:g} minutes on {_cards(t.gpus)}, then {cpu}" if t.gpus else cpu


def training(history: list[Entry]) -> str:
    """README's line on how long the shipped weights trained, summed from the chain."""
    chain = _chain(history)
    t = chain[-1]
    return _wrap(
        f"`{t.model}` trained {_where(t)}: {t.steps:,} steps in {len(chain)} "
        "rounds (`docs/training-chain.json`, run log in `docs/TRAINING.md`)."
    )


def _gain_row(
    t: training_chain.Totals, e: Entry, prev: tuple[training_chain.Totals, Entry] | None
) -> str:
    per_hour = "–"
    if prev is not None and t.cpu_hours > prev[0].cpu_hours:
        drop = e["bd"]["avif"] - prev[1]["bd"]["avif"]
        per_hour = f"{drop / (t.cpu_hours - prev[0].cpu_hours):+.2f}"
    cells = [
        f"`{e['model']}`",
        t.run,
        f"{t.steps:,}",
        f"{t.gpu_minutes:g}",
        f"{t.cpu_hours:.1f}",
        _pct(e["bd"]["avif"]),
        _pct(e["bd"]["vtm"]),
        per_hour,
    ]
    return "| " + " | ".join(cells) + " |"


def chain_table(history: list[Entry]) -> str:
    """TRAINING's table of RD against training spent: each published model at its chain totals."""
    by_model = {t.model: t for t in _chain(history)}
    missing = [e["model"] for e in history if e["model"] not in by_model]
    if missing:
        raise SystemExit(f"error: {', '.join(missing)} published but not in the training chain")
    rows, prev = [], None
    for e in history:
        t = by_model[e["model"]]
        rows.append(_gain_row(t, e, prev))
        prev = (t, e)
    head = (
        "| model | round | steps | GPU min | CPU h | BD vs Pillow AVIF | vs VTM | "
        "AVIF points per CPU h |"
    )
    return "\n".join([head, "|" + " --- |" * 8, *rows])


BLOCKS: dict[str, dict[str, Callable[[list[Entry]], str]]] = {
    "README.md": {"training": training, "status": status},
    "docs/TRAINING.md": {"chain": chain_table},
    "docs/BENCHMARKS.md": {
        "weights": weights,
        "summary": summary,
        "knob": knob,
        "range": range_table,
        "history": history_table,
    },
}


def fill(page: str, name: str, text: str) -> str:
    """`page` with the block `name` replaced by `text`; the block must occur exactly once."""
    pattern = re.compile(rf"(<!-- gen:{name} -->\n)(?:.*?\n)?(<!-- /gen:{name} -->)", re.S)
    if len(pattern.findall(page)) != 1:
        raise SystemExit(f"error: need exactly one <!-- gen:{name} --> ... <!-- /gen:{name} -->")
    return pattern.sub(lambda m: m.group(1) + text + "\n" + m.group(2), page)


def render(history: list[Entry]) -> dict[str, str]:
    """Each file of BLOCKS with its generated blocks filled in from `history`."""
    pages = {}
    for rel, blocks in BLOCKS.items():
        page = (ROOT / rel).read_text()
        for name, make in blocks.items():
            page = fill(page, name, make(history))
        pages[rel] = page
    return pages


def main(argv: list[str]) -> int:
    history = bench_history.load()
    if not history:
        raise SystemExit(f"error: {bench_history.HISTORY} is missing or empty")
    pages = render(history)
    stale = [rel for rel, page in pages.items() if (ROOT / rel).read_text() != page]
    if "--check" in argv:
        print("stale: " + ", ".join(stale) if stale else "docs match the history")
        return 1 if stale else 0
    for rel in stale:
        (ROOT / rel).write_text(pages[rel])
    print(f"rendered {len(BLOCKS)} files; changed: {', '.join(stale) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
