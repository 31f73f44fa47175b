"""Elastic scattering of e-/e+ on atoms: the screened Rutherford (Wentzel) cross-section with Moliere's screening
angle, simulated in a mixed ("class II") scheme: hard collisions one by one, soft ones grouped.

Cross-section per atom, in mu = (1 - cos theta) / 2 (Wentzel 1927; Moliere, Z. Naturforsch. 3a (1948) 78;
Bethe, Phys. Rev. 89 (1953) 1256):

    d sigma / d mu = K / (mu + A)^2,   K = pi Z (Z + 1) r_e^2 (m c^2)^2 / (beta^2 (p c)^2),

Z (Z + 1) counting the atomic electrons' scattering. The screening parameter is Moliere's,
A = chi_a^2 / 4 with chi_a^2 = chi_0^2 (1.13 + 3.76 (alpha Z / beta)^2), chi_0 = hbar / (p a_TF) and the
Thomas-Fermi radius a_TF = 0.885 a_0 Z^-1/3 (so chi_0 = alpha m c^2 Z^1/3 / (0.885 p c)). Everything follows
from Z and the momentum; nothing is fitted.

Mixed simulation (Baro, Sempau, Fernandez-Varea, Salvat, NIM B 100 (1995) 31; PENELOPE-2014 manual, sections
4.1-4.3): collisions with mu > mu_c are hard, sampled individually from the truncated cross-section; those below
are soft, and their net deflection over a step of length s is applied at a random point of the step (the
"random hinge"), which gives the lateral displacement correlated with the deflection and makes the true path the
sum of straight segments. mu_c follows from the hard mean free path
lambda_h = max(lambda_el, min(C1 lambda_1, C2 E / S(E))), lambda_1 the transport mean free path and S the
stopping power; C1 and C2 are accuracy parameters (results converge as they go to zero, at more cost). The soft
deflection of a step has the exact first moment <mu> = (1 - exp(-s / lambda_1,soft)) / 2 (Goudsmit-Saunderson)
and, being the sum of many small deflections, a Gaussian angular shape (mu exponential).

Units: MeV, mm, mm^2 per atom.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from fastshower.materials import FINE_STRUCTURE as ALPHA
from fastshower.materials import CLASSICAL_ELECTRON_RADIUS_mm as RE
from fastshower.materials import ELECTRON_MASS_MeV as ME
from fastshower.mc.rng import rand

_THOMAS_FERMI = 0.885


@njit(cache=True)
def screening_parameter(Z, T):
    """Moliere's screening parameter A (dimensionless) for an e-/e+ of kinetic energy T (MeV) on atoms of
    charge Z; scalars or arrays."""
    pc2 = T * (T + 2.0 * ME)
    beta2 = pc2 / ((T + ME) * (T + ME))
    chi0_2 = (ALPHA * ME * Z ** (1.0 / 3.0) / _THOMAS_FERMI) ** 2 / pc2
    return 0.25 * chi0_2 * (1.13 + 3.76 * (ALPHA * Z) ** 2 / beta2)


@njit(cache=True)
def rutherford_factor_mm2(Z, T):
    """K = pi Z (Z + 1) r_e^2 (m c^2)^2 / (beta^2 (p c)^2) (mm^2) of d sigma / d mu = K / (mu + A)^2."""
    pc2 = T * (T + 2.0 * ME)
    beta2_pc2 = pc2 * pc2 / ((T + ME) * (T + ME))
    return math.pi * Z * (Z + 1.0) * RE * RE * ME * ME / beta2_pc2


def cross_section_above_mm2(K: np.ndarray, A: np.ndarray, mu_c: np.ndarray) -> np.ndarray:
    """Cross-section (mm^2 per atom) of collisions with mu > mu_c (mu_c = 0: the total elastic one)."""
    return K * (1.0 / (mu_c + A) - 1.0 / (1.0 + A))


def transport_below_mm2(K: np.ndarray, A: np.ndarray, mu_c: np.ndarray) -> np.ndarray:
    """First transport cross-section, integral of 2 mu d sigma, over mu < mu_c (mu_c = 1: the whole one)."""
    return 2.0 * K * (np.log((mu_c + A) / A) - mu_c / (mu_c + A))


@njit(cache=True)
def sample_hard_mu(state: np.ndarray, A: float, mu_c: float) -> float:
    """mu of a hard collision: d sigma / d mu ~ 1 / (mu + A)^2 on [mu_c, 1], by inversion."""
    low = 1.0 / (mu_c + A)
    inv = low - rand(state) * (low - 1.0 / (1.0 + A))
    return min(1.0, max(mu_c, 1.0 / inv - A))


@njit(cache=True)
def sample_soft_mu(state: np.ndarray, mean_mu: float) -> float:
    """mu of the grouped soft collisions of a step: exponential (a Gaussian in angle) with mean ``mean_mu``."""
    return min(1.0, -mean_mu * math.log(rand(state)))


def hard_cutoff(densities_mm3: np.ndarray, K: np.ndarray, A: np.ndarray, inv_lambda_h: np.ndarray) -> np.ndarray:
    """mu_c where the hard cross-section of the material, sum_j N_j sigma_j(mu > mu_c), equals 1 / lambda_h.

    ``densities_mm3`` (elements,), ``K``/``A`` (elements, energies), ``inv_lambda_h`` (energies,). Bisection in
    ln mu_c (the hard cross-section falls monotonically with mu_c); mu_c = 0 where lambda_h is the total elastic
    mean free path.
    """
    def hard(mu_c: np.ndarray) -> np.ndarray:
        return (densities_mm3[:, None] * cross_section_above_mm2(K, A, mu_c[None, :])).sum(axis=0)

    low = np.full(inv_lambda_h.shape, -40.0)
    high = np.zeros(inv_lambda_h.shape)
    for _ in range(80):
        mid = 0.5 * (low + high)
        too_many = hard(np.exp(mid)) > inv_lambda_h
        low = np.where(too_many, mid, low)
        high = np.where(too_many, high, mid)
    mu_c = np.exp(0.5 * (low + high))
    return np.where(hard(np.zeros_like(mu_c)) <= inv_lambda_h * (1.0 + 1e-12), 0.0, mu_c)


def goudsmit_saunderson_density(Z: float, atoms_per_mm3: float, kinetic_MeV: float, path_mm: float,
                                theta_rad: np.ndarray, max_order: int = 20000) -> np.ndarray:
    """Exact angular distribution per unit solid angle (1/sr) after a path of ``path_mm`` with this module's
    cross-section and no energy loss (Goudsmit & Saunderson, Phys. Rev. 57 (1940) 24):
    f(theta) = sum_l (2l + 1) / (4 pi) exp(-s / lambda_l) P_l(cos theta), 1/lambda_l = N int (1 - P_l) d sigma.

    The reference the transport is checked against (the mixed scheme must reproduce it in the limit of small C1);
    the sum stops where exp(-s / lambda_l) < 1e-10.
    """
    A = float(screening_parameter(Z, kinetic_MeV))
    K = float(rutherford_factor_mm2(Z, kinetic_MeV))
    mu = np.concatenate([[0.0], np.geomspace(1e-3 * A, 1.0, 4000)])
    weight = np.gradient(mu) * K / (mu + A) ** 2  # d sigma on the mu grid (trapezoid-like weights)
    x_mu, x_theta = 1.0 - 2.0 * mu, np.cos(np.asarray(theta_rad, dtype=np.float64))
    p_mu = [np.ones_like(mu), x_mu.copy()]
    p_theta = [np.ones_like(x_theta), x_theta.copy()]
    density = np.zeros_like(x_theta)
    for l in range(max_order):
        if l >= 2:
            p_mu = [p_mu[1], ((2 * l - 1) * x_mu * p_mu[1] - (l - 1) * p_mu[0]) / l]
            p_theta = [p_theta[1], ((2 * l - 1) * x_theta * p_theta[1] - (l - 1) * p_theta[0]) / l]
        g = np.exp(-path_mm * atoms_per_mm3 * np.sum((1.0 - p_mu[min(l, 1)]) * weight))
        density += (2 * l + 1) / (4.0 * np.pi) * g * p_theta[min(l, 1)]
        if g < 1e-10:
            break
    return density
