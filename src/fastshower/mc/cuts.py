"""Production thresholds: a range cut (mm) turned into the energies below which delta rays and bremsstrahlung
photons are not produced but folded into the continuous loss.

Two conversions, chosen by ``PhysicsSettings.cut_conversion``:

- ``"geant4"``: Geant4's range-to-energy converters (G4VRangeToEnergyConverter with G4RToEConvForElectron and
  G4RToEConvForGamma, Geant4 10.x; H. Kurashige 2002), so that a range cut means what a Geant4 user expects. The
  electron range is that of an approximate stopping power per atom (a Bethe-like collision term with
  I = 16 Z^0.9 eV, plus a tenth of an empirical bremsstrahlung term), integrated on 300 logarithmic bins from
  0.99 keV to 10 GeV; below 30 keV the electron threshold is lowered smoothly (by 0.025 mm g/cm^3 over the
  cut times the density). The photon "range" is five absorption lengths of an empirical parametrisation of the
  photoelectric + Compton + pair cross-section. Both are found by bisection to 1 %, as Geant4 does.
- ``"csda"``: the electron's CSDA range with fastshower's own stopping power (Berger-Seltzer collision loss and
  the bremsstrahlung loss below the photon cut) equals the cut, and five attenuation lengths of fastshower's own
  photon cross-sections equal the cut. fastshower's conversion before Geant4's was available; samples made
  with it are reproduced by choosing it.

Energies in MeV, lengths in mm.
"""

from __future__ import annotations

import numpy as np

from fastshower.materials import (
    CLASSICAL_ELECTRON_RADIUS_mm,
    ELECTRON_MASS_MeV,
    Material,
    electron_stopping_power_MeV_mm,
)
from fastshower.mc.physics import compton, pair, photoelectric

# --- Geant4's conversion ---------------------------------------------------------------------------------

G4_LOWEST_MeV = 0.99e-3
G4_MAX_CUT_MeV = 1.0e4
G4_BINS = 300
_TWOPI_MC2_RCL2_MeV_mm2 = 2.0 * np.pi * ELECTRON_MASS_MeV * CLASSICAL_ELECTRON_RADIUS_mm**2
_BARN_mm2 = 1e-22
_G4_TUNE_mm_g_cm3 = 0.025
_G4_TUNE_BELOW_MeV = 0.030


def g4_grid_MeV() -> np.ndarray:
    """The 301 energies of Geant4's converter tables (logarithmic, 0.99 keV - 10 GeV)."""
    return np.geomspace(G4_LOWEST_MeV, G4_MAX_CUT_MeV, G4_BINS + 1)


def g4_electron_loss_MeV_mm2(Z: float, kinetic_MeV: np.ndarray) -> np.ndarray:
    """G4RToEConvForElectron's approximate stopping power per atom (MeV mm^2; times atoms/mm^3 gives MeV/mm).

    Collision part: a Bethe-Rohrlich-Carlson-like electron formula with I = 1.6e-5 MeV Z^0.9; below 10 keV it is
    continued as T^-1/2. Bremsstrahlung part: Z(Z+1) (0.02 - 5.7e-5 Z)(1 + 0.072 ln(T / 1 GeV)) tau / beta^2,
    weighted by 0.1 (Geant4's ``bremfactor``).
    """
    T = np.asarray(kinetic_MeV, dtype=np.float64)
    tau_low = 0.010 / ELECTRON_MASS_MeV
    ln_ionpot = np.log(1.6e-5 * Z**0.9 / ELECTRON_MASS_MeV)

    def collision(tau: np.ndarray) -> np.ndarray:
        t1, t2, tsq = tau + 1.0, tau + 2.0, tau * tau
        beta2 = tau * t2 / (t1 * t1)
        f = 1.0 - beta2 + np.log(tsq / 2.0) + (0.5 + 0.25 * tsq + (1.0 + 2.0 * tau) * np.log(0.5)) / (t1 * t1)
        return _TWOPI_MC2_RCL2_MeV_mm2 * Z * (np.log(2.0 * tau + 4.0) - 2.0 * ln_ionpot + f) / beta2

    tau = T / ELECTRON_MASS_MeV
    high = np.maximum(tau, tau_low)
    t1 = high + 1.0
    beta2 = high * (high + 2.0) / (t1 * t1)
    brems = (0.02 - 5.7e-5 * Z) * (1.0 + 0.072 * np.log(np.maximum(T, 0.010) / 1000.0))
    brems = 0.1 * _TWOPI_MC2_RCL2_MeV_mm2 * Z * (Z + 1.0) * brems * high / beta2
    low = collision(np.full_like(tau, tau_low)) * np.sqrt(tau_low / tau)
    return np.where(tau < tau_low, low, collision(high) + brems)


def g4_photon_absorption_mm2(Z: float, energy_MeV: np.ndarray) -> np.ndarray:
    """G4RToEConvForGamma's empirical photon "absorption" cross-section per atom (photoelectric + Compton + pair),
    in mm^2: four Z-dependent pieces joined at t_low, 200 keV and t_min."""
    E = np.asarray(energy_MeV, dtype=np.float64)
    z2, lz = Z * Z, np.log(Z)
    s200 = (0.2651 - 0.1501 * lz + 0.02283 * lz * lz) * z2
    tmin = 0.552 + 218.5 / Z + 557.17 / z2
    smin = (0.01239 + 0.005585 * lz - 0.000923 * lz * lz) * np.exp(1.5 * lz)
    cmin = np.log(s200 / smin) / np.log(tmin / 0.2) ** 2
    tlow = 0.2 * np.exp(-7.355 / np.sqrt(Z))
    slow = s200 * np.exp(0.042 * Z * np.log(0.2 / tlow) ** 2)
    s1keV = 300.0 * z2
    clow = np.log(s1keV / slow) / np.log(tlow / 1e-3)
    chigh = (7.55e-5 - 0.0542e-5 * Z) * z2 * Z / np.log(100.0 / tmin)
    s = np.where(tlow > E, slow * np.exp(clow * np.log(tlow / np.maximum(E, 1e-3))),
                 np.where(E < 0.2, s200 * np.exp(0.042 * Z * np.log(0.2 / E) ** 2),
                          np.where(tmin > E, smin * np.exp(cmin * np.log(tmin / E) ** 2),
                                   smin + chigh * np.log(E / tmin))))
    return s * _BARN_mm2


def g4_electron_range_mm(material: Material, grid_MeV: np.ndarray) -> np.ndarray:
    """The range Geant4's converter integrates: trapezoids in ln T of T / (dE/dx), from the grid's first energy."""
    loss = sum(n * g4_electron_loss_MeV_mm2(el.Z, grid_MeV)
               for el, n in zip(material.elements, material.atoms_per_mm3, strict=True))
    q = grid_MeV / loss
    step = np.log(grid_MeV[1] / grid_MeV[0])
    length = step * (np.cumsum(q) - 0.5 * q - 0.5 * q[0])
    length[0] = step * q[0]  # Geant4's first bin
    return length


def g4_photon_length_mm(material: Material, grid_MeV: np.ndarray) -> np.ndarray:
    """Five absorption lengths of Geant4's empirical photon cross-section (mm)."""
    sigma = sum(n * g4_photon_absorption_mm2(el.Z, grid_MeV)
                for el, n in zip(material.elements, material.atoms_per_mm3, strict=True))
    return 5.0 / sigma


def g4_cut_from_lengths(grid_MeV: np.ndarray, lengths_mm: np.ndarray, cut_mm: float) -> float:
    """Geant4's ConvertCutToKineticEnergy: the first bin whose length exceeds the cut, then bisection in energy
    (geometric midpoints, lengths interpolated linearly in energy) until the length is within 1 % of the cut."""
    if cut_mm <= lengths_mm[0]:
        return float(grid_MeV[0])
    above = np.nonzero(lengths_mm > cut_mm)[0]
    if above.size == 0:
        return float(grid_MeV[-1])
    i = int(above[0])
    low, high = float(grid_MeV[i - 1]), float(grid_MeV[i])
    mid = np.sqrt(low * high)
    for _ in range(200):
        length = float(np.interp(mid, grid_MeV, lengths_mm))
        if abs(1.0 - length / cut_mm) <= 0.01:
            break
        low, high = (low, mid) if cut_mm <= length else (mid, high)
        mid = np.sqrt(low * high)
    return float(mid)


def geant4_electron_cut_MeV(material: Material, cut_mm: float) -> float:
    """Geant4's electron production threshold for a range cut (before the lower bound of the settings)."""
    grid = g4_grid_MeV()
    energy = g4_cut_from_lengths(grid, g4_electron_range_mm(material, grid), cut_mm)
    if energy < _G4_TUNE_BELOW_MeV:  # Geant4 switches this correction on smoothly below 30 keV
        energy /= 1.0 + (1.0 - energy / _G4_TUNE_BELOW_MeV) * _G4_TUNE_mm_g_cm3 / (cut_mm * material.density_g_cm3)
    return float(min(energy, G4_MAX_CUT_MeV))


def geant4_photon_cut_MeV(material: Material, cut_mm: float) -> float:
    """Geant4's photon production threshold for a range cut (before the lower bound of the settings)."""
    grid = g4_grid_MeV()
    return g4_cut_from_lengths(grid, g4_photon_length_mm(material, grid), cut_mm)


# --- the CSDA conversion -------------------------------------------------------------------------------------


def csda_electron_cut_MeV(material: Material, cut_mm: float, lowest_MeV: float) -> float:
    """Kinetic energy whose electron CSDA range (fastshower's stopping power) equals the cut."""
    grid = np.geomspace(lowest_MeV, 1e4, 800)
    csda = csda_range_mm(grid, electron_stopping_power_MeV_mm(material, grid))
    return float(np.interp(cut_mm, csda, grid))


def csda_photon_cut_MeV(material: Material, cut_mm: float, lowest_MeV: float) -> float:
    """Lowest energy above which five attenuation lengths (fastshower's cross-sections) exceed the cut."""
    grid = np.geomspace(lowest_MeV, 10.0, 600)
    mu = photon_attenuation_per_mm(material, grid).sum(axis=0)
    too_short = np.nonzero(5.0 / np.maximum(mu, 1e-300) < cut_mm)[0]
    if too_short.size == 0:
        return float(lowest_MeV)
    return float(grid[min(too_short[-1] + 1, grid.size - 1)])


def photon_attenuation_per_mm(material: Material, photon_MeV: np.ndarray) -> np.ndarray:
    """Pair, Compton and photoelectric attenuation coefficients (rows, 1/mm) of fastshower's photon physics."""
    return np.stack([pair.element_tables(material, photon_MeV).sum(axis=0),
                     compton.macroscopic_cross_section(material, photon_MeV),
                     photoelectric.element_tables(material, photon_MeV).sum(axis=0)])


def csda_range_mm(kinetic: np.ndarray, dedx: np.ndarray) -> np.ndarray:
    """CSDA range (mm) on an energy grid from the stopping power (MeV/mm), trapezoids from the first energy."""
    inv = 1.0 / np.maximum(dedx, 1e-300)
    steps = np.diff(kinetic) * 0.5 * (inv[1:] + inv[:-1])
    return np.concatenate([[kinetic[0] * inv[0]], kinetic[0] * inv[0] + np.cumsum(steps)])


def production_cuts_MeV(material: Material, cut_mm: float, conversion: str, lowest_MeV: float) -> tuple[float, float]:
    """(electron, photon) production thresholds in MeV of ``material`` for the range cut, bounded below by
    ``lowest_MeV``."""
    if conversion == "geant4":
        e, g = geant4_electron_cut_MeV(material, cut_mm), geant4_photon_cut_MeV(material, cut_mm)
    else:
        e, g = csda_electron_cut_MeV(material, cut_mm, lowest_MeV), csda_photon_cut_MeV(material, cut_mm, lowest_MeV)
    return max(lowest_MeV, e), max(lowest_MeV, g)
