"""Physics checks of the Monte Carlo quoted in docs/physics.md.

Run: ``.venv/bin/python benchmarks/physics_checks.py [--quick]`` — prints the markdown tables of docs/physics.md
and writes docs/figures/mc_*.png. Takes ~3 minutes on 2 cores (``--quick``: ~30 s, fewer showers).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.optimize import curve_fit  # noqa: E402
from scipy.special import gamma as gamma_function  # noqa: E402

from fastshower.geometry import Calorimeter, Grid, Layer, load_geometry  # noqa: E402
from fastshower.materials import material  # noqa: E402
from fastshower.mc import tables as tb  # noqa: E402
from fastshower.mc.rng import shower_seeds  # noqa: E402
from fastshower.mc.simulator import Primaries, Simulator, available_energy_GeV  # noqa: E402

PDG = {  # PDG atomic and nuclear properties: X0 (mm), R_M (mm), E_c (MeV, e-)
    "W": (3.504, 9.327, 7.97), "Pb": (5.612, 16.02, 7.43), "Si": (93.70, 49.44, 40.19), "Cu": (14.36, 15.66, 19.42),
}
_SIMULATORS: dict[str, Simulator] = {}


def _block() -> Calorimeter:
    x0 = material("W").radiation_length_mm
    return Calorimeter("w-block", (Layer("W", 0.0, "W", x0 / 2),) * 70, Grid(61, 61, 1.0), half_width_mm=300.0)


def _simulate(job: tuple[str, int, float, int, int]):
    geometry, pdg, energy, n, seed = job
    if geometry not in _SIMULATORS:
        _SIMULATORS[geometry] = Simulator(_block() if geometry == "w-block" else load_geometry(geometry))
    zeros = np.zeros(n)
    batch = _SIMULATORS[geometry].run(Primaries(np.full(n, pdg), np.full(n, energy), zeros, zeros, zeros, zeros),
                                      shower_seeds(seed, 0, n))
    return batch.images, batch.ledger


def _run(pool, geometry, pdg, energy, n, seed):
    halves = [(geometry, pdg, energy, n // 2, seed), (geometry, pdg, energy, n - n // 2, seed + 1000)]
    parts = list(pool.map(_simulate, halves))
    images = np.concatenate([p[0] for p in parts])
    ledger = {k: np.concatenate([p[1][k] for p in parts]) for k in parts[0][1]}
    return images, ledger


def _tmax(profile: np.ndarray) -> float:
    t = (np.arange(profile.size) + 0.5) * 0.5

    def f(t, total, a, b):
        return total * b * (b * t) ** (a - 1) * np.exp(-b * t) / gamma_function(a)

    (_, a, b), _ = curve_fit(f, t, profile / 0.5, p0=(profile.sum(), 4.0, 0.5))
    return (a - 1.0) / b


def _savefig(fig, path: str) -> None:
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=os.path.dirname(path))
    os.close(fd)
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    scale = 0.2 if args.quick else 1.0

    print("### Material constants (derived) vs PDG\n\n| material | X0 mm | PDG | R_M mm | PDG | E_c MeV | PDG |")
    print("|---|---|---|---|---|---|---|")
    for name, (x0, rm, ec) in PDG.items():
        m = material(name)
        print(f"| {name} | {m.radiation_length_mm:.3f} | {x0} | {m.moliere_radius_mm:.2f} | {rm} | "
              f"{m.critical_energy_MeV:.2f} | {ec} |")

    block = Simulator(_block())
    print("\n### Photon mean free path in W, in units of X0 (high-energy limit 9/7 = 1.286)\n")
    print("| E_gamma | 100 MeV | 1 GeV | 10 GeV | 100 GeV | 1 TeV |\n|---|---|---|---|---|---|")
    row = [1.0 / np.interp(np.log(e), np.log(tb.ENERGY_GRID_MeV), block.tables.values[0, tb.MU_TOTAL])
           / material("W").radiation_length_mm for e in (1e2, 1e3, 1e4, 1e5, 1e6)]
    print("| mfp/X0 | " + " | ".join(f"{v:.3f}" for v in row) + " |")

    with ProcessPoolExecutor(2) as pool:
        print("\n### Homogeneous tungsten: shower maximum (gamma fit, X0) and containment in one R_M\n")
        print("| E (GeV) | t_max e- | ln(E/Ec)-0.5 | t_max gamma | ln(E/Ec)+0.5 | E within R_M (e-) | showers |")
        print("|---|---|---|---|---|---|---|")
        x = np.arange(61) - 30.0
        inside_rm = np.hypot(x[:, None], x[None, :]) <= material("W").moliere_radius_mm
        profiles = {}
        for energy, n in ((10.0, 200), (50.0, 80), (100.0, 50), (500.0, 16)):
            n = max(4, int(n * scale))
            res = {}
            for pdg in (11, 22):
                images, ledger = _run(pool, "w-block", pdg, energy, n, 11)
                profiles[(pdg, energy)] = images.sum(axis=(1, 2)).mean(axis=0) / energy
                res[pdg] = _tmax(images.sum(axis=(1, 2)).mean(axis=0))
                if pdg == 11:
                    containment = (images * inside_rm[None, :, :, None]).sum() / ledger["sensor"].sum()
            log_ratio = np.log(energy * 1000 / 7.97)
            print(f"| {energy:g} | {res[11]:.2f} | {log_ratio - 0.5:.2f} | {res[22]:.2f} | {log_ratio + 0.5:.2f} | "
                  f"{containment:.3f} | {n} |")

        print("\n### CLIC ECAL preset: ledger, sampling fraction, resolution, leakage (electrons, normal incidence)\n")
        print("| E (GeV) | showers | max ledger error | sampling fraction | sigma/mean raw | sigma/mean weighted |"
              " back leak | side leak | front leak |")
        print("|---|---|---|---|---|---|---|---|---|")
        # the last 8 layers have twice the tungsten: weighting them by 2 restores a uniform sampling
        weights = np.array([layer.absorber_mm for layer in load_geometry("clic").layers]) / 2.4
        clic = {}
        for energy, n in ((10.0, 400), (50.0, 120), (100.0, 80), (200.0, 40), (500.0, 20)):
            n = max(4, int(n * scale))
            images, ledger = _run(pool, "clic", 11, energy, n, 21)
            total = sum(ledger.values())
            error = np.max(np.abs(total / available_energy_GeV(np.full(n, 11), np.full(n, energy)) - 1))
            visible = images.sum(axis=(1, 2, 3))
            weighted = (images.sum(axis=(1, 2)) * weights).sum(axis=1)
            fraction = visible / energy
            profile = images.sum(axis=(1, 2)).mean(0) / energy
            clic[energy] = (fraction.mean(), fraction.std() / np.sqrt(n), profile)
            cells = [f"{energy:g}", f"{n}", f"{error:.1e}",
                     f"{fraction.mean():.4f} ± {fraction.std() / np.sqrt(n):.4f}",
                     f"{visible.std() / visible.mean():.3f}", f"{weighted.std() / weighted.mean():.3f}",
                     *(f"{ledger[k].mean() / energy:.4f}" for k in ("leak_back", "leak_side", "leak_front"))]
            print("| " + " | ".join(cells) + " |")

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for (pdg, energy), profile in profiles.items():
        axes[0].plot((np.arange(70) + 0.5) * 0.5, profile / 0.5, ls="-" if pdg == 11 else "--",
                     label=f"{'e-' if pdg == 11 else 'gamma'} {energy:g} GeV")
    axes[0].set(xlabel="depth t (X0)", ylabel="(1/E) dE/dt", title="Homogeneous W: longitudinal profiles")
    axes[0].legend(fontsize=7)
    energies = sorted(clic)
    axes[1].errorbar(energies, [clic[e][0] for e in energies], yerr=[clic[e][1] for e in energies], marker="o")
    axes[1].set(xscale="log", xlabel="E (GeV)", ylabel="silicon / E", title="CLIC: sampling fraction")
    for energy in energies:
        axes[2].plot(np.arange(25), clic[energy][2], marker=".", label=f"{energy:g} GeV")
    axes[2].set(xlabel="layer", ylabel="silicon deposit / E", title="CLIC: longitudinal profile")
    axes[2].legend(fontsize=7)
    _savefig(fig, "docs/figures/mc_physics.png")
    print("\nwrote docs/figures/mc_physics.png")


if __name__ == "__main__":
    main()
