"""Speed of the Monte Carlo on a GPU against the CPU kernel on one core and on all cores (CLIC preset, e-, normal
incidence, default physics).

Run on a machine with an NVIDIA GPU: ``python benchmarks/bench_gpu_mc.py [--write] [--json FILE]``. It reports,
for 10, 100 and 500 GeV and a uniform 10-510 GeV spectrum: showers/s, ms per shower and per GeV, steps per
second (photon flights and charged steps, counted by the kernel) and the GPU's speed-up over one CPU core and over
all of them. Every point is timed after the kernel was compiled (compile time reported apart). A thread makes one
shower, so the GPU is full only with tens of thousands of showers in flight: each point takes as many showers as
fit in ``--seconds`` at the rate measured on the previous point (at most ``--max-showers``).

``--write`` replaces the "## GPU Monte Carlo" section of benchmarks/RESULTS.md. Without a GPU the script stops
with a one-line message; with ``NUMBA_ENABLE_CUDASIM=1`` and ``--smoke`` it runs a few tiny showers to check itself.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from fastshower.bench import machine_description, write_results
from fastshower.errors import ConfigError
from fastshower.geometry import load_geometry
from fastshower.mc import gpu
from fastshower.mc.production import chunks, run_production
from fastshower.mc.rng import shower_seeds
from fastshower.mc.settings import PhysicsSettings
from fastshower.mc.simulator import Primaries, Simulator

UNIFORM = "10-510"


def electrons(energy: float | str, n: int, seed: int) -> Primaries:
    """``n`` electrons at normal incidence: ``energy`` GeV, or uniform in [10, 510] GeV for ``UNIFORM``."""
    z = np.zeros(n)
    energies = np.random.default_rng(seed).uniform(10.0, 510.0, n) if energy == UNIFORM else np.full(n, float(energy))
    return Primaries(np.full(n, 11), energies, z, z, z, z)


def mean_energy(energy: float | str) -> float:
    """Mean primary energy (GeV) of a point."""
    return 260.0 if energy == UNIFORM else float(energy)


def timed(sim: Simulator, primaries: Primaries, seed: int) -> tuple[float, int]:
    """Wall seconds and total steps of one ``run``."""
    start = time.perf_counter()
    sim.run(primaries, shower_seeds(seed, 0, len(primaries)))
    return time.perf_counter() - start, int(sim.last_steps.sum())


def gpu_name() -> str:
    """The GPU's name and memory, from nvidia-smi (or numba-cuda)."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30, check=True)
        return out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "CUDA simulator" if gpu.simulated() else "unknown GPU"


def all_cores_rate(calo: object, settings: PhysicsSettings, n: int, seed: int) -> float:
    """Showers/s of the CPU kernel on every core (local process pool), 10-510 GeV."""
    primaries = electrons(UNIFORM, n, seed)
    workers = os.cpu_count() or 1
    start = time.perf_counter()
    for _ in run_production(calo, settings, primaries, seed, chunks(n, max(1, n // (4 * workers))), workers):
        pass
    return n / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    parser.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    parser.add_argument("--seconds", type=float, default=40.0, help="GPU seconds aimed at per point")
    parser.add_argument("--max-showers", type=int, default=gpu.DEFAULT_SHOWERS_PER_LAUNCH * 2)
    parser.add_argument("--cpu-seconds", type=float, default=12.0, help="one-core seconds aimed at per point")
    parser.add_argument("--smoke", action="store_true", help="tiny showers and counts (checks the script)")
    args = parser.parse_args()
    calo, settings = load_geometry("clic"), PhysicsSettings()
    points: list[float | str] = [10.0, 100.0, 500.0, UNIFORM]
    if args.smoke:
        points, args.seconds, args.cpu_seconds, args.max_showers = [1.0, 2.0], 1.0, 1.0, 16
    try:
        gpu_sim = Simulator(calo, settings, device="cuda")
    except ConfigError as err:
        print(f"bench_gpu_mc: {err}", file=sys.stderr)
        return 2
    cpu_sim = Simulator(calo, settings)
    start = time.perf_counter()
    timed(gpu_sim, electrons(1.0, 64, 0), 0)  # compiles the kernel for this GPU
    compile_s = time.perf_counter() - start
    timed(cpu_sim, electrons(1.0, 2, 0), 0)
    rows, numbers = [], {"gpu": gpu_name(), "cpu": machine_description(), "compile_s": compile_s, "points": []}
    gpu_ms_per_GeV = 0.05  # first guess, replaced by each measurement
    cpu_ms_per_GeV = 5.0
    for energy in points:
        e_mean = mean_energy(energy)
        n_gpu = int(min(args.max_showers, max(64, args.seconds * 1000.0 / (gpu_ms_per_GeV * e_mean))))
        wall, steps = timed(gpu_sim, electrons(energy, n_gpu, 1), 1)
        gpu_ms_per_GeV = wall * 1000.0 / (n_gpu * e_mean)
        n_cpu = int(max(2, min(200, args.cpu_seconds * 1000.0 / (cpu_ms_per_GeV * e_mean))))
        cpu_wall, cpu_steps = timed(cpu_sim, electrons(energy, n_cpu, 2), 2)
        cpu_ms_per_GeV = cpu_wall * 1000.0 / (n_cpu * e_mean)
        point = {"energy_GeV": energy, "gpu_showers": n_gpu, "gpu_showers_per_s": n_gpu / wall,
                 "gpu_ms_per_GeV": gpu_ms_per_GeV, "gpu_steps_per_s": steps / wall, "cpu_showers": n_cpu,
                 "cpu_ms_per_GeV": cpu_ms_per_GeV, "cpu_steps_per_s": cpu_steps / cpu_wall,
                 "speedup_one_core": cpu_ms_per_GeV / gpu_ms_per_GeV}
        numbers["points"].append(point)
        label = "10-510 uniform" if energy == UNIFORM else f"{energy:g}"
        rows.append(f"| {label} | {n_gpu} | {n_gpu / wall:.1f} | {1000 * wall / n_gpu:.2f} | {gpu_ms_per_GeV:.4f} "
                    f"| {steps / wall:.3g} | {cpu_ms_per_GeV:.2f} | {cpu_steps / cpu_wall:.3g} "
                    f"| {point['speedup_one_core']:.1f} |")
        print(rows[-1], flush=True)
    uniform = numbers["points"][-1]
    cores = os.cpu_count() or 1
    n_all = 16 if args.smoke else max(4 * cores, int(args.cpu_seconds * cores * 1000.0 / (cpu_ms_per_GeV * 260.0)))
    all_rate = all_cores_rate(calo, settings, n_all, 3)
    numbers["all_cores_showers_per_s"] = all_rate
    numbers["speedup_all_cores"] = uniform["gpu_showers_per_s"] / all_rate
    text = "\n".join([
        "## GPU Monte Carlo",
        "",
        f"GPU: {numbers['gpu']}; CPU: {numbers['cpu']}. Command: `python benchmarks/bench_gpu_mc.py --write`. "
        f"Kernel compilation at the first launch: {compile_s:.0f} s (not in the timings).",
        "",
        "| E (GeV) | GPU showers | GPU showers/s | GPU ms / shower | GPU ms / GeV | GPU steps/s | 1-core ms / GeV "
        "| 1-core steps/s | speed-up vs 1 core |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"All {cores} CPU cores (process pool), 10-510 GeV: {all_rate:.1f} showers/s; the GPU alone makes "
        f"{numbers['speedup_all_cores']:.1f}x as many.",
        f"GPU Monte Carlo speed-up vs one CPU core: {uniform['speedup_one_core']:.1f} x (10-510 GeV). "
        "Bar (issue 11): 50x; goal: 200x.",
        "",
    ])
    print(text)
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=1))
    if args.write:
        write_results(text, os.path.join(os.path.dirname(__file__), "RESULTS.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
