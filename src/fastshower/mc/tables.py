"""Per-material physics tables on a common logarithmic energy grid, packed into arrays for the transport kernel.

Built once per (calorimeter, physics settings) in a fraction of a second. Energies in MeV, lengths in mm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastshower.geometry import Calorimeter
from fastshower.materials import Material, electron_stopping_power_MeV_mm
from fastshower.mc.cuts import csda_range_mm, production_cuts_MeV
from fastshower.mc.physics import annihilation, bremsstrahlung, compton, elastic, ionisation, pair, photoelectric
from fastshower.mc.physics.bremsstrahlung import coulomb_correction
from fastshower.mc.physics.ionisation import bhabha_cross_section_mm2, moller_cross_section_mm2
from fastshower.mc.settings import PhysicsSettings

E_MIN_MeV = 1e-3
E_MAX_MeV = 1e7
POINTS_PER_DECADE = 24
N_ENERGIES = int(round(np.log10(E_MAX_MeV / E_MIN_MeV) * POINTS_PER_DECADE)) + 1
LN_E_MIN = float(np.log(E_MIN_MeV))
INV_DLN = float(POINTS_PER_DECADE / np.log(10.0))
ENERGY_GRID_MeV = np.exp(LN_E_MIN + np.arange(N_ENERGIES) / INV_DLN)

# rows of MaterialTables.values
DEDX_E, DEDX_P, RANGE_E, RANGE_P, SIG_MOLLER, SIG_BHABHA, SIG_BREMS, SIG_ANNIH = range(8)
MU_PAIR, MU_COMPTON, MU_PHOTO, MU_TOTAL, DEDX_COL_E, DEDX_COL_P = range(8, 14)
# mixed elastic scattering: hard-collision cross-section (1/mm), soft first transport cross-section (1/mm), mu_c
SIG_EL_HARD, INV_L1_SOFT, MU_CUT = range(14, 17)
N_QUANTITIES = 17
# rows of MaterialTables.element_cumulative
CUM_BREMS, CUM_PAIR, CUM_PHOTO, CUM_ELASTIC = range(4)


@dataclass(frozen=True)
class MaterialTables:
    """Everything the kernel needs to know about the materials, as plain arrays (m = material index).

    values[m, q, i]: quantity q (rows above) at ENERGY_GRID_MeV[i]; 1/mm, MeV/mm or mm.
    element_cumulative[m, p, j, i]: cumulative share of element j in process p (to pick the target atom).
    element_data[m, j, :]: Z, Z^(1/3), ln Z, Coulomb correction f(Z), K and L1 binding energies (MeV).
    scalars[m, :]: X0 (mm), electron cut, photon cut (MeV), mean excitation energy (MeV), plasma energy (MeV),
    number of elements, Urban's straggling levels f1, E1, E2 (MeV).
    """

    values: np.ndarray
    element_cumulative: np.ndarray
    element_data: np.ndarray
    scalars: np.ndarray
    materials: tuple[str, ...]

    def cut_energies_MeV(self) -> dict[str, tuple[float, float]]:
        """(electron cut, photon cut) in MeV per material name, for reports."""
        return {name: (float(self.scalars[m, 1]), float(self.scalars[m, 2])) for m, name in enumerate(self.materials)}


def production_cuts(material: Material, settings: PhysicsSettings) -> tuple[float, float]:
    """(electron, photon) production thresholds (MeV) for the settings' range cut and conversion."""
    return production_cuts_MeV(material, settings.range_cut_mm, settings.cut_conversion, settings.min_cut_MeV)


def _mixed_elastic(mat: Material, T: np.ndarray, dedx: np.ndarray, settings: PhysicsSettings,
                   rows: np.ndarray) -> np.ndarray:
    """Fill the mixed elastic rows of one material; returns the hard cross-section per element (1/mm)."""
    Z = np.array([el.Z for el in mat.elements], dtype=np.float64)[:, None]
    N = np.asarray(mat.atoms_per_mm3, dtype=np.float64)
    K, A = elastic.rutherford_factor_mm2(Z, T[None, :]), elastic.screening_parameter(Z, T[None, :])
    ones = np.ones_like(A)
    inv_lambda_el = (N[:, None] * elastic.cross_section_above_mm2(K, A, 0.0 * ones)).sum(axis=0)
    inv_lambda_1 = (N[:, None] * elastic.transport_below_mm2(K, A, ones)).sum(axis=0)
    lambda_h = np.maximum(1.0 / inv_lambda_el, np.minimum(settings.msc_c1 / inv_lambda_1, settings.msc_c2 * T / dedx))
    mu_c = elastic.hard_cutoff(N, K, A, 1.0 / lambda_h)
    hard = N[:, None] * elastic.cross_section_above_mm2(K, A, mu_c[None, :])
    rows[SIG_EL_HARD] = hard.sum(axis=0)
    rows[INV_L1_SOFT] = (N[:, None] * elastic.transport_below_mm2(K, A, mu_c[None, :])).sum(axis=0)
    rows[MU_CUT] = mu_c
    return hard


def _cumulative(per_element: np.ndarray, max_elements: int) -> np.ndarray:
    total = per_element.sum(axis=0)
    out = np.ones((max_elements, per_element.shape[1]))
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.where(total > 0, np.cumsum(per_element, axis=0) / total, 1.0)
    out[: per_element.shape[0]] = shares
    return out


def build_material_tables(calorimeter: Calorimeter, settings: PhysicsSettings) -> MaterialTables:
    """Tabulate every process for every material of the calorimeter."""
    materials = calorimeter.material_list
    n_mat = len(materials)
    max_el = max(len(m.elements) for m in materials)
    values = np.zeros((n_mat, N_QUANTITIES, N_ENERGIES))
    cumulative = np.ones((n_mat, 4, max_el, N_ENERGIES))
    element_data = np.zeros((n_mat, max_el, 6))
    scalars = np.zeros((n_mat, 9))
    T = ENERGY_GRID_MeV
    for m, mat in enumerate(materials):
        cut_e, cut_g = production_cuts(mat, settings)
        brems_sigma, brems_loss = bremsstrahlung.element_tables(mat, T, cut_g)
        col_e = electron_stopping_power_MeV_mm(mat, T, cut_MeV=cut_e)
        col_p = electron_stopping_power_MeV_mm(mat, T, cut_MeV=cut_e, positron=True)
        values[m, DEDX_COL_E], values[m, DEDX_COL_P] = col_e, col_p
        values[m, DEDX_E] = col_e + brems_loss.sum(axis=0)
        values[m, DEDX_P] = col_p + brems_loss.sum(axis=0)
        values[m, RANGE_E] = csda_range_mm(T, values[m, DEDX_E])
        values[m, RANGE_P] = csda_range_mm(T, values[m, DEDX_P])
        values[m, SIG_MOLLER] = mat.electrons_per_mm3 * moller_cross_section_mm2(T, cut_e)
        values[m, SIG_BHABHA] = mat.electrons_per_mm3 * bhabha_cross_section_mm2(T, cut_e)
        values[m, SIG_BREMS] = brems_sigma.sum(axis=0)
        values[m, SIG_ANNIH] = mat.electrons_per_mm3 * annihilation.cross_section_per_electron_mm2(T)
        pair_el = pair.element_tables(mat, T)
        photo_el = photoelectric.element_tables(mat, T)
        values[m, MU_PAIR] = pair_el.sum(axis=0)
        values[m, MU_COMPTON] = compton.macroscopic_cross_section(mat, T)
        values[m, MU_PHOTO] = photo_el.sum(axis=0)
        values[m, MU_TOTAL] = values[m, MU_PAIR] + values[m, MU_COMPTON] + values[m, MU_PHOTO]
        cumulative[m, CUM_BREMS] = _cumulative(brems_sigma, max_el)
        cumulative[m, CUM_PAIR] = _cumulative(pair_el, max_el)
        cumulative[m, CUM_PHOTO] = _cumulative(photo_el, max_el)
        hard_el = _mixed_elastic(mat, T, values[m, DEDX_E], settings, values[m])
        cumulative[m, CUM_ELASTIC] = _cumulative(hard_el, max_el)
        for j, el in enumerate(mat.elements):
            k_edge, l1_edge = photoelectric.binding_energies_MeV(el.symbol)
            element_data[m, j] = (el.Z, el.Z ** (1.0 / 3.0), np.log(el.Z), coulomb_correction(el.Z),
                                  k_edge, l1_edge)
        scalars[m] = (mat.radiation_length_mm, cut_e, cut_g, mat.mean_excitation_MeV,
                      bremsstrahlung.plasma_energy_MeV(mat), len(mat.elements),
                      *ionisation.urban_levels(mat.z_effective, mat.mean_excitation_MeV))
    return MaterialTables(values, cumulative, element_data, scalars, tuple(m.name for m in materials))

