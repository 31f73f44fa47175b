"""``fastshower demo``: a small Monte Carlo sample at a few energies, a summary table and a figure.

Until the GAN lands, the demo exercises the detailed Monte Carlo: electrons at normal incidence on the
``clic`` calorimeter, simulated on all cores, written to ``mc_demo.h5`` and plotted to ``mc_demo.png``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fastshower import __version__
from fastshower.data import ShowerData, ShowerWriter
from fastshower.errors import ConfigError
from fastshower.geometry import load_geometry
from fastshower.mc.production import check_primaries, chunks, run_production
from fastshower.mc.settings import PhysicsSettings
from fastshower.mc.simulator import LEDGER_KEYS, Primaries, available_energy_GeV

GEOMETRY = "clic"
PDG_ELECTRON = 11


def run_demo(
    out_dir: str | Path,
    n_per_energy: int = 100,
    energies: Sequence[float] = (10, 50, 100),
    seed: int = 2026,
) -> dict[str, Any]:
    """Simulate ``n_per_energy`` electrons at each energy (GeV), write ``mc_demo.h5`` and ``mc_demo.png``
    into ``out_dir``, print a summary table and return its numbers.

    Returns a dict with "h5", "png" (paths), "workers", "geometry" and "per_energy": one dict per energy with
    "energy_GeV", "n", "showers_per_s", "ms_per_shower" (wall clock, all workers), "sampling_fraction" and
    "sampling_fraction_std" (sensor / available energy, per shower), "resolution" (std / mean of the summed
    image), "max_ledger_error" (relative) and "longitudinal_profile" (mean fraction of the deposit per layer).
    """
    n = int(n_per_energy)
    energies = [float(e) for e in energies]
    if n < 1:
        raise ConfigError(f"demo: n_per_energy must be >= 1 (got {n})")
    if not energies:
        raise ConfigError("demo: no energies given")
    out_dir = Path(out_dir)
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
    finally:
        writer.close()

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
    return result


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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png", dpi=100)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
