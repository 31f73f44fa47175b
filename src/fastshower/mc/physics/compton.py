"""Compton scattering on free electrons: Klein-Nishina (binding effects neglected; they matter below ~100 keV,
where the photoelectric effect dominates in the dense absorbers).

Total cross-section per electron: Klein & Nishina, Z. Phys. 52 (1929) 853. Sampling: the composition-rejection
method of Butcher & Messel, Nucl. Phys. 20 (1960) 15 (as in EGS4 and Geant4). Energies in MeV, lengths in mm.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from fastshower.materials import ELECTRON_MASS_MeV as ME
from fastshower.materials import Material
from fastshower.mc.rng import rand

_R_E_MM = 2.8179403262e-12


def cross_section_per_electron_mm2(photon_MeV: np.ndarray) -> np.ndarray:
    """Klein-Nishina total cross-section per electron (mm^2)."""
    kappa = np.asarray(photon_MeV, dtype=float) / ME
    one2k = 1.0 + 2.0 * kappa
    log_term = np.log1p(2.0 * kappa)
    value = ((1.0 + kappa) / kappa**2 * (2.0 * (1.0 + kappa) / one2k - log_term / kappa)
             + log_term / (2.0 * kappa) - (1.0 + 3.0 * kappa) / one2k**2)
    return 2.0 * np.pi * _R_E_MM**2 * value


def macroscopic_cross_section(material: Material, photon_MeV: np.ndarray) -> np.ndarray:
    """Compton attenuation coefficient (1/mm)."""
    return material.electrons_per_mm3 * cross_section_per_electron_mm2(photon_MeV)


@njit(cache=True)
def sample_scattered_fraction(state: np.ndarray, k: float) -> tuple[float, float]:
    """(k'/k, cos theta) of the scattered photon for a photon of k MeV."""
    kappa = k / ME
    eps0 = 1.0 / (1.0 + 2.0 * kappa)
    eps0_sq = eps0 * eps0
    alpha1 = -math.log(eps0)
    alpha2 = alpha1 + 0.5 * (1.0 - eps0_sq)
    while True:
        if alpha1 > alpha2 * rand(state):
            eps = math.exp(-alpha1 * rand(state))
            eps_sq = eps * eps
        else:
            eps_sq = eps0_sq + (1.0 - eps0_sq) * rand(state)
            eps = math.sqrt(eps_sq)
        one_minus_cos = (1.0 - eps) / (eps * kappa)
        sin_sq = one_minus_cos * (2.0 - one_minus_cos)
        if 1.0 - eps * sin_sq / (1.0 + eps_sq) >= rand(state):
            return eps, 1.0 - one_minus_cos
