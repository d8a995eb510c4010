"""Decode .gmx files made on another device; report how many decode and their PSNR.

Usage: python scripts/cross_device.py GMX_DIR ORIGINALS_DIR [--device cpu]

A file whose decoded symbols do not match the encoder's checksums fails with MismatchError
(counted as 'mismatch'); it never yields a wrong image.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from gmcodec.codec import Codec, MismatchError
from gmcodec.metrics import psnr


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("gmx_dir", type=Path)
    p.add_argument("originals", type=Path)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    codec = Codec.load(device=a.device)
    rows = []
    for path in sorted(a.gmx_dir.glob("*.gmx")):
        try:
            img = codec.decode(path.read_bytes())
            ref = np.asarray(Image.open(a.originals / f"{path.stem}.png").convert("RGB"))
            quality = round(psnr(ref, np.asarray(img)), 3)
            rows.append({"file": path.name, "ok": True, "psnr": quality})
        except MismatchError as e:
            rows.append({"file": path.name, "ok": False, "error": str(e)[:80]})
    ok = sum(r["ok"] for r in rows)
    print(
        json.dumps(
            {
                "files": len(rows),
                "decoded": ok,
                "mismatch": len(rows) - ok,
                "device": str(codec.device),
                "rows": rows,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
