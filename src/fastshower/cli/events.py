"""``fastshower simulate --events FILE [--fast-model M]``: events of several particles, one image per event, with
the particles a fast model knows handed to the model (:mod:`fastshower.hybrid`)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

from fastshower import __version__
from fastshower.cli.common import Context, progress, writing
from fastshower.errors import ConfigError

logger = logging.getLogger("fastshower.cli")


def add_event_options(p: argparse.ArgumentParser) -> None:
    """The options of ``fastshower simulate`` for events and the fast-simulation trigger."""
    g = p.add_argument_group("events and fast simulation")
    g.add_argument("--events", type=Path, metavar="FILE",
                   help="simulate the events of FILE instead of single primaries: a YAML list "
                        "(events: [{particles: [{pdg, energy_GeV, x_mm, y_mm, theta_deg, phi_deg}]}]) or a HepMC3 "
                        "ASCII file; one image per event (--n: the first N events; default all)")
    g.add_argument("--front-z-mm", type=float, default=0.0, metavar="MM",
                   help="HepMC3: z of the calorimeter's front face in the event's coordinates; final-state e+-, "
                        "photons and pi0s whose straight line crosses it inside the face enter (default: 0)")
    g.add_argument("--fast-model", metavar="NAME|PATH",
                   help="a generator bundle or shipped model (fastshower models) that takes the entering particles "
                        "inside its conditions (kind, energy, direction) instead of the detailed simulation")
    g.add_argument("--fast-min-energy", type=float, default=0.0, metavar="GEV",
                   help="--fast-model: particles below this kinetic energy stay in the detailed simulation "
                        "(default: 0, the model's own range)")
    g.add_argument("--fast-angle-tolerance", type=float, default=0.0, metavar="DEG",
                   help="--fast-model: largest angle between a particle's direction and the nearest one the model "
                        "makes (default: 0)")


def _sha256(path: Path) -> str:
    from fastshower.atomic import file_sha256

    return file_sha256(path)


def _first_events(particles: Any, n: int | None) -> Any:
    """The first ``n`` events (all for None)."""
    if n is None or n >= particles.n_events:
        return particles
    return dataclasses.replace(particles.subset(np.flatnonzero(particles.event < n)), n_events=n)


def _drop_empty(particles: Any) -> tuple[Any, np.ndarray]:
    """The events that have particles, renumbered, and their numbers in the file."""
    numbers = np.unique(particles.event)
    if numbers.size == particles.n_events:
        return particles, numbers
    return dataclasses.replace(particles, n_events=int(numbers.size),
                               event=np.searchsorted(numbers, particles.event)), numbers


def run_simulate_events(args: argparse.Namespace, ctx: Context) -> int:
    """Run ``fastshower simulate --events``; returns the exit code."""
    from fastshower.cli.simulate import _load_settings, _Stats, check_production_options
    from fastshower.data import ShowerData, ShowerWriter
    from fastshower.data.event_files import read_events
    from fastshower.data.events import EVENT_LEDGER_KEYS, EVENTS_CONTENT, event_summary, particle_tables
    from fastshower.geometry import load_geometry
    from fastshower.hybrid import FastTrigger, Timings, run_events
    from fastshower.mc.events import available_GeV, check_events, entering_particles
    from fastshower.mc.production import check_backend, chunks

    out = check_production_options(args)
    if not math.isfinite(args.front_z_mm):
        raise ConfigError(f"--front-z-mm {args.front_z_mm}: must be a finite number")
    calorimeter = load_geometry(args.geometry)
    settings = _load_settings(args.physics, range_cut_mm=args.range_cut_mm, cut_conversion=args.cut_conversion,
                              msc=args.msc)
    events_in, info = read_events(args.events, front_z_mm=args.front_z_mm,
                                  half_width_mm=calorimeter.transverse_half_width_mm)
    events_in, numbers = _drop_empty(_first_events(events_in, args.n))
    if events_in.n_events == 0:
        raise ConfigError(f"{args.events}: no particle of its first {args.n or info['n_events']} events enters "
                          "the calorimeter")
    for reason, count in sorted(info.get("skipped", {}).items()):
        print(f"{args.events}: {count} particles skipped: {reason}")
    if numbers.size < (args.n or info["n_events"]):
        print(f"{args.events}: {(args.n or info['n_events']) - numbers.size} events without an entering particle "
              "left out")
    check_events(calorimeter, events_in)
    particles = entering_particles(events_in, args.seed)
    trigger = None
    fast = np.zeros(len(particles), dtype=bool)
    if args.fast_model:
        trigger = FastTrigger.load(args.fast_model, calorimeter, args.fast_min_energy, args.fast_angle_tolerance)
        fast = trigger.select(particles)
        share = float(particles.energy_GeV[fast].sum() / max(particles.energy_GeV.sum(), 1e-300))
        print(trigger.describe())
        print(f"fast simulation: {int(fast.sum())} of {len(particles)} entering particles "
              f"({100 * share:.1f} % of their energy) go to the model")
    check_backend(args.device, args.scheduler, args.showers_per_launch)  # before anything is written

    n_events = events_in.n_events
    request = {
        "events_file": Path(args.events).name,
        "events_sha256": _sha256(Path(args.events)),
        "events_format": info["format"],
        "n_events": int(n_events),
        "first_events": int(args.n) if args.n else 0,
        "front_z_mm": float(args.front_z_mm),
        "chunk_size": int(args.chunk_size),
        "fast_model": str(args.fast_model or ""),
        "fast_model_sha256": _sha256(trigger_path(args.fast_model)) if args.fast_model else "",
        "fast_min_energy_GeV": float(args.fast_min_energy),
        "fast_angle_tolerance_deg": float(args.fast_angle_tolerance),
    }
    attrs = {"geometry": calorimeter.to_dict(), "physics": settings.to_dict(), "seed": int(args.seed),
             "request": request, "version": __version__, "content": EVENTS_CONTENT}
    energy, theta, phi, pdg = event_summary(events_in)
    available = available_GeV(events_in)
    tables = {**particle_tables(particles, fast), "events/number": numbers.astype(np.int64)}
    writer = ShowerWriter(out, n_events, calorimeter.cell_shape, attrs, ledger_keys=EVENT_LEDGER_KEYS,
                          resume=not args.no_resume, overwrite=args.overwrite, tables=tables)
    timings = Timings()
    stats = _Stats()
    with writing(ctx, writer) as bars:
        todo = chunks(n_events, args.chunk_size, writer.done_mask())
        n_todo = sum(b - a for a, b in todo)
        bar = bars.add(progress(n_events, n_events - n_todo, args.quiet, unit="event", what=str(out)))
        t0 = time.perf_counter()
        stream = run_events(calorimeter, settings, particles, args.seed, todo, trigger, args.workers,
                            args.scheduler, args.device, args.showers_per_launch, timings)
        with closing(stream):
            for batch in stream:
                a, b = batch.start, batch.start + batch.images.shape[0]
                ledger = dict(batch.ledger, available=available[a:b])
                writer.write(a, ShowerData(batch.images, energy[a:b], theta[a:b], phi[a:b], pdg[a:b], ledger))
                stats.add(ledger)
                bar.update(b - a)
                bar.set_postfix_str(f"{stats.n / max(time.perf_counter() - t0, 1e-9):.2f} events/s")
        wall = time.perf_counter() - t0
    resumed = f" ({n_events - stats.n} resumed)" if stats.n < n_events else ""
    counts = timings.counts
    print(f"{out}: {n_events} events{resumed}; made {stats.n} in {wall:.1f} s, "
          f"{stats.n / wall if wall > 0 else float('nan'):.2f} events/s; particles: {counts['transported']} "
          f"transported, {counts['fast']} by the model, {counts['escaped']} left through the front; "
          f"main process: {timings.mc_wait_s:.1f} s waiting for the transport, {timings.model_s:.1f} s in the model, "
          f"{timings.assemble_s:.1f} s placing; max relative ledger error {stats.max_ledger_error:.2g}")
    return 0


def trigger_path(model: str) -> Path:
    """The bundle file of a model given by path or shipped name."""
    from fastshower.generate import resolve_model

    return resolve_model(model)
