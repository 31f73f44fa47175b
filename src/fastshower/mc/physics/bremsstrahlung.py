"""Bremsstrahlung of electrons and positrons: screened Bethe-Heitler cross-section (Tsai).

Differential cross-section per atom, Tsai, Rev. Mod. Phys. 46 (1974) 815, eq. (3.9), with Tsai's fits of the
screening functions (eqs. 3.38-3.41) and the Davies-Bethe-Maximon Coulomb correction f(Z) above 50 MeV (as
Geant4 does), times the Ter-Mikaelian dielectric suppression k^2 / (k^2 + k_p^2), k_p = E hbar*omega_p / m_e.
The LPM suppression is not included (it matters for photons k < E^2/E_LPM; E_LPM(W) ~ 2.7 TeV).
Energies in MeV, lengths in mm.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from fastshower.materials import FINE_STRUCTURE, Material
from fastshower.materials import ELECTRON_MASS_MeV as ME
from fastshower.mc.physics.quadrature import gauss_legendre
from fastshower.mc.rng import rand

_R_E_MM = 2.8179403262e-12
_COULOMB_MIN_MeV = 50.0


def coulomb_correction(Z: float) -> float:
    """Davies-Bethe-Maximon Coulomb correction f(Z) (PDG Review, eq. 34.27)."""
    a2 = (FINE_STRUCTURE * Z) ** 2
    return a2 * (1.0 / (1.0 + a2) + 0.20206 - 0.0369 * a2 + 0.0083 * a2**2 - 0.002 * a2**3)


@njit(cache=True)
def scaled_dcs(Z: float, lnZ: float, fc: float, E_total: float, k: float, k_plasma: float) -> float:
    """k dsigma/dk / (alpha r_e^2) for one atom of charge Z (dimensionless); 0 outside kinematics.

    ``fc`` is the Coulomb correction (pass 0 below 50 MeV), ``k_plasma`` the dielectric-suppression
    scale E*hbar*omega_p/m_e in MeV.
    """
    E_out = E_total - k
    if k <= 0.0 or E_out <= ME:
        return 0.0
    y = k / E_total
    cbrt = math.exp(lnZ / 3.0)
    gam = 100.0 * ME * k / (E_total * E_out * cbrt)
    eps = gam / cbrt
    phi1 = 20.863 - 2.0 * math.log(1.0 + (0.55846 * gam) ** 2) - 4.0 * (
        1.0 - 0.6 * math.exp(-0.9 * gam) - 0.4 * math.exp(-1.5 * gam))
    phi12 = (2.0 / 3.0) / (1.0 + 6.5 * gam + 6.0 * gam * gam)
    psi1 = 28.340 - 2.0 * math.log(1.0 + (3.621 * eps) ** 2) - 4.0 * (
        1.0 - 0.7 * math.exp(-8.0 * eps) - 0.3 * math.exp(-29.2 * eps))
    psi12 = (2.0 / 3.0) / (1.0 + 40.0 * eps + 400.0 * eps * eps)
    main = Z * Z * (phi1 - 4.0 / 3.0 * lnZ - 4.0 * fc) + Z * (psi1 - 8.0 / 3.0 * lnZ)
    value = (4.0 / 3.0 - 4.0 / 3.0 * y + y * y) * main + (2.0 / 3.0) * (1.0 - y) * (Z * Z * phi12 + Z * psi12)
    if value < 0.0:
        return 0.0
    return value * k * k / (k * k + k_plasma * k_plasma)


@njit(cache=True)
def scaled_dcs_bound(Z: float, lnZ: float, fc: float) -> float:
    """Upper bound of :func:`scaled_dcs` over k (the complete-screening value at y = 0)."""
    main = Z * Z * (20.863 - 4.0 / 3.0 * lnZ - 4.0 * fc) + Z * (28.340 - 8.0 / 3.0 * lnZ)
    return 4.0 / 3.0 * main + (4.0 / 9.0) * (Z * Z + Z)


@njit(cache=True)
def sample_photon_energy(state: np.ndarray, Z: float, lnZ: float, fc: float, E_total: float,
                         k_cut: float, k_plasma: float) -> float:
    """Photon energy (MeV) above ``k_cut``: k from the 1/k envelope, accepted with the screened DCS."""
    k_max = E_total - ME
    log_ratio = math.log(k_max / k_cut)
    bound = scaled_dcs_bound(Z, lnZ, fc)
    for _ in range(1000):
        k = k_cut * math.exp(rand(state) * log_ratio)
        if rand(state) * bound <= scaled_dcs(Z, lnZ, fc, E_total, k, k_plasma):
            return k
    return k_cut


@njit(cache=True)
def sample_photon_polar(state: np.ndarray, E_total: float) -> float:
    """Photon polar angle (rad) w.r.t. the electron: the modified Tsai distribution, scale m_e/E."""
    a = 0.625 if rand(state) > 0.25 else 1.875
    u = -math.log(rand(state) * rand(state)) / a
    theta = u * ME / E_total
    return theta if theta < math.pi else math.pi


def plasma_energy_MeV(material: Material) -> float:
    """hbar*omega_p = sqrt(4 pi n_e r_e) hbar c (MeV), from the electron density (PDG eq. 34.6)."""
    hbar_c_mm = 197.3269804e-12  # MeV mm
    return float(np.sqrt(4.0 * np.pi * material.electrons_per_mm3 * _R_E_MM) * hbar_c_mm)


def element_tables(material: Material, kinetic_MeV: np.ndarray, k_cut_MeV: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per element: macroscopic cross-section above ``k_cut`` (1/mm) and restricted loss below it (MeV/mm).

    Both arrays have shape (n_elements, n_energies). Integration by Gauss-Legendre in ln k (above the cut)
    and in k (below it).
    """
    n_el = len(material.elements)
    sigma = np.zeros((n_el, kinetic_MeV.size))
    loss = np.zeros((n_el, kinetic_MeV.size))
    nodes, weights = gauss_legendre(64)
    alpha_re2 = FINE_STRUCTURE * _R_E_MM**2
    plasma = plasma_energy_MeV(material)
    for j, (el, n_atoms) in enumerate(zip(material.elements, material.atoms_per_mm3, strict=True)):
        Z, lnZ = float(el.Z), float(np.log(el.Z))
        for i, T in enumerate(kinetic_MeV):
            E = T + ME
            fc = coulomb_correction(Z) if _COULOMB_MIN_MeV < E else 0.0
            k_plasma = E * plasma / ME
            if k_cut_MeV < T:
                lo, hi = np.log(k_cut_MeV), np.log(T)
                ks = np.exp(lo + (hi - lo) * nodes)
                vals = np.array([scaled_dcs(Z, lnZ, fc, E, k, k_plasma) for k in ks])
                sigma[j, i] = n_atoms * alpha_re2 * (hi - lo) * np.dot(weights, vals)
            top = min(T, k_cut_MeV)
            ks = top * nodes
            vals = np.array([scaled_dcs(Z, lnZ, fc, E, k, k_plasma) for k in ks])
            loss[j, i] = n_atoms * alpha_re2 * top * np.dot(weights, vals)
    return sigma, loss
