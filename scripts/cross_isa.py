"""Decode files made on this CPU in processes limited to older x86 instruction sets.

A stand-in for decoding on another machine (a laptop without AVX-512, an older server): the
images are encoded here, then every file is decoded by ``scripts/cross_device.py`` in a fresh
process whose PyTorch, oneDNN and MKL kernels are capped at an instruction set. Each coder id
of the CODR chunk is tried, with the settings its reference writer used (0: entropy parameters
in float32, format 1.0; 1: float64, format 1.1; 2: float64 and bins centred on the mean, the
default since format 1.2). A file either decodes (every group's symbols match the encoder's
checksum; the float32 synthesis may still round a few samples the other way) or stops with
``MismatchError``; the table counts the files that decode. It also times encoding and
decoding (in this process, one pass over the images) under each coder id.

Usage: python scripts/cross_isa.py IMAGES [--limit N] [--qualities 10,50,90]
                                   [--isas native,avx2,sse42] [--coders 0,1,2] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from gmcodec.codec import Codec
from gmcodec.coder import PARAM_DTYPES, CoderSettings

ISAS: dict[str, dict[str, str]] = {
    "native": {},
    "avx2": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    },
    "sse42": {
        "ATEN_CPU_CAPABILITY": "default",
        "ONEDNN_MAX_CPU_ISA": "SSE41",
        "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
    },
}
DECODER = Path(__file__).with_name("cross_device.py")


def encode_all(
    codec: Codec, images: list[Path], coder_id: int, quality: int, out: Path
) -> dict[str, float]:
    """Encode every image with the given coder id into ``out``/STEM.gmx; decode it back here.

    Returns the mean encode and decode seconds per image (after one warm-up round trip).
    """
    codec.settings = CoderSettings.written_by(coder_id)
    out.mkdir(parents=True)
    codec.decode(codec.encode(Image.open(images[0]), quality))
    seconds = {"encode_s": 0.0, "decode_s": 0.0}
    for path in images:
        img = Image.open(path)
        img.load()
        t0 = time.perf_counter()
        data = codec.encode(img, quality)
        t1 = time.perf_counter()
        codec.decode(data)
        seconds["encode_s"] += t1 - t0
        seconds["decode_s"] += time.perf_counter() - t1
        (out / f"{path.stem}.gmx").write_bytes(data)
    return {k: round(v / len(images), 3) for k, v in seconds.items()}


def decode_all(folder: Path, originals: Path, isa: str) -> dict:
    """Run cross_device.py on ``folder`` in a fresh process capped at ``isa``."""
    env = {**os.environ, **ISAS[isa]}
    cmd = [sys.executable, str(DECODER), str(folder), str(originals)]
    report = json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True).stdout)
    return {"isa": isa, "files": report["files"], "decoded": report["decoded"]}


def print_table(rows: list[dict], isas: list[str]) -> None:
    """One markdown row per coder id and quality: timings, then files decoded per ISA cap."""
    head = "| coder id (entropy parameters) | quality | encode s | decode s | "
    print(head + " | ".join(isas) + " |")
    print("|---|---|---|---|" + "---|" * len(isas))
    for key in dict.fromkeys((r["coder_id"], r["quality"]) for r in rows):
        mine = [r for r in rows if (r["coder_id"], r["quality"]) == key]
        cells = [f"{r['decoded']}/{r['files']}" for r in mine]
        dtype = str(PARAM_DTYPES[key[0]]).removeprefix("torch.")
        times = f"{mine[0]['encode_s']:.3f} | {mine[0]['decode_s']:.3f}"
        print(f"| {key[0]} ({dtype}) | {key[1]} | {times} | " + " | ".join(cells) + " |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("images", type=Path)
    p.add_argument("--limit", type=int, default=0, help="first N images (0: all)")
    p.add_argument("--qualities", default="10,50,90")
    p.add_argument("--isas", default="native,avx2,sse42")
    p.add_argument("--coders", default="0,1,2", help="coder ids to try")
    p.add_argument("--json", type=Path)
    a = p.parse_args()
    images = sorted(a.images.glob("*.png"))[: a.limit or None]
    rows, codec = [], Codec.load(device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        for coder_id in map(int, a.coders.split(",")):
            for quality in map(int, a.qualities.split(",")):
                folder = Path(tmp) / f"c{coder_id}-q{quality}"
                timing = encode_all(codec, images, coder_id, quality, folder)
                for isa in a.isas.split(","):
                    row = {"coder_id": coder_id, "quality": quality, **timing}
                    row.update(decode_all(folder, a.images, isa))
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    summary = {"encoder_capability": torch.backends.cpu.get_cpu_capability(), "rows": rows}
    print(f"encoded with torch CPU capability {summary['encoder_capability']}")
    print_table(rows, a.isas.split(","))
    if a.json:
        a.json.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
