"""Build the compact training pack (git-ignored) from ../shared/data/train.

Usage: python scripts/make_pack.py [SRC] [DST]
"""

import sys
import time

from gmcodec.data import build_pack

if __name__ == "__main__":
    src = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/train"
    dst = sys.argv[2] if len(sys.argv) > 2 else "pack"
    t = time.time()
    print(build_pack(src, dst), f"{time.time() - t:.0f}s")
