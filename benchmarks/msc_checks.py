"""Multiple-scattering models side by side: gold-foil widths (Hanson 1951), backscattering, and what they do to
CLIC showers (sampling fraction, lateral spread, cost).

Run: ``.venv/bin/python benchmarks/msc_checks.py`` (~5 min on 2 cores); prints the markdown tables quoted in
docs/physics.md ("Multiple scattering") and writes docs/figures/msc_hanson.png (the gold-foil distributions
against Hanson's points, tail included).
"""

from __future__ import annotations

import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fastshower.atomic import atomic_write  # noqa: E402
from fastshower.geometry import load_geometry  # noqa: E402
from fastshower.materials import material  # noqa: E402
from fastshower.mc.foil import BACKSCATTERED, transmit  # noqa: E402
from fastshower.mc.measurements import HANSON_DENSITY_PER_DEG2, HANSON_THETA_DEG  # noqa: E402
from fastshower.mc.measurements import HANSON_WIDTH_DEG as HANSON  # noqa: E402
from fastshower.mc.physics.elastic import goudsmit_saunderson_density  # noqa: E402
from fastshower.mc.rng import shower_seeds  # noqa: E402
from fastshower.mc.settings import PhysicsSettings  # noqa: E402
from fastshower.mc.simulator import Primaries, Simulator  # noqa: E402

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


def hanson_figure(path: str = "docs/figures/msc_hanson.png") -> list[str]:
    """dN/dOmega behind both foils, per electron and deg^2, to 25 degrees: Hanson's points, the cross-section's
    exact (Goudsmit-Saunderson) distribution, the mixed scheme (C1 = 1e-5 and the default) and Highland."""
    gold = material("Au")
    edges_deg = np.concatenate([np.arange(0.0, 6.0, 0.5), [6.0, 7.0, 8.0, 10.0, 12.5, 15.0, 20.0, 25.0]])
    solid_deg2 = 2.0 * np.pi * (np.cos(np.radians(edges_deg[:-1])) - np.cos(np.radians(edges_deg[1:]))) \
        / np.radians(1.0) ** 2
    samples = {"wentzel, C1=1e-5": PhysicsSettings(msc="wentzel", msc_c1=1e-5, straggling=False),
               "wentzel, default (C1=0.2)": PhysicsSettings(), "highland": MODELS["highland, csda cuts"]}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    rows = ["| foil (mg/cm^2) | theta (deg) | Hanson (1/deg^2) | GS exact / Hanson | bin (deg) | "
            + " | ".join(f"MC {k} / GS" for k in samples) + " |", "|---|---|---|---|---|" + "---|" * len(samples)]
    for ax, (mg, data) in zip(axes, HANSON_DENSITY_PER_DEG2.items(), strict=True):
        t = mg * 1e-3 / gold.density_g_cm3 * 10.0
        fine = np.linspace(0.0, 25.0, 2501)
        exact = goudsmit_saunderson_density(79.0, float(gold.atoms_per_mm3[0]), 15.7, t, np.radians(fine)) \
            * np.radians(1.0) ** 2
        ax.plot(fine, exact, "k-", lw=1, label="screened Rutherford, exact (GS)")
        mc = {}
        for (label, settings), style in zip(samples.items(), ("C0", "C2", "C3"), strict=True):
            counts, _ = np.histogram(np.degrees(transmit("Au", t, 15.7, 200000, seed=7, settings=settings)
                                                .polar_angles_rad()), edges_deg)
            mc[label] = counts / 200000 / solid_deg2
            ax.stairs(np.where(counts > 0, mc[label], np.nan), edges_deg, color=style, label=f"MC {label}")
        ax.plot(HANSON_THETA_DEG, data, "rv", label="Hanson et al. 1951")
        ax.set(yscale="log", xlabel="polar angle (deg)", ylabel="dN/dOmega (1/deg^2 per electron)",
               title=f"15.7 MeV e- through {mg} mg/cm^2 gold", ylim=(3e-7, 0.1))
        ax.legend(fontsize=7)
        for theta in (2.2, 5.0, 10.0, 15.0, 20.0):
            i = int(np.argmin(np.abs(HANSON_THETA_DEG - theta)))
            b = int(np.searchsorted(edges_deg, theta, side="right") - 1)
            lo, hi = edges_deg[b], edges_deg[b + 1]
            inside = (fine >= lo) & (fine <= hi)
            weight = np.sin(np.radians(fine[inside]))
            gs_bin = float(np.sum(exact[inside] * weight) / np.sum(weight))  # the bin's solid-angle average
            rows.append(f"| {mg} | {theta:g} | {data[i]:.2e} | {np.interp(theta, fine, exact) / data[i]:.2f} | "
                        f"{lo:g}-{hi:g} | " + " | ".join(f"{mc[k][b] / gs_bin:.2f}" for k in samples) + " |")
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)
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
                         ("Gold foils: dN/dOmega against Hanson's points (MC in bins of 0.5-5 deg)", hanson_figure),
                         ("Backscattered fraction of e- at normal incidence on 50 mm thick targets", backscatter_table),
                         ("CLIC ECAL, e- at normal incidence", shower_table)):
        print(f"### {title}\n")
        print("\n".join(table()))
        print()


if __name__ == "__main__":
    main()
