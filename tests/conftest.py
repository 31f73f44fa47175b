"""Shared fixtures: simulators are built once per session (table building takes ~1 s per geometry)."""

from __future__ import annotations

import numpy as np
import pytest

from fastshower.geometry import Calorimeter, Grid, Layer, load_geometry
from fastshower.materials import material
from fastshower.mc.simulator import Primaries, Simulator


def primaries(n: int, energy_GeV: float, pdg: int = 11, theta_rad: float = 0.0) -> Primaries:
    """n identical primaries entering at the grid centre."""
    zeros = np.zeros(n)
    return Primaries(np.full(n, pdg), np.full(n, energy_GeV), np.full(n, theta_rad), zeros, zeros, zeros)


@pytest.fixture(scope="session")
def clic_simulator() -> Simulator:
    return Simulator(load_geometry("clic"))


@pytest.fixture(scope="session")
def tungsten_block() -> Simulator:
    """A homogeneous tungsten block, 35 X0 deep in 0.5 X0 layers, read out on a 1 mm grid, 60 cm wide."""
    x0 = material("W").radiation_length_mm
    block = Calorimeter("w-block", (Layer("W", 0.0, "W", x0 / 2),) * 70, Grid(61, 61, 1.0), half_width_mm=300.0)
    return Simulator(block)
