"""``fastshower demo``: the main job."""

from __future__ import annotations

import argparse
from pathlib import Path

from fastshower.cli.common import Context, check_seed
from fastshower.errors import ConfigError


def add_demo(p: argparse.ArgumentParser) -> None:
    """Arguments of ``fastshower demo``."""
    p.add_argument("--out", required=True, type=Path,
                   help="output folder (a folder: mc_demo.h5, mc_demo.png, gen_demo.h5, report/)")
    p.add_argument("--n", type=int, default=100, help="showers per energy (default: %(default)s)")
    p.add_argument("--seed", type=int, default=2026, help="run seed (default: %(default)s)")
    p.add_argument("--model", default="3dvae-clic-electrons",  # fastshower.demo.DEFAULT_MODEL (not imported: numba)
                   help="fast model to compare with the Monte Carlo: a bundle or shipped name (default: %(default)s)")
    p.add_argument("--mc-only", action="store_true", help="the Monte Carlo part only")


def run_demo(args: argparse.Namespace, ctx: Context) -> int:
    """Run ``fastshower demo``; returns the exit code."""
    from fastshower.demo import run_demo as run_main_job

    if args.n < 1:
        raise ConfigError(f"--n {args.n}: must be >= 1")
    check_seed(args.seed)
    run_main_job(args.out, n_per_energy=args.n, seed=args.seed, model=None if args.mc_only else args.model)
    return 0
