"""BD-rates of training-run evaluations against AVIF (measured by gmx bench) and VTM (published).

Usage: python scripts/training_table.py BENCH_RESULTS_JSON RUN_JSON [RUN_JSON ...]

Each RUN_JSON is either the log a `gmcodec.train` run writes (its "eval" holds mean bpp/PSNR
per model quality on Kodak, from the model's likelihoods) or the results.json of a later
`gmx bench --codecs gmx` run (real files), compared with the Pillow curves of the first file.
"""

from __future__ import annotations

import json
import sys

from gmcodec.metrics import bd_rate, load_anchors, rd_points


def main() -> None:
    bench = json.load(open(sys.argv[1]))
    avif = rd_points(bench["codecs"]["avif"])
    jpeg = rd_points(bench["codecs"]["jpeg"])
    vtm = next(a for a in load_anchors("../shared/anchors/kodak") if a.key == "vtm")
    print("| run | steps | BD vs Pillow JPEG | BD vs Pillow AVIF | BD vs VTM |")
    print("| --- | --- | --- | --- | --- |")
    for path in sys.argv[2:]:
        run = json.load(open(path))
        rate, dist = rd_points(run["eval"] if "eval" in run else run["codecs"]["gmx"])
        row = [
            bd_rate(*jpeg, rate, dist),
            bd_rate(*avif, rate, dist),
            bd_rate(vtm.bpp, vtm.psnr, rate, dist),
        ]
        cells = " | ".join(f"{v:+.1f}%" for v in row)
        print(f"| {path} | {run.get('steps', '-')} | {cells} |")


if __name__ == "__main__":
    main()
