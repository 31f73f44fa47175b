"""Multiple-scattering models side by side: gold-foil widths (Hanson 1951), backscattering, and what they do to
CLIC showers (sampling fraction, lateral spread, cost).

Run: ``.venv/bin/python benchmarks/msc_checks.py`` (~3 min on 2 cores); prints the markdown tables quoted in
docs/physics.md ("Multiple scattering") and the cost line of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import time

import numpy as np

from fastshower.geometry import load_geometry
from fastshower.materials import material
from fastshower.mc.foil import BACKSCATTERED, transmit
from fastshower.mc.physics.elastic import goudsmit_saunderson_density
from fastshower.mc.rng import shower_seeds
from fastshower.mc.settings import PhysicsSettings
from fastshower.mc.simulator import Primaries, Simulator

HANSON = {18.66: 2.58, 37.28: 3.76}  # Phys. Rev. 84 (1951) 634: 15.7 MeV e- on gold, 1/e widths (degrees)
MODELS = {  # the old defaults, then the mixed scheme at two accuracies (0.2: today's default)
    "highland, csda cuts": PhysicsSettings(msc="highland", cut_conversion="csda"),
    "wentzel C1=C2=0.05": PhysicsSettings(msc="wentzel", msc_c1=0.05, msc_c2=0.05),
    "wentzel C1=C2=0.2": PhysicsSettings(msc="wentzel", msc_c1=0.2, msc_c2=0.2),
}


def width_1e_deg(theta_deg: np.ndarray, density: np.ndarray) -> float:
    """Where a density per solid angle falls to 1/e of its value at zero angle."""
    level = density[0] / np.e
    i = int(np.nonzero(density < level)[0][0])
    frac = np.log(density[i - 1] / level) / np.log(density[i - 1] / density[i])
    return float(theta_deg[i - 1] + frac * (theta_deg[i] - theta_deg[i - 1]))


def mc_width_deg(theta_rad: np.ndarray, limit_deg: float) -> float:
    """1/e width of a sample of polar angles: density per solid angle in 0.1-degree bins, the zero-angle value
    from a fit of the first bins in theta^2."""
    edges = np.radians(np.arange(0.0, limit_deg, 0.1))
    counts, _ = np.histogram(theta_rad, edges)
    density = counts / (2.0 * np.pi * (np.cos(edges[:-1]) - np.cos(edges[1:])))
    centres = np.degrees(0.5 * (edges[1:] + edges[:-1]))
    fit = np.polyfit(centres[:8] ** 2, np.log(density[:8]), 1)
    return width_1e_deg(np.concatenate([[0.0], centres]), np.concatenate([[np.exp(fit[1])], density]))


def hanson_table() -> list[str]:
    gold = material("Au")
    rows = ["| foil (mg/cm^2) | Hanson (deg) | wentzel, exact (GS) | wentzel MC, C1=1e-5 | highland MC |",
            "|---|---|---|---|---|"]
    for mg, ref in HANSON.items():
        t = mg * 1e-3 / gold.density_g_cm3 * 10.0
        theta = np.linspace(0.0, 2.0 * ref, 401)
        exact = width_1e_deg(theta, goudsmit_saunderson_density(79.0, float(gold.atoms_per_mm3[0]), 15.7, t,
                                                                 np.radians(theta)))
        mixed = mc_width_deg(transmit("Au", t, 15.7, 100000, settings=PhysicsSettings(
            msc="wentzel", msc_c1=1e-5, straggling=False)).polar_angles_rad(), 2.0 * ref)
        gauss = mc_width_deg(transmit("Au", t, 15.7, 100000, settings=MODELS["highland, csda cuts"]).polar_angles_rad(),
                             2.0 * ref)
        rows.append(f"| {mg} | {ref} | {exact:.3f} ({exact / ref - 1:+.1%}) | {mixed:.3f} ({mixed / ref - 1:+.1%}) | "
                    f"{gauss:.3f} ({gauss / ref - 1:+.1%}) |")
    return rows


def backscatter_table() -> list[str]:
    rows = ["| target | E (MeV) | " + " | ".join(MODELS) + " |", "|---|---|" + "---|" * len(MODELS)]
    for name in ("Al", "Cu", "W"):
        for energy in (0.1, 1.0, 10.0):
            eta = [transmit(name, 50.0, energy, 4000, seed=2, settings=settings).fraction(BACKSCATTERED)
                   for settings in MODELS.values()]
            rows.append(f"| {name} | {energy:g} | " + " | ".join(f"{e:.3f}" for e in eta) + " |")
    return rows


def shower_table() -> list[str]:
    clic = load_geometry("clic")
    rows = ["| model | E (GeV) | showers | sampling fraction | rms radius (mm) | ms / GeV (one core) |",
            "|---|---|---|---|---|---|"]
    for label, settings in MODELS.items():
        sim = Simulator(clic, settings)
        for energy, n in ((10, 40), (100, 6)):
            zeros = np.zeros(n)
            primaries = Primaries(np.full(n, 11), np.full(n, float(energy)), zeros, zeros, zeros, zeros)
            sim.run(primaries.select(0, 1), shower_seeds(99, 0, 1))  # compiled and warm
            t0 = time.perf_counter()
            batch = sim.run(primaries, shower_seeds(1, 0, n))
            seconds = time.perf_counter() - t0
            image = batch.images.sum(axis=(0, 3))
            x = (np.arange(image.shape[0]) - (image.shape[0] - 1) / 2) * clic.grid.pitch_mm
            r2 = (image * (x[:, None] ** 2 + x[None, :] ** 2)).sum() / image.sum()
            sf = batch.ledger["sensor"] / energy
            rows.append(f"| {label} | {energy} | {n} | {sf.mean():.5f} +- {sf.std(ddof=1) / np.sqrt(n):.5f} | "
                        f"{np.sqrt(r2):.2f} | {1000 * seconds / n / energy:.2f} |")
    return rows


def main() -> None:
    for title, table in (("Gold foils, 15.7 MeV e-: 1/e width of the angular distribution", hanson_table),
                         ("Backscattered fraction of e- at normal incidence on 50 mm thick targets", backscatter_table),
                         ("CLIC ECAL, e- at normal incidence", shower_table)):
        print(f"### {title}\n")
        print("\n".join(table()))
        print()


if __name__ == "__main__":
    main()
