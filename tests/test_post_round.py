"""scripts/post_round.sh: which candidate it exports, judged on validation.

The measuring scripts and gmx are replaced by stubs that print canned ship-check results and
write canned bench curves, so these tests check the script's own logic: the candidates, the
ship rule, the choice by validation (estimated or from real files), the export call.
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

from gmcodec import checkpoint, zoo
from gmcodec.config import ModelConfig
from gmcodec.model import GMModel

SCRIPT = Path(__file__).parents[1] / "scripts" / "post_round.sh"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")

SHIP_STUB = """import json, sys
kodak, val = json.load(open("verdicts.json"))[sys.argv[2]]
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
GMX_STUB = """#!{python}
import json, os, sys
from pathlib import Path
out = Path(sys.argv[sys.argv.index("-o") + 1])
scale = json.load(open("file_scales.json")).get(os.environ.get("GMX_WEIGHTS", ""), 1.0)
rows = ((0, 0.08, 28), (33, 0.5, 31), (67, 1.0, 34), (100, 2, 37))
points = [{{"quality": q, "bpp": scale * b, "psnr": p}} for q, b, p in rows]
out.mkdir(parents=True, exist_ok=True)
(out / "results.json").write_text(json.dumps({{"codecs": {{"gmx": points}}}}))
"""


def _tree(tmp_path: Path, verdicts: dict, scales: dict | None = None) -> dict[str, str]:
    """A fake repo: stub scripts, a stub gmx on PATH; returns the environment to run in."""
    scripts, bin_dir = tmp_path / "scripts", tmp_path / "bin"
    scripts.mkdir()
    bin_dir.mkdir()
    (scripts / "ship_check.py").write_text(SHIP_STUB)
    (scripts / "export.py").write_text(EXPORT_STUB)
    for name in ("ae_ceiling.py", "rate_gap.py"):
        (scripts / name).write_text("")
    shutil.copy(SCRIPT.parent / "bench_history.py", scripts)  # the real one: range_of
    (bin_dir / "gmx").write_text(GMX_STUB.format(python=sys.executable))
    (bin_dir / "gmx").chmod(0o755)
    (bin_dir / "python").symlink_to(sys.executable)
    (tmp_path / "verdicts.json").write_text(json.dumps(verdicts))
    (tmp_path / "file_scales.json").write_text(json.dumps(scales or {}))
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def _ckpt(path: Path, averaged: bool) -> None:
    model = torch.nn.Linear(2, 1)
    avg = {n: p.detach() + 1 for n, p in model.named_parameters()} if averaged else None
    checkpoint.save(path, model, None, {"step": 1}, averaged=avg)


def _base(tmp_path: Path) -> Path:
    """A tiny real model exported as tmp_path/base.pt, the round's base weights."""
    zoo.export(GMModel(ModelConfig(N=8, M=16, Nz=8, C=16, slices=(8, 8))), "base", tmp_path)
    return tmp_path / "base.pt"


def _post_round(tmp_path: Path, env: dict[str, str], *ckpts: str, base: str = "weights/base.pt"):
    cmd = ["bash", str(SCRIPT), base, "gm-test-v2", *ckpts]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)


def test_exports_the_passing_candidate_best_on_validation(tmp_path):
    verdicts = {
        "runs/cand-a/cand.pt": (-1.8, -1.0),  # best on Kodak, which must not decide
        "runs/cand-b/cand.pt": (-1.0, -1.2),
        "runs/cand-b-avg/cand.pt": (-1.6, -1.4),  # b's average: best on validation
    }
    env = _tree(tmp_path, verdicts)
    _ckpt(tmp_path / "ck" / "a", averaged=False)
    _ckpt(tmp_path / "ck" / "b", averaged=True)
    done = _post_round(tmp_path, env, "ck/a", "ck/b")
    assert done.returncode == 0, done.stderr
    exports = (tmp_path / "exports.txt").read_text().splitlines()
    assert "ck/b cand --weights runs/cand-b-avg --q-low -2.7 --averaged" in exports
    assert not any("cand-a-avg" in line for line in exports)  # a kept no average
    assert exports[-1] == "ck/b gm-test-v2 --q-low -2.7 --averaged"
    for log in ("ship-a.log", "ship-b.log", "ship-b-avg.log", "ship-b-vs-a.log"):
        assert (tmp_path / "runs" / log).exists()


def test_real_files_on_validation_decide_when_given(tmp_path):
    verdicts = {"runs/cand-a/cand.pt": (-1.0, -1.5), "runs/cand-b/cand.pt": (-1.0, -0.5)}
    scales = {"runs/valfiles-base-w": 1.0, "runs/cand-a": 0.99, "runs/cand-b": 0.97}
    env = {**_tree(tmp_path, verdicts, scales), "VAL_FILES": str(tmp_path)}
    base = _base(tmp_path)
    _ckpt(tmp_path / "ck" / "a", averaged=False)
    _ckpt(tmp_path / "ck" / "b", averaged=False)
    done = _post_round(tmp_path, env, "ck/a", "ck/b", base=str(base))
    assert done.returncode == 0, done.stderr
    assert "b: BD-rate of real files" in (tmp_path / "runs" / "ship-b.log").read_text()
    exports = (tmp_path / "exports.txt").read_text().splitlines()
    assert exports[-1] == "ck/b gm-test-v2 --q-low -2.7"  # 3% fewer bits in files beats 1%


def test_exports_nothing_when_no_candidate_passes(tmp_path):
    env = _tree(tmp_path, {"runs/cand-a/cand.pt": (0.4, -0.2)})
    _ckpt(tmp_path / "ck" / "a", averaged=False)
    done = _post_round(tmp_path, env, "ck/a")
    assert done.returncode == 1 and "no arm passes" in done.stderr
    exports = (tmp_path / "exports.txt").read_text().splitlines()
    assert exports == ["ck/a cand --weights runs/cand-a --q-low -2.7"]  # the candidate only


def test_q_high_reaches_every_export(tmp_path):
    env = {**_tree(tmp_path, {"runs/cand-a/cand.pt": (-1.0, -1.0)}), "Q_HIGH": "8.3"}
    _ckpt(tmp_path / "ck" / "a", averaged=False)
    done = _post_round(tmp_path, env, "ck/a")
    assert done.returncode == 0, done.stderr
    exports = (tmp_path / "exports.txt").read_text().splitlines()
    assert exports == [
        "ck/a cand --weights runs/cand-a --q-low -2.7 --q-high 8.3",
        "ck/a gm-test-v2 --q-low -2.7 --q-high 8.3",
    ]


LOW = "quality 0 gives 0.1040 bpp, over 0.1 on Kodak: export again with a Q_LOW below -2.7"
HIGH = "quality 100 gives 1.9800 bpp, under 2 on Kodak: export again with a Q_HIGH above 8.2"


@pytest.mark.parametrize("scale, said", [(0.99, [HIGH]), (1.0, []), (1.3, [LOW])])
def test_says_when_the_knob_misses_0_1_to_2_bpp(tmp_path, scale, said):
    # the stub gmx's points span 0.08..2 bpp times the scale of the default weights ("")
    env = {**_tree(tmp_path, {"runs/cand-a/cand.pt": (-1.0, -1.0)}, {"": scale}), "Q_HIGH": "8.2"}
    env.pop("GMX_WEIGHTS", None)
    _ckpt(tmp_path / "ck" / "a", averaged=False)
    done = _post_round(tmp_path, env, "ck/a")
    assert done.returncode == 0, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if "export again" in ln]
    assert lines == [f"post_round.sh: {m} and rerun both Kodak benches" for m in said]


def test_a_failing_bench_names_its_error(tmp_path):
    env = {**_tree(tmp_path, {"runs/cand-a/cand.pt": (-1.0, -1.0)}), "VAL_FILES": str(tmp_path)}
    gmx = tmp_path / "bin" / "gmx"
    error = "ModuleNotFoundError: No module named 'gmcodec'"
    gmx.write_text(f'#!/bin/sh\necho "{error}" >&2\nexit 1\n')
    _ckpt(tmp_path / "ck" / "a", averaged=False)
    done = _post_round(tmp_path, env, "ck/a", base=str(_base(tmp_path)))
    assert done.returncode == 1
    assert "gmx bench failed (runs/valfiles-base.log)" in done.stderr
    assert error in done.stderr


@pytest.mark.parametrize("in_git", [True, False])
def test_rate_gap_compares_with_the_published_report_in_a_git_checkout(tmp_path, in_git):
    env = _tree(tmp_path, {"runs/cand-a/cand.pt": (-1.0, -1.0)})
    (tmp_path / "scripts" / "rate_gap.py").write_text("import sys\nprint(sys.argv[1:])\n")
    if in_git:
        (tmp_path / "docs").mkdir()
        (tmp_path / "docs" / "bench-results.json").write_text('{"shipped": 1}')
        git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
        for args in (["init", "-q"], ["add", "docs"], ["commit", "-qm", "shipped"]):
            subprocess.run([*git, *args], cwd=tmp_path, check=True)
    _ckpt(tmp_path / "ck" / "a", averaged=False)
    done = _post_round(tmp_path, env, "ck/a")
    assert done.returncode == 0, done.stderr
    published = tmp_path / "runs" / "published-before-v2.json"
    argv = (tmp_path / "runs" / "rate-gap-v2.txt").read_text()
    assert ("'--prev', 'runs/published-before-v2.json'" in argv) == in_git
    assert published.exists() == in_git
    if in_git:
        assert published.read_text() == '{"shipped": 1}'
