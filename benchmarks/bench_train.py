"""Training throughput of the full 3DGAN (25 x 25 x 25) on this machine: fp32 eager baseline vs the optimised
paths (bf16 autocast with the package's CPU kernels — fastshower.models.layers, on by default — and, for
comparison, with stock PyTorch kernels; channels-last memory layout, torch.compile), FLOPs per shower and share
of the measured matmul peak, and data-parallel efficiency (1 process x 2 threads vs 2 processes x 1 thread under
torchrun).

Run: ``.venv/bin/python benchmarks/bench_train.py [--write] [--batch 32] [--steps 3] [--threads 2]`` (~10 minutes on
2 cores).
``--write`` replaces the "## Training" section of benchmarks/RESULTS.md. Synthetic showers: speed does not
depend on the data.

On a GPU: ``python3 benchmarks/bench_train.py --device cuda --write [--batches 128,1024,4096] [--compile]`` (~3
minutes on an H200) times the training loop itself (batches as the loop gets them, losses read every
``log_every`` steps) for the path the shipped model was trained with (batches from the host through the DataLoader,
losses read every step) against the device-resident one, channels-last and, with ``--compile``, torch.compile, at
each batch size, and writes the "## GPU training" section.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from fastshower.bench import machine_description, matmul_peak_gflops, write_results
from fastshower.data import ShowerData, write_showers
from fastshower.models.layers import cpu_fast_paths
from fastshower.train import distributed as dd
from fastshower.train.config import TrainConfig
from fastshower.train.trainer import Trainer, host_values

VARIANTS = {  # name -> run options (+ "fast_paths": the CPU bf16 kernels of fastshower.models.layers, default on)
    "fp32 eager (baseline)": {"precision": "fp32"},
    "bf16 autocast, stock PyTorch kernels": {"precision": "bf16", "fast_paths": False},
    "bf16 autocast": {"precision": "bf16"},
    "bf16 + channels-last": {"precision": "bf16", "channels_last": True},
    "bf16 + channels-last + torch.compile": {"precision": "bf16", "channels_last": True, "compile": True},
}


def synthetic_file(folder: Path, n: int) -> Path:
    """MC-like showers: a gamma-distributed longitudinal profile and an exponential transverse spread."""
    rng = np.random.default_rng(0)
    energy = rng.uniform(10, 510, n)
    x = np.arange(25) - 12.0
    radial = np.exp(-np.hypot(x[:, None], x[None, :]) / 1.5)
    depth = np.arange(25) + 0.5
    longitudinal = depth**3 * np.exp(-depth / 3.0)
    cells = radial[None, :, :, None] * longitudinal[None, None, None, :]
    cells = cells / cells.sum() * (0.02 * energy)[:, None, None, None]
    ecal = cells.astype(np.float32) * rng.standard_gamma(4.0, cells.shape, dtype=np.float32) * np.float32(0.25)
    return write_showers(folder / "synthetic.h5", ShowerData(ecal, energy, np.zeros(n), np.zeros(n), np.full(n, 11)))


def config(path: Path, batch: int, **run: object) -> TrainConfig:
    return TrainConfig.from_dict({"model": {"name": "3dgan"}, "data": {"path": str(path), "validation_fraction": 0.1},
                                  "optim": {"batch_size": batch, "epochs": 1},
                                  "run": {"device": "cpu", "physics_check_every": 0} | run})


def time_variants(path: Path, folder: Path, batch: int, steps: int) -> dict[str, list[float]]:
    """Seconds per training step of each variant, round by round, after one warm-up round. The variants take
    turns, one step at a time, so that a change in the machine's load (or speed) affects them alike."""
    trainers = {}
    for name, run in VARIANTS.items():
        run = dict(run)
        fast = run.pop("fast_paths", True)
        trainer = Trainer(config(path, batch, **run), folder / f"run-{time.monotonic_ns()}", False,
                          dd.init_distributed("cpu"), progress=False)
        trainers[name] = (trainer, trainer.dataset.batch(trainer.train_idx[:batch]), fast)
    times: dict[str, list[float]] = {name: [] for name in trainers}
    for i in range(steps + 1):
        for name, (trainer, data, fast) in trainers.items():
            with cpu_fast_paths(fast):
                start = time.perf_counter()
                trainer.train_step(data)
                if i:  # the first round warms up (and compiles)
                    times[name].append(time.perf_counter() - start)
    for trainer, _, _ in trainers.values():
        trainer.log_file.close()
    return times


def flops_per_shower(path: Path, folder: Path, batch: int, device: str = "cpu") -> float:
    """FLOPs per shower of one fp32 training step (torch FLOP counter)."""
    trainer = Trainer(config(path, batch, precision="fp32", device=device), folder / f"run-{time.monotonic_ns()}",
                      False, dd.init_distributed(device), progress=False)
    counter = FlopCounterMode(display=False)
    with counter:
        trainer.train_step(trainer.dataset.batch(trainer.train_idx[:batch]))
    trainer.log_file.close()
    return counter.get_total_flops() / batch


def ddp_rate(path: Path, folder: Path, batch: int, steps: int, processes: int) -> float:
    """Showers per second of `fastshower train` with ``processes`` x (2 / processes) threads (from log.jsonl)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = folder / f"ddp{processes}.yaml"
    cfg.write_text(json.dumps({"model": {"name": "3dgan"}, "data": {"validation_fraction": 0.1},
                               "optim": {"batch_size": batch, "epochs": 1, "warmup_epochs": 0},
                               "run": {"precision": "bf16", "device": "cpu", "physics_check_every": 0,
                                       "log_every": 1, "max_steps": steps + 1}}))
    out = folder / f"ddp-run{processes}"
    env = dict(os.environ, OMP_NUM_THREADS=str(2 // processes))
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                    "--master_port", str(port), "-m", "fastshower", "train", "-q", "--config", str(cfg),
                    "--data", str(path), "--out", str(out)], check=True, env=env, capture_output=True)
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    steps_ = [r for r in records if r.get("kind") == "step"]
    if len(steps_) < 2:
        raise RuntimeError(f"{out}: only {len(steps_)} logged step(s); give the benchmark more data")
    # showers_per_s is cumulative since the epoch began: difference it to leave out the warm-up step
    done = [r["step"] * batch * processes for r in steps_]
    elapsed = [n / r["showers_per_s"] for n, r in zip(done, steps_, strict=True)]
    return (done[-1] - done[0]) / (elapsed[-1] - elapsed[0])


#: CUDA paths: name -> (batch sizes it runs at: "first" or "all", config overrides)
CUDA_VARIANTS = {
    "bf16, batches from the host, losses read every step (the shipped model's path)":
        ("first", {"data.resident": False, "run.num_workers": 6, "run.log_every": 1}),
    "bf16, showers resident on the GPU, losses read every 10 steps": ("all", {}),
    "bf16, resident + channels-last": ("all", {"run.channels_last": True}),
    "bf16, resident + channels-last + torch.compile": ("compile", {"run.channels_last": True, "run.compile": True}),
}


def loop_config(path: Path, batch: int, overrides: dict[str, object], device: str) -> TrainConfig:
    cfg = config(path, batch, precision="bf16", device=device).to_dict()
    cfg["run"]["log_every"] = 10
    for key, value in overrides.items():
        section, name = key.split(".")
        cfg[section][name] = value
    return TrainConfig.from_dict(cfg)


def _drain(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_loop(trainer: Trainer, warmup: int, steps: int) -> float:
    """Seconds per training step of ``trainer``'s own loop (its batches, its logging cadence), GPU queue drained
    before the clock starts and stops."""
    batches = trainer._batches()
    every, device = trainer.cfg.run.log_every, trainer.device.type
    for _ in range(warmup):
        trainer.train_step(next(batches))
    _drain(device)
    start = time.perf_counter()
    for i in range(steps):
        logs = trainer.train_step(next(batches))
        if (i + 1) % every == 0:
            host_values(logs)
    _drain(device)
    return (time.perf_counter() - start) / steps


def main_cuda(args: argparse.Namespace, device: str = "cuda") -> None:
    """The GPU paths (``device`` "cpu" only to try the benchmark itself out on a machine without one)."""
    batches = [int(b) for b in args.batches.split(",")]
    warmup, steps = 3, args.cuda_steps
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = synthetic_file(folder, int((warmup + steps + 1) * max(batches) / 0.9) + 1)
        flops = flops_per_shower(path, folder, 32, device)
        peak = matmul_peak_gflops(torch.bfloat16, size=8192 if device == "cuda" else 1024, device=device)
        for name, (which, overrides) in CUDA_VARIANTS.items():
            if which == "compile" and not args.compile:
                continue
            for batch in batches[:1] if which == "first" else batches:
                trainer = Trainer(loop_config(path, batch, overrides, device), folder / f"run-{time.monotonic_ns()}",
                                  False, dd.init_distributed(device), progress=False)
                seconds = time_loop(trainer, warmup, steps)
                trainer.log_file.close()
                rows.append((name, batch, seconds))
                print(f"{name}, batch {batch}: {batch / seconds:.0f} showers/s", flush=True)
                del trainer
                if device == "cuda":
                    torch.cuda.empty_cache()
    base = rows[0][2] / rows[0][1]
    best = max(rows, key=lambda r: r[1] / r[2])
    compiled = " --compile" if args.compile else ""
    gpu_or_cpu = torch.cuda.get_device_name() if device == "cuda" else machine_description()
    lines = ["## GPU training (3DGAN, 25x25x25)", "",
             f"Machine: {gpu_or_cpu}, torch {torch.__version__}. Command: `python3 "
             f"benchmarks/bench_train.py --device cuda --write --batches {args.batches} --cuda-steps {steps}"
             f"{compiled}` "
             f"(synthetic showers; one training step = 2 discriminator + 2 generator updates; {warmup} warm-up steps, "
             f"then {steps} timed steps of the training loop, GPU queue drained at both ends).", "",
             f"GPU training throughput: {best[1] / best[2]:.0f} showers/s per training step ({best[0]}, batch "
             f"{best[1]}; {base * best[1] / best[2]:.1f}x the shipped model's path).", "",
             f"FLOPs per shower per training step (torch FLOP counter, fp32 graph): {flops / 1e9:.1f} GFLOP. "
             f"Measured bf16 matmul peak: {peak / 1e3:.0f} TFLOP/s.", "",
             "| path | batch | ms / step | showers / s | vs shipped path | share of bf16 matmul peak |",
             "|---|---|---|---|---|---|"]
    for name, batch, seconds in rows:
        rate = batch / seconds
        lines.append(f"| {name} | {batch} | {1e3 * seconds:.1f} | {rate:.0f} | {base * rate:.1f}x | "
                     f"{flops * rate / 1e9 / peak:.1%} |")
    section = "\n".join(lines) + "\n"
    print(section)
    if args.write:
        write_results(section, Path(__file__).parent / "RESULTS.md")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "flops_per_shower": flops, "peak_gflops": peak}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--batches", default="128,1024,4096", help="batch sizes of the CUDA paths")
    parser.add_argument("--compile", action="store_true", help="CUDA: also time torch.compile")
    parser.add_argument("--json", default="", help="CUDA: the rows also as JSON to this file")
    parser.add_argument("--cuda-steps", type=int, default=10, help="CUDA: timed steps per path and batch")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant (median)")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--skip-ddp", action="store_true")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the single-process paths")
    args = parser.parse_args()
    if args.device == "cuda":
        main_cuda(args)
        return
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # enough showers for steps + 1 full batches on each of 2 processes within one epoch (90 % train split)
        path = synthetic_file(folder, int(2 * (args.steps + 2) * args.batch / 0.9) + 1)
        rounds = time_variants(path, folder, args.batch, args.steps)
        rows = [(name, float(np.median(rounds[name])), run) for name, run in VARIANTS.items()]
        base, base_rounds = rows[0][1], np.array(rounds[rows[0][0]])
        for name, sec, _ in rows:
            print(f"{name}: {sec:.2f} s per step of {args.batch}", flush=True)
        flops = flops_per_shower(path, folder, args.batch)
        peaks = {"fp32": matmul_peak_gflops(torch.float32), "bf16": matmul_peak_gflops(torch.bfloat16)}
        ddp = {} if args.skip_ddp else {p: ddp_rate(path, folder, args.batch, args.steps, p) for p in (1, 2)}
    threads = "" if args.threads == 2 else f" --threads {args.threads}"
    lines = ["## Training (3DGAN, 25x25x25, CPU)", "",
             f"Machine: {machine_description()}. Command: `.venv/bin/python benchmarks/bench_train.py --write "
             f"--batch {args.batch} --steps {args.steps}{threads}` (synthetic showers, batch {args.batch}, one "
             "training step = 2 discriminator + 2 generator updates; median of the timed steps, the paths taking "
             "turns step by step).", "",
             f"FLOPs per shower per training step (torch FLOP counter, fp32): {flops / 1e9:.1f} GFLOP. "
             f"Measured matmul peak: fp32 {peaks['fp32']:.0f}, bf16 {peaks['bf16']:.0f} GFLOP/s.", "",
             "| path | s / step | showers / s | speed-up vs fp32 eager | per round (min-max) | share of matmul peak |",
             "|---|---|---|---|---|---|"]
    for name, seconds, run in rows:
        rate = args.batch / seconds
        peak = peaks["fp32" if run["precision"] == "fp32" else "bf16"]
        per_round = base_rounds / np.array(rounds[name])  # the same round: the same state of the machine
        lines.append(f"| {name} | {seconds:.2f} | {rate:.2f} | {base / seconds:.2f}x | "
                     f"{per_round.min():.2f}-{per_round.max():.2f}x | {flops * rate / 1e9 / peak:.1%} |")
    if ddp:
        lines += ["", "| processes x threads (bf16, torchrun, gloo) | showers / s |", "|---|---|",
                  f"| 1 x 2 | {ddp[1]:.2f} |", f"| 2 x 1 (DDP) | {ddp[2]:.2f} |", "",
                  f"DDP efficiency on this machine: {ddp[2] / ddp[1]:.0%} of the single-process throughput with the "
                  "same cores."]
    section = "\n".join(lines) + "\n"
    print(section)
    if args.write:
        write_results(section, Path(__file__).parent / "RESULTS.md")


if __name__ == "__main__":
    main()
