"""Ionisation by electrons and positrons: continuous restricted loss, Moller / Bhabha delta rays above the cut,
and energy-loss straggling below it.

- Restricted stopping power: Berger-Seltzer formula with the Sternheimer density effect
  (:func:`fastshower.materials.electron_stopping_power_MeV_mm`, ICRU Report 37).
- Delta rays: Moller (e-e-) and Bhabha (e+e-) cross-sections per electron above the kinetic cut T_c, and their
  sampling, after Messel & Crawford, "Electron-photon shower distribution function tables" (1970), as used by
  EGS4 and Geant4's G4MollerBhabhaModel.
- Straggling: the energy lost below the cut is made of collisions with a 1/E^2 spectrum between the mean
  excitation energy I and T_c (the "ionisation" part of Urban's model, Geant4 PRM "Fluctuations in energy loss").
  Collisions above a split energy are sampled one by one (Poisson number, 1/E^2 energies): this gives the
  Landau tail that thin silicon sensors show; the many soft ones below it are summed in a Gaussian.
Energies in MeV, lengths in mm.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from fastshower.materials import ELECTRON_MASS_MeV as ME
from fastshower.mc.rng import rand, rand_normal, rand_poisson

_R_E_MM = 2.8179403262e-12
_TWO_PI_MC2_RE2 = 2.0 * np.pi * ME * _R_E_MM**2
_HARD_COLLISIONS = 16.0  # mean number of collisions sampled one by one in a straggled step


def moller_cross_section_mm2(kinetic_MeV: np.ndarray, cut_MeV: float) -> np.ndarray:
    """Moller cross-section per target electron for delta rays above ``cut_MeV`` (mm^2)."""
    T = np.asarray(kinetic_MeV, dtype=float)
    out = np.zeros_like(T)
    ok = 2.0 * cut_MeV < T
    T = T[ok]
    gam = T / ME + 1.0
    beta2 = 1.0 - 1.0 / gam**2
    gg = (2.0 * gam - 1.0) / gam**2
    x_min, x_max = cut_MeV / T, 0.5
    cross = ((x_max - x_min) * (1.0 - gg + 1.0 / (x_min * x_max) + 1.0 / ((1.0 - x_min) * (1.0 - x_max)))
             - gg * np.log(x_max * (1.0 - x_min) / (x_min * (1.0 - x_max)))) / beta2
    out[ok] = cross * _TWO_PI_MC2_RE2 / T
    return out


def bhabha_cross_section_mm2(kinetic_MeV: np.ndarray, cut_MeV: float) -> np.ndarray:
    """Bhabha cross-section per target electron for delta rays above ``cut_MeV`` (mm^2)."""
    T = np.asarray(kinetic_MeV, dtype=float)
    out = np.zeros_like(T)
    ok = cut_MeV < T
    T = T[ok]
    gam = T / ME + 1.0
    beta2 = 1.0 - 1.0 / gam**2
    b1, b2, b3, b4 = _bhabha_coefficients(gam)
    x_min, x_max = cut_MeV / T, 1.0
    cross = ((x_max - x_min) * (1.0 / (beta2 * x_min * x_max) + b2 - 0.5 * b3 * (x_min + x_max)
                                + b4 * (x_min**2 + x_min * x_max + x_max**2) / 3.0)
             - b1 * np.log(x_max / x_min))
    out[ok] = cross * _TWO_PI_MC2_RE2 / T
    return out


@njit(cache=True)
def _bhabha_coefficients(gam):  # noqa: ANN001, ANN202 - used on floats and arrays
    y = 1.0 / (1.0 + gam)
    y2 = y * y
    y12 = 1.0 - 2.0 * y
    b4 = y12 * y12 * y12
    return 2.0 - y2, y12 * (3.0 + y2), b4 + y12 * y12, b4


@njit(cache=True)
def sample_delta_fraction(state: np.ndarray, T: float, cut: float, positron: bool) -> float:
    """Kinetic energy of the delta ray as a fraction of T (MeV), above ``cut``; 1/x^2 envelope + rejection."""
    gam = T / ME + 1.0
    beta2 = 1.0 - 1.0 / (gam * gam)
    x_min = cut / T
    x_max = 1.0 if positron else 0.5
    while True:
        q = rand(state)
        x = x_min * x_max / (x_min * (1.0 - q) + x_max * q)
        if positron:
            b1, b2, b3, b4 = _bhabha_coefficients(gam)
            y = x * x
            z = 1.0 + (y * y * b4 - x * y * b3 + y * b2 - x * b1) * beta2
            y = x_min * x_min
            bound = 1.0 + (y * y * b4 - x_min * y * b3 + y * b2 - x_min * b1) * beta2
        else:
            gg = (2.0 * gam - 1.0) / (gam * gam)
            y = 1.0 - x
            z = 1.0 - gg * x + x * x * (1.0 - gg + (1.0 - gg * y) / (y * y))
            y = 1.0 - x_max
            bound = 1.0 - gg * x_max + x_max * x_max * (1.0 - gg + (1.0 - gg * y) / (y * y))
        if bound * rand(state) <= z:
            return x


@njit(cache=True)
def straggled_loss(state: np.ndarray, mean_loss: float, excitation: float, cut: float) -> float:
    """A fluctuating energy loss (MeV) with mean ``mean_loss`` from collisions of 1/E^2 spectrum in
    [excitation, cut] (MeV)."""
    if mean_loss <= 0.0 or cut <= excitation:
        return mean_loss
    inv_lo, inv_hi = 1.0 / excitation, 1.0 / cut
    log_ratio = np.log(cut / excitation)
    mean_per_collision = log_ratio / (inv_lo - inv_hi)
    n_collisions = mean_loss / mean_per_collision
    # split energy e_s: on average _HARD_COLLISIONS collisions above it are sampled individually
    hard_share = min(1.0, _HARD_COLLISIONS / n_collisions)
    inv_split = inv_hi + hard_share * (inv_lo - inv_hi)
    split = 1.0 / inv_split
    rate = n_collisions / (inv_lo - inv_hi)  # collisions per unit of 1/E
    soft_mean = rate * np.log(split / excitation)
    soft_var = rate * (split - excitation)
    loss = 0.0
    if soft_mean > 0.0:
        loss = soft_mean + np.sqrt(soft_var) * rand_normal(state)
        if loss < 0.0:
            loss = 0.0
    for _ in range(rand_poisson(state, rate * (inv_split - inv_hi))):
        loss += 1.0 / (inv_split - rand(state) * (inv_split - inv_hi))
    return loss
