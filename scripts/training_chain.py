"""The training chain behind the shipped weights: GPU minutes, CPU hours and steps, summed.

Usage: python scripts/training_chain.py                         (print the totals per round)
       python scripts/training_chain.py add RUN MODEL --minutes M [M ...] --steps N [N ...]
                                       [--gpu H100]            (append a round that shipped)

`docs/training-chain.json` lists the rounds of the chain, oldest first, each with the minutes
and optimizer steps of its parts (a part per session a round spanned), and each GPU round the
card it ran on (`gpu`, e.g. "H200"). The docs quote the
totals through `scripts/render_docs.py`, so they are sums of this ledger, never sums by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any

from bench_history import ROOT

CHAIN = ROOT / "docs" / "training-chain.json"
FIELDS = {"run", "gpu", "minutes", "steps", "model"}  # a round's keys (gpu: GPU rounds only)


@dataclass(frozen=True)
class Totals:
    """Cumulative training along the chain up to and including one round."""

    run: str
    model: str | None
    steps: int
    gpu_minutes: float
    cpu_hours: float
    gpus: tuple[str, ...]


def load() -> list[dict[str, Any]]:
    """The ledger's rounds, checked (``check``)."""
    return check(json.loads(CHAIN.read_text())["rounds"])


def check(rounds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`rounds`, if a GPU round's card (``gpu``) is a non-empty name, each round's parts are of
    equal count and none is negative. A round without ``gpu`` is a CPU round; a field the
    ledger does not know (e.g. the ``device`` of its old layout) is refused, not ignored."""
    for r in rounds:
        if extra := sorted(set(r) - FIELDS):
            raise ValueError(f"{r['run']}: unknown field(s) {', '.join(extra)}")
        if "gpu" in r and not (isinstance(r["gpu"], str) and r["gpu"]):
            raise ValueError(f"{r['run']}: gpu names the card a GPU round ran on, not {r['gpu']!r}")
        if len(r["minutes"]) != len(r["steps"]) or not r["minutes"]:
            raise ValueError(f"{r['run']}: minutes and steps need one entry per part")
        if min(r["minutes"]) < 0 or min(r["steps"]) < 0:
            raise ValueError(f"{r['run']}: negative minutes or steps")
    return rounds


def cumulative(rounds: list[dict[str, Any]]) -> list[Totals]:
    """Running totals after each round: steps, GPU minutes, CPU hours and GPU cards since
    scratch (the cards in order of first use)."""
    out, steps, minutes, gpus = [], 0, {"cpu": 0.0, "gpu": 0.0}, ()
    for r in rounds:
        steps += sum(r["steps"])
        minutes["gpu" if "gpu" in r else "cpu"] += sum(r["minutes"])
        if "gpu" in r and r["gpu"] not in gpus:
            gpus += (r["gpu"],)
        m = minutes["gpu"], minutes["cpu"] / 60
        out.append(Totals(r["run"], r["model"], steps, *m, gpus))
    return out


def add(
    run: str,
    model: str,
    minutes: list[float],
    steps: list[int],
    gpu: str | None = None,
) -> None:
    """Append a round to the ledger; its run and model must be new. A GPU round names its card
    (``gpu``); a round without one is a CPU round."""
    data = json.loads(CHAIN.read_text())
    if any(r["run"] == run or r["model"] == model for r in data["rounds"]):
        raise SystemExit(f"error: {run} or {model} is already in {CHAIN.name}")
    whole = [int(m) if m == int(m) else m for m in minutes]
    card = {"gpu": gpu} if gpu else {}
    data["rounds"].append({"run": run, **card, "minutes": whole, "steps": steps, "model": model})
    check(data["rounds"])
    CHAIN.write_text(dumps(data))


def dumps(data: dict[str, Any]) -> str:
    """The ledger as JSON text, one line per round (the layout the committed file keeps)."""
    lines = ",\n".join("    " + json.dumps(r) for r in data["rounds"])
    return f'{{\n  "about": {json.dumps(data["about"])},\n  "rounds": [\n{lines}\n  ]\n}}\n'


def main(argv: list[str]) -> int:
    if argv[:1] == ["add"]:
        p = argparse.ArgumentParser(prog="training_chain.py add")
        p.add_argument("run")
        p.add_argument("model")
        p.add_argument("--minutes", type=float, nargs="+", required=True)
        p.add_argument("--steps", type=int, nargs="+", required=True)
        p.add_argument("--gpu", help="a GPU round: the card it ran on, e.g. H100")
        a = p.parse_args(argv[1:])
        add(a.run, a.model, a.minutes, a.steps, gpu=a.gpu)
    print("| run | model | steps | GPU min | CPU h |")
    for t in cumulative(load()):
        print(
            f"| {t.run} | {t.model or '-'} | {t.steps:,} | {t.gpu_minutes:g} | {t.cpu_hours:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
