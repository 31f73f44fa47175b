"""``fastshower validate``: compare a candidate sample with a reference; HTML report."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from fastshower.cli.common import Context, add_layout_options, check_seed, layout
from fastshower.errors import ConfigError


def add_validate(p: argparse.ArgumentParser) -> None:
    """Arguments of ``fastshower validate``."""
    p.add_argument("--reference", required=True, type=Path, help="reference shower file (e.g. the Monte Carlo)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--candidate", type=Path, help="shower file to validate (e.g. generated)")
    what.add_argument("--model", help="generator bundle or shipped model: generate the candidate at the "
                      "reference's energies and angles (written to OUT/candidate.h5)")
    p.add_argument("--out", required=True, type=Path, help="report folder (a folder: index.html, metrics.json, plots/)")
    p.add_argument("--reference2", type=Path,
                   help="independent reference sample for the statistical floor (default: split --reference)")
    p.add_argument("--energy-bins", default="10,50,100,200,510", metavar="EDGES",
                   help="primary-energy bin edges in GeV (default: %(default)s)")
    p.add_argument("--theta-bins", metavar="EDGES",
                   help="also compare per incidence-angle bin: edges in degrees, e.g. 0,20,40,60")
    threshold = p.add_mutually_exclusive_group()
    threshold.add_argument("--threshold-GeV", type=float, default=1e-4, metavar="GEV",
                           help="cell threshold for hit counts and the cell spectrum, GeV (default: %(default)g = "
                           "0.1 MeV)")
    threshold.add_argument("--threshold-MeV", type=float, help=argparse.SUPPRESS)  # the old spelling, in MeV
    p.add_argument("--tolerances", type=Path, metavar="YAML", help="YAML file overriding the pass tolerances")
    p.add_argument("--no-classifier", action="store_true", help="skip the classifier test")
    p.add_argument("--seed", type=int, default=1, help="seed of the splits and the classifier (default: 1)")
    p.add_argument("--community", action="store_true",
                   help="also the community's metrics: CaloChallenge high-level features, separation powers and "
                   "classifier, jetnet's FPD/KPD (minutes on a CPU; docs/validation.md)")
    p.add_argument("--community-max-showers", type=int, default=2000, metavar="N",
                   help="showers per sample for --community (default: %(default)s)")
    add_layout_options(p, "inputs")


def _edges(text: str, option: str, unit: str) -> list[float]:
    try:
        edges = [float(v) for v in text.split(",")]
    except ValueError:
        raise ConfigError(f"{option} '{text}': expected comma-separated numbers in {unit}") from None
    if len(edges) < 2 or not np.all(np.isfinite(edges)) or np.any(np.diff(edges) <= 0):
        raise ConfigError(f"{option} '{text}': expected at least two increasing finite edges in {unit}")
    return edges


def run_validate(args: argparse.Namespace, ctx: Context) -> int:
    """Run ``fastshower validate``; returns the exit code."""
    from fastshower.data import inspect_showers
    from fastshower.validate.report import load_tolerances, run_validation, verdict_line

    # every option and input is checked before the work (generation, observables) starts
    edges = _edges(args.energy_bins, "--energy-bins", "GeV")
    theta_edges = None if args.theta_bins is None else _edges(args.theta_bins, "--theta-bins", "degrees")
    if args.threshold_MeV is not None:
        args.threshold_GeV = args.threshold_MeV * 1e-3
    if not (args.threshold_GeV >= 0 and np.isfinite(args.threshold_GeV)):
        raise ConfigError(f"--threshold-GeV {args.threshold_GeV:g}: must be a finite number >= 0")
    check_seed(args.seed)
    if args.community_max_showers < 10:
        raise ConfigError(f"--community-max-showers {args.community_max_showers}: must be at least 10")
    if args.out.exists() and not args.out.is_dir():
        raise ConfigError(f"{args.out}: exists and is not a directory")
    tolerances = load_tolerances(args.tolerances)
    binning = layout(args)
    for path in (args.reference, args.candidate, args.reference2):
        if path is not None:
            inspect_showers(path, binning, require_binning=True)
    candidate = args.candidate
    if args.model is not None:
        from fastshower.generate import generate_like, load

        load(args.model)  # a missing model or a bad bundle fails here, not after reading the reference
        args.out.mkdir(parents=True, exist_ok=True)
        candidate = generate_like(args.reference, args.model, args.out / "candidate.h5", seed=args.seed,
                                  binning=binning)
    metrics = run_validation(args.reference, candidate, args.out, reference2=args.reference2,
                             energy_edges=edges, threshold_GeV=args.threshold_GeV,
                             tolerances=tolerances, classifier=not args.no_classifier,
                             seed=args.seed, theta_edges_deg=theta_edges, binning=binning,
                             community=args.community, community_max_showers=args.community_max_showers,
                             command=getattr(args, "command_line", ""), model=args.model or "")
    for note in metrics.get("notes", []):
        print(f"note: {note}")
    if "events" in metrics:
        from fastshower.validate.events import format_event_checks

        print(format_event_checks(metrics["events"]))
    print(f"{args.out / 'index.html'}: {verdict_line(metrics)} in {metrics['seconds']:.1f} s")
    return 0

