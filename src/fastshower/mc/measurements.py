"""Published measurements the Monte Carlo is checked against (tests/ and benchmarks/ read them from here).

Hanson, Lanzl, Lyman & Scott, "Measurement of multiple scattering of 15.7-MeV electrons", Phys. Rev. 84 (1951)
634: 15.7 MeV electrons through gold foils of 18.66 and 37.28 mg/cm^2 (9.658 and 19.296 um). The 1/e widths of
the angular distribution are the paper's; the distributions dN/dOmega (per electron and square degree, against
the polar angle in degrees) are its points as tabulated with Geant4's TestEm5 example
(examples/extended/electromagnetic/TestEm5/hanson/9um.ascii and 19um.ascii).
"""

from __future__ import annotations

import numpy as np

#: foil areal density (mg/cm^2) -> 1/e width of dN/dOmega (degrees)
HANSON_WIDTH_DEG = {18.66: 2.58, 37.28: 3.76}
HANSON_ENERGY_MeV = 15.7
#: polar angles (degrees) of the tabulated distributions
HANSON_THETA_DEG = np.array([0.25, 0.75, 1.25, 1.90, 2.20, 2.60, 3.00, 3.60, 4.10, 5.00, 7.00, 8.00, 10.0, 15.0,
                             20.0, 25.0])
#: foil areal density (mg/cm^2) -> dN/dOmega (1/deg^2) at HANSON_THETA_DEG
HANSON_DENSITY_PER_DEG2 = {
    18.66: np.array([4.40e-2, 4.08e-2, 3.45e-2, 2.50e-2, 2.00e-2, 1.55e-2, 1.08e-2, 0.69e-2, 0.41e-2, 0.18e-2,
                     3.30e-4, 1.70e-4, 6.20e-5, 1.15e-5, 3.50e-6, 1.30e-6]),
    37.28: np.array([1.98e-2, 1.93e-2, 1.77e-2, 1.47e-2, 1.40e-2, 1.23e-2, 1.03e-2, 0.80e-2, 0.62e-2, 0.38e-2,
                     1.05e-3, 0.54e-3, 1.70e-4, 2.50e-5, 7.50e-6, 3.00e-6]),
}


#: Sternheimer's density-effect parameters of silicon (Sternheimer, Berger & Seltzer, At. Data Nucl. Data Tables
#: 30 (1984) 261): I (eV), C-bar, x0, x1, a, k; and <Z/A> and density (g/cm^3)
SILICON_STERNHEIMER = {"I_eV": 173.0, "Cbar": 4.4351, "x0": 0.2014, "x1": 2.8715, "a": 0.14921, "k": 3.2546}
SILICON_Z_OVER_A, SILICON_DENSITY_g_cm3 = 0.49848, 2.329


def most_probable_loss_silicon_keV(kinetic_MeV: float, thickness_mm: float, mass_MeV: float = 0.51099895
                                   ) -> tuple[float, float]:
    """(most probable energy loss, 4 xi) in keV of a singly charged particle crossing silicon: the
    Landau-Vavilov-Bichsel value of the PDG review (Passage of particles through matter, eq. 34.12, j = 0.200,
    which reproduces Bichsel's calculations, Rev. Mod. Phys. 60 (1988) 663) with Sternheimer's density effect;
    4 xi is the Landau FWHM, which thin silicon exceeds (Bichsel)."""
    p = SILICON_STERNHEIMER
    gamma = 1.0 + kinetic_MeV / mass_MeV
    beta_gamma2 = gamma * gamma - 1.0
    beta2 = beta_gamma2 / (gamma * gamma)
    xi_eV = 0.5 * 0.307075 * SILICON_Z_OVER_A * thickness_mm / 10.0 * SILICON_DENSITY_g_cm3 / beta2 * 1e6
    x = 0.5 * np.log10(beta_gamma2)
    delta = 0.0
    if x >= p["x0"]:
        delta = 2.0 * np.log(10.0) * x - p["Cbar"] + (p["a"] * (p["x1"] - x) ** p["k"] if x < p["x1"] else 0.0)
    electron_mass_eV = 0.51099895e6
    mpv_eV = xi_eV * (np.log(2.0 * electron_mass_eV * beta_gamma2 / p["I_eV"]) + np.log(xi_eV / p["I_eV"]) + 0.200
                      - beta2 - delta)
    return float(mpv_eV / 1e3), float(4.0 * xi_eV / 1e3)
