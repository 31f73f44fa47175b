"""``fastshower demo``, the main job: the detailed Monte Carlo and the shipped fast model, side by side.

1. Simulate a small, independent Monte Carlo reference sample (electrons at normal incidence on the ``clic``
   calorimeter, a few energies) on all cores: ``mc_demo.h5``, a summary table and ``mc_demo.png``.
2. Generate the same showers with the shipped model (``gen_demo.h5``), time both, and print the speed-up.
3. Validate the generated sample against the Monte Carlo: ``report/index.html`` and the key metrics.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fastshower import __version__
from fastshower.atomic import atomic_write
from fastshower.data import ShowerData, ShowerWriter
from fastshower.errors import ConfigError
from fastshower.geometry import load_geometry
from fastshower.mc.production import check_primaries, chunks, run_production
from fastshower.mc.settings import PhysicsSettings
from fastshower.mc.simulator import LEDGER_KEYS, Primaries, available_energy_GeV

GEOMETRY = "clic"
PDG_ELECTRON = 11
DEFAULT_MODEL = "3dvae-clic-electrons"  # the closer to the MC: 17 of 36 acceptance figures to 3 (README)


def run_demo(
    out_dir: str | Path,
    n_per_energy: int = 100,
    energies: Sequence[float] = (10, 50, 100),
    seed: int = 2026,
    model: str | None = DEFAULT_MODEL,
) -> dict[str, Any]:
    """Simulate ``n_per_energy`` electrons at each energy (GeV), write ``mc_demo.h5`` and ``mc_demo.png``
    into ``out_dir``, print a summary table and return its numbers.

    Returns a dict with "h5", "png" (paths), "workers", "geometry" and "per_energy": one dict per energy with
    "energy_GeV", "n", "showers_per_s", "ms_per_shower" (wall clock, all workers), "sampling_fraction" and
    "sampling_fraction_std" (sensor / available energy, per shower), "resolution" (std / mean of the summed
    image), "max_ledger_error" (relative) and "longitudinal_profile" (mean fraction of the deposit per layer).
    With a ``model`` (a bundle path or shipped name; None or absent: Monte Carlo only), also "model": the
    generation timing, the speed-up and the validation's key metrics (see :func:`compare_with_model`).
    """
    n = int(n_per_energy)
    energies = [float(e) for e in energies]
    if n < 1:
        raise ConfigError(f"demo: n_per_energy must be >= 1 (got {n})")
    if not energies:
        raise ConfigError("demo: no energies given")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{out_dir}: is a file, not a folder (the demo writes a folder)")
    sampler = None
    if model is not None:
        from fastshower.generate import load

        sampler = load(model)  # a missing model or a broken bundle fails now, not after the Monte Carlo
    out_dir.mkdir(parents=True, exist_ok=True)
    calorimeter = load_geometry(GEOMETRY)
    settings = PhysicsSettings()
    workers = os.cpu_count() or 2

    total = n * len(energies)
    zeros = np.zeros(total)
    primaries = Primaries(np.full(total, PDG_ELECTRON, dtype=np.int64), np.repeat(energies, n), zeros,
                          zeros.copy(), zeros.copy(), zeros.copy())
    check_primaries(calorimeter, settings, primaries)
    available = available_energy_GeV(primaries.pdg, primaries.energy_GeV)
    # every worker gets a few chunks of each energy: balanced load, and a smooth start-up
    chunk_size = max(1, min(64, -(-n // (2 * workers))))
    request = {"demo": True, "particle": "e-", "energies_GeV": energies, "n_per_energy": n,
               "theta_deg": "0", "phi_deg": "0"}
    attrs = {"geometry": calorimeter.to_dict(), "physics": settings.to_dict(), "seed": int(seed),
             "request": request, "version": __version__}

    _warm_up(calorimeter, settings, primaries, seed)
    h5_path = out_dir / "mc_demo.h5"
    images = np.zeros((total, *calorimeter.cell_shape), dtype=np.float32)
    ledgers = {key: np.zeros(total) for key in (*LEDGER_KEYS, "available")}
    walls = []
    writer = ShowerWriter(h5_path, total, calorimeter.cell_shape, attrs, resume=False, overwrite=True)
    try:
        for k in range(len(energies)):
            # the energies form consecutive blocks of one run: distinct shower seeds throughout
            todo = [(k * n + a, k * n + b) for a, b in chunks(n, chunk_size)]
            t0 = time.perf_counter()
            for start, batch in run_production(calorimeter, settings, primaries, seed, todo, workers, None):
                stop = start + batch.images.shape[0]
                ledger = dict(batch.ledger, available=available[start:stop])
                part = primaries.select(start, stop)
                writer.write(start, ShowerData(batch.images, part.energy_GeV, part.theta_rad, part.phi_rad,
                                               part.pdg, ledger))
                images[start:stop] = batch.images
                for key, values in ledger.items():
                    ledgers[key][start:stop] = values
            walls.append(time.perf_counter() - t0)
        writer.finalize()
    except BaseException:  # the demo starts over each time: what it began is of no use to a rerun
        writer.discard()
        raise

    per_energy = []
    for k, energy in enumerate(energies):
        block = slice(k * n, (k + 1) * n)
        per_energy.append(_summary(energy, images[block], {key: v[block] for key, v in ledgers.items()},
                                   walls[k]))
    png_path = out_dir / "mc_demo.png"
    _plot(png_path, calorimeter, energies, images, ledgers, per_energy, n)
    result = {"h5": str(h5_path), "png": str(png_path), "workers": workers, "geometry": GEOMETRY,
              "per_energy": per_energy}
    _print_table(result)
    if model is not None:
        result["model"] = compare_with_model(model, h5_path, out_dir, per_energy, seed, sampler)
    return result


def compare_with_model(model: str | Path, reference: Path, out_dir: Path, mc_rows: list[dict[str, Any]],
                       seed: int, sampler: Any = None) -> dict[str, Any]:
    """Generate the reference's showers with ``model``, print the speed-up and validate (``sampler``: the model
    already loaded, if it is)."""
    from fastshower.generate import generate_like, load
    from fastshower.hardware import fastest_cpu_precision
    from fastshower.validate.report import run_validation, verdict_line

    sampler = sampler or load(model)
    precision = fastest_cpu_precision()  # bf16 is emulated, ~18x slower, on CPUs without native bf16
    sampler.sample(energy=mc_rows[0]["energy_GeV"], n=8, seed=seed, precision=precision)  # warm-up (kernel choice)
    t0 = time.perf_counter()
    gen_path = generate_like(reference, model, out_dir / "gen_demo.h5", seed=seed, precision=precision)
    n_total = sum(r["n"] for r in mc_rows)
    gen_ms = (time.perf_counter() - t0) * 1000.0 / n_total
    mc_ms = float(np.mean([r["ms_per_shower"] for r in mc_rows]))
    energies = [r["energy_GeV"] for r in mc_rows]
    edges = _bin_edges(energies)
    metrics = run_validation(reference, gen_path, out_dir / "report", energy_edges=edges, seed=seed)
    out = {"model": str(model), "precision": precision, "threads": torch.get_num_threads(),
           "gen_ms_per_shower": gen_ms, "mc_ms_per_shower": mc_ms, "speedup": mc_ms / gen_ms,
           "report": str(out_dir / "report" / "index.html"), "passed": metrics["passed"],
           "n_checks": len(metrics["summary"]),
           "n_pass": sum(1 for r in metrics["summary"] if r["pass"] is True), "bins": [],
           "verdict_line": verdict_line(metrics),
           "notes": list(metrics.get("notes", []))}
    for b in metrics["bins"]:
        if "metrics" not in b:
            continue
        m, f = b["metrics"], b["floor"]
        out["bins"].append({"label": b["label"], "response_rel_diff": m["response"]["response_rel_diff"],
                            "response_floor": f["response"]["response_rel_diff"],
                            "long_profile_err": m["mean_rel_err"]["long_profile"],
                            "long_profile_floor": f["mean_rel_err"]["long_profile"]})
    out["classifier"] = {level: (res["value"]["auc"], res["floor"]["auc"])
                         for level, res in metrics.get("classifier", {}).items()}
    _print_model(out)
    return out


def _bin_edges(energies: list[float]) -> list[float]:
    """Energy bins that each hold one demo energy: geometric midpoints, widened at the ends."""
    points = sorted(energies)
    mids = [float(f"{np.sqrt(a * b):.2g}") for a, b in zip(points, points[1:], strict=False)]  # 22, 71 GeV
    return [points[0] / 2.0, *mids, points[-1] * 2.0]


def _warm_up(calorimeter: Any, settings: PhysicsSettings, primaries: Primaries, seed: int) -> None:
    """One shower in this process before anything is timed: numba compiles the transport on a first run (tens of
    seconds) and caches it on disk, where the timed workers then find it."""
    print("warming up the Monte Carlo (on a first run numba compiles its kernels and caches them; later runs load "
          "them in seconds)", flush=True)
    for _ in run_production(calorimeter, settings, primaries, seed, [(0, 1)], 1, None):
        pass


def _print_model(out: dict[str, Any]) -> None:
    print(f"fast model {out['model']}: {out['gen_ms_per_shower']:.2f} ms per shower ({out['precision']}, "
          f"{out['threads']} threads) vs the "
          f"Monte Carlo's {out['mc_ms_per_shower']:.1f} ms (all cores): {out['speedup']:,.0f}x faster")
    print("  (generation includes reading the reference and writing HDF5; the model alone: `fastshower bench --model "
          f"{out['model']}`)")
    print("energy bins: one per demo energy, edges at the geometric midpoints between them; relative differences, "
          "floor = the same number for two halves of the MC sample:")
    print(f"{'bin [GeV]':>12} {'response diff':>14} {'(MC floor)':>11} {'long. profile err':>18} {'(MC floor)':>11}")
    for b in out["bins"]:
        print(f"{b['label']:>12} {b['response_rel_diff']:>14.3g} {b['response_floor']:>11.3g} "
              f"{b['long_profile_err']:>18.3g} {b['long_profile_floor']:>11.3g}")
    for level, (auc, floor) in out["classifier"].items():
        print(f"classifier AUC ({level}-level inputs): {auc:.3f} (MC vs MC: {floor:.3f}; 0.5 = indistinguishable)")
    print(f"validation: {out['verdict_line']}; report: {out['report']}")
    for note in out["notes"]:
        print(f"note: {note}")


def _summary(energy: float, images: np.ndarray, ledger: dict[str, np.ndarray], wall: float) -> dict[str, Any]:
    n = images.shape[0]
    available = ledger["available"]
    sampling = ledger["sensor"] / available
    total = np.sum([ledger[k] for k in LEDGER_KEYS], axis=0)
    image_sum = images.sum(axis=(1, 2, 3), dtype=np.float64)
    per_layer = images.sum(axis=(1, 2), dtype=np.float64)  # (n, layers)
    fractions = per_layer / np.where(image_sum > 0, image_sum, 1.0)[:, None]
    mean_sum = float(image_sum.mean())
    return {
        "energy_GeV": energy,
        "n": n,
        "showers_per_s": n / wall if wall > 0 else float("nan"),
        "ms_per_shower": 1000.0 * wall / n,
        "sampling_fraction": float(sampling.mean()),
        "sampling_fraction_std": float(sampling.std(ddof=1)) if n > 1 else 0.0,
        "resolution": float(image_sum.std(ddof=1) / mean_sum) if n > 1 and mean_sum > 0 else float("nan"),
        "max_ledger_error": float(np.max(np.abs(total - available) / available)),
        "longitudinal_profile": [float(v) for v in fractions.mean(axis=0)],
    }


def _print_table(result: dict[str, Any]) -> None:
    rows = result["per_energy"]
    print(f"fastshower demo: e- on '{result['geometry']}', {rows[0]['n']} showers per energy, "
          f"{result['workers']} workers")
    print("sampling fraction: mean +- standard deviation over the showers; sigma/mean: of the summed deposit")
    print(f"{'E [GeV]':>8} {'showers/s':>10} {'ms/shower':>10} {'sampling fraction':>20} {'sigma/mean':>11} "
          f"{'ledger err':>11}")
    for r in rows:
        sf = f"{r['sampling_fraction']:.5f} +- {r['sampling_fraction_std']:.5f}"
        print(f"{r['energy_GeV']:>8g} {r['showers_per_s']:>10.1f} {r['ms_per_shower']:>10.2f} {sf:>20} "
              f"{r['resolution']:>11.4f} {r['max_ledger_error']:>11.2g}")
    print("longitudinal profile, % of the deposit per layer (front to back):")
    for r in rows:
        print(f"{r['energy_GeV']:>8g} " + " ".join(f"{100 * v:.1f}" for v in r["longitudinal_profile"]))
    print(f"wrote {result['h5']} and {result['png']}")


def _plot(path: Path, calorimeter: Any, energies: list[float], images: np.ndarray,
          ledgers: dict[str, np.ndarray], per_energy: list[dict[str, Any]], n: int) -> None:
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    try:
        import mplhep as hep

        style: Any = hep.style.CMS
    except ImportError:  # plots still work without the HEP style
        style = {}
    nx = calorimeter.grid.nx
    x_mm = (np.arange(nx) - 0.5 * (nx - 1)) * calorimeter.grid.pitch_mm
    layers = np.arange(calorimeter.n_layers)
    with matplotlib.style.context(style):
        fig = Figure(figsize=(16, 13))
        FigureCanvasAgg(fig)
        ax = fig.subplots(2, 2)
        ratios = ledgers["sensor"] / ledgers["available"]
        edges = np.linspace(ratios.min(), ratios.max(), max(5, min(40, n // 3)) + 1)
        if not edges[-1] > edges[0]:
            edges = np.linspace(edges[0] - 1e-3, edges[0] + 1e-3, 6)
        for k, energy in enumerate(energies):
            block = images[k * n:(k + 1) * n].astype(np.float64)
            label = f"{energy:g} GeV"
            ax[0, 0].step(layers, per_energy[k]["longitudinal_profile"], where="mid", label=label)
            x_profile = block.sum(axis=(0, 2, 3))
            ax[0, 1].step(x_mm, x_profile / max(x_profile.sum(), 1e-300), where="mid", label=label)
            ax[1, 1].hist(ratios[k * n:(k + 1) * n], bins=edges, histtype="step", density=True, label=label)
        ax[0, 0].set(xlabel="layer", ylabel="fraction of deposit per layer")
        ax[0, 1].set(xlabel="x [mm]", ylabel="fraction of deposit per cell column", yscale="log")
        sf = np.array([r["sampling_fraction"] for r in per_energy])
        sf_err = np.array([r["sampling_fraction_std"] for r in per_energy]) / np.sqrt(n)
        ax[1, 0].errorbar(energies, sf, yerr=sf_err, fmt="o", capsize=4)
        ax[1, 0].set(xlabel="E [GeV]", ylabel="sampling fraction (sensor / available)")
        if len(energies) > 1 and min(energies) > 0 and max(energies) / min(energies) > 5:
            ax[1, 0].set_xscale("log")
        ax[1, 1].set(xlabel="sensor energy / E", ylabel="probability density")
        for a in (ax[0, 0], ax[0, 1], ax[1, 1]):
            a.legend(fontsize="small")
        fig.suptitle(f"fastshower MC: e- on {calorimeter.name}, {n} showers per energy")
        fig.tight_layout()
        _save_atomic(fig, path)


def _save_atomic(fig: Any, path: Path) -> None:
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
