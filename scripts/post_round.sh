#!/usr/bin/env bash
# After a CPU training round: ship check, export and the measurements docs/TRAINING.md quotes.
#
#   bash scripts/post_round.sh BASE_WEIGHTS NEW_NAME CKPT [CKPT ...]
#
# e.g. bash scripts/post_round.sh weights/gm-small-v14.pt gm-small-v15 checkpoints/cpu18
#
# Every candidate is exported (fp16, as it would ship) to runs/cand-LABEL/: each checkpoint's
# last weights (LABEL = its folder name) and, for a run trained with --average, its weight
# average (LABEL-avg). scripts/ship_check.py judges each against BASE_WEIGHTS (and, with two
# checkpoints, the second's last weights against the first's). Of the candidates that pass
# the ship rule, the one with the lowest *validation* BD-rate is exported as NEW_NAME (Kodak
# stays a test set), then measured: scripts/ae_ceiling.py, the Kodak bench against the
# anchors, the full quality range and scripts/rate_gap.py (against AVIF, the hyperprior anchor
# and, in a git checkout, the published report at HEAD: the shipped weights in real files).
#
# SHIP_FLAGS is passed to every ship check (e.g. SHIP_FLAGS=--centred: y rounded around its
# mean, as the coder does). VAL_FILES=DIR (PNG images the training never saw) judges validation
# on real files instead: `gmx bench DIR --codecs gmx` of BASE and of each passing candidate,
# BD-rate of the file sizes. Logs go to runs/ (git-ignored). Exits 1 when no candidate passes
# (nothing is exported to weights/).
set -uo pipefail
BASE=${1:?usage: post_round.sh BASE_WEIGHTS NEW_NAME CKPT [CKPT ...]}
NAME=${2:?usage: post_round.sh BASE_WEIGHTS NEW_NAME CKPT [CKPT ...]}
shift 2
[ $# -ge 1 ] || { echo "post_round.sh: give at least one checkpoint folder" >&2; exit 2; }
KODAK=${KODAK:-../shared/data/kodak}
ANCHORS=${ANCHORS:-../shared/anchors/kodak}
SHIP=${SHIP_FLAGS:-}
VAL_FILES=${VAL_FILES:-}
# The quality mapping of every export: quality 0 -> q = Q_LOW (unset: -2.7) and, with Q_HIGH=Q
# (e.g. when quality 100 falls under the 2 bpp of bench_history.KNOB_SPAN on Kodak, which the
# script then says), quality 100 -> Q (unset: K, the trained rates' count).
Q_LOW=${Q_LOW:--2.7}
QMAP="--q-low $Q_LOW"
[ -n "${Q_HIGH:-}" ] && QMAP="$QMAP --q-high $Q_HIGH"
mkdir -p runs
tag=${NAME##*-} # gm-small-v15 -> v15

val_bd() { grep "on val" "$1" | sed 's/.*: //; s/%.*//'; }

has_average() {
  python -c "import sys; from gmcodec import checkpoint; sys.exit(not checkpoint.load_averaged(sys.argv[1]))" "$1"
}

bench_failed() { # bench_failed LOG: say so on stderr, with the bench's last line (its error)
  echo "post_round.sh: gmx bench failed ($1): $(tail -n 1 "$1")" >&2
}

file_bd() { # file_bd WEIGHTS_DIR LABEL: real-file BD-rate (%) on VAL_FILES against BASE
  GMX_WEIGHTS=$1 gmx bench "$VAL_FILES" --codecs gmx -o "runs/valfiles-$2" --quiet \
    > "runs/valfiles-$2.log" 2>&1 || { bench_failed "runs/valfiles-$2.log"; return 1; }
  python - "runs/valfiles-base/results.json" "runs/valfiles-$2/results.json" <<'EOF'
import json, sys
from gmcodec.metrics import bd_rate, rd_points
base, new = (rd_points(json.load(open(p))["codecs"]["gmx"]) for p in sys.argv[1:])
print(f"{bd_rate(*base, *new):.2f}")
EOF
}

best="" best_flags="" best_val=""
judge() { # judge LABEL CKPT FLAGS: export, ship-check, keep it if it is the best so far
  local dir="runs/cand-$1" v
  python scripts/export.py "$2" cand --weights "$dir" $QMAP $3 > /dev/null ||
    { echo "post_round.sh: export of $1 failed; skipped" >&2; return 0; }
  python scripts/ship_check.py "$BASE" "$dir/cand.pt" $SHIP > "runs/ship-$1.log" 2>&1
  tail -3 "runs/ship-$1.log"
  grep -q "ship rule: PASS" "runs/ship-$1.log" || return 0
  v=$(val_bd "runs/ship-$1.log")
  if [ -n "$VAL_FILES" ]; then
    v=$(file_bd "$dir" "$1") || return 0
    echo "$1: BD-rate of real files on $VAL_FILES: $v%" | tee -a "runs/ship-$1.log"
  fi
  if [ -z "$best" ] || python3 -c "import sys; sys.exit(0 if $v < $best_val else 1)"; then
    best=$2 best_flags=$3 best_val=$v
  fi
}

if [ -n "$VAL_FILES" ]; then
  python - "$BASE" <<'EOF'
import sys
from pathlib import Path
from gmcodec import zoo
from gmcodec.train import load_any
zoo.export(load_any(sys.argv[1]), "base", Path("runs/valfiles-base-w"))
EOF
  GMX_WEIGHTS=runs/valfiles-base-w gmx bench "$VAL_FILES" --codecs gmx -o runs/valfiles-base \
    --quiet > runs/valfiles-base.log 2>&1 || { bench_failed runs/valfiles-base.log; exit 1; }
fi
for ck in "$@"; do
  arm=$(basename "$ck")
  judge "$arm" "$ck" ""
  if has_average "$ck"; then judge "$arm-avg" "$ck" "--averaged"; fi
done
if [ $# -ge 2 ]; then
  h2h="runs/ship-$(basename "$2")-vs-$(basename "$1").log"
  python scripts/ship_check.py "runs/cand-$(basename "$1")/cand.pt" \
    "runs/cand-$(basename "$2")/cand.pt" $SHIP > "$h2h" 2>&1
  tail -3 "$h2h"
fi
[ -n "$best" ] || { echo "post_round.sh: no arm passes the ship rule; nothing exported" >&2; exit 1; }
echo "best: $best $best_flags (validation BD $best_val%)"

set -e
python scripts/export.py "$best" "$NAME" $QMAP $best_flags
python scripts/ae_ceiling.py "weights/$NAME.pt" --q 0,4,7 > "runs/ae-$tag.log" 2>&1
gmx bench "$KODAK" --anchors "$ANCHORS" -o "runs/bench-kodak-$tag" --profile-images 4 --quiet \
  > "runs/bench-$tag.log" 2>&1
gmx bench "$KODAK" --codecs gmx --qualities "gmx=0,100" --profile-images 1 \
  -o "runs/bench-range-$tag" --quiet > "runs/bench-range-$tag.log" 2>&1
python - "runs/bench-range-$tag/results.json" "$Q_LOW" "${Q_HIGH:-K}" >&2 <<'PY' # span
import json, sys
sys.path.insert(0, "scripts")
from bench_history import knob_misses, range_of
fixes = {"low": f"a Q_LOW below {sys.argv[2]}", "high": f"a Q_HIGH above {sys.argv[3]}"}
for end, miss in knob_misses(range_of(json.load(open(sys.argv[1])))).items():
    print(f"post_round.sh: {miss} on Kodak: export again with {fixes[end]}"
          " and rerun both Kodak benches")
PY
published="runs/published-before-$tag.json" # the shipped model's report, not yet replaced
PREV=()
git show HEAD:docs/bench-results.json > "$published" 2> /dev/null && PREV=(--prev "$published") \
  || rm -f "$published"
python scripts/rate_gap.py "runs/bench-kodak-$tag/results.json" --ref avif \
  --ref compressai-bmshj2018-hyperprior_mse_cuda "${PREV[@]}" > "runs/rate-gap-$tag.txt" 2>&1
echo "post_round.sh: $NAME exported from $best $best_flags; logs in runs/*-$tag*"
