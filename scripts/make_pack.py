"""Build the compact training pack (git-ignored) from ../shared/data/train.

Usage: python scripts/make_pack.py [SRC] [DST] [--max-mib MIB]

--max-mib leaves out evenly spaced training images so that the pack fits; scripts/prepare_gpu.py
picks it from the room a GPU run leaves.
"""

import argparse
import time

from gmcodec.data import build_pack

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("src", nargs="?", default="../shared/data/train")
    p.add_argument("dst", nargs="?", default="pack")
    p.add_argument("--max-mib", type=float, default=None)
    a = p.parse_args()
    t = time.time()
    limit = None if a.max_mib is None else int(a.max_mib * 2**20)
    print(build_pack(a.src, a.dst, max_bytes=limit), f"{time.time() - t:.0f}s")
