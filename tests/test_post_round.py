"""scripts/post_round.sh: which candidate it exports, judged by validation BD-rate.

The measuring scripts are replaced by stubs that print canned ship-check results, so these
tests check the script's own logic: candidates, the ship rule, the choice, the export call.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gmcodec import checkpoint

SCRIPT = Path(__file__).parents[1] / "scripts" / "post_round.sh"

SHIP_STUB = """import json, sys
new = sys.argv[2]
kodak, val = json.load(open("verdicts.json"))[new]
print(f"BD-rate new vs base on kodak: {kodak}%")
print(f"BD-rate new vs base on val: {val}%")
print("ship rule:", "PASS" if kodak < 0 and val <= 0 else "FAIL")
"""
EXPORT_STUB = """import sys
from pathlib import Path
open("exports.txt", "a").write(" ".join(sys.argv[1:]) + "\\n")
if "--weights" in sys.argv:
    out = Path(sys.argv[sys.argv.index("--weights") + 1])
    out.mkdir(parents=True, exist_ok=True)
    (out / (sys.argv[2] + ".pt")).write_text("stub")
"""


def _tree(tmp_path: Path, verdicts: dict[str, tuple[float, float]]) -> dict[str, str]:
    """A fake repo: stub scripts, a stub gmx on PATH; returns the environment to run in."""
    scripts, bin_dir = tmp_path / "scripts", tmp_path / "bin"
    scripts.mkdir()
    bin_dir.mkdir()
    (scripts / "ship_check.py").write_text(SHIP_STUB)
    (scripts / "export.py").write_text(EXPORT_STUB)
    for name in ("ae_ceiling.py", "rate_gap.py"):
        (scripts / name).write_text("")
    (bin_dir / "gmx").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "gmx").chmod(0o755)
    (bin_dir / "python").symlink_to(sys.executable)
    (tmp_path / "verdicts.json").write_text(json.dumps(verdicts))
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def _ckpt(path: Path, averaged: bool) -> None:
    model = torch.nn.Linear(2, 1)
    avg = {n: p.detach() + 1 for n, p in model.named_parameters()} if averaged else None
    checkpoint.save(path, model, None, {"step": 1}, averaged=avg)


def _post_round(tmp_path: Path, env: dict[str, str], *ckpts: str):
    cmd = ["bash", str(SCRIPT), "weights/base.pt", "gm-test-v2", *ckpts]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_exports_the_passing_candidate_best_on_validation(tmp_path):
    verdicts = {
        "ck/a": (-1.8, -1.0),  # best on Kodak, which must not decide
        "ck/b": (-1.0, -1.2),
        "runs/avg-b/avg.pt": (-1.6, -1.4),  # b's average: best on validation
    }
    env = _tree(tmp_path, verdicts)
    _ckpt(tmp_path / "ck" / "a", averaged=False)
    _ckpt(tmp_path / "ck" / "b", averaged=True)
    done = _post_round(tmp_path, env, "ck/a", "ck/b")
    assert done.returncode == 0, done.stderr
    exports = (tmp_path / "exports.txt").read_text().splitlines()
    assert exports[-1] == "ck/b gm-test-v2 --q-low -2.7 --averaged"
    assert not any(line.startswith("ck/a avg") for line in exports)  # a kept no average
    for log in ("ship-a.log", "ship-b.log", "ship-b-avg.log", "ship-b-vs-a.log"):
        assert (tmp_path / "runs" / log).exists()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_exports_nothing_when_no_candidate_passes(tmp_path):
    env = _tree(tmp_path, {"ck/a": (0.4, -0.2)})
    _ckpt(tmp_path / "ck" / "a", averaged=False)
    done = _post_round(tmp_path, env, "ck/a")
    assert done.returncode == 1 and "no arm passes" in done.stderr
    assert not (tmp_path / "exports.txt").exists()
