"""Export a training checkpoint to compact fp16 weights in weights/ (or --weights DIR).

Usage: python scripts/export.py CKPT_DIR MODEL_ID [--weights DIR] [--no-default]
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
    a = p.parse_args()
    meta, state, _ = checkpoint.load(a.ckpt)
    model = GMModel(ModelConfig.from_dict(meta["config"]))
    model.load_state_dict(state)
    info = {"step": meta["step"], "runs": meta.get("runs", [])}
    digest = zoo.export(model, a.model_id, a.weights, info, make_default=not a.no_default)
    print(a.model_id, digest)
