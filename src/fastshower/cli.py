"""Command line: ``fastshower <command> ...`` (also ``python -m fastshower``).

Every user error (a :class:`~fastshower.errors.FastshowerError`) ends the program with exit code 2 and one
line ``fastshower: error: <message>`` on stderr, never a traceback; an interrupt (Ctrl-C) ends it with exit
code 1 after saying how to resume.

Commands are registered in ``COMMANDS`` (name -> function adding the arguments, function running it); new
ones (train, generate, validate, bench, export) plug in there.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

from fastshower import __version__
from fastshower.config import read_mapping
from fastshower.errors import ConfigError, FastshowerError

logger = logging.getLogger("fastshower.cli")

PROG = "fastshower"


class _Parser(argparse.ArgumentParser):
    """Argument errors become ``ConfigError`` so that they are reported like every other user error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{self.prog}: {message}".removeprefix(f"{PROG}: ").removeprefix(f"{PROG} "))


class _Context:
    """What the top level needs to know to report an interrupt (the partial file, showers saved)."""

    def __init__(self) -> None:
        self.partial: Path | None = None
        self.saved = 0
        self.total = 0


# --- simulate -------------------------------------------------------------------------------------------


def _add_simulate(p: argparse.ArgumentParser) -> None:
    from fastshower.mc.production import DEFAULT_CHUNK_SIZE

    p.add_argument("--geometry", default="clic", help="preset name (clic, clic-wide) or a YAML/TOML detector "
                   "file (default: %(default)s)")
    p.add_argument("--particle", required=True, help="e-, e+, gamma, pi0 or a PDG code")
    p.add_argument("--energy", required=True, metavar="GEV",
                   help="kinetic energy in GeV: fixed '100', uniform range '10:510' or list in equal shares "
                   "'10,50,100'")
    p.add_argument("--theta", default="0", metavar="DEG",
                   help="incidence angle from the normal in degrees, same forms as --energy (default: 0)")
    p.add_argument("--phi", default="0", metavar="DEG", help="azimuth in degrees (default: 0)")
    p.add_argument("--entry-xy", default="0,0", metavar="X,Y",
                   help="entry point on the front face in mm, 0,0 = grid centre (default: %(default)s)")
    p.add_argument("--entry-spread", type=float, default=0.0, metavar="MM",
                   help="uniform smearing of the entry point by +-MM in x and y (default: 0)")
    p.add_argument("--n", type=int, required=True, help="number of showers")
    p.add_argument("--seed", type=int, default=1, help="run seed; same seed => same showers (default: 1)")
    p.add_argument("--out", required=True, type=Path, help="output HDF5 file")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="worker processes (default: all %(default)s cores)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on a dask.distributed scheduler at ADDRESS, or 'local' for a LocalCluster of "
                   "--workers processes (needs fastshower[dask])")
    p.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE,
                   help="showers per work unit (default: %(default)s)")
    p.add_argument("--physics", type=Path, metavar="FILE", help="YAML/TOML file of physics settings")
    p.add_argument("--range-cut-mm", type=float, help="production range cut in mm (overrides --physics)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--no-resume", action="store_true",
                   help="discard an existing <out>.partial instead of resuming it")


def _load_settings(path: Path | None, range_cut_mm: float | None) -> Any:
    from fastshower.mc.settings import PhysicsSettings

    values: dict[str, Any] = {}
    if path is not None:
        values.update(read_mapping(path, "physics settings file"))
    if range_cut_mm is not None:
        values["range_cut_mm"] = range_cut_mm
    return PhysicsSettings.from_dict(values)


def _parse_xy(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--entry-xy '{text}': expected two numbers X,Y in mm") from None
    if not (np.isfinite(x) and np.isfinite(y)):
        raise ConfigError(f"--entry-xy '{text}': expected finite numbers")
    return x, y


class _Stats:
    """Running summary of the showers simulated in this invocation."""

    def __init__(self) -> None:
        self.n = 0
        self.sampling_sum = 0.0
        self.max_ledger_error = 0.0

    def add(self, ledger: dict[str, np.ndarray]) -> None:
        from fastshower.mc.simulator import LEDGER_KEYS

        available = ledger["available"]
        total = np.sum([ledger[k] for k in LEDGER_KEYS], axis=0)
        self.n += available.size
        self.sampling_sum += float(np.sum(ledger["sensor"] / available))
        if available.size:
            error = float(np.max(np.abs(total - available) / available))
            self.max_ledger_error = max(self.max_ledger_error, error)

    @property
    def sampling_fraction(self) -> float:
        return self.sampling_sum / self.n if self.n else float("nan")


def _progress(total: int, initial: int, disable: bool) -> Any:
    from tqdm import tqdm

    class Bar(tqdm):  # type: ignore[misc, valid-type]
        # no monitor thread: it is not needed, and a thread would make forking the worker pool unsafe
        monitor_interval = 0

    layout = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"
    return Bar(total=total, initial=initial, unit="shower", disable=disable, file=sys.stderr,
               dynamic_ncols=True, bar_format=layout)


def _run_simulate(args: argparse.Namespace, ctx: _Context) -> int:
    from fastshower.data import ShowerData, ShowerWriter
    from fastshower.geometry import load_geometry
    from fastshower.mc.production import (
        check_primaries,
        chunks,
        parse_values,
        particle_name,
        plan_primaries,
        run_production,
    )
    from fastshower.mc.simulator import available_energy_GeV

    out: Path = args.out
    if out.exists() and not args.overwrite:
        raise ConfigError(f"{out}: exists; pass --overwrite to replace it")
    if out.is_dir():
        raise ConfigError(f"{out}: is a directory")
    if args.n < 1:
        raise ConfigError(f"--n {args.n}: must be >= 1")
    if args.seed < 0:
        raise ConfigError(f"--seed {args.seed}: must be >= 0")
    if args.workers < 1:
        raise ConfigError(f"--workers {args.workers}: must be >= 1")
    if args.chunk_size < 1:
        raise ConfigError(f"--chunk-size {args.chunk_size}: must be >= 1")
    calorimeter = load_geometry(args.geometry)
    settings = _load_settings(args.physics, args.range_cut_mm)
    particle = particle_name(args.particle)
    energy = parse_values(args.energy, "--energy")
    theta = parse_values(args.theta, "--theta")
    phi = parse_values(args.phi, "--phi")
    entry_xy = _parse_xy(args.entry_xy)
    primaries = plan_primaries(particle, energy, theta, phi, args.n, args.seed, entry_xy, args.entry_spread)
    check_primaries(calorimeter, settings, primaries)

    request = {
        "particle": particle,
        "energy_GeV": energy.spec,
        "theta_deg": theta.spec,
        "phi_deg": phi.spec,
        "entry_xy_mm": list(entry_xy),
        "entry_spread_mm": float(args.entry_spread),
        "n": int(args.n),
        "chunk_size": int(args.chunk_size),
    }
    attrs = {"geometry": calorimeter.to_dict(), "physics": settings.to_dict(), "seed": int(args.seed),
             "request": request, "version": __version__}
    available = available_energy_GeV(primaries.pdg, primaries.energy_GeV)
    writer = ShowerWriter(out, args.n, calorimeter.cell_shape, attrs, resume=not args.no_resume,
                          overwrite=args.overwrite)
    ctx.partial, ctx.total = writer.partial_path, args.n
    bar = None
    try:
        done = writer.done_mask()
        ctx.saved = int(done.sum())
        todo = chunks(args.n, args.chunk_size, done)
        n_todo = sum(b - a for a, b in todo)
        if n_todo < args.n:
            logger.debug("resuming %s: %d of %d showers to simulate", writer.partial_path, n_todo, args.n)
        quiet = args.quiet or not sys.stderr.isatty()
        bar = _progress(args.n, args.n - n_todo, quiet)
        stats = _Stats()
        t0 = time.perf_counter()
        stream = run_production(calorimeter, settings, primaries, args.seed, todo, args.workers,
                                args.scheduler)
        with closing(stream):
            for start, batch in stream:
                stop = start + batch.images.shape[0]
                ledger = dict(batch.ledger, available=available[start:stop])
                part = primaries.select(start, stop)
                writer.write(start, ShowerData(batch.images, part.energy_GeV, part.theta_rad, part.phi_rad,
                                               part.pdg, ledger))
                ctx.saved = int(writer.done_mask().sum())
                stats.add(ledger)
                bar.update(stop - start)
                bar.set_postfix_str(f"{stats.n / max(time.perf_counter() - t0, 1e-9):.1f} showers/s")
        wall = time.perf_counter() - t0
        bar.close()
        writer.finalize()
    finally:
        if bar is not None:
            bar.close()
        writer.close()
    ctx.partial = None
    resumed = f" ({args.n - stats.n} resumed)" if stats.n < args.n else ""
    rate = stats.n / wall if wall > 0 else float("nan")
    print(f"{out}: {args.n} showers{resumed}; simulated {stats.n} in {wall:.1f} s, {rate:.1f} showers/s; "
          f"mean sampling fraction {stats.sampling_fraction:.4g}; "
          f"max relative ledger error {stats.max_ledger_error:.2g}")
    return 0


# --- inspect ------------------------------------------------------------------------------------------


def _add_inspect(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path, help="shower file (fastshower, 3DGAN or CaloChallenge HDF5)")
    p.add_argument("--binning",
                   help="CaloChallenge binning: the challenge's XML file or N_LAYERS,N_ALPHA,N_RADIAL")


def _binning(text: str | None) -> Any:
    if text is None:
        return None
    if "," in text:
        try:
            return tuple(int(v) for v in text.split(","))
        except ValueError:
            raise ConfigError(
                f"--binning '{text}': expected an XML file or N_LAYERS,N_ALPHA,N_RADIAL"
            ) from None
    return text


def _energy_range(path: Path, info: dict[str, Any], binning: Any) -> tuple[float, float] | None:
    from fastshower.data import iter_showers

    if info["n"] == 0:
        return None
    if info["format"] == "fastshower":
        import h5py

        with h5py.File(path, "r") as f:  # the energies only, not the images
            energy = np.asarray(f["energy"][...], dtype=np.float64)
        return float(energy.min()), float(energy.max())
    if info["cell_shape"] is None:
        return None
    low, high = np.inf, -np.inf
    for part in iter_showers(path, 1024, binning):
        low, high = min(low, float(part.energy_GeV.min())), max(high, float(part.energy_GeV.max()))
    return low, high


def _run_inspect(args: argparse.Namespace, ctx: _Context) -> int:
    from fastshower.data import inspect_showers

    binning = _binning(args.binning)
    info = inspect_showers(args.file, binning)
    attrs = info["attrs"]
    energy = _energy_range(args.file, info, binning)
    shape = info["cell_shape"]
    schema = f" (schema {attrs['schema_version']})" if "schema_version" in attrs else ""
    rows: list[tuple[str, Any]] = [
        ("file", info["path"]),
        ("format", info["format"] + schema),
        ("showers", info["n"]),
        ("cell shape", " x ".join(str(s) for s in shape) if shape else "unknown (pass --binning)"),
        ("energy", f"{energy[0]:.4g} .. {energy[1]:.4g} GeV" if energy else "unknown"),
    ]
    geometry = attrs.get("geometry")
    if isinstance(geometry, dict) and geometry:
        rows.append(("geometry", geometry.get("name", "?")))
    for key in ("seed", "version", "request", "source_file", "binning"):
        if key in attrs:
            rows.append((key, attrs[key]))
    if info["ledger_keys"]:
        rows.append(("ledger", ", ".join(info["ledger_keys"])))
    width = max(len(k) for k, _ in rows) + 1
    for key, value in rows:
        print(f"{key + ':':<{width}} {value}")
    return 0


# --- demo --------------------------------------------------------------------------------------------------


def _add_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--n", type=int, default=100, help="showers per energy (default: %(default)s)")
    p.add_argument("--seed", type=int, default=2026, help="run seed (default: %(default)s)")


def _run_demo(args: argparse.Namespace, ctx: _Context) -> int:
    from fastshower.demo import run_demo

    if args.n < 1:
        raise ConfigError(f"--n {args.n}: must be >= 1")
    if args.seed < 0:
        raise ConfigError(f"--seed {args.seed}: must be >= 0")
    run_demo(args.out, n_per_energy=args.n, seed=args.seed)
    return 0


# --- train ----------------------------------------------------------------------------------------------


def _add_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path,
                   help="YAML/TOML training configuration, e.g. configs/3dgan-clic.yaml (with --resume: default "
                   "the run's resolved_config.yaml)")
    p.add_argument("--data", help="training shower file (HDF5); overrides data.path")
    p.add_argument("--out", required=True, type=Path, help="run directory (log.jsonl, last.pt, best.pt)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    p.add_argument("--epochs", type=int, help="overrides optim.epochs")
    p.add_argument("--batch-size", type=int, help="showers per batch and process; overrides optim.batch_size")
    p.add_argument("--lr", type=float, help="learning rate per process; overrides optim.lr")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), help="overrides run.precision")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="overrides run.device")


def _run_train(args: argparse.Namespace, ctx: _Context) -> int:
    from fastshower.train import load_config, train

    config_path = args.config
    if config_path is None:
        if not args.resume:
            raise ConfigError("train: --config is required (unless --resume)")
        config_path = args.out / "resolved_config.yaml"
    overrides = {key: value for key, value in (
        ("data.path", args.data), ("optim.epochs", args.epochs), ("optim.batch_size", args.batch_size),
        ("optim.lr", args.lr), ("run.precision", args.precision), ("run.device", args.device),
    ) if value is not None}
    result = train(load_config(config_path, overrides), args.out, resume=args.resume, progress=not args.quiet)
    if int(os.environ.get("RANK", "0")) == 0:
        state = "finished" if result.finished else "stopped (run.max_steps)"
        best = f", best physics score {result.best_score:.4g}" if result.best_score is not None else ""
        print(f"{args.out}: {state} at epoch {result.epoch}, step {result.step}{best}")
    return 0


# --- validate -----------------------------------------------------------------------------------------------


def _add_validate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reference", required=True, type=Path, help="reference shower file (e.g. the Monte Carlo)")
    p.add_argument("--candidate", required=True, type=Path, help="shower file to validate (e.g. generated)")
    p.add_argument("--out", required=True, type=Path, help="report folder (index.html, metrics.json, plots/)")
    p.add_argument("--reference2", type=Path,
                   help="independent reference sample for the statistical floor (default: split --reference)")
    p.add_argument("--energy-bins", default="10,50,100,200,510", metavar="EDGES",
                   help="primary-energy bin edges in GeV (default: %(default)s)")
    p.add_argument("--threshold-MeV", type=float, default=0.1, help="cell threshold in MeV (default: 0.1)")
    p.add_argument("--tolerances", type=Path, metavar="YAML", help="YAML file overriding the pass tolerances")
    p.add_argument("--no-classifier", action="store_true", help="skip the classifier test")
    p.add_argument("--seed", type=int, default=1, help="seed of the splits and the classifier (default: 1)")


def _run_validate(args: argparse.Namespace, ctx: _Context) -> int:
    from fastshower.validate.report import load_tolerances, run_validation

    try:
        edges = [float(v) for v in args.energy_bins.split(",")]
    except ValueError:
        raise ConfigError(f"--energy-bins '{args.energy_bins}': expected comma-separated numbers in GeV") from None
    if not (args.threshold_MeV >= 0 and np.isfinite(args.threshold_MeV)):
        raise ConfigError(f"--threshold-MeV {args.threshold_MeV}: must be a finite number >= 0")
    if args.out.exists() and not args.out.is_dir():
        raise ConfigError(f"{args.out}: exists and is not a directory")
    metrics = run_validation(args.reference, args.candidate, args.out, reference2=args.reference2,
                             energy_edges=edges, threshold_GeV=args.threshold_MeV * 1e-3,
                             tolerances=load_tolerances(args.tolerances), classifier=not args.no_classifier,
                             seed=args.seed)
    failed = [r for r in metrics["summary"] if r["pass"] is False]
    print(f"{args.out / 'index.html'}: {len(metrics['summary']) - len(failed)} of {len(metrics['summary'])} "
          f"checks pass ({'PASS' if not failed else 'FAIL'}) in {metrics['seconds']:.1f} s")
    return 0


# --- top level ----------------------------------------------------------------------------------------------

Command = tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace, _Context], int]]
COMMANDS: dict[str, Command] = {
    "simulate": ("simulate showers with the detailed Monte Carlo into an HDF5 file (resumable)",
                 _add_simulate, _run_simulate),
    "inspect": ("describe a shower file", _add_inspect, _run_inspect),
    "train": ("train a generative model (3DGAN) on a shower file; one process or many under torchrun",
              _add_train, _run_train),
    "demo": ("simulate a small sample at a few energies, print a summary and plot it", _add_demo, _run_demo),
    "validate": ("compare a candidate shower sample with a reference: HTML report and metrics.json",
                 _add_validate, _run_validate),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of all commands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="debug messages")
    common.add_argument("-q", "--quiet", action="store_true",
                        help="warnings and results only, no progress bar")
    parser = _Parser(prog=PROG, description="Fast simulation of calorimeter showers.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="command", required=True)
    for name, (help_text, add_arguments, _) in COMMANDS.items():
        add_arguments(sub.add_parser(name, help=help_text, description=help_text, parents=[common]))
    return parser


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        return f"{PROG}: {level}{record.getMessage()}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 interrupted, 2 user error)."""
    ctx = _Context()
    pkg_logger = logging.getLogger("fastshower")
    old_level, handler = pkg_logger.level, None
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exit_:  # --help, --version
            return exit_.code if isinstance(exit_.code, int) else 0
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_Formatter())
        pkg_logger.addHandler(handler)
        level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
        pkg_logger.setLevel(level)
        return COMMANDS[args.command][2](args, ctx)
    except FastshowerError as err:
        _error(str(err))
        return 2
    except OSError as err:
        where = f"{err.filename}: " if getattr(err, "filename", None) else ""
        _error(f"{where}{err.strerror or err}")
        return 2
    except KeyboardInterrupt:
        if ctx.partial is not None:
            _error(f"interrupted; {ctx.saved} of {ctx.total} showers are saved in {ctx.partial}: "
                   "run the same command again to resume")
        else:
            _error("interrupted")
        return 1
    finally:
        if handler is not None:
            pkg_logger.removeHandler(handler)
        pkg_logger.setLevel(old_level)


def _error(message: str) -> None:
    line = " ".join(str(message).split())  # one line, whatever the message holds
    print(f"{PROG}: error: {line}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
