#!/usr/bin/env bash
# Make the shipped model 3dgan-clic-electrons on one GPU machine inside a fixed wall-clock budget:
#   1. more Monte Carlo on the GPU and every other CPU core together (--device $MC_DEVICE, default cuda), in
#      pieces of PIECE showers (seeds 3, 4, ...) until MC_SECONDS,
#   2. merge them with the training file given as $1 (seed 1, made beforehand),
#   3. train configs/3dgan-clic-gpu.yaml until TRAIN_MINUTES (stopping at an epoch end),
#   4. copy the generator bundle, the log and the resolved config to OUT_DIR.
# Usage: scripts/train-shipped-gpu.sh TRAIN_FILE OUT_DIR      (env: MC_SECONDS, TRAIN_MINUTES, PIECE, SPECTRUM, DEVICE, MC_DEVICE,
#        CONFIG, default configs/3dgan-clic-gpu.yaml; FASTSHOWER, the command that runs fastshower,
#        default "python3 -m fastshower")
set -u
train_file=$1 out_dir=$2
mc_seconds=${MC_SECONDS:-200} train_minutes=${TRAIN_MINUTES:-5} device=${DEVICE:-cuda} mc_device=${MC_DEVICE:-cuda}
# a GPU wants tens of thousands of showers in flight (docs/gpu-mc.md); the CPU alone, pieces of a few minutes
if [ "$mc_device" = cuda ]; then piece=${PIECE:-32768}; else piece=${PIECE:-1000}; fi
# log-uniform: 10-22 GeV is 20 % of the showers, not the 2 % of a uniform 10-510 GeV (issue 12)
spectrum=${SPECTRUM:-10:510:log}
fastshower=${FASTSHOWER:-python3 -m fastshower} config=${CONFIG:-configs/3dgan-clic-gpu.yaml}
work=$(mktemp -d) start=$(date +%s)
mkdir -p "$out_dir"
elapsed() { echo $(( $(date +%s) - start )); }

echo "== MC on $mc_device and $(nproc) cores for ${mc_seconds} s"
pieces=() seed=3 last=0
# on the CPU a piece takes ~PIECE x 0.33 s / cores (10-510 GeV), plus the numba compilation on the first one (on
# the GPU, the kernel's compilation: ~1 min); another piece starts only if one as long as the last still fits.
# Small chunks for the CPU workers: the GPU takes launches of 16384, and the last CPU chunk ends the piece
while [ $(( $(elapsed) + last )) -lt "$mc_seconds" ]; do
  left=$(( mc_seconds - $(elapsed) )) t0=$(date +%s)
  if timeout "$left" $fastshower simulate --geometry clic --particle e- --energy "$spectrum" --theta 0 --n "$piece" \
      --seed "$seed" --workers "$(nproc)" --device "$mc_device" --showers-per-launch 16384 --chunk-size 16 \
      --out "$work/piece-$seed.h5" -q; then
    pieces+=("$work/piece-$seed.h5")
  fi
  seed=$((seed + 1)) last=$(( $(date +%s) - t0 ))
done
echo "== $(elapsed) s: ${#pieces[@]} MC pieces of $piece"

data=$train_file
if [ "${#pieces[@]}" -gt 0 ]; then
  $fastshower merge "$train_file" "${pieces[@]}" --out "$work/train.h5" && data=$work/train.h5
fi
$fastshower inspect "$data"

echo "== $(elapsed) s: training for ${train_minutes} min"
$fastshower train --config "$config" --data "$data" --out "$work/run" --device "$device" \
  --time-limit "$train_minutes" -q
rc=$?
echo "== $(elapsed) s: training ended (rc $rc)"
for f in generator.pt log.jsonl resolved_config.yaml last.pt; do cp "$work/run/$f" "$out_dir/" 2>/dev/null; done
$fastshower inspect "$data" > "$out_dir/train-data.txt"
ls -la "$out_dir"
