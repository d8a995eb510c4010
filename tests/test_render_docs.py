"""The docs' generated blocks: headline numbers come from docs/bench-history.json, never by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import bench_history
import render_docs

ROOT = Path(__file__).resolve().parent.parent


def fake_results(
    model: str, avif: float, bpps: tuple[float, ...] = (0.2, 0.6, 1.9)
) -> dict[str, Any]:
    """A results.json as `gmx bench` writes it, reduced to the keys the history reads."""
    rows = [
        {"quality": q, "bpp": b, "psnr": 28.0 + 4 * i, "encode_s": 0.5 + 0.1 * i, "decode_s": 0.7}
        for i, (q, b) in enumerate(zip((10, 50, 95), bpps, strict=True))
    ]
    jpeg = [{"quality": q, "bpp": b, "psnr": 30.0 + q / 10} for q, b in ((50, 1.0), (85, 2.2))]
    return {
        "created": "2026-12-02T10:00:00+00:00",
        "settings": {"gmx": {"model_id": model, "format": "2.0"}},
        "machine": {"cpu": "Some(R) CPU", "gpu": None},
        "codecs": {"gmx": rows, "jpeg": jpeg},
        "bd_rate_vs": {"jpeg": -40.0, "webp": 3.0, "avif": avif, "anchor:vtm": 60.0},
        "bd_rate_msssim_vs": {"jpeg": -30.0},
        "context_cache": {"with_s": 0.25, "without_s": 2.0},
        "stages": {"encode": {"transforms": 0.2}},
        "command": "gmx bench kodak",
    }


def test_committed_docs_match_the_history() -> None:
    """README and BENCHMARKS quote exactly what docs/bench-history.json renders to."""
    history = bench_history.load()
    for rel, page in render_docs.render(history).items():
        assert (ROOT / rel).read_text() == page, f"{rel} is stale: run scripts/render_docs.py"


def test_newest_history_entry_is_the_published_report() -> None:
    history = bench_history.load()
    published = json.loads((ROOT / "docs" / "bench-results.json").read_text())
    expected = bench_history.entry(published, history[-1]["range"])
    assert json.loads(json.dumps(expected)) == history[-1]


def test_entry_reads_headline_numbers() -> None:
    e = bench_history.entry(fake_results("gm-small-v7", 12.0))
    assert e["model"] == "gm-small-v7" and e["format"] == "2.0" and e["created"] == "2026-12-02"
    assert e["bd"] == {"jpeg": -40.0, "webp": 3.0, "avif": 12.0, "bpg": None, "vtm": 60.0}
    assert e["encode_s"] == pytest.approx(0.6) and e["decode_s"] == pytest.approx(0.7)
    assert e["top"]["quality"] == 95 and e["monotonic"]
    assert [p["quality"] for p in e["jpeg_near_top"]] == [50, 85]
    assert not bench_history.entry(fake_results("m-v1", 1.0, (0.2, 0.1, 1.0)))["monotonic"]


def test_upsert_replaces_the_model_keeps_its_range_and_sorts_by_version() -> None:
    span = bench_history.range_of(fake_results("gm-small-v10", 5.0))
    history = [bench_history.entry(fake_results("gm-small-v10", 5.0), span)]
    history = bench_history.upsert(history, bench_history.entry(fake_results("gm-small-v9", 9.0)))
    history = bench_history.upsert(history, bench_history.entry(fake_results("gm-small-v10", 4.0)))
    assert [e["model"] for e in history] == ["gm-small-v9", "gm-small-v10"]
    assert history[1]["bd"]["avif"] == 4.0 and history[1]["range"] == span
    assert [p["quality"] for p in span["points"]] == [10, 95]


def test_status_says_whether_avif_is_beaten() -> None:
    def words(avif: float) -> str:
        text = render_docs.status([bench_history.entry(fake_results("m-v1", avif))])
        return " ".join(text.split())

    behind, ahead = words(19.0), words(-2.5)
    assert "1.19x the bits of AVIF" in behind and "not beaten yet" in behind
    assert "2.5% fewer bits than AVIF" in ahead and "**AVIF is beaten.**" in ahead
    assert "1.03x the bits of WebP" in behind


def test_fill_replaces_only_the_block() -> None:
    page = "a\n<!-- gen:x -->\nold\nlines\n<!-- /gen:x -->\nb\n"
    assert render_docs.fill(page, "x", "new") == "a\n<!-- gen:x -->\nnew\n<!-- /gen:x -->\nb\n"
    empty = "<!-- gen:x -->\n<!-- /gen:x -->\n"
    assert render_docs.fill(empty, "x", "t") == "<!-- gen:x -->\nt\n<!-- /gen:x -->\n"
    with pytest.raises(SystemExit, match="exactly one"):
        render_docs.fill(page + page, "x", "new")
    with pytest.raises(SystemExit, match="exactly one"):
        render_docs.fill("no block\n", "x", "new")


def test_history_table_has_a_row_per_model() -> None:
    history = [bench_history.entry(fake_results(f"m-v{i}", 10.0 - i)) for i in (1, 2)]
    table = render_docs.history_table(history).splitlines()
    assert len(table) == 4 and table[2].startswith("| `m-v1` | 2.0 | Some CPU |")
    assert "+8.00%" in table[3] and "0.250 / 2.000" in table[3]


def test_publish_records_the_run_and_its_range(tmp_path: Path) -> None:
    import publish_bench

    run, span, path = tmp_path / "run", tmp_path / "range", tmp_path / "history.json"
    for folder, bpps in ((run, (0.2, 0.6, 1.9)), (span, (0.07, 0.5, 2.05))):
        folder.mkdir()
        (folder / "results.json").write_text(json.dumps(fake_results("m-v3", 9.0, bpps)))
    publish_bench.record(run, span, path)
    publish_bench.record(run, None, path)  # republished without a range run: the range stays
    (saved,) = bench_history.load(path)
    assert saved["model"] == "m-v3" and saved["bd"]["avif"] == 9.0
    assert [p["bpp"] for p in saved["range"]["points"]] == [0.07, 2.05]


@pytest.mark.parametrize(
    "bpps, verdict",
    [
        ((0.08, 0.6, 2.1), "covering issue 3's 0.1-2 bpp;"),
        (
            (0.2, 0.6, 1.9),
            "SHORT of issue 3's 0.1-2 bpp: quality 10 gives 0.2000 bpp, over 0.1; "
            "quality 95 gives 1.9000 bpp, under 2;",
        ),
    ],
)
def test_knob_says_whether_it_spans_the_issues_range(bpps: tuple, verdict: str) -> None:
    results = fake_results("m-v1", 5.0, bpps)
    text = render_docs.knob([bench_history.entry(results, bench_history.range_of(results))])
    assert verdict in " ".join(text.split())
