"""``fastshower train``: one process, or many under torchrun."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from fastshower.cli.common import Context
from fastshower.errors import ConfigError


def add_train(p: argparse.ArgumentParser) -> None:
    """Arguments of ``fastshower train``."""
    p.add_argument("--config", type=Path,
                   help="YAML/TOML training configuration, e.g. configs/3dgan-clic.yaml (with --resume: default "
                   "the run's resolved_config.yaml)")
    p.add_argument("--data", help="training shower file (HDF5); overrides data.path")
    p.add_argument("--binning", help="binning of a CaloChallenge file: its XML or N_LAYERS,N_ALPHA,N_RADIAL; "
                   "overrides data.binning")
    p.add_argument("--mapping", metavar="YAML", help="mapping of a ROOT training file (tree, branches, readout "
                   "grid; docs/byo.md); overrides data.mapping")
    p.add_argument("--out", required=True, type=Path, help="run folder (log.jsonl, last.pt, best.pt, generator.pt)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    p.add_argument("--epochs", type=int, help="overrides optim.epochs")
    p.add_argument("--batch-size", type=int, help="showers per batch and process; overrides optim.batch_size")
    p.add_argument("--lr", type=float, help="learning rate per process; overrides optim.lr")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), help="overrides run.precision")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="overrides run.device")
    p.add_argument("--time-limit", type=float, metavar="MINUTES",
                   help="stop after the last epoch expected to end within MINUTES of wall time (resumable); "
                   "overrides run.time_limit_minutes")


def run_train(args: argparse.Namespace, ctx: Context) -> int:
    """Run ``fastshower train``; returns the exit code."""
    from fastshower.train import load_config, train
    from fastshower.train.checkpoint import resume_hint

    config_path = args.config
    if config_path is None:
        if not args.resume:
            raise ConfigError("train: --config is required (unless --resume)")
        config_path = args.out / "resolved_config.yaml"
    overrides = {key: value for key, value in (
        ("data.path", args.data), ("data.binning", args.binning), ("data.mapping", args.mapping),
        ("optim.epochs", args.epochs), ("optim.batch_size", args.batch_size), ("optim.lr", args.lr),
        ("run.precision", args.precision),
        ("run.device", args.device),
        ("run.time_limit_minutes", args.time_limit),
    ) if value is not None}
    config = load_config(config_path, overrides)
    ctx.hint = lambda: resume_hint(args.out)
    result = train(config, args.out, resume=args.resume, progress=not args.quiet)
    ctx.hint = None
    if int(os.environ.get("RANK", "0")) == 0:
        state = "finished" if result.finished else "stopped (run.max_steps or time limit)"
        best = f", best physics score {result.best_score:.4g}" if result.best_score is not None else ""
        print(f"{args.out}: {state} at epoch {result.epoch}, step {result.step}{best}")
    return 0


def add_fit_layers(p: argparse.ArgumentParser) -> None:
    """Arguments of ``fastshower fit-layers``."""
    p.add_argument("--model", required=True, help="a 3dvae bundle: a shipped model's name or a generator.pt")
    p.add_argument("--data", required=True, type=Path, help="the showers to fit (HDF5): the model's training data")
    p.add_argument("--out", required=True, type=Path, help="the bundle to write (.pt)")
    p.add_argument("--steps", type=int, default=20000, help="Adam steps, cosine-annealed to 0 (default 20000, "
                   "~6.5 min on one core)")
    p.add_argument("--batch", type=int, default=256, help="showers per step (default 256)")
    p.add_argument("--lr", type=float, default=3e-4, help="initial learning rate (default 3e-4)")
    p.add_argument("--seed", type=int, default=0, help="seed of the flows' initialisation, dequantisation and "
                   "minibatches (default 0)")


def run_fit_layers(args: argparse.Namespace, ctx: Context) -> int:
    """Run ``fastshower fit-layers``; returns the exit code."""
    import fastshower
    from fastshower.models.bundle import load_bundle, save_bundle
    from fastshower.train.layer_energies import fit_layer_energies

    bundle = fastshower.load(args.model).bundle

    def report(step: int, nats: float) -> None:
        if not args.quiet:
            print(f"step {step}: -ln p(v | E) {nats:.3f} nats per shower", flush=True)

    decoder, options = fit_layer_energies(bundle, args.data, args.steps, args.batch, args.lr, args.seed, report)
    fit = {"data": str(args.data), "steps": args.steps, "batch": args.batch, "lr": args.lr, "seed": args.seed}
    save_bundle(args.out, decoder, model_name="3dvae", cell_shape=tuple(bundle.cell_shape), model_config=options,
                transform_power=bundle.transform_power, transform_scale=bundle.transform_scale,
                energy_range_GeV=bundle.energy_range_GeV, theta_range_rad=bundle.theta_range_rad,
                particles=list(bundle.particles), geometry=bundle.geometry,
                provenance={**bundle.provenance, "layer_energies": fit}, physics=bundle.physics)
    load_bundle(args.out)  # what was written loads
    print(f"{args.out}: written ({args.model} with its layer energies fitted on {args.data})")
    return 0
