"""Events in the transport: several particles entering the calorimeter together (:class:`EventParticles`).

This module checks events against a detector with messages that name the event, and turns them into the particles
the transport takes: a pi0 decays into its two photons at the entry point here, not inside the transport, so that a
fast-simulation trigger sees the photons (:func:`entering_particles`).

Reproducibility: entering particle ``k`` (its row in :func:`entering_particles`' table) is transported from the
seed ``shower_seeds(seed, k, 1)`` (:func:`fastshower.mc.production.chunk_seeds`), and the decay of input particle
``i`` uses its own stream, so an event's image does not depend on the chunking, the number of workers or which
other particles a fast model takes.
"""

from __future__ import annotations

from dataclasses import fields

import numpy as np

from fastshower.errors import ConfigError
from fastshower.events import EventParticles, describe
from fastshower.geometry import Calorimeter
from fastshower.mc import transport
from fastshower.mc.rng import shower_seeds
from fastshower.mc.simulator import _KIND_OF_PDG, PARTICLES, MAX_ENERGY_GeV, Primaries, available_energy_GeV

#: first word of the seed sequence of the pi0 decays, XORed with the run seed (the showers use the run seed itself)
_DECAY_STREAM = 0xDEC0_0000


def as_primaries(particles: EventParticles) -> Primaries:
    """The particles as :class:`Primaries` of the transport (same rows)."""
    return Primaries(particles.pdg, particles.energy_GeV, particles.theta_rad, particles.phi_rad, particles.x_mm,
                     particles.y_mm)


def available_GeV(particles: EventParticles) -> np.ndarray:
    """(n_events,) energy each event brings: kinetic energies, plus 2 m_e per e+ and m_pi0 per pi0 (GeV)."""
    return np.bincount(particles.event, weights=available_energy_GeV(particles.pdg, particles.energy_GeV),
                       minlength=particles.n_events)


def check_events(calorimeter: Calorimeter, particles: EventParticles) -> None:
    """Refuse particles the transport cannot take, with a one-line ``ConfigError`` naming the first bad one's event
    and its place in the event: an unsupported kind, an energy outside (0, max], theta outside [0, 90) degrees, a
    non-finite value, or an entry point off the detector's front face."""
    if particles.n_events < 1:
        raise ConfigError("events: the event file holds no events")
    offsets = particles.offsets()
    half = calorimeter.transverse_half_width_mm
    problems = [
        (~np.isin(particles.pdg, list(_KIND_OF_PDG)),
         lambda i: f"particle kind {particles.pdg[i]} is not simulated (known: "
                   + ", ".join(f"{n} ({c})" for n, c in PARTICLES.items()) + ")"),
        (~(np.isfinite(particles.energy_GeV) & (particles.energy_GeV > 0) & (particles.energy_GeV <= MAX_ENERGY_GeV)),
         lambda i: f"energy {particles.energy_GeV[i]!r} GeV must be finite, > 0 and <= {MAX_ENERGY_GeV:g}"),
        (~(np.isfinite(particles.theta_rad) & (particles.theta_rad >= 0) & (particles.theta_rad < np.pi / 2)),
         lambda i: f"theta {np.degrees(particles.theta_rad[i]):.6g} deg must be in [0, 90)"),
        (~np.isfinite(particles.phi_rad), lambda i: "phi must be finite"),
        (~(np.isfinite(particles.x_mm) & np.isfinite(particles.y_mm)
           & (np.abs(particles.x_mm) < half) & (np.abs(particles.y_mm) < half)),
         lambda i: f"entry point ({particles.x_mm[i]:.6g}, {particles.y_mm[i]:.6g}) mm is outside the front face of "
                   f"'{calorimeter.name}' (|x|, |y| < {half:g} mm)"),
    ]
    for bad, message in problems:
        if np.any(bad):
            i = int(np.flatnonzero(bad)[0])
            event = int(particles.event[i])
            raise ConfigError(f"{describe(event, i - int(offsets[event]))}: {message(i)}")


def decay_seeds(seed: int, sources: np.ndarray) -> np.ndarray:
    """64-bit seeds of the pi0 decays of input particles ``sources`` in a run with ``seed``."""
    return np.array([shower_seeds(int(seed) ^ _DECAY_STREAM, int(i), 1)[0] for i in sources], dtype=np.uint64)


def entering_particles(particles: EventParticles, seed: int) -> EventParticles:
    """The particles that enter the transport: each pi0 replaced by its two decay photons (same event, same entry
    point, ``source`` the pi0's row), decayed by the transport's own decay (:func:`transport.decay_pi0s`); every
    other row unchanged. Same seed => same photons."""
    is_pi0 = particles.pdg == PARTICLES["pi0"]
    if not np.any(is_pi0):
        return particles
    rows = np.flatnonzero(is_pi0)
    theta, phi = particles.theta_rad[rows], particles.phi_rad[rows]
    directions = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], axis=1)
    photons = transport.decay_pi0s(decay_seeds(seed, particles.source[rows]), particles.energy_GeV[rows] * 1000.0,
                                   np.ascontiguousarray(directions))  # (n, 2, 4): energy MeV, direction
    # each row is repeated once, a pi0 twice; the pi0's two copies then take its photons' energies and directions
    repeat = np.where(is_pi0, 2, 1)
    index = np.repeat(np.arange(len(particles)), repeat)
    out = {f.name: getattr(particles, f.name)[index].copy() for f in fields(particles)[1:]}
    first = np.cumsum(repeat)[rows] - 2  # where each pi0's first photon lands
    for k in range(2):
        at = first + k
        ux, uy, uz = photons[:, k, 1], photons[:, k, 2], photons[:, k, 3]
        out["pdg"][at] = PARTICLES["gamma"]
        out["energy_GeV"][at] = photons[:, k, 0] / 1000.0
        out["theta_rad"][at] = np.arccos(np.clip(uz, -1.0, 1.0))
        out["phi_rad"][at] = np.arctan2(uy, ux)
    return EventParticles(particles.n_events, **out)
