"""Multiple Coulomb scattering: Gaussian approximation with the Highland width and correlated lateral
displacement (PDG Review "Passage of particles through matter", eqs. 34.15-34.20; Lynch & Dahl, NIM B58 (1991) 6).

Per step of length s: theta_0 = 13.6 MeV / (beta c p) sqrt(s/X0) [1 + 0.038 ln(s / (X0 beta^2))]; the two
projected angles and displacements are drawn from the correlated Gaussians of eq. 34.20. The logarithmic term
is clamped at zero for very short steps (it would otherwise reduce the width below the Rossi-Greisen scaling).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from fastshower.materials import ELECTRON_MASS_MeV as ME
from fastshower.mc.rng import rand, rand_normal


@njit(cache=True)
def highland_theta0(T: float, step_mm: float, X0_mm: float) -> float:
    """Projected r.m.s. scattering angle (rad) of an electron of kinetic energy T (MeV) over ``step_mm``."""
    pc = math.sqrt(T * (T + 2.0 * ME))
    beta2 = pc * pc / ((T + ME) * (T + ME))
    x = step_mm / X0_mm
    correction = 1.0 + 0.038 * math.log(x / beta2)
    if correction < 0.0:
        correction = 0.0
    return 13.6 / (pc * math.sqrt(beta2)) * math.sqrt(x) * correction


@njit(cache=True)
def scatter(state: np.ndarray, theta0: float, step_mm: float) -> tuple[float, float, float, float]:
    """Sample (theta_x, theta_y, dx, dy): projected deflections (rad) and lateral displacements (mm)."""
    z1, z2 = rand_normal(state), rand_normal(state)
    z3, z4 = rand_normal(state), rand_normal(state)
    inv_sqrt12 = 0.28867513459481287
    dx = step_mm * theta0 * (z1 * inv_sqrt12 + 0.5 * z2)
    dy = step_mm * theta0 * (z3 * inv_sqrt12 + 0.5 * z4)
    return z2 * theta0, z4 * theta0, dx, dy


@njit(cache=True)
def isotropic_cos(state: np.ndarray) -> float:
    """cos theta of an isotropic direction."""
    return 2.0 * rand(state) - 1.0
