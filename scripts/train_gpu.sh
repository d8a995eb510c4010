#!/usr/bin/env bash
# One-shot GPU training run (see docs/TRAINING.md).
#
#   bash scripts/train_gpu.sh OUT_DIR MINUTES [START_CKPT_OR_WEIGHTS]
#
# Expects, inside the repo tree (git-ignored; scripts/prepare_gpu.py makes them fit the 64 MiB
# that travels): pack/train, .kodak/ (Kodak PNGs, by default the first 4, for the closing
# evaluation, GPU timings and files for cross-device decoding) and .whl/ (constriction and
# pytorch-msssim wheels when the machine lacks them). Trains the GroupedMixer model and, on the
# same GPU at the same time and budget, two ablations (hyperprior-only mean-scale; 5 groups
# instead of 20; ABLATIONS=0 skips them). LR (default 3e-4), CROP (256), BATCH (16) and
# WEIGHTING (relative: --lambda-weighting, docs/TRAINING.md round cpu16)
# override the training settings; the main run trains g_s on the centred y_hat the decoder
# sees (--centred, as the shipped models since gm-small-v15; CENTRED=0 turns it off) and
# COMPILE=1 adds --compile to it (measured on the CPU only, not yet on a GPU). No --average:
# its copy of the weights would add two checkpoint files, over the 8 files $OUT brings back.
# Writes OUT_DIR/main/ (resumable checkpoint, each file < 16 MiB) and OUT_DIR/logs.tgz (JSON
# logs, evaluations, GPU benchmark).
set -uo pipefail
OUT=${1:?usage: train_gpu.sh OUT_DIR MINUTES [START]}
MIN=${2:?usage: train_gpu.sh OUT_DIR MINUTES [START]}
START=${3:-}
export PYTHONUNBUFFERED=1
if ! python3 -c "import constriction, pytorch_msssim" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
LOGS=$(mktemp -d)
nvidia-smi -L 2>/dev/null || true
EVAL=${EVAL:-.kodak}
COMMON=(--data pack/train --minutes "$MIN" --crop "${CROP:-256}" --batch "${BATCH:-16}" --lr "${LR:-3e-4}" --lambda-weighting "${WEIGHTING:-relative}" --ckpt-every 2 --eval "$EVAL")
INIT=()
FLAGS=()
if [ "${CENTRED:-1}" = 1 ]; then FLAGS+=(--centred); fi
if [ "${COMPILE:-0}" = 1 ]; then FLAGS+=(--compile); fi
if [ -n "$START" ] && [ -d "$START" ]; then cp -r "$START" "$OUT/main"; fi
if [ -n "$START" ] && [ -f "$START" ]; then INIT=(--init "$START"); fi
python3 -m gmcodec.train "${COMMON[@]}" "${INIT[@]}" "${FLAGS[@]}" --ckpt "$OUT/main" --log "$LOGS/main.json" \
  > "$LOGS/main.out" 2>&1 &
MAIN=$!
ABL=()
if [ "${ABLATIONS:-1}" = 1 ]; then
  python3 -m gmcodec.train "${COMMON[@]}" --entropy meanscale --ckpt /tmp/ck-ms \
    --log "$LOGS/meanscale.json" > "$LOGS/meanscale.out" 2>&1 & ABL+=($!)
  python3 -m gmcodec.train "${COMMON[@]}" --spatial-groups 1 --ckpt /tmp/ck-g5 \
    --log "$LOGS/groups5.json" > "$LOGS/groups5.out" 2>&1 & ABL+=($!)
fi
tail -f "$LOGS/main.out" &
TAIL=$!
wait $MAIN; RC=$?
for p in "${ABL[@]}"; do wait "$p"; done
kill $TAIL 2>/dev/null
for f in "$LOGS"/*.out; do echo "== $f"; tail -n 3 "$f"; done
if [ $RC -eq 0 ]; then
  python3 scripts/export.py "$OUT/main" gm-gpu --weights /tmp/w > "$LOGS/export.out" 2>&1
  GMX_WEIGHTS=/tmp/w timeout 120 python3 -c "
from gmcodec.bench import run_bench
run_bench('$EVAL', codecs=['gmx'], qualities={'gmx': [25, 50, 75]}, device='auto',
          out_dir='$LOGS/bench', progress=False, profile_images=4)
" > "$LOGS/bench.out" 2>&1; echo "bench rc=$?"; tail -n 5 "$LOGS/bench.out"
  # files encoded on this device, to test decoding them on another (docs/RELIABILITY.md)
  GMX_WEIGHTS=/tmp/w timeout 60 python3 -c "
import glob, os
from PIL import Image
from gmcodec.codec import Codec
c = Codec.load(device='auto'); os.makedirs('$LOGS/gmx', exist_ok=True)
for p in sorted(glob.glob('$EVAL/*.png')):
    name = os.path.basename(p)[:-4]
    open('$LOGS/gmx/' + name + '.gmx', 'wb').write(c.encode(Image.open(p), 50))
print('encoded', c.device)
" 2>&1 | tail -n 2
  mkdir -p "$OUT/weights" && cp /tmp/w/gm-gpu.pt "$OUT/weights/" && cp /tmp/w/*.json "$LOGS/"
fi
tar czf "$OUT/logs.tgz" -C "$LOGS" .
exit $RC
