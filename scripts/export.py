"""Export a training checkpoint to compact fp16 weights in weights/ (or --weights DIR).

Usage: python scripts/export.py CKPT_DIR MODEL_ID [--weights DIR] [--no-default] [--q-low Q]
                                [--q-high Q] [--averaged]

--q-low and --q-high set the q that quality 0 and 100 map to in the exported config (see
ModelConfig.q_low and q_high).
--averaged exports the running average of the weights the run kept (``gmcodec.train --average``)
instead of its last weights.
"""

import argparse
from dataclasses import replace
from pathlib import Path

from gmcodec import checkpoint, zoo
from gmcodec.averaging import load_average
from gmcodec.train import resume

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("ckpt")
    p.add_argument("model_id")
    p.add_argument("--weights", type=Path, default=None)
    p.add_argument("--no-default", action="store_true")
    p.add_argument("--q-low", type=float, default=None)
    p.add_argument("--q-high", type=float, default=None)
    p.add_argument("--averaged", action="store_true")
    a = p.parse_args()
    if (resumed := resume(a.ckpt)) is None:
        raise SystemExit(f"error: no checkpoint (meta.json) in {a.ckpt}")
    model, meta, _ = resumed
    if a.averaged:
        if not (averaged := checkpoint.load_averaged(a.ckpt)):
            raise SystemExit(f"error: {a.ckpt} holds no weight average (train with --average)")
        load_average(model, averaged)
    # The quality mapping only: no weight depends on it.
    mapping = {"q_low": a.q_low, "q_high": a.q_high}
    model.cfg = replace(model.cfg, **{k: v for k, v in mapping.items() if v is not None})
    chain = meta.get("init", {}).get("runs", []) + meta.get("runs", [])
    info = {"step": meta.get("init", {}).get("step", 0) + meta["step"], "runs": chain}
    if a.averaged:
        info["averaged"] = True
    digest = zoo.export(model, a.model_id, a.weights, info, make_default=not a.no_default)
    print(a.model_id, digest)
