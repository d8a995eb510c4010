"""Publish a `gmx bench` run as the report section of docs/BENCHMARKS.md.

Usage: python scripts/publish_bench.py RUN_DIR

RUN_DIR is the `-o` folder of `gmx bench` (REPORT.md, results.json, rd.png). Everything in
docs/BENCHMARKS.md after the "## CPU report (this machine)" heading is replaced by REPORT.md
without its title line; results.json becomes docs/bench-results.json and rd.png docs/rd.png.
The hand-written summary above the heading is left for the author to update.
"""

import shutil
import sys
from pathlib import Path

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


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    publish(Path(sys.argv[1]))
    print(f"published {sys.argv[1]} to {DOCS / 'BENCHMARKS.md'}")
