"""Events: several particles entering the calorimeter together, held as flat, event-major arrays.

An event is a list of particles crossing the calorimeter's front face: PDG code, kinetic energy (GeV), entry point
(mm, 0 = grid centre) and direction by theta from the normal (z) and azimuth phi (rad). Event files are read into
:class:`EventParticles` by :mod:`fastshower.data.event_files`; the Monte Carlo takes them through
:mod:`fastshower.mc.events`. This module imports nothing but numpy and the errors, so both layers can use it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from fastshower.errors import ConfigError

#: names of the particle kinds the Monte Carlo transports, by PDG code (the same table as the simulator's)
PARTICLE_NAMES: dict[int, str] = {11: "e-", -11: "e+", 22: "gamma", 111: "pi0"}


@dataclass(frozen=True)
class EventParticles:
    """Particles of ``n_events`` events, flat and event-major.

    ``event`` (P,) int64 is the event of each particle (non-decreasing; an event may have none); ``pdg`` (P,) int64;
    ``energy_GeV`` kinetic energy; ``theta_rad`` from the calorimeter's normal (z), ``phi_rad`` azimuth;
    ``x_mm``, ``y_mm`` the entry point on the front face (0 = grid centre); ``source`` (P,) int64 the index of the
    input particle each row comes from (a pi0's two photons share it; the identity for input particles).
    """

    n_events: int
    event: np.ndarray
    pdg: np.ndarray
    energy_GeV: np.ndarray
    theta_rad: np.ndarray
    phi_rad: np.ndarray
    x_mm: np.ndarray
    y_mm: np.ndarray
    source: np.ndarray

    @classmethod
    def from_arrays(cls, n_events: int, event: np.ndarray, pdg: np.ndarray, energy_GeV: np.ndarray,
                    theta_rad: np.ndarray, phi_rad: np.ndarray, x_mm: np.ndarray, y_mm: np.ndarray,
                    source: np.ndarray | None = None) -> EventParticles:
        """Build from array-likes, with dtypes fixed (``source`` defaults to the row index)."""
        event = np.asarray(event, dtype=np.int64).reshape(-1)
        n = event.shape[0]
        floats = [np.asarray(v, dtype=np.float64).reshape(-1) for v in (energy_GeV, theta_rad, phi_rad, x_mm, y_mm)]
        codes = np.asarray(pdg, dtype=np.int64).reshape(-1)
        src = np.arange(n, dtype=np.int64) if source is None else np.asarray(source, dtype=np.int64).reshape(-1)
        if any(a.shape[0] != n for a in (*floats, codes, src)):
            raise ConfigError("event particles: the per-particle arrays differ in length")
        if n and (np.any(np.diff(event) < 0) or event[0] < 0 or event[-1] >= n_events):
            raise ConfigError(f"event particles: event indices must be non-decreasing in [0, {n_events})")
        return cls(int(n_events), event, codes, *floats, src)

    def __len__(self) -> int:
        return int(self.event.shape[0])

    def subset(self, index: np.ndarray) -> EventParticles:
        """The particles at ``index`` (sorted row indices), in the same events."""
        return EventParticles(self.n_events, *(getattr(self, f.name)[index] for f in fields(self)[1:]))

    def offsets(self) -> np.ndarray:
        """(n_events + 1,) row offsets: event ``e``'s particles are rows ``offsets[e] .. offsets[e+1]-1``."""
        return np.searchsorted(self.event, np.arange(self.n_events + 1), side="left").astype(np.int64)


def describe(event: int, particle: int | None = None) -> str:
    """``event 3`` or ``event 3, particle 1`` (0-based, as in the event file), the start of error messages."""
    return f"event {event}" if particle is None else f"event {event}, particle {particle}"


def particle_label(pdg: int) -> str:
    """``e-``, ``gamma``, ... or the PDG code as text."""
    return PARTICLE_NAMES.get(int(pdg), str(int(pdg)))
