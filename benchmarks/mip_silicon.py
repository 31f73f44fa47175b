"""Energy loss of fast electrons in 0.5 mm of silicon (a calorimeter sensor) against the Landau-Vavilov-Bichsel
most probable value of the PDG review (eq. 34.12; Bichsel, Rev. Mod. Phys. 60 (1988) 663).

Run: ``.venv/bin/python benchmarks/mip_silicon.py`` (~3 min on one core): prints the table quoted in
docs/physics.md. The loss is the primary's (entry minus exit energy, transmitted electrons), with straggling
sampled as in the calorimeter's sensors; delta rays and bremsstrahlung photons above the cuts count as lost
(they make the high tail, not the peak).
"""

from __future__ import annotations

import numpy as np

from fastshower.mc.foil import TRANSMITTED, transmit
from fastshower.mc.measurements import most_probable_loss_silicon_keV

THICKNESS_mm = 0.5


def peak_and_fwhm_keV(loss_keV: np.ndarray) -> tuple[float, float]:
    """Most probable value (parabola through the histogram's peak, 4 keV bins) and full width at half maximum."""
    counts, edges = np.histogram(loss_keV, bins=np.arange(0.0, 800.0, 4.0))
    centres = 0.5 * (edges[1:] + edges[:-1])
    i = int(np.argmax(counts))
    near = slice(max(i - 5, 0), i + 6)
    a, b, _ = np.polyfit(centres[near], counts[near], 2)
    above = np.nonzero(counts >= counts.max() / 2.0)[0]
    return float(-b / (2.0 * a)), float(centres[above[-1]] - centres[above[0]])


def main() -> None:
    print("| e- energy | MC most probable loss (keV) | PDG/Bichsel (keV) | MC / PDG | MC FWHM (keV) | Landau 4 xi "
          "(keV) | electrons |")
    print("|---|---|---|---|---|---|---|")
    for energy_MeV, n in ((100.0, 20000), (1000.0, 20000)):
        exits = transmit("Si", THICKNESS_mm, energy_MeV, n, seed=3, sensor=True)
        loss = (energy_MeV - exits.energy_MeV[exits.side == TRANSMITTED]) * 1e3
        mpv, fwhm = peak_and_fwhm_keV(loss)
        reference, landau_width = most_probable_loss_silicon_keV(energy_MeV, THICKNESS_mm)
        print(f"| {energy_MeV / 1000:g} GeV | {mpv:.1f} | {reference:.1f} | {mpv / reference:.2f} | {fwhm:.0f} | "
              f"{landau_width:.1f} | {n} |")


if __name__ == "__main__":
    main()
