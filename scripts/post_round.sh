#!/usr/bin/env bash
# After a CPU training round: ship check, export and the measurements docs/TRAINING.md quotes.
#
#   bash scripts/post_round.sh BASE_WEIGHTS NEW_NAME CKPT [CKPT ...]
#
# e.g. bash scripts/post_round.sh weights/gm-small-v14.pt gm-small-v15 checkpoints/cpu18
#
# Runs scripts/ship_check.py of each checkpoint against BASE_WEIGHTS (and, with two arms, the
# second against the first). A checkpoint trained with --average is judged twice: its last
# weights (ARM) and its weight average (ARM-avg, exported to runs/avg-ARM/ for the check). Of the
# candidates that pass the ship rule, the one with the lowest *validation* BD-rate is exported
# as NEW_NAME (Kodak stays a test set), then measured:
# scripts/ae_ceiling.py, the Kodak bench against the anchors, the full quality range and
# scripts/rate_gap.py. Every log goes to runs/ (git-ignored), named after the arm or NEW_NAME.
# SHIP_FLAGS is passed to every ship check (e.g. SHIP_FLAGS=--centred for runs trained with
# --centred).
# Exits 1 when no arm passes (nothing is exported).
set -uo pipefail
BASE=${1:?usage: post_round.sh BASE_WEIGHTS NEW_NAME CKPT [CKPT ...]}
NAME=${2:?usage: post_round.sh BASE_WEIGHTS NEW_NAME CKPT [CKPT ...]}
shift 2
[ $# -ge 1 ] || { echo "post_round.sh: give at least one checkpoint folder" >&2; exit 2; }
KODAK=${KODAK:-../shared/data/kodak}
ANCHORS=${ANCHORS:-../shared/anchors/kodak}
SHIP=${SHIP_FLAGS:-}
mkdir -p runs
tag=${NAME##*-}  # gm-small-v15 -> v15

val_bd() { grep "on val" "$1" | sed 's/.*: //; s/%.*//'; }

has_average() {
  python -c "import sys; from gmcodec import checkpoint; sys.exit(not checkpoint.load_averaged(sys.argv[1]))" "$1"
}

best="" best_flags="" best_val=""
judge() {  # judge LABEL MODEL CKPT FLAGS: ship-check MODEL, keep it if it is the best so far
  python scripts/ship_check.py "$BASE" "$2" $SHIP > "runs/ship-$1.log" 2>&1
  tail -4 "runs/ship-$1.log"
  grep -q "ship rule: PASS" "runs/ship-$1.log" || return 0
  local v
  v=$(val_bd "runs/ship-$1.log")
  if [ -z "$best" ] || python3 -c "import sys; sys.exit(0 if $v < $best_val else 1)"; then
    best=$3 best_flags=$4 best_val=$v
  fi
}
for ck in "$@"; do
  arm=$(basename "$ck")
  judge "$arm" "$ck" "$ck" ""
  if has_average "$ck"; then
    python scripts/export.py "$ck" avg --weights "runs/avg-$arm" --no-default --q-low -2.7 >/dev/null
    judge "$arm-avg" "runs/avg-$arm/avg.pt" "$ck" "--averaged"
  fi
done
if [ $# -ge 2 ]; then
  python scripts/ship_check.py "$1" "$2" $SHIP > "runs/ship-$(basename "$2")-vs-$(basename "$1").log" 2>&1
  tail -4 "runs/ship-$(basename "$2")-vs-$(basename "$1").log"
fi
[ -n "$best" ] || { echo "post_round.sh: no arm passes the ship rule; nothing exported" >&2; exit 1; }
echo "best: $best $best_flags (validation BD $best_val%)"

set -e
python scripts/export.py "$best" "$NAME" --q-low -2.7 $best_flags
python scripts/ae_ceiling.py "weights/$NAME.pt" --q 0,4,7 > "runs/ae-$tag.log" 2>&1
gmx bench "$KODAK" --anchors "$ANCHORS" -o "runs/bench-kodak-$tag" --profile-images 4 --quiet \
  > "runs/bench-$tag.log" 2>&1
gmx bench "$KODAK" --codecs gmx --qualities "gmx=0,100" --profile-images 1 \
  -o "runs/bench-range-$tag" --quiet > "runs/bench-range-$tag.log" 2>&1
python scripts/rate_gap.py "runs/bench-kodak-$tag/results.json" --ref avif \
  --ref compressai-bmshj2018-hyperprior_mse_cuda > "runs/rate-gap-$tag.txt" 2>&1
echo "post_round.sh: $NAME exported from $best; logs in runs/*-$tag*"
