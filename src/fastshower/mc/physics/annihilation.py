"""Positron annihilation into two photons, in flight and at rest.

In flight: Heitler's cross-section per electron (W. Heitler, "The quantum theory of radiation", 1954) and its
sampling as in EGS4 / Geant4's G4eeToTwoGammaModel. At rest: two back-to-back 511 keV photons, isotropic.
Energies in MeV, lengths in mm.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from fastshower.materials import ELECTRON_MASS_MeV as ME
from fastshower.mc.rng import rand

_R_E_MM = 2.8179403262e-12


def cross_section_per_electron_mm2(kinetic_MeV: np.ndarray) -> np.ndarray:
    """Heitler two-photon annihilation cross-section per electron for a positron of kinetic energy T (mm^2)."""
    tau = np.maximum(np.asarray(kinetic_MeV, dtype=float), 1e-9) / ME
    gam = tau + 1.0
    bg2 = tau * (tau + 2.0)
    bg = np.sqrt(bg2)
    return np.pi * _R_E_MM**2 * ((gam * gam + 4.0 * gam + 1.0) * np.log(gam + bg) - (gam + 3.0) * bg) / (
        bg2 * (gam + 1.0))


@njit(cache=True)
def sample_in_flight(state: np.ndarray, T: float) -> tuple[float, float]:
    """(energy fraction eps of the first photon of the total T + 2 m_e, cos theta to the positron)."""
    tau = T / ME
    tau2 = tau + 2.0
    half_width = 0.5 * math.sqrt(tau / tau2)
    eps_min, eps_max = 0.5 - half_width, 0.5 + half_width
    log_ratio = math.log(eps_max / eps_min)
    while True:
        eps = eps_min * math.exp(log_ratio * rand(state))
        if 1.0 - eps + (2.0 * (tau + 1.0) * eps - 1.0) / (eps * tau2 * tau2) >= rand(state):
            break
    cos_theta = (eps * tau2 - 1.0) / (eps * math.sqrt(tau * tau2))
    return eps, min(1.0, max(-1.0, cos_theta))
