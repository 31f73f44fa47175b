"""``fastshower tune``: an optuna study over the training recipe, on one machine or many (:mod:`fastshower.tune`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fastshower.cli.common import Context
from fastshower.errors import ConfigError

DEFAULT_SPACE = Path(__file__).resolve().parents[1] / "tune" / "tune-space.yaml"


def add_tune(p: argparse.ArgumentParser) -> None:
    """Arguments of ``fastshower tune``."""
    from fastshower.tune.study import PRUNERS, SAMPLERS

    p.add_argument("--config", required=True, type=Path, help="base training configuration (YAML/TOML), e.g. "
                   "configs/3dgan-clic.yaml; each trial overrides the keys of the search space")
    p.add_argument("--data", help="training shower file; overrides data.path")
    p.add_argument("--trials", required=True, type=int,
                   help="the study's total of completed and pruned trials: a rerun runs only the missing ones")
    p.add_argument("--out", required=True, type=Path,
                   help="study folder: trial-NNNN/ runs, tune.log, best.yaml, report/ (and study.db by default)")
    p.add_argument("--space", type=Path, default=DEFAULT_SPACE,
                   help="search space YAML (default: the shipped configs/tune-space.yaml)")
    p.add_argument("--storage", default="", metavar="URL",
                   help="optuna storage: an SQLAlchemy URL (postgresql://user@host/db for several machines) or "
                        "journal:PATH (a journal file on a shared file system) (default: sqlite:///OUT/study.db)")
    p.add_argument("--study", default="fastshower", metavar="NAME", help="study name in the storage "
                   "(default: %(default)s)")
    p.add_argument("--workers", type=int, default=1, metavar="K",
                   help="processes on this machine working on the study at once (one per GPU when training on "
                        "GPUs) (default: 1)")
    p.add_argument("--pruner", choices=PRUNERS, default="median",
                   help="stops hopeless trials from their epochs' scores (default: %(default)s)")
    p.add_argument("--sampler", choices=SAMPLERS, default="tpe", help="optuna sampler (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1, help="sampler seed (default: 1)")
    p.add_argument("--epochs", type=int, help="overrides optim.epochs of every trial")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="overrides run.device of every trial")


def run_tune(args: argparse.Namespace, ctx: Context) -> int:
    """Run ``fastshower tune``; returns the exit code."""
    from fastshower.train import load_config
    from fastshower.tune.space import check_space, load_space
    from fastshower.tune.study import TuneOptions, load_study, require_optuna, tune, write_best

    require_optuna()
    if args.trials < 1:
        raise ConfigError(f"--trials {args.trials}: must be >= 1")
    if args.workers < 1:
        raise ConfigError(f"--workers {args.workers}: must be >= 1")
    if args.out.exists() and not args.out.is_dir():
        raise ConfigError(f"--out {args.out}: exists and is not a folder")
    overrides = {key: value for key, value in (("optim.epochs", args.epochs), ("run.device", args.device))
                 if value is not None}
    if args.data:
        overrides["data.path"] = args.data
    base = load_config(args.config, overrides)
    if not base.data.path or not Path(base.data.path).is_file():
        raise ConfigError(f"training data '{base.data.path}': no such file (give --data or data.path)")
    if base.run.physics_check_every != 1 or base.data.validation_fraction <= 0:
        raise ConfigError(f"{args.config}: tune judges trials by the physics score of every epoch: it needs "
                          "run.physics_check_every: 1 and data.validation_fraction > 0")
    space = load_space(args.space)
    check_space(space, base.to_dict(), str(args.space))
    options = TuneOptions(config=args.config, space=space, out=args.out, trials=args.trials, study=args.study,
                          storage=args.storage, data=args.data, overrides=overrides, workers=args.workers,
                          pruner=args.pruner, sampler=args.sampler, seed=args.seed)
    print(f"study '{args.study}' in {options.storage_url()}: {args.trials} trials of {args.config} over "
          + "; ".join(p.describe() for p in space))
    ctx.hint = lambda: "run the same command again to resume the study (a trial cut short is marked failed)"
    states = tune(options)
    ctx.hint = None
    from fastshower.tune.report import write_report

    study = load_study(options)
    best = write_best(study, args.out)
    page = write_report(study, args.out)
    summary = ", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items()))
    print(f"{args.out}: {summary}; report {page}" + (f"; best configuration {best}" if best else ""))
    return 0
