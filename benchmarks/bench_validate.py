"""Benchmark of ``fastshower validate``: 10k reference vs 10k candidate showers of 25 x 25 x 25 cells.

The samples are synthetic MC-like showers (gamma-function longitudinal profile, Gaussian transverse core,
log-normal cell fluctuations, CLIC geometry attributes) at 10, 50, 100 and 200 GeV: simulating 20k showers at
these energies with the Monte Carlo takes ~20 min on 2 cores, longer than the benchmark itself. The timed part is
the whole validation (observables, all metrics with their floor, both classifiers, figures, HTML, JSON).

    .venv/bin/python benchmarks/bench_validate.py [--n 10000] [--write]

``--write`` appends the result to benchmarks/RESULTS.md under "## Validation".
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from fastshower.data import ShowerData, write_showers
from fastshower.validate import run_validation

CLIC = {"name": "clic", "grid": {"nx": 25, "ny": 25, "pitch_mm": 5.1},
        "layers": [{"repeat": 17, "absorber": "W", "absorber_mm": 2.4, "sensor": "Si", "sensor_mm": 0.5},
                   {"repeat": 8, "absorber": "W", "absorber_mm": 4.8, "sensor": "Si", "sensor_mm": 0.5}]}


def toy_showers(n: int, seed: int, energies=(10.0, 50.0, 100.0, 200.0), chunk: int = 1000) -> ShowerData:
    """MC-like showers in the CLIC cell shape (see the module docstring), made ``chunk`` at a time."""
    rng = np.random.default_rng(seed)
    nx = ny = nz = 25
    parts, e_all = [], []
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        e = rng.choice(np.asarray(energies), m)
        deposit = 0.023 * e * (1 + 0.05 * rng.standard_normal(m))
        tmax = 4.0 + 1.3 * np.log(e) + 0.8 * rng.standard_normal(m)
        t = np.arange(nz) + 0.5
        long = t[None, :] ** (0.5 * np.clip(tmax, 0.5, None))[:, None] * np.exp(-0.5 * t)[None, :]
        long /= long.sum(axis=1, keepdims=True)
        sigma = (0.8 * (1 + 0.1 * rng.standard_normal(m)))[:, None]
        cx = 12 + 0.2 * rng.standard_normal(m)[:, None]
        cy = 12 + 0.2 * rng.standard_normal(m)[:, None]
        tx = np.exp(-0.5 * ((np.arange(nx)[None, :] - cx) / sigma) ** 2) + 1e-3
        ty = np.exp(-0.5 * ((np.arange(ny)[None, :] - cy) / sigma) ** 2) + 1e-3
        tx /= tx.sum(1, keepdims=True)
        ty /= ty.sum(1, keepdims=True)
        cells = (deposit[:, None, None, None] * tx[:, :, None, None] * ty[:, None, :, None]
                 * long[:, None, None, :]).astype(np.float32)
        cells *= rng.lognormal(0.0, 0.4, cells.shape).astype(np.float32)
        cells[cells < 1e-6] = 0.0
        parts.append(cells)
        e_all.append(e)
    e = np.concatenate(e_all)
    z = np.zeros(n)
    return ShowerData(np.concatenate(parts), e, z, z, np.full(n, 11), attrs={"geometry": CLIC})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000, help="showers per sample (default: %(default)s)")
    parser.add_argument("--write", action="store_true", help="append the result to benchmarks/RESULTS.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(relativeCreated)8.0f ms %(name)s: %(message)s")
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        ref = write_showers(folder / "ref.h5", toy_showers(args.n, seed=1))
        cand = write_showers(folder / "cand.h5", toy_showers(args.n, seed=2))
        print(f"made 2 x {args.n} synthetic showers in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        metrics = run_validation(ref, cand, folder / "report", seed=1)
        wall = time.perf_counter() - t0
    n_pass = sum(r["pass"] is not False for r in metrics["summary"])
    auc = {k: v["value"]["auc"] for k, v in metrics["classifier"].items()}
    line = (f"validate {args.n} vs {args.n} showers (25x25x25, 4 energy bins, both classifiers, figures): "
            f"{wall:.1f} s; {n_pass}/{len(metrics['summary'])} checks pass; AUC low {auc['low']:.3f}, "
            f"high {auc['high']:.3f}")
    print(line)
    if args.write:
        cpu = platform.processor() or platform.machine()
        with contextlib.suppress(OSError, StopIteration):
            cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                       if ln.startswith("model name"))
        results = Path(__file__).with_name("RESULTS.md")
        text = results.read_text() if results.exists() else "# Benchmark results\n"
        if "## Validation" not in text:
            text += ("\n## Validation\n\nSynthetic MC-like showers (see benchmarks/bench_validate.py); bar (issue 4): "
                     "<= 2 minutes on 2 cores.\n")
        text += (f"\nMachine: {cpu}, {os.cpu_count()} cores visible, Python {platform.python_version()}. "
                 f"Command: `.venv/bin/python benchmarks/bench_validate.py --write`.\n\n- {line}\n")
        results.write_text(text)


if __name__ == "__main__":
    main()
