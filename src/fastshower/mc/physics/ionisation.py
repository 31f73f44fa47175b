"""Ionisation by electrons and positrons: continuous restricted loss, Moller / Bhabha delta rays above the cut,
and energy-loss straggling below it.

- Restricted stopping power: Berger-Seltzer formula with the Sternheimer density effect
  (:func:`fastshower.materials.electron_stopping_power_MeV_mm`, ICRU Report 37).
- Delta rays: Moller (e-e-) and Bhabha (e+e-) cross-sections per electron above the kinetic cut T_c, and their
  sampling, after Messel & Crawford, "Electron-photon shower distribution function tables" (1970), as used by
  EGS4 and Geant4's G4MollerBhabhaModel.
- Straggling: Urban's model (L. Urban, "A model for multiple scattering in Geant4", and K. Lassila-Perini &
  L. Urban, NIM A 362 (1995) 416; Geant4 Physics Reference Manual, "Fluctuations in energy loss"; the GLANDZ model
  of GEANT3, W5013 PHYS332): the atom has two excitation levels E1, E2 with oscillator strengths f1, f2, from
  f2 = 2/Z (0 for Z <= 2), E2 = 10 eV Z^2 and ln I = f1 ln E1 + f2 ln E2; they take 1 - r of the mean loss
  (r = 0.4), in Poisson numbers of collisions whose mean follows Bethe's ln(2 m beta^2 gamma^2 / E_i) - beta^2;
  the rest is ionisation, collisions with a 1/E^2 spectrum between I and the largest transfer below the cut.
  Ionising collisions above a split energy are sampled one by one (Poisson number, 1/E^2 energies): the Landau
  tail of thin silicon sensors; the many soft ones below it are summed in a Gaussian.
Energies in MeV, lengths in mm.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from fastshower.materials import ELECTRON_MASS_MeV as ME
from fastshower.mc.rng import rand, rand_normal, rand_poisson

_R_E_MM = 2.8179403262e-12
_TWO_PI_MC2_RE2 = 2.0 * np.pi * ME * _R_E_MM**2
_HARD_COLLISIONS = 16.0  # mean number of collisions sampled one by one in a straggled step
_IONISATION_SHARE = 0.4  # Urban's r: share of the mean loss taken by ionisation (the rest: the two excitations)


def urban_levels(z_effective: float, mean_excitation_MeV: float) -> tuple[float, float, float]:
    """(f1, E1, E2) of Urban's two excitation levels (energies in MeV) for a material of effective charge Z and
    mean excitation energy I: f2 = 2/Z (0 for Z <= 2), E2 = 10 eV Z^2, ln E1 = (ln I - f2 ln E2) / f1."""
    f2 = 2.0 / z_effective if z_effective > 2.0 else 0.0
    e2 = 10e-6 * z_effective**2
    f1 = 1.0 - f2
    e1 = float(np.exp((np.log(mean_excitation_MeV) - f2 * np.log(e2)) / f1))
    return f1, e1, e2


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
def straggled_loss(state: np.ndarray, mean_loss: float, kinetic: float, excitation: float, cut: float, f1: float,
                   e1: float, e2: float) -> float:
    """A fluctuating energy loss (MeV) with mean ``mean_loss`` for an e-/e+ of ``kinetic`` energy (MeV): Urban's
    two excitation levels (``f1``, ``e1``, ``e2``, :func:`urban_levels`) and ionising collisions of 1/E^2
    spectrum in [``excitation`` (I), ``cut``] (the largest transfer below the delta-ray cut)."""
    if mean_loss <= 0.0 or cut <= excitation:
        return mean_loss
    gamma = 1.0 + kinetic / ME
    beta2 = 1.0 - 1.0 / (gamma * gamma)
    bethe = math.log(2.0 * ME * beta2 * gamma * gamma) - beta2  # ln(2 m beta^2 gamma^2) - beta^2, energies in MeV
    loss = 0.0
    ionisation_mean = mean_loss
    if bethe > math.log(excitation):
        scale = mean_loss * (1.0 - _IONISATION_SHARE) / (bethe - math.log(excitation))
        n1 = max(scale * f1 * (bethe - math.log(e1)) / e1, 0.0)
        n2 = max(scale * (1.0 - f1) * (bethe - math.log(e2)) / e2, 0.0)
        ionisation_mean = mean_loss - n1 * e1 - n2 * e2  # exact mean, also where a level is closed
        k1, k2 = rand_poisson(state, n1), rand_poisson(state, n2)
        loss = k1 * e1 + k2 * e2
        # smear by one level's width so that thin layers do not show lines at multiples of E1, E2 (zero mean)
        if k2 > 0:
            loss += (1.0 - 2.0 * rand(state)) * e2
        elif k1 > 0:
            loss += (1.0 - 2.0 * rand(state)) * e1
        loss = max(loss, 0.0)
    loss += _ionisation_loss(state, ionisation_mean, excitation, cut)
    return loss


@njit(cache=True)
def _ionisation_loss(state: np.ndarray, mean_loss: float, excitation: float, cut: float) -> float:
    """Loss (MeV) of mean ``mean_loss`` in collisions of 1/E^2 spectrum in [excitation, cut]."""
    if mean_loss <= 0.0:
        return 0.0
    inv_lo, inv_hi = 1.0 / excitation, 1.0 / cut
    log_ratio = math.log(cut / excitation)
    mean_per_collision = log_ratio / (inv_lo - inv_hi)
    n_collisions = mean_loss / mean_per_collision
    # split energy e_s: on average _HARD_COLLISIONS collisions above it are sampled individually
    hard_share = min(1.0, _HARD_COLLISIONS / n_collisions)
    inv_split = inv_hi + hard_share * (inv_lo - inv_hi)
    split = 1.0 / inv_split
    rate = n_collisions / (inv_lo - inv_hi)  # collisions per unit of 1/E
    soft_mean = rate * math.log(split / excitation)
    soft_var = rate * (split - excitation)
    loss = 0.0
    if soft_mean > 0.0:
        loss = soft_mean + math.sqrt(soft_var) * rand_normal(state)
        if loss < 0.0:
            loss = 0.0
    for _ in range(rand_poisson(state, rate * (inv_split - inv_hi))):
        loss += 1.0 / (inv_split - rand(state) * (inv_split - inv_hi))
    return loss
