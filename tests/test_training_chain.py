"""The training-chain ledger: its sums are the docs' training totals, and it matches the run log."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import bench_history
import render_docs
import training_chain

ROOT = Path(__file__).resolve().parent.parent


def fake_ledger(path: Path, rounds: list[dict]) -> None:
    path.write_text(training_chain.dumps({"about": "test", "rounds": rounds}))


def test_cumulative_sums_steps_and_minutes_by_card() -> None:
    rounds = [
        {
            "run": "g",
            "gpu": "H200",
            "minutes": [6.5],
            "steps": [100],
            "model": None,
        },
        {"run": "c", "minutes": [30, 60], "steps": [10, 20], "model": "m-v1"},
        {"run": "d", "minutes": [90], "steps": [5], "model": "m-v2"},
    ]
    totals = training_chain.cumulative(rounds)
    assert [t.steps for t in totals] == [100, 130, 135]
    assert [t.cpu_hours for t in totals] == [0.0, 1.5, 3.0]
    assert {t.gpu_minutes for t in totals} == {6.5}
    assert {t.gpus for t in totals} == {("H200",)}


def test_load_rejects_a_malformed_round(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(training_chain, "CHAIN", tmp_path / "chain.json")
    base = {"run": "c", "minutes": [30], "steps": [10], "model": "m-v1"}
    for bad, message in (
        ({"gpu": ""}, "names the card"),
        ({"gpu": None}, "names the card"),
        ({"device": "gpu"}, "unknown field"),
        ({"minutes": [30, 5]}, "one entry per part"),
        ({"steps": [-1]}, "negative"),
    ):
        fake_ledger(tmp_path / "chain.json", [{**base, **bad}])
        with pytest.raises(ValueError, match=message):
            training_chain.load()


def test_add_appends_a_round_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(training_chain, "CHAIN", tmp_path / "chain.json")
    fake_ledger(tmp_path / "chain.json", [])
    training_chain.add("cpu9", "m-v9", [88.0], [9000])
    assert training_chain.load() == [
        {"run": "cpu9", "minutes": [88], "steps": [9000], "model": "m-v9"}
    ]
    with pytest.raises(SystemExit, match="already"):
        training_chain.add("cpu10", "m-v9", [1.0], [1])
    training_chain.add("gpu3", "m-v10", [9.5], [6000], gpu="H100")
    assert training_chain.cumulative(training_chain.load())[-1].gpu_minutes == 9.5
    before = training_chain.CHAIN.read_text()
    with pytest.raises(ValueError, match="negative"):
        training_chain.add("cpu11", "m-v11", [5.0], [-3])
    assert training_chain.CHAIN.read_text() == before  # a bad round is never written
    training_chain.main(["add", "gpu4", "m-v12", "--minutes", "2", "--steps", "9", "--gpu", "H200"])
    assert training_chain.load()[-1]["gpu"] == "H200"
    assert training_chain.cumulative(training_chain.load())[-1].gpu_minutes == 11.5


def test_committed_ledger_keeps_its_layout_and_ends_at_the_shipped_model() -> None:
    text = training_chain.CHAIN.read_text()
    assert training_chain.dumps(json.loads(text)) == text
    history = bench_history.load()
    assert render_docs._chain(history)[-1].model == history[-1]["model"]


def test_ledger_totals_match_the_run_log() -> None:
    """Every chain round's running step total is the "(N total)" its TRAINING.md row states."""
    log = (ROOT / "docs" / "TRAINING.md").read_text()
    for t in training_chain.cumulative(training_chain.load())[2:]:
        row = re.search(rf"^\| {re.escape(t.run)}[ =(].*$", log, re.M)
        assert row, f"{t.run} has no row in the run log"
        stated = re.search(r"\(([\d,]+) total\)", row.group(0))
        assert stated and int(stated.group(1).replace(",", "")) == t.steps, t.run


def test_chain_table_rates_the_gain_per_cpu_hour(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_render_docs import fake_results

    monkeypatch.setattr(training_chain, "CHAIN", tmp_path / "chain.json")
    fake_ledger(
        tmp_path / "chain.json",
        [
            {
                "run": "a",
                "gpu": "H100",
                "minutes": [8],
                "steps": [50],
                "model": "m-v1",
            },
            {"run": "b", "minutes": [120], "steps": [70], "model": "m-v2"},
        ],
    )
    history = [bench_history.entry(fake_results(m, a)) for m, a in (("m-v1", 30.0), ("m-v2", 26.0))]
    rows = render_docs.chain_table(history).splitlines()
    assert rows[2].endswith("| +30.0% | +60.0% | – |")
    assert rows[3] == "| `m-v2` | b | 120 | 8 | 2.0 | +26.0% | +60.0% | -2.00 |"
    assert "trained 8 minutes on one H100 GPU, then about 2.0 hours" in render_docs.training(
        history
    )
    assert render_docs._cards(("H200", "H100")) == "H200 and H100 GPUs, one at a time"
    cpu_only = render_docs._where(training_chain.cumulative(training_chain.load()[1:])[-1])
    assert cpu_only == "about 2.0 hours on a 2-core CPU"
    with pytest.raises(SystemExit, match="chain ends at m-v2"):
        render_docs.training(history[:1])
    stray = [bench_history.entry(fake_results("m-v0", 40.0)), *history]
    with pytest.raises(SystemExit, match="m-v0 published but not in the training chain"):
        render_docs.chain_table(stray)
