"""Ship rule for a training run: estimated BD-rate of NEW vs BASE on Kodak and on validation.

Usage: python scripts/ship_check.py BASE NEW [--kodak DIR] [--val DIR] [--q 0,2,4,6,7]
                                    [--cache DIR] [--json OUT] [--centred]

BASE and NEW are exported weights (.pt) or checkpoint folders. Each model's mean bpp/PSNR-RGB
per quality q comes from ``gmcodec.evaluate.evaluate_rd`` (the model's likelihoods of the
rounded latents, not real files) on every image of each folder; a model's curves are cached
under --cache by the sha256 of its files, so BASE is evaluated once across runs. NEW passes
when it needs fewer bits than BASE on Kodak *and* no more on the validation slice (images the
training never saw), the rule ``docs/TRAINING.md`` states. ``--centred`` scores both models with
y_hat rounded around the predicted mean, as the coder does since format 1.2, instead of to
integers (closer to real files; needed to judge a run trained with ``--centred``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import torch

from gmcodec.evaluate import evaluate_rd
from gmcodec.metrics import bd_rate, rd_points
from gmcodec.train import load_any


def fingerprint(path: Path) -> str:
    """sha256 over the model's file(s): a .pt file, or the files of a checkpoint folder."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    h = hashlib.sha256()
    for f in files:
        if f.suffix in {".json", ".tmp"} and f.name != "meta.json":
            continue  # logs change while a run goes on; weights and meta decide
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def curves(
    path: Path, sets: dict[str, str], qs: list[float], cache: Path, centred: bool = False
) -> dict:
    """{set name: [{q, bpp, psnr}, ...]} for one model, from the cache when present."""
    mode = "-centred" if centred else ""
    entry = cache / f"{fingerprint(path)}-{'_'.join(f'{q:g}' for q in qs)}{mode}.json"
    if entry.exists():
        return json.loads(entry.read_text())
    model = load_any(path)
    cpu = torch.device("cpu")
    result = {name: evaluate_rd(model, d, cpu, qs, centred) for name, d in sets.items()}
    cache.mkdir(parents=True, exist_ok=True)
    entry.write_text(json.dumps(result, indent=1))
    return result


def bd(base: list[dict], new: list[dict]) -> float:
    """BD-rate (PSNR) of the new curve against the base curve, in percent."""
    return bd_rate(*rd_points(base), *rd_points(new))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("base", type=Path)
    p.add_argument("new", type=Path)
    p.add_argument("--kodak", default="../shared/data/kodak")
    p.add_argument("--val", default="pack/val")
    p.add_argument("--q", default="0,2,4,6,7")
    p.add_argument("--cache", type=Path, default=Path("runs/ship-cache"))
    p.add_argument("--json", type=Path, help="also write the curves and BD-rates here")
    p.add_argument("--centred", action="store_true", help="round y around mu (coder id 2)")
    a = p.parse_args()
    qs = [float(v) for v in a.q.split(",")]
    sets = {"kodak": a.kodak, "val": a.val}
    base, new = (curves(m, sets, qs, a.cache, a.centred) for m in (a.base, a.new))
    result = {name: bd(base[name], new[name]) for name in sets}
    print("| set | q | base bpp / PSNR | new bpp / PSNR |\n| --- | --- | --- | --- |")
    for name in sets:
        for b, n in zip(base[name], new[name], strict=True):
            print(
                f"| {name} | {b['q']:g} | {b['bpp']:.4f} / {b['psnr']:.2f} "
                f"| {n['bpp']:.4f} / {n['psnr']:.2f} |"
            )
    for name, v in result.items():
        print(f"BD-rate new vs base on {name}: {v:+.2f}%")
    ship = result["kodak"] < 0 and result["val"] <= 0
    print("ship rule:", "PASS" if ship else "FAIL")
    if a.json:
        a.json.write_text(json.dumps({"base": base, "new": new, "bd": result, "ship": ship}))


if __name__ == "__main__":
    main()
