"""``fastshower generate`` (streamed to HDF5), ``fastshower export`` (ONNX) and ``fastshower bench``."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

from fastshower import __version__
from fastshower.cli.common import Context, check_output_file, check_seed, progress, writing
from fastshower.errors import ConfigError


def add_generate(p: argparse.ArgumentParser) -> None:
    """Arguments of ``fastshower generate``."""
    p.add_argument("--model", required=True, help="generator bundle (.pt) or the name of a shipped model")
    p.add_argument("--energy", required=True, metavar="GEV",
                   help="primary energy in GeV: fixed '100', uniform range '10:510' or list '10,50,100'")
    p.add_argument("--theta", default="0", metavar="DEG", help="incidence angle in degrees (angle models only)")
    p.add_argument("--particle", default="e-", help="e-, e+, gamma, pi0 (must be one the model was trained on)")
    p.add_argument("--n", type=int, required=True, help="number of showers")
    p.add_argument("--out", required=True, type=Path, help="output HDF5 file (one file; written atomically, resumable)")
    p.add_argument("--seed", type=int, default=1, help="seed of the conditions and the noise (default: 1)")
    p.add_argument("--batch-size", "--batch", dest="batch", type=int, default=128,
                   help="showers per forward pass (default: %(default)s)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="bf16", help="default: %(default)s")
    p.add_argument("--allow-extrapolation", action="store_true",
                   help="generate outside the model's training range of energy/angle")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--format", choices=("fastshower", "calochallenge"), default="fastshower",
                   help="fastshower HDF5 (default), or the CaloChallenge layout (MeV, the binning's voxel order; "
                        "needs --binning) that the community's evaluation code reads")
    p.add_argument("--binning", help="--format calochallenge: the challenge's binning XML or "
                   "N_LAYERS,N_ALPHA,N_RADIAL; the model's cells must be (radial, alpha, layer) of it")


def plan_conditions(args: argparse.Namespace) -> Any:
    """The primaries (energy, theta) as the Monte Carlo would draw them for the same seed and options."""
    from fastshower.mc.production import parse_values, particle_name, plan_primaries

    particle = particle_name(args.particle)
    return plan_primaries(particle, parse_values(args.energy, "--energy"), parse_values(args.theta, "--theta"),
                          parse_values("0", "--phi"), args.n, args.seed)


def run_generate(args: argparse.Namespace, ctx: Context) -> int:
    """Run ``fastshower generate``; returns the exit code."""
    import fastshower
    from fastshower.data import ShowerData, ShowerWriter

    out = check_output_file(args.out, args.overwrite)
    if args.n < 1:
        raise ConfigError(f"--n {args.n}: must be >= 1")
    if args.batch < 1:
        raise ConfigError(f"--batch-size {args.batch}: must be >= 1")
    check_seed(args.seed)
    binning = _output_binning(args)
    sampler = fastshower.load(args.model)
    if binning is not None:
        from fastshower.data.readers import load_binning

        b = load_binning(binning)
        if tuple(sampler.cell_shape) != (b.n_radial, b.n_alpha, b.n_layers):
            raise ConfigError(f"--binning: the model's cells {tuple(sampler.cell_shape)} are not (radial, alpha, "
                              f"layer) = {(b.n_radial, b.n_alpha, b.n_layers)} of the binning")
        # the showers are made (resumably) in fastshower form next to --out, then written in the challenge's layout
        target = out.with_name(f".{out.name}.fastshower.h5")
    else:
        target = out
    primaries = plan_conditions(args)
    # [0]: the training file did not say (a CaloChallenge file binned without its XML): any particle is taken
    if sampler.bundle.particles != [0] and int(primaries.pdg[0]) not in sampler.bundle.particles:
        raise ConfigError(f"--particle {args.particle}: the model was trained on PDG {sampler.bundle.particles}")
    sampler.check_conditions(primaries.energy_GeV, primaries.theta_rad, args.allow_extrapolation)
    request = {"model": str(args.model), "energy_GeV": args.energy, "theta_deg": args.theta, "n": args.n,
               "batch": args.batch, "precision": args.precision, "particle": args.particle}
    attrs = {"geometry": sampler.bundle.geometry, "seed": int(args.seed), "request": request,
             "version": __version__, "generator": {k: v for k, v in sampler.bundle.provenance.items()
                                                   if isinstance(v, int | float | str)}}
    if binning is not None and target.exists() and not args.overwrite:  # made, then stopped while converting
        _finish_calochallenge(target, out, binning)
        print(f"{out}: {args.n} showers made earlier ({target.name}), written in the CaloChallenge layout")
        return 0
    writer = ShowerWriter(target, args.n, sampler.cell_shape, attrs, ledger_keys=(), overwrite=args.overwrite)
    with writing(ctx, writer) as bars:
        done = writer.done_mask()
        bar = bars.add(progress(args.n, writer.n_saved, args.quiet, what=str(target)))
        start_time, made = time.perf_counter(), 0
        for start in range(0, args.n, args.batch):
            stop = min(start + args.batch, args.n)
            if done[start:stop].all():
                continue
            # noise of shower i depends on (seed, i) only: batches can be skipped or resumed exactly
            showers = next(sampler.iter_batches(primaries.energy_GeV[start:stop], primaries.theta_rad[start:stop],
                                                args.seed, args.batch, args.precision, True, first=start))
            part = primaries.select(start, stop)
            writer.write(start, ShowerData(showers, part.energy_GeV, part.theta_rad, part.phi_rad, part.pdg))
            made += stop - start
            bar.update(stop - start)
        wall = time.perf_counter() - start_time
    rate = f"{wall / made * 1000:.2f} ms per shower" if made else "nothing to do"
    if binning is not None:
        _finish_calochallenge(target, out, binning)
    print(f"{out}: {args.n} showers from {args.model} ({args.precision}, batch {args.batch}); {rate}")
    return 0


def _output_binning(args: argparse.Namespace) -> Any:
    from fastshower.data.readers import binning_from_text

    binning = binning_from_text(args.binning)
    if args.format == "calochallenge" and binning is None:
        raise ConfigError("--format calochallenge needs --binning (the challenge's XML or N_LAYERS,N_ALPHA,N_RADIAL)")
    if args.format != "calochallenge" and binning is not None:
        raise ConfigError("--binning: only used with --format calochallenge")
    return binning


def _finish_calochallenge(made: Path, out: Path, binning: Any) -> None:
    """Write the finished fastshower file ``made`` to ``out`` in the CaloChallenge layout, then remove it."""
    from fastshower.data.calochallenge import write_calochallenge

    write_calochallenge(made, out, binning)
    made.unlink()


def add_export(p: argparse.ArgumentParser) -> None:
    """Arguments of ``fastshower export``."""
    p.add_argument("--model", required=True, help="generator bundle (.pt) or the name of a shipped model")
    p.add_argument("--onnx", required=True, type=Path, help="output ONNX file")
    p.add_argument("--par04", action="store_true",
                   help="Geant4 Par04's layout: input [latent | E/E_max | theta_deg/90 | geometry one-hot], output the "
                   "cells' share of the particle's energy (x E in MeV = MeV); E_max is the model's top energy")
    p.add_argument("--par04-geometries", type=int, default=2, metavar="N",
                   help="--par04: geometry one-hot columns in the input (ignored by the model; default: %(default)s)")


def run_export(args: argparse.Namespace, ctx: Context) -> int:
    """Run ``fastshower export``; returns the exit code."""
    import fastshower
    from fastshower.export import SingleInputGenerator, export_onnx

    check_output_file(args.onnx, overwrite=True, option="--onnx")
    sampler = fastshower.load(args.model)
    report = export_onnx(sampler.bundle, args.onnx, par04=args.par04, par04_geometries=args.par04_geometries)
    wrapper = SingleInputGenerator(sampler.bundle, par04=args.par04, par04_geometries=args.par04_geometries)
    if args.par04:
        n_cells = math.prod(sampler.cell_shape)
        print(f"{args.onnx}: Par04 layout, input 'input' (batch, {wrapper.latent_dim} + {wrapper.n_conditions}) = "
              f"[latent | E/{wrapper.energy_max_GeV:g} GeV | theta_deg/90 | {args.par04_geometries} geometry "
              f"columns], output 'showers' (batch, {n_cells}) = share of E per cell; onnxruntime vs torch on "
              f"{report.n_showers} showers: max abs diff {report.max_abs_diff_GeV:.2g}, max rel diff "
              f"{report.max_rel_diff:.2g}")
        return 0
    print(f"{args.onnx}: input 'input' (batch, {wrapper.latent_dim} + {wrapper.n_conditions}) = [latent | E_GeV"
          f"{' | theta_rad' if wrapper.angle else ''}], output 'showers' (batch, "
          f"{', '.join(map(str, sampler.cell_shape))}) in GeV; onnxruntime vs torch on {report.n_showers} showers: "
          f"max abs diff {report.max_abs_diff_GeV:.2g} GeV, max rel diff {report.max_rel_diff:.2g}")
    return 0


def add_bench(p: argparse.ArgumentParser) -> None:
    """Arguments of ``fastshower bench``."""
    p.add_argument("--model", required=True, action="append",
                   help="generator bundle (.pt) or the name of a shipped model; repeat it to time several models "
                        "side by side in one run (generation only, no Monte Carlo)")
    p.add_argument("--batches", default="1,16,128,1024", help="batch sizes (default: %(default)s)")
    p.add_argument("--write", type=Path, nargs="?", const=Path("benchmarks/RESULTS.md"), metavar="RESULTS_MD",
                   help="write the results section into this markdown file (default: benchmarks/RESULTS.md)")
    p.add_argument("--quick", action="store_true", help="short timings (a smoke test, not a measurement)")


def run_bench(args: argparse.Namespace, ctx: Context) -> int:
    """Run ``fastshower bench``; returns the exit code."""
    import fastshower
    from fastshower.bench import run_bench as measure

    try:
        batches = tuple(int(v) for v in args.batches.split(","))
    except ValueError:
        raise ConfigError(f"--batches '{args.batches}': expected comma-separated integers") from None
    if min(batches) < 1:
        raise ConfigError(f"--batches '{args.batches}': must be >= 1")
    if len(args.model) > 1:
        return _bench_side_by_side(args, batches)
    model = args.model[0]
    result = measure(fastshower.load(model), batches=batches, quick=args.quick)
    _show(result.markdown(f"fastshower bench --model {model} --batches {args.batches}"), args.write)
    best = min(result.generation_ms.items(), key=lambda item: item[1])
    print(f"fastest: {best[0][0]} batch {best[0][1]}: {best[1]:.2f} ms per shower, "
          f"{result.mc_mean_ms / best[1]:,.0f}x faster than the Monte Carlo (one core) over "
          f"{result.energy_range_GeV[0]:g}-{result.energy_range_GeV[1]:g} GeV")
    return 0


def _bench_side_by_side(args: argparse.Namespace, batches: tuple[int, ...]) -> int:
    import fastshower
    from fastshower.bench import run_side_by_side

    if len(set(args.model)) != len(args.model):
        raise ConfigError(f"--model: {', '.join(args.model)}: a model is named twice")
    samplers = {m: fastshower.load(m) for m in args.model}  # every model checked before any timing
    shapes = {tuple(s.cell_shape) for s in samplers.values()}
    if len(shapes) > 1:
        raise ConfigError(f"--model: {', '.join(args.model)}: the models make different grids "
                          f"({', '.join('x'.join(map(str, s)) for s in sorted(shapes))}); compare models of one grid")
    result = run_side_by_side(samplers, batches, quick=args.quick)
    command = "fastshower bench " + " ".join(f"--model {m}" for m in args.model) + f" --batches {args.batches}"
    _show(result.markdown(command), args.write)
    return 0


def _show(section: str, results_md: Path | None) -> None:
    """Print a bench section and, with ``--write``, put it into the results file."""
    from fastshower.bench import write_results

    print(section)
    if results_md is not None:
        print(f"wrote {write_results(section, results_md)}")


# --- models -----------------------------------------------------------------------------------------------------

def add_models(p: argparse.ArgumentParser) -> None:
    """Arguments of ``fastshower models`` (none)."""


def run_models(args: argparse.Namespace, ctx: Context) -> int:
    """Run ``fastshower models``: one line per shipped model with its detector, particles and conditions."""
    from fastshower.generate import resolve_model, shipped_models
    from fastshower.mc.simulator import PARTICLES
    from fastshower.models.bundle import load_bundle

    names = {code: name for name, code in PARTICLES.items()} | {0: "any"}  # 0: a file that did not say

    rows = [("name", "family", "detector", "particles", "energy [GeV]", "theta [deg]", "cells")]
    for name in shipped_models():
        b = load_bundle(resolve_model(name))
        particles = ", ".join(names.get(int(c), str(c)) for c in b.particles) or "any"
        low, high = (math.degrees(t) for t in b.theta_range_rad)
        rows.append((name, b.model_name, str(b.geometry.get("name", "?")), particles,
                     f"{b.energy_range_GeV[0]:g}-{b.energy_range_GeV[1]:g}", f"{low:.3g}-{high:.3g}",
                     "x".join(str(c) for c in b.cell_shape)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return 0
