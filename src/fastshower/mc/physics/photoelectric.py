"""Photoelectric absorption from tabulated data: the Elam, Ravel & Sieber (2002) photoabsorption tables as
shipped by the ``xraydb`` package (Radiat. Phys. Chem. 63 (2002) 121).

The tables are reliable up to ~500 keV; above, where the photoelectric effect is a small part of the
attenuation, the cross-section is extrapolated as a power law fitted between 300 and 500 keV.
The photoelectron gets the photon energy minus the binding energy of the deepest shell the photon can ionise
(K or L1); the binding energy is deposited locally (fluorescence is not followed).
"""

from __future__ import annotations

import warnings

import numpy as np
import xraydb

from fastshower.materials import Material

_TABLE_MAX_MeV = 0.5
_FIT_LOW_MeV = 0.3


def _mass_coefficient_cm2_g(symbol: str, photon_MeV: np.ndarray) -> np.ndarray:
    energy = np.asarray(photon_MeV, dtype=float)
    inside = np.clip(energy, 1e-4, _TABLE_MAX_MeV)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mu = np.asarray(xraydb.mu_elam(symbol, inside * 1e6, kind="photo"), dtype=float)
        ends = np.asarray(xraydb.mu_elam(symbol, np.array([_FIT_LOW_MeV, _TABLE_MAX_MeV]) * 1e6, kind="photo"))
    slope = np.log(ends[1] / ends[0]) / np.log(_TABLE_MAX_MeV / _FIT_LOW_MeV)
    above = energy > _TABLE_MAX_MeV
    mu[above] = ends[1] * (energy[above] / _TABLE_MAX_MeV) ** slope
    return mu


def element_tables(material: Material, photon_MeV: np.ndarray) -> np.ndarray:
    """Macroscopic photoelectric cross-section per element (1/mm), shape (n_elements, n_energies)."""
    out = np.zeros((len(material.elements), photon_MeV.size))
    for j, (el, fraction) in enumerate(zip(material.elements, material.mass_fractions, strict=True)):
        if el.Z < 3:  # hydrogen/helium: negligible at the energies tracked here and absent from some tables
            continue
        out[j] = _mass_coefficient_cm2_g(el.symbol, photon_MeV) * fraction * material.density_g_cm3 / 10.0
    return out


def binding_energies_MeV(symbol: str) -> tuple[float, float]:
    """(K, L1) edge energies of an element in MeV (0 where the table has none)."""
    edges = []
    for shell in ("K", "L1"):
        try:
            edges.append(float(xraydb.xray_edge(symbol, shell).energy) * 1e-6)
        except Exception:  # noqa: BLE001 - light elements have no L1 entry
            edges.append(0.0)
    return edges[0], edges[1]
