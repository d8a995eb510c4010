"""Export a training checkpoint to compact fp16 weights in weights/ (or --weights DIR).

Usage: python scripts/export.py CKPT_DIR MODEL_ID [--weights DIR] [--no-default] [--q-low Q]

--q-low sets the q that quality 0 maps to in the exported config (see ModelConfig.q_low).
"""

import argparse
from pathlib import Path

from gmcodec import checkpoint, zoo
from gmcodec.config import ModelConfig
from gmcodec.model import GMModel

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("ckpt")
    p.add_argument("model_id")
    p.add_argument("--weights", type=Path, default=None)
    p.add_argument("--no-default", action="store_true")
    p.add_argument("--q-low", type=float, default=None)
    a = p.parse_args()
    meta, state, _ = checkpoint.load(a.ckpt)
    config = dict(meta["config"])
    if a.q_low is not None:
        config["q_low"] = a.q_low
    model = GMModel(ModelConfig.from_dict(config))
    model.load_state_dict(state)
    chain = meta.get("init", {}).get("runs", []) + meta.get("runs", [])
    info = {"step": meta.get("init", {}).get("step", 0) + meta["step"], "runs": chain}
    digest = zoo.export(model, a.model_id, a.weights, info, make_default=not a.no_default)
    print(a.model_id, digest)
