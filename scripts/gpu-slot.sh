#!/usr/bin/env bash
# One GPU batch slot (default 15 minutes) that makes a model from nothing, or continues one, on one machine: the data
# is made where it is used and only the model, its log and its numbers leave (issue 12).
#   1. an independent validation sample: VALIDATION_N showers at each of VALIDATION_ENERGIES GeV (seed 900001,
#      the same in every slot), on the GPU Monte Carlo and every CPU core together (--device MC_DEVICE);
#   2. this slot's training showers, SPECTRUM (default log-uniform 10-510 GeV), in pieces of PIECE with seeds
#      1000 x SLOT + 1, + 2, ... (a later slot trains on fresh showers), until N_TRAIN showers or MC_SECONDS;
#   3. training CONFIG (default configs/3dgan-clic-gpu.yaml) in the time the slot has left, stopping at an epoch end;
#      with PREVIOUS_OUT_DIR (the OUT_DIR of an earlier slot) it continues that run from its last.pt;
#   4. the validation report of the best generator against the independent sample;
#   5. OUT_DIR gets generator.pt, last.pt, log.jsonl, resolved_config.yaml, metrics.json, key-numbers.txt (8 files
#      at most: what a device machine sends back).
# Usage: scripts/gpu-slot.sh OUT_DIR [PREVIOUS_OUT_DIR]
#   env: SLOT_SECONDS (900), MC_SECONDS (330), N_TRAIN (100000), PIECE (32768 on a GPU, 1000 on CPU), SPECTRUM,
#        SLOT (1), VALIDATION_ENERGIES (10,20,50,100,200,500), VALIDATION_N (300), GEOMETRY (clic), CONFIG,
#        DEVICE (training, cuda), MC_DEVICE (cuda), EPOCHS (optional cap), VALIDATE_SECONDS (90, kept for step 4),
#        FASTSHOWER (the command that runs fastshower, default "python3 -m fastshower").
# Without a GPU the same script runs on the CPU at small scale (DEVICE=cpu MC_DEVICE=cpu): tests/test_gpu_slot.py.
set -u
out_dir=$1 previous=${2:-}
slot_seconds=${SLOT_SECONDS:-900} mc_seconds=${MC_SECONDS:-330} n_train=${N_TRAIN:-100000} slot=${SLOT:-1}
spectrum=${SPECTRUM:-10:510:log} geometry=${GEOMETRY:-clic} config=${CONFIG:-configs/3dgan-clic-gpu.yaml}
device=${DEVICE:-cuda} mc_device=${MC_DEVICE:-cuda} validate_seconds=${VALIDATE_SECONDS:-90}
val_energies=${VALIDATION_ENERGIES:-10,20,50,100,200,500} val_n=${VALIDATION_N:-300}
fastshower=${FASTSHOWER:-python3 -m fastshower}
# a GPU wants tens of thousands of showers in flight (docs/gpu-mc.md); the CPU alone, pieces of a few minutes
if [ "$mc_device" = cuda ]; then piece=${PIECE:-32768}; else piece=${PIECE:-1000}; fi
work=$(mktemp -d) start=$(date +%s)
mkdir -p "$out_dir"
elapsed() { echo $(( $(date +%s) - start )); }
# small chunks: the GPU takes whole launches and the last CPU chunk ends a piece
mc=(simulate --geometry "$geometry" --workers "$(nproc)" --device "$mc_device" --showers-per-launch 16384
    --chunk-size 16 -q)

echo "== validation sample: $val_n showers at each of $val_energies GeV ($mc_device and $(nproc) cores)"
n_energies=$(echo "$val_energies" | tr ',' '\n' | wc -l)
$fastshower "${mc[@]}" --particle e- --energy "$val_energies" --n $(( val_n * n_energies )) --seed 900001 --out "$work/validation.h5" \
  || { echo "validation MC failed"; exit 1; }

echo "== $(elapsed) s: training MC, $spectrum GeV, up to $n_train showers or ${mc_seconds} s"
pieces=() made=0 seed=$(( 1000 * slot + 1 )) last=0
# another piece starts only if one as long as the last still fits
while [ "$made" -lt "$n_train" ] && [ $(( $(elapsed) + last )) -lt "$mc_seconds" ]; do
  left=$(( mc_seconds - $(elapsed) )) t0=$(date +%s) n=$(( n_train - made < piece ? n_train - made : piece ))
  if timeout "$left" $fastshower "${mc[@]}" --particle e- --energy "$spectrum" --theta 0 --n "$n" --seed "$seed" \
      --out "$work/piece-$seed.h5"; then
    pieces+=("$work/piece-$seed.h5") made=$(( made + n ))
  fi
  seed=$((seed + 1)) last=$(( $(date +%s) - t0 ))
done
[ "${#pieces[@]}" -gt 0 ] || { echo "no training showers were made in ${mc_seconds} s"; exit 1; }
data=${pieces[0]}
if [ "${#pieces[@]}" -gt 1 ]; then
  $fastshower merge "${pieces[@]}" --out "$work/train.h5" || exit 1
  data=$work/train.h5
fi
echo "== $(elapsed) s: $made training showers"

run=$work/run resume=()
if [ -n "$previous" ]; then
  # the best generator so far stays the bundle unless this slot beats it
  mkdir -p "$run" && cp "$previous/last.pt" "$previous/log.jsonl" "$previous/generator.pt" "$run/" && resume=(--resume)
fi
minutes=$(python3 -c "print(max(0.1, ($slot_seconds - $(elapsed) - $validate_seconds) / 60))")
echo "== $(elapsed) s: training for ${minutes} min${previous:+ (continuing $previous)}"
$fastshower train --config "$config" --data "$data" --out "$run" --device "$device" --time-limit "$minutes" \
  --epochs "${EPOCHS:-100000}" "${resume[@]}" -q
echo "== $(elapsed) s: training ended (rc $?)"

$fastshower validate --reference "$work/validation.h5" --model "$run/generator.pt" --out "$work/report" \
  --energy-bins "$(python3 -c "
e = [float(x) for x in '$val_energies'.split(',')]
edges = [e[0] * 0.9] + [(a * b) ** 0.5 for a, b in zip(e, e[1:])] + [e[-1] * 1.1]
print(','.join(f'{x:.6g}' for x in edges))")" 2>&1 | tee "$out_dir/key-numbers.txt"
validated=${PIPESTATUS[0]}
{ echo "slot $slot: $made training showers ($spectrum GeV), $(elapsed) s in all"; $fastshower inspect "$data"; } \
  >> "$out_dir/key-numbers.txt"
for f in generator.pt last.pt log.jsonl resolved_config.yaml; do cp "$run/$f" "$out_dir/" 2>/dev/null; done
cp "$work/report/metrics.json" "$out_dir/" 2>/dev/null
ls -la "$out_dir"
exit "$validated"  # the model comes back either way; a failed validation still fails the slot
