"""Python face of the Monte Carlo: primaries in, shower images and energy ledgers out (GeV)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastshower.errors import ConfigError
from fastshower.geometry import Calorimeter
from fastshower.materials import ELECTRON_MASS_MeV
from fastshower.mc import transport
from fastshower.mc.settings import PhysicsSettings
from fastshower.mc.tables import E_MAX_MeV, MaterialTables, build_material_tables

PARTICLES: dict[str, int] = {"e-": 11, "e+": -11, "gamma": 22, "pi0": 111}
_KIND_OF_PDG = {11: transport.ELECTRON, -11: transport.POSITRON, 22: transport.GAMMA, 111: transport.PI0}
LEDGER_KEYS = ("sensor", "passive", "leak_front", "leak_side", "leak_back")
MAX_ENERGY_GeV = 0.5 * E_MAX_MeV / 1000.0


def pdg_code(particle: str | int) -> int:
    """PDG code of a particle given by name (``e-``, ``e+``, ``gamma``, ``pi0``) or code."""
    if isinstance(particle, str) and particle in PARTICLES:
        return PARTICLES[particle]
    try:
        code = int(particle)
    except (TypeError, ValueError):
        code = 0
    if code not in _KIND_OF_PDG:
        raise ConfigError(f"particle '{particle}': unsupported (known: {', '.join(PARTICLES)})")
    return code


def available_energy_GeV(pdg: np.ndarray, energy_GeV: np.ndarray) -> np.ndarray:
    """Energy that ends up deposited or leaked: kinetic energy, plus 2 m_e for e+ and m_pi0 for pi0 (GeV)."""
    extra = np.where(pdg == -11, 2.0 * ELECTRON_MASS_MeV, 0.0) + np.where(pdg == 111, transport.PI0_MASS_MeV, 0.0)
    return np.asarray(energy_GeV, dtype=np.float64) + extra / 1000.0


@dataclass(frozen=True)
class Primaries:
    """Primary particles: PDG code, kinetic energy (GeV), incidence angle theta from the normal and azimuth phi
    (rad), entry point (x, y) on the front face (mm, 0 = grid centre)."""

    pdg: np.ndarray
    energy_GeV: np.ndarray
    theta_rad: np.ndarray
    phi_rad: np.ndarray
    x_mm: np.ndarray
    y_mm: np.ndarray

    def __len__(self) -> int:
        return int(self.energy_GeV.shape[0])

    def select(self, start: int, stop: int) -> Primaries:
        """Primaries ``start .. stop-1``."""
        return self.subset(slice(start, stop))

    def subset(self, index: slice | np.ndarray) -> Primaries:
        """The primaries at ``index`` (a slice or an array of indices)."""
        return Primaries(*(getattr(self, f)[index] for f in
                           ("pdg", "energy_GeV", "theta_rad", "phi_rad", "x_mm", "y_mm")))


@dataclass(frozen=True)
class ShowerBatch:
    """Simulated showers: images (N, nx, ny, nz) float32 in GeV and the per-shower ledger (GeV)."""

    images: np.ndarray
    ledger: dict[str, np.ndarray]


DEVICES = ("cpu", "cuda")


def check_device(device: str) -> str:
    """``device`` if it is one the Monte Carlo runs on (``cpu`` or ``cuda``), else a one-line ``ConfigError``."""
    if device not in DEVICES:
        raise ConfigError(f"device '{device}': unknown (choose from {', '.join(DEVICES)})")
    return device


class Simulator:
    """Detailed simulation of showers in one calorimeter with one set of physics settings, on the CPU (numba) or
    on an NVIDIA GPU (numba-cuda, ``device="cuda"``), from the same transport code."""

    def __init__(self, calorimeter: Calorimeter, settings: PhysicsSettings | None = None, device: str = "cpu",
                 showers_per_launch: int | None = None) -> None:
        self.calorimeter = calorimeter
        self.settings = settings or PhysicsSettings()
        self.device = check_device(device)
        self.tables: MaterialTables = build_material_tables(calorimeter, self.settings)
        slabs, tab = calorimeter.slabs, self.tables
        self._constants: dict[str, object] = {
            "z_front": slabs.z_front_mm, "z_back": slabs.z_back_mm, "slab_mat": slabs.material_index,
            "slab_layer": slabs.sensor_layer, "half_width": calorimeter.transverse_half_width_mm,
            "half_x": calorimeter.grid.half_width_x_mm, "half_y": calorimeter.grid.half_width_y_mm,
            "pitch": calorimeter.grid.pitch_mm, "values": tab.values, "cumulative": tab.element_cumulative,
            "element_data": tab.element_data, "scalars": tab.scalars, "settings": self.settings.kernel_vector()}
        self._gpu = None
        if self.device == "cuda":
            from fastshower.mc import gpu  # numba-cuda only when a GPU is asked for

            self._gpu = gpu.GpuTransport(self._constants, calorimeter.cell_shape,
                                         showers_per_launch or gpu.DEFAULT_SHOWERS_PER_LAUNCH)
        #: steps (photon flights and charged steps) of the showers of the last :meth:`run`
        self.last_steps = np.zeros(0, dtype=np.int64)

    def kernel_constants(self) -> dict[str, object]:
        """Geometry (mm), tables and settings vector, by name and in the order the transport kernels take them
        after the showers (``simulate_batch``, the GPU kernel)."""
        return self._constants

    @property
    def showers_per_launch(self) -> int:
        """Showers per GPU launch (0 on the CPU)."""
        return self._gpu.showers_per_launch if self._gpu is not None else 0

    def check(self, primaries: Primaries) -> None:
        """Refuse primaries the transport cannot take, with a one-line message."""
        energy = np.asarray(primaries.energy_GeV, dtype=float)
        theta = np.asarray(primaries.theta_rad, dtype=float)
        if not np.all(np.isfinite(energy)) or np.any(energy <= 0) or np.any(energy > MAX_ENERGY_GeV):
            raise ConfigError(f"energy: must be finite, > 0 and <= {MAX_ENERGY_GeV:g} GeV")
        if not np.all(np.isfinite(theta)) or np.any(theta < 0) or np.any(theta >= np.pi / 2):
            raise ConfigError("theta: must be in [0, 90) degrees")
        half = self.calorimeter.transverse_half_width_mm
        if np.any(np.abs(primaries.x_mm) >= half) or np.any(np.abs(primaries.y_mm) >= half):
            raise ConfigError(f"entry point: must lie on the front face (|x|, |y| < {half:g} mm)")
        for code in np.unique(primaries.pdg):
            pdg_code(int(code))

    def run(self, primaries: Primaries, seeds: np.ndarray, readout: bool = True) -> ShowerBatch:
        """Simulate every primary with its own 64-bit seed; same seed => same shower (on one device: the CPU and
        the GPU agree statistically, not bit for bit). ``readout=False`` keeps every deposit in the images (no
        zero suppression: for showers that are summed before they are read out)."""
        self.check(primaries)
        n = len(primaries)
        seeds = np.asarray(seeds, dtype=np.uint64)
        kinds = np.array([_KIND_OF_PDG[int(c)] for c in primaries.pdg], dtype=np.int64)
        theta, phi = np.asarray(primaries.theta_rad, float), np.asarray(primaries.phi_rad, float)
        directions = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], axis=1)
        energies_MeV = np.asarray(primaries.energy_GeV, float) * 1000.0
        x0, y0 = np.asarray(primaries.x_mm, float), np.asarray(primaries.y_mm, float)
        if self._gpu is not None and n > 0:
            images, ledger, steps = self._gpu.run(seeds, kinds, energies_MeV, x0, y0, directions)
            redo = np.flatnonzero(steps == transport.STACK_OVERFLOW)
            if redo.size:  # deeper than a GPU thread's stack: the CPU's grows
                images[redo], ledger[redo], steps[redo] = self._run_cpu(
                    seeds[redo], kinds[redo], energies_MeV[redo], x0[redo], y0[redo], directions[redo])
        else:
            images, ledger, steps = self._run_cpu(seeds, kinds, energies_MeV, x0, y0, directions)
        self.last_steps = steps
        if readout:
            self.calorimeter.zero_suppress(images)  # the readout; the ledger keeps every deposit
        return ShowerBatch(images, {key: ledger[:, i] / 1000.0 for i, key in enumerate(LEDGER_KEYS)})

    def _run_cpu(self, seeds: np.ndarray, kinds: np.ndarray, energies_MeV: np.ndarray, x0: np.ndarray,
                 y0: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = int(seeds.shape[0])
        images = np.zeros((n, *self.calorimeter.cell_shape), dtype=np.float32)
        ledger = np.zeros((n, transport.N_LEDGER))
        steps = np.zeros(n, dtype=np.int64)
        transport.simulate_batch(seeds, kinds, energies_MeV, x0, y0, directions, *self._constants.values(), images,
                                 ledger, steps, self.settings.max_particles)
        return images, ledger, steps
