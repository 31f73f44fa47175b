"""Materials for the EM shower Monte Carlo: elements, mixtures, radiation lengths, e-/e+ stopping powers.

Sources: PDG Review of Particle Physics, "Passage of particles through matter" and the PDG Atomic and Nuclear
Properties tables; Y.-S. Tsai, Rev. Mod. Phys. 46 (1974) 815; ICRU Report 37 (1984); R.M. Sternheimer and
R.F. Peierls, Phys. Rev. B 3 (1971) 3681; R.M. Sternheimer, M.J. Berger, S.M. Seltzer, ADNDT 30 (1984) 261.
Lengths in mm, energies in MeV (mean excitation and plasma energies in eV), densities in g/cm^3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

ELECTRON_MASS_MeV = 0.51099895  # CODATA 2018, as in the PDG
CLASSICAL_ELECTRON_RADIUS_mm = 2.8179403262e-12  # CODATA 2018
AVOGADRO = 6.02214076e23  # 1/mol, exact (SI 2019)
FINE_STRUCTURE = 1 / 137.035999
SCALE_ENERGY_MeV = 21.2052  # E_s = m_e c^2 sqrt(4 pi / alpha), PDG eq. 34.35 (Moliere radius)

_LN10 = math.log(10.0)
_TWOPI_MC2_RCL2_MeV_mm2 = 2 * math.pi * ELECTRON_MASS_MeV * CLASSICAL_ELECTRON_RADIUS_mm**2
_TSAI_X0_CONSTANT_g_cm2 = 716.408  # 1/(4 alpha r_e^2 N_A) per g/mol of A, Tsai eq. 3.66 / PDG eq. 34.26
_PLASMA_CONSTANT_eV = 28.816  # hbar omega_p = 28.816 sqrt(rho <Z/A>) eV, PDG eq. 34.6 (rho in g/cm^3)
_FRACTION_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Element:
    """A chemical element: ``Z``, molar mass ``A_g_mol`` (g/mol), mean excitation energy (eV, ICRU 37 as
    adopted by the PDG tables) and the density of the pure element (g/cm^3; gases at 20 C, 1 atm, NIST)."""

    symbol: str
    name: str
    Z: int
    A_g_mol: float
    mean_excitation_eV: float  # noqa: N815
    density_g_cm3: float


# symbol, name, Z, A [g/mol], I [eV], density [g/cm^3] from the PDG Atomic and Nuclear Properties tables
# (I from ICRU 37; gases at 20 C, 1 atm as in NIST ESTAR), then the Sternheimer-Berger-Seltzer (1984)
# density-effect fit made with that I: (hbar omega_p [eV], C, x0, x1, a, m, delta0), via G4DensityEffectData.
_ELEMENT_TABLE: tuple[tuple[str, str, int, float, float, float, tuple[float, ...]], ...] = (
    ("H", "hydrogen", 1, 1.008, 19.2, 8.3748e-5, (0.263, 9.5835, 1.8639, 3.2718, 0.14092, 5.7273, 0)),
    ("C", "carbon", 6, 12.0107, 78.0, 2.21, (28.803, 2.9925, -0.0351, 2.486, 0.2024, 3.0036, 0.1)),
    ("N", "nitrogen", 7, 14.007, 82.0, 1.16528e-3, (0.695, 10.5400, 1.7378, 4.1323, 0.15349, 3.2125, 0)),
    ("O", "oxygen", 8, 15.999, 95.0, 1.33151e-3, (0.744, 10.7004, 1.7541, 4.3213, 0.11778, 3.2913, 0)),
    ("F", "fluorine", 9, 18.998403, 115.0, 1.58029e-3, (0.788, 10.9653, 1.8433, 4.4096, 0.11083, 3.2962, 0)),
    ("Na", "sodium", 11, 22.989770, 149.0, 0.971, (19.641, 5.0526, 0.2880, 3.1962, 0.07772, 3.6452, 0.08)),
    ("Mg", "magnesium", 12, 24.3050, 156.0, 1.74, (26.708, 4.5297, 0.1499, 3.0668, 0.081163, 3.6166, 0.08)),
    ("Al", "aluminum", 13, 26.9815385, 166.0, 2.699, (32.86, 4.2395, 0.1708, 3.0127, 0.08024, 3.6345, 0.12)),
    ("Si", "silicon", 14, 28.0855, 173.0, 2.329, (31.055, 4.4351, 0.2014, 2.8715, 0.14921, 3.2546, 0.14)),
    ("P", "phosphorus", 15, 30.973762, 173.0, 2.2, (29.743, 4.5214, 0.1696, 2.7815, 0.2361, 2.9158, 0.14)),
    ("S", "sulfur", 16, 32.065, 180.0, 2.0, (28.789, 4.6659, 0.158, 2.7159, 0.33992, 2.6456, 0.14)),
    ("Cl", "chlorine", 17, 35.453, 174.0, 2.99473e-3, (1.092, 11.1421, 1.5555, 4.2994, 0.19849, 2.9702, 0)),
    ("Ar", "argon", 18, 39.948, 188.0, 1.66201e-3, (0.789, 11.9480, 1.7635, 4.4855, 0.19714, 2.9618, 0)),
    ("K", "potassium", 19, 39.0983, 190.0, 0.862, (18.65, 5.6423, 0.3851, 3.1724, 0.19827, 2.9233, 0.1)),
    ("Ca", "calcium", 20, 40.078, 191.0, 1.55, (25.342, 5.0396, 0.3228, 3.1191, 0.15643, 3.0745, 0.14)),
    ("Ti", "titanium", 22, 47.867, 233.0, 4.54, (41.619, 4.4450, 0.0957, 3.0386, 0.15662, 3.0302, 0.12)),
    ("Cr", "chromium", 24, 51.9961, 257.0, 7.18, (52.458, 4.1781, 0.0340, 3.0451, 0.15419, 2.9896, 0.14)),
    ("Fe", "iron", 26, 55.845, 286.0, 7.874, (55.172, 4.2911, -0.0012, 3.1531, 0.146, 2.9632, 0.12)),
    ("Ni", "nickel", 28, 58.6934, 311.0, 8.902, (59.385, 4.3115, -0.0566, 3.1851, 0.16496, 2.843, 0.1)),
    ("Cu", "copper", 29, 63.546, 322.0, 8.96, (58.270, 4.4190, -0.0254, 3.2792, 0.14339, 2.9044, 0.08)),
    ("Zn", "zinc", 30, 65.38, 330.0, 7.133, (52.132, 4.6906, 0.0049, 3.3668, 0.14714, 2.8652, 0.08)),
    ("Ge", "germanium", 32, 72.630, 350.0, 5.323, (44.141, 5.1411, 0.3376, 3.6096, 0.07188, 3.3306, 0.14)),
    ("Ag", "silver", 47, 107.8682, 470.0, 10.5, (61.635, 5.0630, 0.0657, 3.1074, 0.24585, 2.6899, 0.14)),
    ("Sn", "tin", 50, 118.710, 488.0, 7.31, (50.567, 5.5340, 0.2879, 3.2959, 0.18689, 2.8576, 0.14)),
    ("I", "iodine", 53, 126.90447, 491.0, 4.93, (41.348, 5.9488, 0.0549, 3.2596, 0.23766, 2.7276, 0)),
    ("Cs", "cesium", 55, 132.905452, 488.0, 1.873, (25.37, 6.9135, 0.5473, 3.5914, 0.18233, 2.8866, 0.14)),
    ("W", "tungsten", 74, 183.84, 727.0, 19.3, (80.315, 5.4059, 0.2167, 3.496, 0.15509, 2.8447, 0.14)),
    ("Pt", "platinum", 78, 195.084, 790.0, 21.45, (84.389, 5.4732, 0.1484, 3.6212, 0.11128, 3.0417, 0.12)),
    ("Au", "gold", 79, 196.966569, 790.0, 19.32, (80.215, 5.5747, 0.2021, 3.6979, 0.09756, 3.1101, 0.14)),
    ("Pb", "lead", 82, 207.2, 823.0, 11.35, (61.072, 6.2018, 0.3776, 3.8073, 0.09359, 3.1608, 0.14)),
    ("Bi", "bismuth", 83, 208.98040, 823.0, 9.747, (56.696, 6.3505, 0.4152, 3.8248, 0.0941, 3.1671, 0.14)),
    ("U", "uranium", 92, 238.02891, 890.0, 18.95, (77.986, 5.8694, 0.2260, 3.3721, 0.19677, 2.8171, 0.14)),
)
_ELEMENTS: dict[str, Element] = {row[0]: Element(*row[:6]) for row in _ELEMENT_TABLE}  # type: ignore[arg-type]
_SBS_1984: dict[str, tuple[float, ...]] = {row[0]: row[6] for row in _ELEMENT_TABLE}
_ELEMENT_KEYS: dict[str, Element] = {key: e for e in _ELEMENTS.values() for key in (e.name, e.symbol.lower())}
_ELEMENT_KEYS |= {"aluminium": _ELEMENTS["Al"], "caesium": _ELEMENTS["Cs"]}


def element(symbol_or_name: str) -> Element:
    """The built-in element with this symbol or English name, case-insensitive (``"W"``, ``"tungsten"``).

    Raises ``ValueError("unknown element 'Xx'")`` for anything else.
    """
    found = _ELEMENT_KEYS.get(str(symbol_or_name).strip().lower())
    if found is None:
        raise ValueError(f"unknown element '{symbol_or_name}'")
    return found


def _tsai_lrad(Z: int) -> tuple[float, float]:
    """Tsai's (L_rad, L'_rad): Table B.2 for Z <= 4, else ln(184.15 Z^-1/3), ln(1194 Z^-2/3) (PDG 34.26)."""
    light = {1: (5.31, 6.144), 2: (4.79, 5.621), 3: (4.74, 5.805), 4: (4.71, 5.924)}
    if Z in light:
        return light[Z]
    return math.log(184.15 * Z ** (-1 / 3)), math.log(1194.0 * Z ** (-2 / 3))


def _coulomb_correction(Z: int) -> float:
    """Davies-Bethe-Maximon Coulomb correction f(Z) (Tsai eq. 3.3, PDG eq. 34.27); dimensionless."""
    a2 = (FINE_STRUCTURE * Z) ** 2
    return a2 * (1 / (1 + a2) + 0.20206 - 0.0369 * a2 + 0.0083 * a2**2 - 0.002 * a2**3)


def element_radiation_length_g_cm2(el: Element) -> float:
    """Radiation length of a pure element (g/cm^2), Tsai eq. 3.66 / PDG eq. 34.26:
    ``X0 = 716.408 A / (Z^2 (L_rad - f(Z)) + Z L'_rad)``."""
    lrad, lrad_prime = _tsai_lrad(el.Z)
    screening = el.Z**2 * (lrad - _coulomb_correction(el.Z)) + el.Z * lrad_prime
    return _TSAI_X0_CONSTANT_g_cm2 * el.A_g_mol / screening


@dataclass(frozen=True)
class DensityEffect:
    """Sternheimer density-effect parameters ``C`` (C-bar), ``x0``, ``x1``, ``a``, ``m``, ``delta0``
    (dimensionless) of the parameterisation of Sternheimer, Berger & Seltzer, ADNDT 30 (1984) 261 (PDG eq.
    34.7). ``delta0`` is non-zero only for conductors in the SBS tables; the general rules leave it at 0."""

    C: float
    x0: float
    x1: float
    a: float
    m: float
    delta0: float = 0.0


def sternheimer_peierls(mean_excitation_eV: float, plasma_energy_eV: float, state: str) -> DensityEffect:
    """Density-effect parameters from the general rules of Sternheimer & Peierls, Phys. Rev. B 3 (1971) 3681.

    ``C = 2 ln(I / hbar omega_p) + 1``; x0, x1 from the solid/liquid (split at I = 100 eV) or gas tables;
    ``m = 3`` and ``a`` makes delta continuous at x1 (as Geant4's G4IonisParamMat fallback).
    """
    C = 2.0 * math.log(mean_excitation_eV / plasma_energy_eV) + 1.0
    if state == "gas":
        x1 = 4.0 if C < 12.25 else 5.0
        steps = ((10.0, 1.6), (10.5, 1.7), (11.0, 1.8), (11.5, 1.9), (13.804, 2.0))
        x0 = next((x for limit, x in steps if limit > C), 0.326 * C - 2.5)
    elif mean_excitation_eV < 100.0:
        x0, x1 = (0.2 if C < 3.681 else 0.326 * C - 1.0), 2.0
    else:
        x0, x1 = (0.2 if C < 5.215 else 0.326 * C - 1.5), 3.0
    if x1 <= x0:
        # Vacuum-like densities push x0 past x1, outside the rules' range; starting the asymptotic form
        # where it crosses zero keeps delta continuous.
        x0 = x1 = C / (2 * _LN10)
        return DensityEffect(C, x0, x1, 0.0, 3.0)
    return DensityEffect(C, x0, x1, (C - 2 * _LN10 * x0) / (x1 - x0) ** 3, 3.0)


def _tabulated_density_effect(material: Material) -> DensityEffect | None:
    """SBS-1984 parameters for a pure built-in element moved to the material's density, or None.

    delta depends on beta gamma only through beta gamma hbar omega_p / I, so a density change rho -> rho'
    shifts x by log10(rho'/rho) / 2: C, x0 and x1 move, a and m stay. As in Geant4's G4IonisParamMat the
    table is dropped for |ln(rho'/rho)| > 1, and also when I differs from the one the fit was made with.
    """
    el = material.elements[0]
    row = _SBS_1984.get(el.symbol)
    if len(material.elements) != 1 or row is None:
        return None
    if not math.isclose(material.mean_excitation_eV, el.mean_excitation_eV, rel_tol=1e-9):
        return None
    plasma_eV, C, x0, x1, a, m, delta0 = row
    corr = 2.0 * math.log(plasma_eV / material.plasma_energy_eV)
    if abs(corr) > 1.0:
        return None
    return DensityEffect(C + corr, x0 + corr / (2 * _LN10), x1 + corr / (2 * _LN10), a, m, delta0)


@dataclass(frozen=True)
class Material:
    """A homogeneous material given by element mass fractions.

    ``mass_fractions`` must sum to 1 (renormalised if within 1e-6, else ``ValueError``). With
    ``mean_excitation_eV=None`` I (eV) follows Bragg additivity (ICRU 37), ``ln I = sum(w Z/A ln I_i) /
    sum(w Z/A)``; after construction it is always a float. ``state`` ("solid", "liquid", "gas") selects the
    density-effect rules. Derived quantities are cached properties: lengths in mm, energies in MeV.
    """

    name: str
    density_g_cm3: float
    elements: tuple[Element, ...]
    mass_fractions: tuple[float, ...]
    mean_excitation_eV: float = None  # type: ignore[assignment]  # noqa: N815
    state: str = "solid"

    def __post_init__(self) -> None:
        object.__setattr__(self, "elements", tuple(self.elements))
        object.__setattr__(self, "mass_fractions", tuple(float(w) for w in self.mass_fractions))
        object.__setattr__(self, "density_g_cm3", float(self.density_g_cm3))
        self._validate()
        total = math.fsum(self.mass_fractions)
        if abs(total - 1.0) > 1e-12:
            # Only beyond rounding noise, so that material_to_dict / material_from_dict round trips exactly.
            object.__setattr__(self, "mass_fractions", tuple(w / total for w in self.mass_fractions))
        mean_i = self._bragg_mean_excitation() if self.mean_excitation_eV is None else self.mean_excitation_eV
        object.__setattr__(self, "mean_excitation_eV", float(mean_i))

    def _validate(self) -> None:
        where = f"material '{self.name}'"
        if not 0 < self.density_g_cm3 < math.inf:
            raise ValueError(f"{where}: density_g_cm3 must be a positive number, got {self.density_g_cm3!r}")
        if self.state not in ("solid", "liquid", "gas"):
            raise ValueError(f"{where}: state must be 'solid', 'liquid' or 'gas', got {self.state!r}")
        if not self.elements or len(self.elements) != len(self.mass_fractions):
            raise ValueError(f"{where}: needs at least one element and one mass fraction per element")
        if len({e.symbol for e in self.elements}) != len(self.elements):
            raise ValueError(f"{where}: an element is listed twice")
        if any(not w >= 0 for w in self.mass_fractions):
            raise ValueError(f"{where}: mass fractions must be non-negative")
        total = math.fsum(self.mass_fractions)
        if abs(total - 1.0) > _FRACTION_TOLERANCE:
            raise ValueError(f"{where}: mass fractions sum to {total:.9g}, not 1")
        if self.mean_excitation_eV is not None and not self.mean_excitation_eV > 0:
            raise ValueError(f"{where}: mean_excitation_eV must be positive")

    def _pairs(self) -> zip[tuple[Element, float]]:
        return zip(self.elements, self.mass_fractions, strict=True)

    def _bragg_mean_excitation(self) -> float:
        weights = [w * e.Z / e.A_g_mol for e, w in self._pairs()]
        log_i = sum(wz * math.log(e.mean_excitation_eV) for e, wz in zip(self.elements, weights, strict=True))
        return math.exp(log_i / sum(weights))

    @cached_property
    def z_over_a(self) -> float:
        """Mass-weighted <Z/A> (mol/g)."""
        return sum(w * e.Z / e.A_g_mol for e, w in self._pairs())

    @cached_property
    def z_effective(self) -> float:
        """Mass-weighted Z, as Geant4's G4IonisParamMat::GetZeffective (sets the low-energy dE/dx limit)."""
        return sum(w * e.Z for e, w in self._pairs())

    @cached_property
    def atoms_per_mm3(self) -> np.ndarray:
        """Number density of each element's atoms (1/mm^3): rho N_A w_i / A_i."""
        return np.array([self.density_g_cm3 * AVOGADRO * w / e.A_g_mol * 1e-3 for e, w in self._pairs()])

    @cached_property
    def electrons_per_mm3(self) -> float:
        """Electron density (1/mm^3): rho N_A <Z/A>."""
        return self.density_g_cm3 * AVOGADRO * self.z_over_a * 1e-3

    @property
    def mean_excitation_MeV(self) -> float:  # noqa: N802
        """Mean excitation energy I (MeV)."""
        return self.mean_excitation_eV * 1e-6

    @cached_property
    def plasma_energy_eV(self) -> float:  # noqa: N802
        """Plasma energy hbar omega_p = 28.816 sqrt(rho <Z/A>) eV (PDG eq. 34.6)."""
        return _PLASMA_CONSTANT_eV * math.sqrt(self.density_g_cm3 * self.z_over_a)

    @cached_property
    def density_effect(self) -> DensityEffect:
        """Sternheimer density-effect parameters.

        A pure built-in element with its own I uses the Sternheimer-Berger-Seltzer (1984) fit, as the PDG and
        ESTAR tables do; anything else uses the Sternheimer-Peierls (1971) general rules. For heavy metals
        the general rules give too small a delta (W: x1 = 3.0, not 3.50), raising E_c(W), E_c(Pb) by ~3 %.
        """
        tabulated = _tabulated_density_effect(self)
        if tabulated is not None:
            return tabulated
        return sternheimer_peierls(self.mean_excitation_eV, self.plasma_energy_eV, self.state)

    @cached_property
    def radiation_length_g_cm2(self) -> float:
        """Radiation length (g/cm^2): ``1/X0 = sum w_i / X0_i`` with Tsai's X0_i (PDG eq. 34.28)."""
        return 1.0 / sum(w / element_radiation_length_g_cm2(e) for e, w in self._pairs())

    @cached_property
    def radiation_length_mm(self) -> float:
        """Radiation length (mm): X0 / rho."""
        return 10.0 * self.radiation_length_g_cm2 / self.density_g_cm3

    @cached_property
    def critical_energy_MeV(self) -> float:  # noqa: N802
        """Electron critical energy (MeV) in Rossi's definition, as the PDG tables (PDG Sec. 34.4.4): the
        kinetic energy T where the unrestricted collision loss per radiation length equals T,
        ``dE/dx(T) X0 = T``. With ESTAR stopping powers this reproduces the PDG E_c of W, Pb, Cu, Fe, Al
        and Si to 0.3 %."""
        return _rossi_critical_energy_MeV(self)

    @cached_property
    def moliere_radius_mm(self) -> float:
        """Moliere radius (mm): ``R_M = X0 E_s / E_c`` (PDG eq. 34.35)."""
        return self.radiation_length_mm * SCALE_ENERGY_MeV / self.critical_energy_MeV


def density_effect_delta(material: Material, beta_gamma: np.ndarray | float) -> np.ndarray:
    """Sternheimer density correction delta (dimensionless) at ``x = log10(beta gamma)`` (PDG eq. 34.7):
    ``delta0 10^(2 (x - x0))`` below x0 (0 except for SBS-tabulated conductors, where it keeps delta
    continuous), ``2 ln10 x - C + a (x1 - x)^m`` up to x1 and ``2 ln10 x - C`` above."""
    p = material.density_effect
    x = np.log10(np.maximum(np.asarray(beta_gamma, dtype=np.float64), 1e-300))
    high = 2 * _LN10 * x - p.C
    mid = high + p.a * np.clip(p.x1 - x, 0.0, None) ** p.m
    low = p.delta0 * 10.0 ** (2.0 * np.minimum(x - p.x0, 0.0))
    return np.where(x < p.x0, low, np.where(x < p.x1, mid, high))


def _moller_term(tau: np.ndarray, d: np.ndarray, beta2: np.ndarray, gamma2: np.ndarray) -> np.ndarray:
    """Electron part of the restricted Berger-Seltzer bracket (G4MollerBhabhaModel::ComputeDEDXPerVolume)."""
    return (-1.0 - beta2 + np.log((tau - d) * d) + tau / (tau - d)
            + (0.5 * d * d + (2.0 * tau + 1.0) * np.log1p(-d / tau)) / gamma2)


def _bhabha_term(tau: np.ndarray, d: np.ndarray, beta2: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """Positron part of the restricted Berger-Seltzer bracket (G4MollerBhabhaModel::ComputeDEDXPerVolume)."""
    d2 = 0.5 * d * d
    d3 = d2 * d / 1.5
    d4 = d3 * d * 0.75
    y = 1.0 / (1.0 + gamma)
    series = tau + 2.0 * d - y * (3.0 * d2 + y * (d - d3 + y * (d2 - tau * d3 + d4)))
    return np.log(tau * d) - beta2 * series / tau


def electron_stopping_power_MeV_mm(material: Material, kinetic_MeV: np.ndarray | float,  # noqa: N802
                                   cut_MeV: float | None = None, positron: bool = False) -> np.ndarray:
    """Collision stopping power of electrons (or positrons) in MeV/mm, positive, vectorised over energy.

    Berger-Seltzer formula (ICRU 37 ch. 2; PDG eq. 34.10 family) with the Sternheimer density correction,
    restricted to energy transfers below ``cut_MeV`` as Geant4's G4MollerBhabhaModel::ComputeDEDXPerVolume;
    the cut is clamped to the kinematic maximum (T/2 Moller, T Bhabha) and ``None`` means unrestricted.
    Below ``0.25 sqrt(Z_eff)`` keV, where the formula fails, it is extrapolated smoothly as Geant4 does.
    """
    T = np.asarray(kinetic_MeV, dtype=np.float64)
    threshold_MeV = 0.25e-3 * math.sqrt(material.z_effective)
    tau = np.maximum(T, threshold_MeV) / ELECTRON_MASS_MeV
    gamma = tau + 1.0
    bg2 = tau * (tau + 2.0)
    beta2 = bg2 / (gamma * gamma)
    d_max = tau if positron else 0.5 * tau
    d = d_max if cut_MeV is None else np.minimum(max(float(cut_MeV), 1e-12) / ELECTRON_MASS_MeV, d_max)
    eexc2 = (material.mean_excitation_MeV / ELECTRON_MASS_MeV) ** 2
    term = _bhabha_term(tau, d, beta2, gamma) if positron else _moller_term(tau, d, beta2, gamma * gamma)
    bracket = np.log(2.0 * (tau + 2.0) / eexc2) + term - density_effect_delta(material, np.sqrt(bg2))
    dedx = np.maximum(bracket * _TWOPI_MC2_RCL2_MeV_mm2 * material.electrons_per_mm3 / beta2, 0.0)
    # Geant4's extrapolation below the threshold: rises as 1/sqrt(T), then turns over to vanish at T -> 0.
    x = np.maximum(T / threshold_MeV, 0.0)
    low = np.where(x > 0.25, 1.0 / np.sqrt(np.maximum(x, 0.25)), 1.4 * np.sqrt(x) / (0.1 + x))
    return np.where(x >= 1.0, dedx, dedx * low)


def _rossi_critical_energy_MeV(material: Material) -> float:  # noqa: N802
    """Solve ``dE/dx_col(T) X0 = T`` by bisection in log(T); dE/dx X0 varies slowly, so the root is unique."""
    x0_mm = material.radiation_length_mm

    def excess(t: float) -> float:
        return float(electron_stopping_power_MeV_mm(material, t)) * x0_mm - t

    lo, hi = 1e-2, 1e6
    if excess(lo) <= 0.0 or excess(hi) >= 0.0:
        raise ValueError(f"material '{material.name}': cannot bracket the critical energy")
    while hi / lo - 1.0 > 1e-12:
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if excess(mid) > 0.0 else (lo, mid)
    return math.sqrt(lo * hi)


def mixture(name: str, components: list[tuple[Material | Element, float]], density_g_cm3: float,
            mean_excitation_eV: float | None = None, state: str = "solid") -> Material:
    """A material from materials and/or elements by mass fraction (their element fractions are merged).
    Without ``mean_excitation_eV`` (eV), I follows Bragg additivity (ICRU 37)."""
    merged: dict[str, tuple[Element, float]] = {}
    for component, fraction in components:
        parts = [(component, 1.0)] if isinstance(component, Element) else list(component._pairs())
        for el, w in parts:
            merged[el.symbol] = (el, merged.get(el.symbol, (el, 0.0))[1] + float(fraction) * w)
    elements, fractions = tuple(el for el, _ in merged.values()), tuple(w for _, w in merged.values())
    return Material(name, density_g_cm3, elements, fractions, mean_excitation_eV, state)


def compound(name: str, formula: dict[str, int], density_g_cm3: float,
             mean_excitation_eV: float | None = None, state: str = "solid") -> Material:
    """A material from a chemical formula by atom count, e.g. ``{"Pb": 1, "W": 1, "O": 4}``; mass fractions
    ``n_i A_i / sum n_j A_j``. Without ``mean_excitation_eV`` (eV), I follows Bragg additivity (ICRU 37)."""
    counts = {element(symbol): _number(n, f"material '{name}': atom count of {symbol}", positive=True)
              for symbol, n in formula.items()}
    if not counts:
        raise ValueError(f"material '{name}': empty formula")
    total = sum(n * el.A_g_mol for el, n in counts.items())
    return mixture(name, [(el, n * el.A_g_mol / total) for el, n in counts.items()], density_g_cm3,
                   mean_excitation_eV, state)


def _number(value: Any, where: str, positive: bool = False) -> float:
    valid = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
    if not valid or (positive and not value > 0):
        raise ValueError(f"{where} must be {'a positive' if positive else 'a'} number, got {value!r}")
    return float(value)


def _composition(d: dict[str, Any], where: str) -> tuple[str, dict[str, float]]:
    """Which of 'elements' (mass fractions) and 'formula' (atom counts) the mapping gives, type-checked."""
    given = [key for key in ("elements", "formula") if key in d]
    if len(given) != 1:
        raise ValueError(f"{where}: give exactly one of the fields 'elements' (mass fractions) and 'formula'")
    key = given[0]
    if not isinstance(d[key], dict) or not d[key]:
        raise ValueError(f"{where}: field '{key}' must be a non-empty mapping of element symbol to number")
    return key, {str(sym): _number(v, f"{where}: field '{key}' entry '{sym}'") for sym, v in d[key].items()}


def material_from_dict(d: dict[str, Any]) -> Material:
    """A material from a YAML/JSON mapping: ``name``, ``density_g_cm3`` (g/cm^3), either ``elements``
    (symbol -> mass fraction) or ``formula`` (symbol -> atom count), optional ``mean_excitation_eV`` (eV)
    and ``state``. Any problem raises ``ValueError`` with a one-line message naming the field."""
    if not isinstance(d, dict):
        raise ValueError(f"a material description must be a mapping, got {type(d).__name__}")
    name = d.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("material: field 'name' is missing or not a non-empty string")
    where = f"material '{name}'"
    unknown = sorted(set(d) - {"name", "density_g_cm3", "elements", "formula", "mean_excitation_eV", "state"})
    if unknown:
        raise ValueError(f"{where}: unknown field '{unknown[0]}'")
    if "density_g_cm3" not in d:
        raise ValueError(f"{where}: field 'density_g_cm3' is missing")
    density = _number(d["density_g_cm3"], f"{where}: field 'density_g_cm3'", positive=True)
    mean_i = None if d.get("mean_excitation_eV") is None else _number(
        d["mean_excitation_eV"], f"{where}: field 'mean_excitation_eV'", positive=True)
    state = d.get("state", "solid")
    if state not in ("solid", "liquid", "gas"):
        raise ValueError(f"{where}: field 'state' must be 'solid', 'liquid' or 'gas', got {state!r}")
    key, table = _composition(d, where)
    try:
        if key == "formula":
            return compound(name, table, density, mean_i, state)  # type: ignore[arg-type]
        return Material(name, density, tuple(element(s) for s in table), tuple(table.values()), mean_i, state)
    except ValueError as err:
        raise ValueError(f"{where}: field '{key}': {str(err).removeprefix(where + ': ')}") from None


def material_to_dict(m: Material) -> dict[str, Any]:
    """A JSON/YAML-serialisable mapping that :func:`material_from_dict` turns back into an equal material."""
    return {"name": m.name, "density_g_cm3": m.density_g_cm3,
            "elements": {el.symbol: w for el, w in m._pairs()},
            "mean_excitation_eV": m.mean_excitation_eV, "state": m.state}


def _builtin_materials() -> dict[str, Material]:
    """Every built-in element as a pure material at its elemental density, plus:

    * ``C`` is graphite, 2.21 g/cm^3, I = 78 eV (PDG "carbon (graphite)"; ICRU 90 recommends 81 eV).
    * ``air``: dry air near sea level, NIST/PDG composition by mass, 1.20479e-3 g/cm^3, I = 85.7 eV.
    * ``PbWO4``: lead tungstate, 8.28 g/cm^3 (CMS ECAL crystals; the PDG uses 8.30), I = 600.7 eV (PDG).
    * ``G10`` (alias ``FR4``): NEMA G10 of Geant4's TestEm3 example, atom counts Si 1, O 2, C 3, H 3
      (61 % SiO2 + 39 % epoxy-like C3H3 by mass), 1.70 g/cm^3, I by Bragg additivity.
    * ``vacuum``: hydrogen gas at 1e-25 g/cm^3 (like Geant4's G4_Galactic), so X0 is astronomically long.
    """
    out = {el.symbol: Material(el.symbol, el.density_g_cm3, (el,), (1.0,),
                               state="gas" if el.density_g_cm3 < 0.01 else "solid")
           for el in _ELEMENTS.values()}
    air = {"C": 0.000124, "N": 0.755268, "O": 0.231781, "Ar": 0.012827}
    out["air"] = Material("air", 1.20479e-3, tuple(map(element, air)), tuple(air.values()), 85.7, "gas")
    out["PbWO4"] = compound("PbWO4", {"Pb": 1, "W": 1, "O": 4}, 8.28, 600.7)
    out["G10"] = compound("G10", {"Si": 1, "O": 2, "C": 3, "H": 3}, 1.70)
    out["vacuum"] = Material("vacuum", 1e-25, (element("H"),), (1.0,), state="gas")
    return out


BUILTIN_MATERIALS: dict[str, Material] = _builtin_materials()
_MATERIAL_ALIASES: dict[str, str] = {
    **{key.lower(): key for key in BUILTIN_MATERIALS},
    **{el.name: el.symbol for el in _ELEMENTS.values()},
    "aluminium": "Al", "caesium": "Cs", "graphite": "C", "lead_tungstate": "PbWO4", "pwo": "PbWO4",
    "fr4": "G10", "nemag10": "G10", "galactic": "vacuum",
}


def material(name: str) -> Material:
    """A built-in material by name, case-insensitive; symbols, element names and Geant4 names all work
    (``"W"``, ``"tungsten"``, ``"G4_W"``, ``"G4_AIR"``, ``"FR4"``). Unknown names raise ``ValueError``."""
    canonical = _MATERIAL_ALIASES.get(str(name).strip().lower().removeprefix("g4_"))
    if canonical is None:
        known = ", ".join(sorted(BUILTIN_MATERIALS, key=str.lower))
        raise ValueError(f"unknown material '{name}'; known: {known}")
    return BUILTIN_MATERIALS[canonical]
