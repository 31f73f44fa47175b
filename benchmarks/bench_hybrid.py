"""Fast simulation inside the detailed simulation: events per second with and without the model, where the time
goes, and the event-level physics of the hybrid against the full Monte Carlo on the same events.

Events: two electrons of 20-80 GeV (uniform) at normal incidence on the ``clic-wide`` detector (51 x 51 cells of
5.1 mm, CLIC's 25 layers), one entering at x in [-50, -10] mm, the other at x in [10, 50] mm, y in [-20, 20] mm
for both. Both runs go through ``fastshower simulate --events`` (in this process) with all cores, after a warm-up
run of a few events (numba's kernel from the on-disk cache, the model's first bf16 batch).

Run: ``.venv/bin/python benchmarks/bench_hybrid.py [--events 200] [--write]``. ``--write`` replaces the
"## Hybrid simulation" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from fastshower.bench import machine_description, write_results
from fastshower.cli import main as cli
from fastshower.data.events import read_event_showers
from fastshower.validate.events import compare_events, format_event_checks

MODEL = "3dgan-clic-electrons"
SUMMARY = re.compile(r"main process: ([\d.]+) s waiting for the transport, ([\d.]+) s in the model, ([\d.]+) s placing")


def two_electron_events(n: int, seed: int) -> dict:
    """The benchmark's events (YAML mapping)."""
    rng = np.random.default_rng(seed)
    events = []
    for _ in range(n):
        left = {"pdg": 11, "energy_GeV": float(rng.uniform(20, 80)), "x_mm": float(rng.uniform(-50, -10)),
                "y_mm": float(rng.uniform(-20, 20))}
        right = {"pdg": 11, "energy_GeV": float(rng.uniform(20, 80)), "x_mm": float(rng.uniform(10, 50)),
                 "y_mm": float(rng.uniform(-20, 20))}
        events.append({"particles": [left, right]})
    return {"events": events}


def simulate(spec: Path, out: Path, workers: int, *extra: str) -> tuple[float, str]:
    """Run ``fastshower simulate --events`` in this process; (wall seconds, its summary line)."""
    buffer = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(buffer):
        code = cli(["simulate", "--events", str(spec), "--geometry", "clic-wide", "--seed", "11", "--workers",
                    str(workers), "--out", str(out), "--quiet", "--overwrite", *extra])
    wall = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"simulate failed ({code}): {buffer.getvalue()}")
    return wall, buffer.getvalue().strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200, help="events per run (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="cores (default: all)")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        spec, warm = folder / "events.yaml", folder / "warm.yaml"
        spec.write_text(yaml.safe_dump(two_electron_events(args.events, seed=3)))
        warm.write_text(yaml.safe_dump(two_electron_events(4, seed=4)))
        simulate(warm, folder / "warm-full.h5", args.workers)
        simulate(warm, folder / "warm-hybrid.h5", args.workers, "--fast-model", MODEL)
        full_s, full_line = simulate(spec, folder / "full.h5", args.workers)
        hybrid_s, hybrid_line = simulate(spec, folder / "hybrid.h5", args.workers, "--fast-model", MODEL)
        comparison = compare_events(read_event_showers(folder / "full.h5"), read_event_showers(folder / "hybrid.h5"))
    shares = SUMMARY.search(hybrid_line)
    wait_s, model_s, place_s = (float(v) for v in shares.groups()) if shares else (float("nan"),) * 3
    other_s = hybrid_s - wait_s - model_s - place_s
    n = args.events
    command = f".venv/bin/python benchmarks/bench_hybrid.py --events {n} --write"
    text = "\n".join([
        "## Hybrid simulation (events of two 20-80 GeV electrons, clic-wide, shipped model)",
        "",
        f"Machine: {machine_description()}. Command: `{command}` ({args.workers} workers; wall times of "
        "`fastshower simulate --events` including the writing, after a warm-up run).",
        "",
        "| run | events | wall (s) | events / s | speed-up |",
        "|---|---|---|---|---|",
        f"| full Monte Carlo | {n} | {full_s:.1f} | {n / full_s:.2f} | 1x |",
        f"| hybrid (`--fast-model {MODEL}`) | {n} | {hybrid_s:.1f} | {n / hybrid_s:.2f} | "
        f"{full_s / hybrid_s:.1f}x |",
        "",
        f"Hybrid run's time: model {model_s:.2f} s ({100 * model_s / hybrid_s:.0f} %), placing and summing "
        f"{place_s:.2f} s ({100 * place_s / hybrid_s:.0f} %), waiting for the transport {wait_s:.2f} s "
        f"({100 * wait_s / hybrid_s:.0f} %: every particle here is the model's), reading the events, writing the "
        f"file and start-up {other_s:.2f} s ({100 * other_s / hybrid_s:.0f} %).",
        "Bar (issue 15): >= 3x faster than the full Monte Carlo on 2 cores; goal 20x.",
        "",
        "Hybrid against the full Monte Carlo on the same events (`fastshower.validate.events.compare_events`; floor ="
        " the standard error of the difference, pass = within max(3 x floor, tolerance)):",
        "",
        "```",
        format_event_checks(comparison),
        "```",
        "",
    ])
    print(text)
    print(full_line)
    print(hybrid_line)
    if args.write:
        write_results(text, Path(__file__).with_name("RESULTS.md"))


if __name__ == "__main__":
    main()
