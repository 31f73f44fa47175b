#!/usr/bin/env bash
# The GPU benchmarks in one device call (~8 minutes on an H200): the Monte Carlo kernel (issue 11) and the training
# loop's paths (issue 12). Each writes its section of benchmarks/RESULTS.md on the device machine; OUT_DIR gets that
# RESULTS.md, their JSON and their logs (what a device machine sends back).
# Usage: scripts/gpu-benchmarks.sh OUT_DIR   env: MC_SECONDS (330), TRAIN_SECONDS (240), PYTHON (python3)
set -u
out_dir=$1 python=${PYTHON:-python3}
mkdir -p "$out_dir"
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out_dir/gpu.txt" 2>&1
timeout "${MC_SECONDS:-330}" $python benchmarks/bench_gpu_mc.py --write --json "$out_dir/gpu-mc.json" \
  > "$out_dir/bench-gpu-mc.log" 2>&1
echo "bench_gpu_mc: rc $?" | tee -a "$out_dir/gpu.txt"
timeout "${TRAIN_SECONDS:-240}" $python benchmarks/bench_train.py --device cuda --write --json "$out_dir/gpu-train.json" \
  > "$out_dir/bench-gpu-train.log" 2>&1
echo "bench_train --device cuda: rc $?" | tee -a "$out_dir/gpu.txt"
cp benchmarks/RESULTS.md "$out_dir/"
tail -n 3 "$out_dir"/bench-*.log
