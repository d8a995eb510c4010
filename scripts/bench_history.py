"""Headline numbers of every published Kodak report, one entry per shipped model.

Usage: python scripts/bench_history.py --backfill   (rebuild docs/bench-history.json from git)

`docs/bench-history.json` is a list of entries, oldest model first. Each entry holds what the
docs quote from a `gmx bench` report (results.json): the model id, the container format, the
machine, BD-rates (PSNR-RGB, percent; negative = fewer bits than the reference), mean
encode/decode seconds, the transforms' share g_a (encode) and the context-cache timing, and,
when the quality-range run was published with it, the bpp/PSNR at quality 0 and 100.
`scripts/publish_bench.py` adds the entry of each report it publishes; `--backfill` recovers
the older ones from the git history of docs/bench-results.json.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from gmcodec.metrics import mean_or_none

ROOT = Path(__file__).resolve().parent.parent
HISTORY = ROOT / "docs" / "bench-history.json"
RESULTS = "docs/bench-results.json"
# BD-rate keys of results.json["bd_rate_vs"] and the short names the docs use for them
BD_KEYS = {
    "jpeg": "jpeg",
    "webp": "webp",
    "avif": "avif",
    "bpg": "anchor:bpg_444_x265_ycbcr",
    "vtm": "anchor:vtm",
}
# Reports written before results.json named the container format (sessions 1-18): the format
# each model's report coded with, from docs/CHANGELOG-FORMAT.md (1.1 from session 14 on, the
# float64 entropy parameters; 1.2 from session 15; 2.0 from session 19, which records it).
EARLY_FORMATS = {**{f"gm-small-v{i}": "1.0" for i in range(1, 11)}, "gm-small-v11": "1.1"}
EARLY_FORMATS.update({f"gm-small-v{i}": "1.2" for i in range(12, 16)})


def _point(p: dict[str, Any]) -> dict[str, float]:
    return {"quality": p["quality"], "bpp": p["bpp"], "psnr": p["psnr"]}


def _bracket(rows: list[dict[str, Any]], bpp: float) -> list[dict[str, float]]:
    """The points of `rows` just below and just above `bpp` (those that exist)."""
    below = [p for p in rows if p["bpp"] <= bpp]
    above = [p for p in rows if p["bpp"] > bpp]
    picked = [max(below, key=lambda p: p["bpp"])] if below else []
    picked += [min(above, key=lambda p: p["bpp"])] if above else []
    return [_point(p) for p in picked]


# Issue 3's quality range: quality 0..100 must span at least these bpp on Kodak, monotonic.
KNOB_SPAN = (0.1, 2.0)


def knob_misses(range_run: dict[str, Any]) -> dict[str, str]:
    """The ends ("low", "high") of a `range_of` record that miss KNOB_SPAN, each as a phrase."""
    (lo, hi), (want_lo, want_hi) = range_run["points"], KNOB_SPAN
    misses = {}
    if lo["bpp"] > want_lo:
        misses["low"] = f"quality {lo['quality']:g} gives {lo['bpp']:.4f} bpp, over {want_lo:g}"
    if hi["bpp"] < want_hi:
        misses["high"] = f"quality {hi['quality']:g} gives {hi['bpp']:.4f} bpp, under {want_hi:g}"
    return misses


def range_of(results: dict[str, Any]) -> dict[str, Any]:
    """bpp/PSNR at the lowest and the highest quality of a range run's gmx rows."""
    points = sorted(results["codecs"]["gmx"], key=lambda p: p["quality"])
    lo, hi = points[0], points[-1]
    return {"points": [_point(lo), _point(hi)], "command": results.get("command", "")}


def entry(results: dict[str, Any], range_run: dict[str, Any] | None = None) -> dict[str, Any]:
    """The headline numbers of one report; `range_run` is `range_of` its quality-range run."""
    model = results["settings"]["gmx"]["model_id"]
    rows = results["codecs"]["gmx"]
    cache = results.get("context_cache") or {}
    stages = results.get("stages") or {}
    out: dict[str, Any] = {
        "model": model,
        "format": results["settings"]["gmx"].get("format") or EARLY_FORMATS.get(model),
        "created": results.get("created", "")[:10],
        "cpu": results["machine"].get("cpu"),
        "gpu": results["machine"].get("gpu"),
        "bd": {k: results["bd_rate_vs"].get(v) for k, v in BD_KEYS.items()},
        "bd_msssim_jpeg": (results.get("bd_rate_msssim_vs") or {}).get("jpeg"),
        "encode_s": mean_or_none(p["encode_s"] for p in rows),
        "decode_s": mean_or_none(p["decode_s"] for p in rows),
        "transforms_s": stages.get("encode", {}).get("transforms"),
        "cache_s": [cache["with_s"], cache["without_s"]] if cache else None,
        "monotonic": _rising(rows),
        "top": _point(max(rows, key=lambda p: p["quality"])),
        "jpeg_near_top": _bracket(results["codecs"].get("jpeg", []), max(p["bpp"] for p in rows)),
    }
    out["range"] = range_run
    return out


def load(path: Path = HISTORY) -> list[dict[str, Any]]:
    """The entries in `path`, oldest model first (an empty list if there is no file)."""
    return json.loads(path.read_text()) if path.is_file() else []


def _version(model: str) -> tuple[int, str]:
    match = re.search(r"(\d+)$", model)
    return (int(match.group(1)) if match else -1, model)


def upsert(history: list[dict[str, Any]], new: dict[str, Any]) -> list[dict[str, Any]]:
    """`history` with `new` in place of the entry of the same model, sorted by version."""
    if new["range"] is None:
        old = next((e for e in history if e["model"] == new["model"]), None)
        new = {**new, "range": old["range"] if old else None}
    kept = [e for e in history if e["model"] != new["model"]]
    return sorted([*kept, new], key=lambda e: _version(e["model"]))


def save(history: list[dict[str, Any]], path: Path = HISTORY) -> None:
    path.write_text(json.dumps(history, indent=1) + "\n")


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout


def backfill() -> list[dict[str, Any]]:
    """One entry per model from every committed version of docs/bench-results.json.

    Walks the commits oldest first, so a model published twice keeps its last report.
    """
    history: list[dict[str, Any]] = []
    for commit in reversed(_git("log", "--format=%H", "--", RESULTS).split()):
        try:
            results = json.loads(_git("show", f"{commit}:{RESULTS}"))
        except (subprocess.CalledProcessError, json.JSONDecodeError):
            continue  # the commit that deleted or broke the file
        page = _git("show", f"{commit}:docs/BENCHMARKS.md")
        history = upsert(history, entry(results, _range_from_page(page, results)))
    return history


def _rising(rows: list[dict[str, Any]]) -> bool:
    """Whether bpp rises with every step of quality."""
    bpp = [p["bpp"] for p in sorted(rows, key=lambda p: p["quality"])]
    return all(a < b for a, b in zip(bpp, bpp[1:], strict=False))


def _range_from_page(page: str, results: dict[str, Any]) -> dict[str, Any] | None:
    """The quality-range run as docs/BENCHMARKS.md printed it, if it names this model's run.

    Its section gives the command (whose -o folder ends in the model's version, e.g.
    ``runs/bench-range-v20``) and a table of quality | bpp | PSNR, rounded to 4 and 2 digits.
    """
    tag = results["settings"]["gmx"]["model_id"].rsplit("-", 1)[-1]
    heading = "## Range of the quality knob\n"
    if heading not in page:
        return None
    section = page.split(heading, 1)[1].split("\n## ", 1)[0]
    command = re.search(r"^(gmx bench .*bench-range-" + tag + r" .*)$", section, re.M)
    rows = re.findall(r"^\| (\d+) \| ([\d.]+) \| ([\d.]+) \|$", section, re.M)
    if not command or len(rows) < 2:
        return None
    lo, hi = rows[0], rows[1]
    return {
        "points": [
            {"quality": float(q), "bpp": float(b), "psnr": float(d)} for q, b, d in (lo, hi)
        ],
        "command": command.group(1),
    }


if __name__ == "__main__":
    if sys.argv[1:] != ["--backfill"]:
        raise SystemExit(__doc__)
    entries = backfill()
    save(entries)
    print(f"wrote {len(entries)} entries to {HISTORY}")
