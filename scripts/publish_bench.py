"""Publish a `gmx bench` run as the report section of docs/BENCHMARKS.md.

Usage: python scripts/publish_bench.py RUN_DIR [RANGE_DIR]

RUN_DIR is the `-o` folder of `gmx bench` (REPORT.md, results.json, rd.png). Everything in
docs/BENCHMARKS.md after the "## CPU report (this machine)" heading is replaced by REPORT.md
without its title line; results.json becomes docs/bench-results.json and rd.png docs/rd.png.
RANGE_DIR, if given, is the `-o` folder of the same model's quality-range run
(`--qualities "gmx=0,100"`). The report's headline numbers (and the range) become the model's
entry in docs/bench-history.json, and `scripts/render_docs.py` re-renders the generated
blocks of README.md and docs/BENCHMARKS.md from it; the hand-written text around them is left
for the author to update.
"""

import json
import shutil
import sys
from pathlib import Path

import bench_history
import render_docs

DOCS = Path(__file__).resolve().parent.parent / "docs"
HEADING = "## CPU report (this machine)\n"


def report_body(report: str) -> str:
    """REPORT.md without its "# gmx benchmark (date)" title line."""
    lines = report.splitlines(keepends=True)
    if not lines or not lines[0].startswith("# "):
        raise SystemExit("error: REPORT.md does not start with a '# ' title line")
    return "".join(lines[1:]).lstrip("\n")


def publish(run: Path, docs: Path = DOCS) -> None:
    """Copy the run's report, results and plot into `docs`."""
    for name in ("REPORT.md", "results.json", "rd.png"):
        if not (run / name).is_file():
            raise SystemExit(f"error: {run / name} is missing; is {run} a gmx bench -o folder?")
    page = (docs / "BENCHMARKS.md").read_text()
    if page.count(HEADING) != 1:
        raise SystemExit(f"error: docs/BENCHMARKS.md needs exactly one {HEADING.strip()!r}")
    head = page[: page.index(HEADING) + len(HEADING)]
    body = report_body((run / "REPORT.md").read_text())
    (docs / "BENCHMARKS.md").write_text(head + "\n\n" + body)
    shutil.copyfile(run / "results.json", docs / "bench-results.json")
    shutil.copyfile(run / "rd.png", docs / "rd.png")


def record(run: Path, range_dir: Path | None, history_path: Path = bench_history.HISTORY) -> None:
    """Add the run's headline numbers (and its range run's) to the history file."""
    results = json.loads((run / "results.json").read_text())
    span = None
    if range_dir is not None:
        span = bench_history.range_of(json.loads((range_dir / "results.json").read_text()))
    history = bench_history.upsert(
        bench_history.load(history_path), bench_history.entry(results, span)
    )
    bench_history.save(history, history_path)


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        raise SystemExit(__doc__)
    publish(Path(sys.argv[1]))
    record(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) == 3 else None)
    render_docs.main([])
    print(f"published {sys.argv[1]} to {DOCS / 'BENCHMARKS.md'}")
