"""Encode and decode a 24-megapixel (6000x4000) image on the CPU; report time and peak RSS.

Usage: python scripts/bigimage.py [KODAK_DIR] [--quality Q]

The test image is a mosaic of the Kodak images (upscaled 1.5x), so it has photographic
content everywhere. Each phase runs in a fresh process so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PHASE = r"""
import json, resource, sys, time
import numpy as np
from PIL import Image
from gmcodec.codec import Codec
phase, src, dst, quality = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
codec = Codec.load(device="cpu")
t = time.perf_counter()
if phase == "encode":
    data = codec.encode(Image.open(src), quality)
    open(dst, "wb").write(data)
else:
    codec.decode(open(src, "rb").read()).save(dst)
secs = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"phase": phase, "seconds": round(secs, 1), "peak_rss_mb": round(rss)}))
"""


def mosaic(kodak: Path, out: Path, size: tuple[int, int] = (6000, 4000)) -> None:
    from PIL import Image

    canvas = Image.new("RGB", size)
    tiles = sorted(kodak.glob("*.png"))
    x = y = i = 0
    while y < size[1]:
        with Image.open(tiles[i % len(tiles)]) as im:
            im = im.convert("RGB").resize((1152, 768), Image.Resampling.BICUBIC)
        canvas.paste(im, (x, y))
        i += 1
        x += 1152
        if x >= size[0]:
            x, y = 0, y + 768
    canvas.save(out)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("kodak", nargs="?", default="../shared/data/kodak")
    p.add_argument("--quality", type=float, default=50.0)
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp())
    src, gmx, back = tmp / "big.png", tmp / "big.gmx", tmp / "back.png"
    mosaic(Path(a.kodak), src)
    results = []
    for phase, i, o in (("encode", src, gmx), ("decode", gmx, back)):
        t = time.time()
        out = subprocess.run(
            [sys.executable, "-c", PHASE, phase, str(i), str(o), str(a.quality)],
            capture_output=True,
            text=True,
            check=True,
        )
        results.append(
            {
                **json.loads(out.stdout.strip().splitlines()[-1]),
                "wall_s_with_load": round(time.time() - t, 1),
            }
        )
    size = gmx.stat().st_size
    print(
        json.dumps(
            {
                "image": "6000x4000 Kodak mosaic",
                "quality": a.quality,
                "bytes": size,
                "bpp": round(8 * size / 24e6, 4),
                "phases": results,
                "self_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
