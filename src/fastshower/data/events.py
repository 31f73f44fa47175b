"""Event files: one image per event, and the table of the particles that entered the calorimeter.

An event file is a fastshower HDF5 file (``attrs["content"] == "events"``) whose rows are events, not showers:
``ECAL`` holds the event's image (GeV), ``energy`` the summed kinetic energy of the particles that entered it, and
``theta``, ``phi``, ``pdgID`` those of its most energetic particle (so that readers of shower files read it). The
group ``particles/`` lists every particle that entered the transport or a fast model, event-major:

==============  =======  ====================================================================================
``event``       int64    the event (row of ``ECAL``) it belongs to
``pdg``         int32    PDG code (a pi0 appears as its two decay photons)
``energy_GeV``  float64  kinetic energy
``theta_rad``   float64  angle to the calorimeter's normal; ``phi_rad`` its azimuth
``x_mm, y_mm``  float64  entry point on the front face (0 = grid centre)
``source``      int64    the particle of the event file it comes from (a pi0's photons share it)
``fast``        bool     True when a fast model made its shower instead of the transport
==============  =======  ====================================================================================

The ledger (GeV, per event) has the Monte Carlo's entries for the transported particles plus ``fast`` (the
available energy handed to the model), ``fast_sensor`` (the model's deposit placed in the image) and
``fast_outside`` (the model's deposit that fell outside the detector's grid). ``sensor + passive + leak_* +
fast`` equals ``available``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from fastshower.data.readers import read_showers
from fastshower.data.schema import LEDGER_KEYS, ShowerData, hdf5_open_error
from fastshower.errors import DataFormatError
from fastshower.events import EventParticles

#: value of the root attribute ``content`` of event files
EVENTS_CONTENT = "events"
#: ledger entries of event files beyond a shower file's
FAST_LEDGER_KEYS = ("fast", "fast_sensor", "fast_outside")
EVENT_LEDGER_KEYS = (*LEDGER_KEYS, *FAST_LEDGER_KEYS)
_COLUMNS = (("event", np.int64), ("pdg", np.int32), ("energy_GeV", np.float64), ("theta_rad", np.float64),
            ("phi_rad", np.float64), ("x_mm", np.float64), ("y_mm", np.float64), ("source", np.int64))


def particle_tables(particles: EventParticles, fast: np.ndarray) -> dict[str, np.ndarray]:
    """The ``particles/`` datasets of an event file (for :class:`~fastshower.data.ShowerWriter`'s ``tables``)."""
    out = {f"particles/{name}": np.asarray(getattr(particles, name), dtype=dtype) for name, dtype in _COLUMNS}
    out["particles/fast"] = np.asarray(fast, dtype=bool)
    return out


def event_summary(particles: EventParticles) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per event: summed kinetic energy (GeV), and theta, phi (rad) and PDG code of its most energetic particle
    (0 for an event without particles)."""
    n = particles.n_events
    energy = np.bincount(particles.event, weights=particles.energy_GeV, minlength=n)
    theta, phi, pdg = np.zeros(n), np.zeros(n), np.zeros(n, dtype=np.int32)
    order = np.lexsort((-particles.energy_GeV, particles.event))  # by event, most energetic first
    events, first = np.unique(particles.event[order], return_index=True)
    lead = order[first]
    theta[events], phi[events], pdg[events] = particles.theta_rad[lead], particles.phi_rad[lead], particles.pdg[lead]
    return energy, theta, phi, pdg


@dataclass(frozen=True)
class EventShowers:
    """An event file in memory: the events as :class:`ShowerData` (images, summary, ledger, attrs), the particles
    that entered and which of them a fast model took."""

    showers: ShowerData
    particles: EventParticles
    fast: np.ndarray

    @property
    def images(self) -> np.ndarray:
        """(N, nx, ny, nz) event images in GeV."""
        return self.showers.ecal


def is_event_file(path: str | Path) -> bool:
    """True for an HDF5 file written by ``fastshower simulate --events``."""
    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("content") == EVENTS_CONTENT and "particles" in f
    except OSError:
        return False


def read_event_showers(path: str | Path) -> EventShowers:
    """Load an event file; ``DataFormatError`` (one line naming the file) when it is not one or is damaged."""
    path = Path(path)
    showers = read_showers(path)
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("content") != EVENTS_CONTENT or "particles" not in f:
                raise DataFormatError(f"{path}: not an event file (made by fastshower simulate --events)")
            group = f["particles"]
            missing = [name for name, _ in (*_COLUMNS, ("fast", bool)) if name not in group]
            if missing:
                raise DataFormatError(f"{path}: particles/ lacks {', '.join(missing)}")
            columns = {name: np.asarray(group[name][...], dtype=dtype) for name, dtype in _COLUMNS}
            fast = np.asarray(group["fast"][...], dtype=bool)
    except OSError as exc:
        raise hdf5_open_error(path, exc) from None
    try:
        particles = EventParticles.from_arrays(len(showers.energy_GeV), **columns)
    except Exception as err:  # noqa: BLE001 - any inconsistency is a damaged file here
        raise DataFormatError(f"{path}: particles/ is inconsistent ({err})") from None
    if fast.shape != particles.event.shape:
        raise DataFormatError(f"{path}: particles/fast has {fast.size} rows, the table {len(particles)}")
    return EventShowers(showers, particles, fast)
