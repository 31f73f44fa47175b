"""``fastshower simulate`` (the Monte Carlo into an HDF5 file, resumable) and ``fastshower inspect``."""

from __future__ import annotations

import argparse
import logging
import os
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

from fastshower import __version__
from fastshower.cli.common import Context, add_layout_options, check_output_file, check_seed, layout, progress, writing
from fastshower.cli.events import add_event_options, run_simulate_events
from fastshower.config import read_mapping
from fastshower.errors import ConfigError

logger = logging.getLogger("fastshower.cli")

# --- simulate -------------------------------------------------------------------------------------------


def add_simulate(p: argparse.ArgumentParser) -> None:
    """Arguments of ``fastshower simulate``."""
    from fastshower.mc.gpu import DEFAULT_SHOWERS_PER_LAUNCH
    from fastshower.mc.production import DEFAULT_CHUNK_SIZE

    p.add_argument("--geometry", default="clic", help="preset name (clic, clic-wide) or a YAML/TOML detector "
                   "file (default: %(default)s)")
    p.add_argument("--particle", help="e-, e+, gamma, pi0 or a PDG code (required without --events)")
    p.add_argument("--energy", metavar="GEV",
                   help="kinetic energy in GeV: fixed '100', uniform range '10:510', log-uniform range "
                   "'10:510:log' (as many showers per factor of energy at the low edge as at the high one) or list "
                   "in equal shares '10,50,100' (required without --events)")
    p.add_argument("--theta", default="0", metavar="DEG",
                   help="incidence angle from the normal in degrees, same forms as --energy (default: 0)")
    p.add_argument("--phi", default="0", metavar="DEG", help="azimuth in degrees (default: 0)")
    p.add_argument("--entry-xy", default="0,0", metavar="X,Y",
                   help="entry point on the front face in mm, 0,0 = grid centre (default: %(default)s)")
    p.add_argument("--entry-spread", type=float, default=0.0, metavar="MM",
                   help="uniform smearing of the entry point by +-MM in x and y (default: 0)")
    p.add_argument("--n", type=int, help="number of showers (required without --events; with --events: the first "
                   "N events, default all)")
    p.add_argument("--seed", type=int, default=1, help="run seed; same seed => same showers (default: 1)")
    p.add_argument("--out", required=True, type=Path, help="output HDF5 file (one file; resumable)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="processes making showers (default: all %(default)s cores); with --device cuda one of "
                        "them drives the GPU and the others are CPU workers on the same queue")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where the Monte Carlo runs: the CPU, or an NVIDIA GPU (needs fastshower[cuda]) "
                        "(default: %(default)s)")
    p.add_argument("--showers-per-launch", type=int, default=0, metavar="N",
                   help=f"--device cuda: showers per GPU launch (default: 0, the built-in "
                        f"{DEFAULT_SHOWERS_PER_LAUNCH})")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on a dask.distributed scheduler at ADDRESS, or 'local' for a LocalCluster of "
                   "--workers processes (needs fastshower[dask])")
    p.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE,
                   help="showers per work unit (default: %(default)s)")
    p.add_argument("--physics", type=Path, metavar="FILE", help="YAML/TOML file of physics settings")
    p.add_argument("--range-cut-mm", type=float, help="production range cut in mm (overrides --physics)")
    p.add_argument("--cut-conversion", choices=("geant4", "csda"),
                   help="range cut to energy thresholds: Geant4's converters or the CSDA range (overrides --physics)")
    p.add_argument("--msc", choices=("wentzel", "highland"),
                   help="e-/e+ multiple scattering: the mixed screened-Rutherford scheme or the old Highland "
                        "Gaussian (overrides --physics)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--no-resume", action="store_true",
                   help="discard an existing <out>.partial instead of resuming it")
    add_event_options(p)


def _load_settings(path: Path | None, **overrides: Any) -> Any:
    from fastshower.mc.settings import PhysicsSettings

    values: dict[str, Any] = {}
    if path is not None:
        values.update(read_mapping(path, "physics settings file"))
    values.update({key: value for key, value in overrides.items() if value is not None})
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
    """Running summary of the showers (or events) simulated in this invocation: the mean sampling fraction and the
    ledger's worst closure; an event's ``fast`` entry (the energy a fast model took) counts in its sum."""

    def __init__(self) -> None:
        self.n = 0
        self.sampling_sum = 0.0
        self.max_ledger_error = 0.0

    def add(self, ledger: dict[str, np.ndarray]) -> None:
        from fastshower.mc.simulator import LEDGER_KEYS

        available = ledger["available"]
        total = np.sum([ledger[k] for k in (*LEDGER_KEYS, "fast") if k in ledger], axis=0)
        self.n += available.size
        self.sampling_sum += float(np.sum(ledger["sensor"] / available))
        if available.size:
            error = float(np.max(np.abs(total - available) / available))
            self.max_ledger_error = max(self.max_ledger_error, error)

    @property
    def sampling_fraction(self) -> float:
        return self.sampling_sum / self.n if self.n else float("nan")


def check_production_options(args: argparse.Namespace) -> Path:
    """The options every production checks before work: the output file, --n (when given), --seed, --workers,
    --chunk-size; returns the output path."""
    out = check_output_file(args.out, args.overwrite)
    if args.n is not None and args.n < 1:
        raise ConfigError(f"--n {args.n}: must be >= 1")
    check_seed(args.seed)
    if args.workers < 1:
        raise ConfigError(f"--workers {args.workers}: must be >= 1")
    if args.chunk_size < 1:
        raise ConfigError(f"--chunk-size {args.chunk_size}: must be >= 1")
    return out


def run_simulate(args: argparse.Namespace, ctx: Context) -> int:
    """Run ``fastshower simulate``; returns the exit code."""
    from fastshower.data import ShowerData, ShowerWriter
    from fastshower.geometry import load_geometry
    from fastshower.mc.production import (
        check_backend,
        check_primaries,
        chunks,
        parse_values,
        particle_name,
        plan_primaries,
        run_production,
    )
    from fastshower.mc.simulator import available_energy_GeV

    if args.events is not None:
        return run_simulate_events(args, ctx)
    if args.fast_model:
        raise ConfigError("--fast-model: works on events (--events FILE); single primaries are all transported")
    missing = [flag for flag, value in (("--particle", args.particle), ("--energy", args.energy), ("--n", args.n))
               if value is None]
    if missing:
        raise ConfigError(f"{', '.join(missing)}: required (or --events FILE)")
    out = check_production_options(args)
    calorimeter = load_geometry(args.geometry)
    settings = _load_settings(args.physics, range_cut_mm=args.range_cut_mm, cut_conversion=args.cut_conversion,
                              msc=args.msc)
    particle = particle_name(args.particle)
    energy = parse_values(args.energy, "--energy")
    theta = parse_values(args.theta, "--theta")
    phi = parse_values(args.phi, "--phi")
    entry_xy = _parse_xy(args.entry_xy)
    primaries = plan_primaries(particle, energy, theta, phi, args.n, args.seed, entry_xy, args.entry_spread)
    check_primaries(calorimeter, settings, primaries)
    check_backend(args.device, args.scheduler, args.showers_per_launch)  # before anything is written

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
    with writing(ctx, writer) as bars:
        done = writer.done_mask()
        todo = chunks(args.n, args.chunk_size, done)
        n_todo = sum(b - a for a, b in todo)
        if n_todo < args.n:
            logger.debug("resuming %s: %d of %d showers to simulate", writer.partial_path, n_todo, args.n)
        bar = bars.add(progress(args.n, args.n - n_todo, args.quiet, what=str(out)))
        stats = _Stats()
        t0 = time.perf_counter()
        stream = run_production(calorimeter, settings, primaries, args.seed, todo, args.workers,
                                args.scheduler, args.device, args.showers_per_launch)
        with closing(stream):
            for start, batch in stream:
                stop = start + batch.images.shape[0]
                ledger = dict(batch.ledger, available=available[start:stop])
                part = primaries.select(start, stop)
                writer.write(start, ShowerData(batch.images, part.energy_GeV, part.theta_rad, part.phi_rad,
                                               part.pdg, ledger))
                stats.add(ledger)
                bar.update(stop - start)
                bar.set_postfix_str(f"{stats.n / max(time.perf_counter() - t0, 1e-9):.1f} showers/s")
        wall = time.perf_counter() - t0
    resumed = f" ({args.n - stats.n} resumed)" if stats.n < args.n else ""
    rate = stats.n / wall if wall > 0 else float("nan")
    print(f"{out}: {args.n} showers{resumed}; simulated {stats.n} on {args.device} in {wall:.1f} s, "
          f"{rate:.1f} showers/s; "
          f"mean sampling fraction {stats.sampling_fraction:.4g}; "
          f"max relative ledger error {stats.max_ledger_error:.2g}")
    return 0


# --- merge --------------------------------------------------------------------------------------------


def add_merge(p: argparse.ArgumentParser) -> None:
    """Arguments of ``fastshower merge``."""
    p.add_argument("inputs", nargs="+", type=Path, metavar="FILE",
                   help="shower files of the same detector and physics settings (any readable format: "
                   "fastshower, 3DGAN, CaloChallenge with --binning, ROOT with --mapping), joined in this order")
    p.add_argument("--out", required=True, type=Path, help="output HDF5 file (one file, fastshower format)")
    add_layout_options(p, "inputs")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def run_merge(args: argparse.Namespace, ctx: Context) -> int:
    """Run ``fastshower merge``; returns the exit code."""
    from fastshower.data import inspect_showers, merge_showers

    check_output_file(args.out, args.overwrite)
    out = merge_showers(args.inputs, args.out, overwrite=args.overwrite, binning=layout(args))
    print(f"{out}: {inspect_showers(out)['n']} showers from {len(args.inputs)} files")
    return 0


# --- inspect ------------------------------------------------------------------------------------------


def add_inspect(p: argparse.ArgumentParser) -> None:
    """Arguments of ``fastshower inspect``."""
    p.add_argument("file", type=Path, help="shower file (fastshower, 3DGAN or CaloChallenge HDF5, or ROOT)")
    add_layout_options(p, "files")


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


def run_inspect(args: argparse.Namespace, ctx: Context) -> int:
    """Run ``fastshower inspect``; returns the exit code."""
    from fastshower.data import inspect_showers

    binning = layout(args)
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
    if attrs.get("content") == "events":
        import h5py

        with h5py.File(args.file, "r") as f:  # the particle table only, not the images
            fast = np.asarray(f["particles/fast"][...], dtype=bool) if "particles/fast" in f else np.zeros(0, bool)
        rows[2] = ("events", info["n"])
        rows.insert(3, ("particles", f"{fast.size} entered, {int(fast.sum())} made by a fast model"))
    geometry = attrs.get("geometry")
    if isinstance(geometry, dict) and geometry:
        rows.append(("geometry", geometry.get("name", "?")))
    for key in ("seed", "version", "request", "source_file", "binning", "root"):
        if key in attrs:
            rows.append((key, attrs[key]))
    if info["ledger_keys"]:
        rows.append(("ledger", ", ".join(info["ledger_keys"])))
    width = max(len(k) for k, _ in rows) + 1
    for key, value in rows:
        print(f"{key + ':':<{width}} {value}")
    return 0
