"""Prepare the git-ignored inputs of a GPU run so that everything that travels fits its limit.

Usage: python scripts/prepare_gpu.py [--train DIR] [--kodak DIR] [--eval-images N]
                                     [--limit-mib 64] [--minutes M]

The device machine receives the working tree (tracked and untracked-not-ignored files) plus the
carried folders, 64 MiB in all. This script
1. downloads the wheels it lacks (constriction, pytorch-msssim; this machine's versions, for
   CPython 3.12 on manylinux x86-64) into .whl/;
2. copies the first N Kodak images into .kodak/, for the run's closing evaluation and GPU timings
   (the full 24-image benchmark runs on the CPU once the checkpoint is back);
3. rebuilds pack/ from the training corpus with the bytes left, if the present pack does not fit;
then prints what travels and the `run` call that starts the GPU run (scripts/train_gpu.sh).
"""

import argparse
import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path

from gmcodec.data import build_pack, list_images
from gmcodec.zoo import resolve

WHEELS = ("constriction", "pytorch-msssim")
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)
MARGIN = 1 << 20  # slack for files written between this check and the run


def tree_bytes() -> int:
    """Bytes of the tracked and untracked-not-ignored files that exist."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout
    files = {Path(p) for p in out.decode().split("\0") if p}
    return sum(p.stat().st_size for p in files if p.is_file())


def dir_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def fetch_wheels(dst: Path) -> None:
    """One wheel per package in WHEELS, at the version installed here."""
    for name in WHEELS:
        stem = name.replace("-", "_")
        if any(dst.glob(f"{stem}-*.whl")):
            continue
        pin = f"{name}=={importlib.metadata.version(name)}"
        flags = "-m pip download -q --no-deps --only-binary=:all: --python-version 3.12"
        cmd = [sys.executable, *flags.split(), "--implementation", "cp", "-d", str(dst), pin]
        for plat in PLATFORMS:
            cmd += ["--platform", plat]
        if subprocess.run(cmd).returncode:
            raise SystemExit(f"error: could not download a wheel of {pin}")


def copy_eval(src: Path, dst: Path, count: int) -> None:
    """The first ``count`` images of src, and nothing else, in dst."""
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir()
    for path in list_images(src)[:count]:
        shutil.copy(path, dst / path.name)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--train", type=Path, default=Path("../shared/data/train"))
    p.add_argument("--kodak", type=Path, default=Path("../shared/data/kodak"))
    p.add_argument("--eval-images", type=int, default=4)
    p.add_argument("--limit-mib", type=float, default=64)
    p.add_argument("--minutes", type=float, default=9)
    a = p.parse_args()
    fetch_wheels(Path(".whl"))
    copy_eval(a.kodak, Path(".kodak"), a.eval_images)
    fixed = {"working tree": tree_bytes(), ".whl": dir_bytes(Path(".whl"))}
    fixed[".kodak"] = dir_bytes(Path(".kodak"))
    room = int(a.limit_mib * 2**20) - sum(fixed.values()) - MARGIN
    pack = Path("pack")
    if not pack.is_dir() or dir_bytes(pack) > room:
        print(f"building pack/ within {room / 2**20:.1f} MiB ...", flush=True)
        print(build_pack(a.train, pack, max_bytes=room))
    sizes = {**fixed, "pack": dir_bytes(pack)}
    for name, size in sizes.items():
        print(f"{name:>13}: {size / 2**20:6.1f} MiB")
    print(f"{'total':>13}: {sum(sizes.values()) / 2**20:6.1f} MiB of {a.limit_mib:g}")
    start = Path("weights") / resolve()[1]["file"]
    print(
        "GPU run: run(command='LR=1e-4 ABLATIONS=0 bash scripts/train_gpu.sh $OUT "
        f"{a.minutes:g} {start}', carry=['pack', '.kodak', '.whl'], timeout_s=600)"
    )


if __name__ == "__main__":
    main()
