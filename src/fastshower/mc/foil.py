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

from fastshower.geometry import Calorimeter, Grid, Layer
from fastshower.mc import transport
from fastshower.mc.rng import shower_seeds
from fastshower.mc.settings import PhysicsSettings
from fastshower.mc.tables import build_material_tables
from fastshower.mc.transport import BACKSCATTERED, STOPPED, TRANSMITTED  # noqa: F401 (Exits.side values)

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
             settings: PhysicsSettings | None = None, sensor: bool = False) -> Exits:
    """Send ``n`` electrons of ``energy_MeV`` at normal incidence onto a slab of ``material``; ``sensor``: the slab
    is read out like a calorimeter's sensor, so energy-loss straggling is sampled in it (mean loss otherwise)."""
    settings = settings or PhysicsSettings()
    slab = Calorimeter("foil", (Layer(material, 0.0, material, float(thickness_mm)),), Grid(1, 1, 1.0),
                       half_width_mm=_HALF_WIDTH_mm)
    tables = build_material_tables(slab, settings)
    out = np.zeros((n, 5))
    transport.transmit_primaries(shower_seeds(seed, 0, n), float(energy_MeV), float(thickness_mm), _HALF_WIDTH_mm,
                                 0 if sensor else -1, tables.values, tables.element_cumulative, tables.element_data,
                                 tables.scalars, settings.kernel_vector(), out)
    return Exits(out[:, 0].astype(np.int64), out[:, 1], out[:, 2:5])
