"""Primary electrons through one slab of material: where and how they come out.

The measurements that test electron transport on its own (the angular distribution behind a thin foil, the
fraction backscattered from a thick target) look at the primary electron only. ``transmit`` sends electrons
through a single slab with the calorimeter's own stepping (``transport._charged_step``, the same physics and
settings), follows the primary alone (secondaries are produced, as in a shower, and then dropped) and reports how
each one left: through the back, the front, or not at all. Energies in MeV, lengths in mm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from fastshower.geometry import Calorimeter, Grid, Layer
from fastshower.mc import transport
from fastshower.mc.kinematics import interpolate
from fastshower.mc.rng import rng_init, shower_seeds
from fastshower.mc.settings import PhysicsSettings
from fastshower.mc.tables import RANGE_E, build_material_tables

TRANSMITTED, BACKSCATTERED, STOPPED = 1, -1, 0
_HALF_WIDTH_mm = 1e6  # laterally infinite


@dataclass(frozen=True)
class Exits:
    """How each primary left the slab: ``side`` (TRANSMITTED, BACKSCATTERED or STOPPED), kinetic energy (MeV) and
    direction cosines at exit."""

    side: np.ndarray
    energy_MeV: np.ndarray
    direction: np.ndarray  # (n, 3)

    def fraction(self, side: int) -> float:
        """Share of the primaries that left by ``side``."""
        return float(np.mean(self.side == side))

    def polar_angles_rad(self, side: int = TRANSMITTED) -> np.ndarray:
        """Angles to the beam axis (+z) of the primaries that left by ``side``."""
        uz = self.direction[self.side == side, 2]
        return np.arccos(np.clip(uz, -1.0, 1.0))


def transmit(material: str, thickness_mm: float, energy_MeV: float, n: int, seed: int = 1,
             settings: PhysicsSettings | None = None) -> Exits:
    """Send ``n`` electrons of ``energy_MeV`` at normal incidence onto a slab of ``material``."""
    settings = settings or PhysicsSettings()
    slab = Calorimeter("foil", (Layer(material, 0.0, material, float(thickness_mm)),), Grid(1, 1, 1.0),
                       half_width_mm=_HALF_WIDTH_mm)
    tables = build_material_tables(slab, settings)
    flags = np.array([settings.electron_tracking_cut_MeV, settings.step_fraction, settings.final_range_mm,
                      float(settings.straggling), float(settings.msc == "wentzel")])
    out = np.zeros((n, 5))
    _transmit(shower_seeds(seed, 0, n), float(energy_MeV), float(thickness_mm), tables.values,
              tables.element_cumulative, tables.element_data, tables.scalars, flags, out)
    return Exits(out[:, 0].astype(np.int64), out[:, 1], out[:, 2:5])


@njit(cache=True)
def _transmit(seeds, energy, thickness, values, cumulative, element_data, scalars, flags, out):
    e_track, step_fraction, final_range, straggling, mixed = flags[0], flags[1], flags[2], flags[3] > 0.5, \
        flags[4] > 0.5
    z_front, z_back = np.zeros(1), np.full(1, thickness)
    image, ledger = np.zeros((1, 1, 1)), np.zeros(transport.N_LEDGER)
    stack_f, stack_i = np.empty((64, 7)), np.empty((64, 2), dtype=np.int64)
    for i in range(seeds.shape[0]):
        state = rng_init(seeds[i])
        T, x, y, z, ux, uy, uz, slab, alive = energy, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0, True
        while alive and slab == 0 and e_track < T:
            lnT = np.log(T)
            residual = interpolate(values[0, RANGE_E], lnT)
            T, x, y, z, ux, uy, uz, slab, alive, _, stack_f, stack_i = transport._charged_step(
                state, False, T, lnT, residual, x, y, z, ux, uy, uz, slab, 0, -1, z_front, z_back, _HALF_WIDTH_mm,
                0.5, 0.5, 1.0, values, cumulative, element_data, scalars, step_fraction, final_range, straggling,
                e_track, mixed, image, ledger, stack_f, stack_i, 0)
        out[i, 0] = TRANSMITTED if slab >= 1 else (BACKSCATTERED if slab < 0 else STOPPED)
        out[i, 1], out[i, 2], out[i, 3], out[i, 4] = max(T, 0.0), ux, uy, uz
