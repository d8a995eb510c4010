"""Speed and loss of training runs, from the JSON lines ``gmcodec.train`` prints.

Usage: python scripts/run_stats.py runs/cpu12.log [runs/cpu12c.log ...]

Per log: the step range, the median seconds per step over its logged intervals (100 steps
each, shorter at checkpoints; robust to a few intervals slowed by other jobs), the time
lost to slowed intervals (those over ``SLOW`` times the median pace, counted beyond the
median: other jobs sharing the CPU, SIGSTOP pauses), the training loss and MSE averaged over
fifths of the log (the MSE of the first and last fifth shown) and the mean bpp.
docs/TRAINING.md's per-run speeds and losses come from here.
"""

from __future__ import annotations

import json
import statistics
import sys
from itertools import pairwise
from pathlib import Path

SLOW = 2.0
"""An interval slower than this many times the median pace counts as slowed."""


def entries(path: str) -> list[dict]:
    """The interval records of one training log (lines starting with ``{"step"``)."""
    lines = Path(path).read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith('{"step"')]


def stats(log: list[dict]) -> dict:
    """Step range, median s/step, seconds lost to slowed intervals, loss by fifths,
    first/last-fifth MSE and mean bpp of a log."""
    spans = [(b["elapsed_s"] - a["elapsed_s"], b["step"] - a["step"]) for a, b in pairwise(log)]
    pace = [dt / n for dt, n in spans]
    median = statistics.median(pace) if pace else float("nan")
    k = max(1, len(log) // 5)
    fifths = [log[i * k : (i + 1) * k] for i in range(min(5, len(log)))]
    return {
        "steps": (log[0]["step"], log[-1]["step"]),
        "median_s_per_step": median,
        "slowed_s": sum(dt - n * median for dt, n in spans if dt > SLOW * n * median),
        "loss_fifths": [statistics.mean(e["loss"] for e in part) for part in fifths],
        "mse": tuple(statistics.mean(e["mse"] for e in part) for part in (fifths[0], fifths[-1])),
        "bpp": statistics.mean(e["bpp"] for e in log),
    }


def main(paths: list[str]) -> None:
    for path in paths:
        s = stats(entries(path))
        print(
            f"{path}: steps {s['steps'][0]}..{s['steps'][1]}, "
            f"median {s['median_s_per_step']:.3f} s/step, "
            f"{s['slowed_s'] / 60:.1f} min lost to slowed intervals, loss by fifths "
            + " / ".join(f"{v:.2f}" for v in s["loss_fifths"])
            + f", MSE {s['mse'][0]:.5f} -> {s['mse'][1]:.5f}, mean bpp {s['bpp']:.2f}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
