"""Retire shipped models: delete their files from weights/, keep their manifest entries.

Usage: python scripts/retire_weights.py MODEL_ID [MODEL_ID ...]

The files must be committed at HEAD, unchanged: the manifest records HEAD's commit, which
`gmx decode` names when a file needs a retired model (docs/TRAINING.md, "Which weights ship").
"""

import hashlib
import subprocess
import sys

from gmcodec import zoo


def git(*args: str) -> bytes:
    run = subprocess.run(["git", *args], capture_output=True)
    if run.returncode:
        raise SystemExit(f"error: git {' '.join(args)}: {run.stderr.decode().strip()}")
    return run.stdout


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    head = git("rev-parse", "HEAD").decode().strip()
    for mid in sys.argv[1:]:
        _, entry = zoo.resolve(mid)
        blob = git("show", f"{head}:weights/{entry['file']}")
        if hashlib.sha256(blob).hexdigest() != entry["sha256"]:
            raise SystemExit(f"error: HEAD's weights/{entry['file']} does not match the manifest")
        zoo.retire(mid, head)
        print(f"retired {mid}: files kept at commit {head[:12]}")
