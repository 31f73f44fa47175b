"""Electron-positron pair production by photons: Bethe-Heitler with screening and Coulomb correction.

Differential cross-section in the positron energy fraction eps (Butcher & Messel, Nucl. Phys. 20 (1960) 15;
Geant4 Physics Reference Manual, "Gamma conversion"):
dsigma/deps = alpha r_e^2 Z (Z + xi) {[eps^2 + (1-eps)^2] (Phi1(d) - F/2) + 2/3 eps (1-eps) (Phi2(d) - F/2)},
d = 136 m_e / (Z^(1/3) k eps (1-eps)), F = 8/3 ln Z + 8 f_c (f_c above 50 MeV), xi = ln(1440 Z^-2/3) /
(ln(183 Z^-1/3) - f_c). At high energy the cross-section tends to 7/9 of 1/(n X0): a mean free path of 9/7 X0.
Energies in MeV, lengths in mm.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from fastshower.materials import FINE_STRUCTURE, Material
from fastshower.materials import ELECTRON_MASS_MeV as ME
from fastshower.mc.physics.bremsstrahlung import coulomb_correction
from fastshower.mc.physics.quadrature import gauss_legendre
from fastshower.mc.rng import rand

_R_E_MM = 2.8179403262e-12
_COULOMB_MIN_MeV = 50.0
_UNIFORM_BELOW_MeV = 2.0  # near threshold the energy sharing is taken flat, as Geant4 does


@njit(cache=True, inline="always")
def _screening(delta: float) -> tuple[float, float]:
    if delta <= 1.0:
        return 20.867 - 3.242 * delta + 0.625 * delta * delta, 20.209 - 1.930 * delta - 0.086 * delta * delta
    phi = 21.12 - 4.184 * math.log(delta + 0.952)
    return phi, phi


@njit(cache=True)
def scaled_dcs(cbrtZ: float, F_half: float, k: float, eps: float) -> float:
    """dsigma/deps / (alpha r_e^2 Z (Z + xi)) at photon energy k (MeV) and positron fraction eps (>= 0)."""
    one_m = 1.0 - eps
    delta = 136.0 * ME / (cbrtZ * k * eps * one_m)
    phi1, phi2 = _screening(delta)
    value = (eps * eps + one_m * one_m) * (phi1 - F_half) + (2.0 / 3.0) * eps * one_m * (phi2 - F_half)
    return value if value > 0.0 else 0.0


def _constants(Z: float, k: float) -> tuple[float, float, float]:
    fc = coulomb_correction(Z) if k > _COULOMB_MIN_MeV else 0.0
    F_half = 4.0 / 3.0 * np.log(Z) + 4.0 * fc
    xi = np.log(1440.0 * Z ** (-2.0 / 3.0)) / (np.log(183.0 * Z ** (-1.0 / 3.0)) - fc)
    return fc, F_half, xi


def element_tables(material: Material, photon_MeV: np.ndarray) -> np.ndarray:
    """Macroscopic pair cross-section per element (1/mm), shape (n_elements, n_energies); 0 below 2 m_e."""
    nodes, weights = gauss_legendre(64)
    sigma = np.zeros((len(material.elements), photon_MeV.size))
    for j, (el, n_atoms) in enumerate(zip(material.elements, material.atoms_per_mm3, strict=True)):
        Z = float(el.Z)
        for i, k in enumerate(photon_MeV):
            if k <= 2.0 * ME * 1.0001:
                continue
            _, F_half, xi = _constants(Z, k)
            eps0 = ME / k
            # symmetric in eps <-> 1 - eps: integrate over [eps0, 1/2] and double
            eps = eps0 + (0.5 - eps0) * nodes
            vals = np.array([scaled_dcs(Z ** (1.0 / 3.0), F_half, k, e) for e in eps])
            integral = 2.0 * (0.5 - eps0) * np.dot(weights, vals)
            sigma[j, i] = n_atoms * FINE_STRUCTURE * _R_E_MM**2 * Z * (Z + xi) * integral
    return sigma


@njit(cache=True)
def sample_positron_fraction(state: np.ndarray, cbrtZ: float, lnZ: float, fc: float, k: float) -> float:
    """Fraction of the photon energy k (MeV) carried by the positron (total energy), by rejection."""
    eps0 = ME / k
    if k < _UNIFORM_BELOW_MeV:
        return eps0 + (1.0 - 2.0 * eps0) * rand(state)
    F_half = 4.0 / 3.0 * lnZ + 4.0 * (fc if k > _COULOMB_MIN_MeV else 0.0)
    phi1, phi2 = _screening(136.0 * ME / (cbrtZ * k * 0.25))
    bound = (phi1 - F_half) + (phi2 - F_half) / 6.0
    eps = 0.5
    for _ in range(1000):
        eps = eps0 + (0.5 - eps0) * rand(state)
        if rand(state) * bound <= scaled_dcs(cbrtZ, F_half, k, eps):
            break
    return eps if rand(state) < 0.5 else 1.0 - eps
