"""Shared fixtures: simulators are built once per session (table building takes ~1 s per geometry)."""

from __future__ import annotations

import numpy as np
import pytest

from fastshower.data import ShowerData
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


def synthetic_showers(n: int, shape: tuple[int, int, int] = (8, 8, 8), seed: int = 0,
                      pdg: tuple[int, ...] | list[int] | None = None, theta_max: float = 0.2) -> ShowerData:
    """Toy showers: a Gaussian core whose depth grows with ln E, ~2% of E deposited, gamma-smeared cells."""
    rng = np.random.default_rng(seed)
    energy = rng.uniform(10.0, 100.0, n)
    X, Y, Z = shape
    x = (np.arange(X) - X / 2 + 0.5)[:, None, None]
    y = (np.arange(Y) - Y / 2 + 0.5)[None, :, None]
    z = np.arange(Z)[None, None, :]
    images = []
    for e in energy:
        core = np.exp(-((z - 1.0 - np.log(e)) ** 2) / 8.0) * np.exp(-(x**2 + y**2) / 2.0)
        images.append(core / core.sum() * 0.02 * e * rng.gamma(50.0, 1 / 50.0, size=shape))
    theta = rng.uniform(0.0, theta_max, n)
    codes = np.resize(np.asarray(pdg or [11]), n)
    return ShowerData(np.asarray(images, np.float32), energy, theta, np.zeros(n), codes)


def kill_all(parent, pids) -> None:
    """Kill a test's parent process and the workers it started: never leave a stray process behind a failed test."""
    import contextlib
    import os
    import signal

    parent.kill()
    parent.wait()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def sigint_raises():
    """SIGINT raises KeyboardInterrupt, as at an interactive prompt: a job started in the background (``cmd &``,
    as CI may run the suite) inherits SIGINT ignored, and tests of Ctrl-C would then see nothing."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
