"""Fast simulation inside the detailed simulation: a trigger hands the particles a model knows to the model.

As Geant4's fast-simulation hook does (``G4VFastSimulationModel``, example Par04), every particle entering the
calorimeter is dispatched here, outside the transport's kernels: when a :class:`FastTrigger`'s model applies to it
(its kind, energy and direction inside the model's conditions, its energy above a threshold) the model's shower is
placed at its entry point and it is not transported; every other particle goes through the detailed Monte Carlo as
before. The model's showers are made in batches across the events (generation is only fast batched), in fixed
blocks of the particles it takes (:class:`ModelShowers`).

Placement: the model's grid is laid on the event's grid with its entry cell (where the model's training showers
entered, the centre of its grid) on the cell of the particle's entry point. The two grids must have the same layers
and pitch (checked). The entry point's offset within its cell is not modelled: the shower's centre is off by at
most half a pitch in x and in y (2.55 mm for CLIC; uniform entry points: pitch / sqrt(12) = 1.5 mm rms), which
:func:`placement` returns. Cells of the model's grid falling outside the event's grid are lost from the image and
booked in the ledger as ``fast_outside``. Angle models are placed rotated by the multiple of 90 degrees nearest to
the particle's azimuth (a symmetry of a square grid); their training showers are taken to have phi = 0 (the
Monte Carlo's default).

Reproducibility: the shower of entering particle ``k`` is the model's shower number ``k`` of a run with a seed
derived from the run seed (:data:`MODEL_STREAM`), made in a fixed batch, so a hybrid run gives the same events
whatever the chunking, the workers or the launches of the Monte Carlo part.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fastshower.errors import ConfigError
from fastshower.events import EventParticles, particle_label
from fastshower.generate import ShowerSampler, load, resolve_model
from fastshower.geometry import Calorimeter
from fastshower.mc.events import as_primaries
from fastshower.mc.production import run_production
from fastshower.mc.settings import PhysicsSettings
from fastshower.mc.simulator import LEDGER_KEYS, available_energy_GeV

#: second word of the seed sequence of the model's noise (the transport uses the run seed itself)
MODEL_STREAM = 0xFA57
#: the event ledger's entries for the fast part (GeV)
FAST_KEYS = ("fast", "fast_sensor", "fast_outside")


def model_seed(seed: int) -> int:
    """Seed of the model's noise in a hybrid run with ``seed``."""
    return int(np.random.SeedSequence([int(seed), MODEL_STREAM]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _detector_mismatch(model: Calorimeter, event: Calorimeter) -> str | None:
    """What differs between the detector a model learned and an event's detector, or None."""
    if len(model.layers) != len(event.layers):
        return f"{len(model.layers)} layers vs {len(event.layers)}"
    for i, (a, b) in enumerate(zip(model.layers, event.layers, strict=True)):
        if a != b:
            return (f"layer {i}: {a.absorber} {a.absorber_mm:g} mm + {a.sensor} {a.sensor_mm:g} mm vs "
                    f"{b.absorber} {b.absorber_mm:g} mm + {b.sensor} {b.sensor_mm:g} mm")
    if not math.isclose(model.grid.pitch_mm, event.grid.pitch_mm, rel_tol=1e-9):
        return f"cell pitch {model.grid.pitch_mm:g} mm vs {event.grid.pitch_mm:g} mm"
    if not math.isclose(model.grid.threshold_MeV, event.grid.threshold_MeV, rel_tol=1e-9, abs_tol=1e-12):
        return f"readout threshold {model.grid.threshold_MeV:g} MeV vs {event.grid.threshold_MeV:g} MeV"
    return None


@dataclass(frozen=True)
class Placement:
    """Where model showers go on the event grid: the event cell of the model's cell (0, 0) in x and y, the number
    of quarter turns of the model's image, and the entry point's offset from the model's entry (mm), which the
    placement does not correct (|offset| <= pitch / 2)."""

    shift_x: np.ndarray
    shift_y: np.ndarray
    quarter_turns: np.ndarray
    offset_x_mm: np.ndarray
    offset_y_mm: np.ndarray


class FastTrigger:
    """The fast-simulation trigger: which entering particles a model takes, their showers and their placement.

    Args:
        sampler: the model (:func:`fastshower.load`).
        calorimeter: the events' detector; its layers, pitch and readout threshold must be the model's.
        min_energy_GeV: particles below this kinetic energy stay in the Monte Carlo (and those outside the model's
            energy range in any case: no extrapolation).
        theta_tolerance_deg: largest angle between a particle's direction and the nearest direction the model
            makes (normal incidence for an energy-only model) for the model to take it.
        name: the model as the user named it, for messages.
    """

    def __init__(self, sampler: ShowerSampler, calorimeter: Calorimeter, min_energy_GeV: float = 0.0,
                 theta_tolerance_deg: float = 0.0, name: str = "model", precision: str = "bf16",
                 batch_size: int = 128) -> None:
        if not (math.isfinite(min_energy_GeV) and min_energy_GeV >= 0):
            raise ConfigError(f"fast-model minimum energy {min_energy_GeV!r}: must be a finite number >= 0 GeV")
        if not (math.isfinite(theta_tolerance_deg) and 0 <= theta_tolerance_deg < 90):
            raise ConfigError(f"fast-model angle tolerance {theta_tolerance_deg!r}: must be in [0, 90) degrees")
        if not sampler.bundle.geometry:
            raise ConfigError(f"model '{name}': records no detector, so it cannot be checked against "
                              f"'{calorimeter.name}'")
        learned = Calorimeter.from_dict(dict(sampler.bundle.geometry), source=f"model '{name}' detector")
        mismatch = _detector_mismatch(learned, calorimeter)
        if mismatch is not None:
            raise ConfigError(f"model '{name}': learned detector '{learned.name}', which differs from "
                              f"'{calorimeter.name}' ({mismatch})")
        self.sampler, self.calorimeter, self.learned, self.name = sampler, calorimeter, learned, name
        self.min_energy_GeV = float(min_energy_GeV)
        self.theta_tolerance_rad = math.radians(theta_tolerance_deg)
        self.precision, self.batch_size = precision, int(batch_size)

    @classmethod
    def load(cls, model: str | Path, calorimeter: Calorimeter, min_energy_GeV: float = 0.0,
             theta_tolerance_deg: float = 0.0, precision: str = "bf16", batch_size: int = 128) -> FastTrigger:
        """A trigger for a model given by path or shipped name."""
        resolve_model(model)  # a one-line error for a bad name before the bundle is read
        return cls(load(model), calorimeter, min_energy_GeV, theta_tolerance_deg, str(model), precision, batch_size)

    @property
    def energy_range_GeV(self) -> tuple[float, float]:
        """Kinetic energies the trigger hands to the model (GeV)."""
        low, high = self.sampler.bundle.energy_range_GeV
        return max(float(low), self.min_energy_GeV), float(high)

    def describe(self) -> str:
        """One line: what the model takes."""
        low, high = self.energy_range_GeV
        kinds = ", ".join(particle_label(p) for p in self.sampler.bundle.particles)
        if self.sampler.energy_only:
            angle = "at normal incidence"
        else:
            t_lo, t_hi = (math.degrees(t) for t in self.sampler.bundle.theta_range_rad)
            angle = f"at theta {t_lo:g}-{t_hi:g} deg, phi a multiple of 90 deg"
        return (f"fast model '{self.name}' takes {kinds} of {low:g}-{high:g} GeV {angle} (within "
                f"{math.degrees(self.theta_tolerance_rad):g} deg) on '{self.calorimeter.name}'; the other particles "
                "go through the detailed simulation")

    def _model_direction(self, theta_rad: np.ndarray, phi_rad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The nearest direction the model makes: its theta (clipped to its range) and phi (a multiple of 90 deg)."""
        if self.sampler.energy_only:
            return np.zeros_like(theta_rad), np.zeros_like(phi_rad)
        low, high = self.sampler.bundle.theta_range_rad
        return np.clip(theta_rad, low, high), np.round(phi_rad / (0.5 * np.pi)) * (0.5 * np.pi)

    def select(self, particles: EventParticles) -> np.ndarray:
        """(P,) bool: the particles the model takes."""
        low, high = self.energy_range_GeV
        slack = 1e-6 * max(1.0, high)
        kind = np.isin(particles.pdg, np.asarray(self.sampler.bundle.particles, dtype=np.int64))
        energy = (particles.energy_GeV >= low - slack) & (particles.energy_GeV <= high + slack)
        theta_m, phi_m = self._model_direction(particles.theta_rad, particles.phi_rad)
        cos_angle = (np.sin(particles.theta_rad) * np.sin(theta_m) * np.cos(particles.phi_rad - phi_m)
                     + np.cos(particles.theta_rad) * np.cos(theta_m))
        direction = np.arccos(np.clip(cos_angle, -1.0, 1.0)) <= self.theta_tolerance_rad + 1e-12
        return kind & energy & direction

    def showers(self, particles: EventParticles, rows: np.ndarray, seed: int) -> np.ndarray:
        """The model's showers (n, mx, my, nz; GeV) of entering particles ``rows`` of a run with ``seed``, made in
        one batch (a shower's last bits depend on its batch: :class:`ModelShowers` fixes the batches)."""
        energy = np.clip(particles.energy_GeV[rows], *self.sampler.bundle.energy_range_GeV)
        theta, _ = self._model_direction(particles.theta_rad[rows], particles.phi_rad[rows])
        return self.sampler.sample_rows(energy, theta, rows, model_seed(seed), max(rows.size, 1), self.precision)

    def placement(self, particles: EventParticles, rows: np.ndarray) -> Placement:
        """Where the showers of ``rows`` go on the event grid (see the module's docstring)."""
        pitch = self.calorimeter.grid.pitch_mm
        # positions in cell units from the grids' lower edges; the model's showers entered at its grid's centre
        event_x = (particles.x_mm[rows] + self.calorimeter.grid.half_width_x_mm) / pitch
        event_y = (particles.y_mm[rows] + self.calorimeter.grid.half_width_y_mm) / pitch
        model_x, model_y = 0.5 * self.learned.grid.nx, 0.5 * self.learned.grid.ny
        shift_x = np.floor(event_x - model_x + 0.5).astype(np.int64)
        shift_y = np.floor(event_y - model_y + 0.5).astype(np.int64)
        _, phi_m = self._model_direction(particles.theta_rad[rows], particles.phi_rad[rows])
        turns = (np.zeros(rows.size, np.int64) if self.sampler.energy_only
                 else np.mod(np.round(phi_m / (0.5 * np.pi)), 4).astype(np.int64))
        return Placement(shift_x, shift_y, turns, (event_x - model_x - shift_x) * pitch,
                         (event_y - model_y - shift_y) * pitch)


class ModelShowers:
    """The model's showers of one run, made in fixed batches: the particles the model takes, in row order, are cut
    into blocks of ``trigger.batch_size``, and a block is always generated whole and alone. A bf16 (or fp32)
    convolution's result depends in its last bits on the batch it is computed in, so this is what makes a hybrid
    run's events independent of the chunking and the workers. A chunk's leftover showers of a block are kept for
    the next chunk (the last ``cache_blocks`` blocks)."""

    def __init__(self, trigger: FastTrigger, particles: EventParticles, fast: np.ndarray, seed: int,
                 cache_blocks: int = 4) -> None:
        self.trigger, self.particles, self.seed = trigger, particles, int(seed)
        self.fast_rows = np.flatnonzero(fast)
        self.block = trigger.batch_size
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_blocks = cache_blocks

    def _block(self, k: int) -> np.ndarray:
        if k in self._cache:
            self._cache.move_to_end(k)
            return self._cache[k]
        showers = self.trigger.showers(self.particles, self.fast_rows[k * self.block:(k + 1) * self.block], self.seed)
        self._cache[k] = showers
        while len(self._cache) > self._cache_blocks:
            self._cache.popitem(last=False)
        return showers

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The showers (n, mx, my, nz; GeV) of entering particles ``rows`` (all taken by the model)."""
        position = np.searchsorted(self.fast_rows, rows)
        if np.any(position >= self.fast_rows.size) or np.any(self.fast_rows[np.minimum(position, self.fast_rows.size
                                                                                       - 1)] != rows):
            raise ConfigError("model showers: asked for a particle the model does not take")
        blocks, within = np.divmod(position, self.block)
        out = np.empty((rows.size, *self.trigger.sampler.cell_shape), dtype=np.float32)
        for k in np.unique(blocks):
            at = blocks == k
            out[at] = self._block(int(k))[within[at]]
        return out


def place(image: np.ndarray, shower: np.ndarray, shift_x: int, shift_y: int, quarter_turns: int = 0) -> float:
    """Add ``shower`` (mx, my, nz) into ``image`` (nx, ny, nz) with its cell (0, 0) on image cell
    (``shift_x``, ``shift_y``), after ``quarter_turns`` turns from +x towards +y; returns the energy (GeV) of the
    shower's cells that fall outside the image."""
    if quarter_turns % 4:
        shower = np.rot90(shower, quarter_turns % 4, axes=(0, 1))
    mx, my = shower.shape[:2]
    x0, x1 = max(shift_x, 0), min(shift_x + mx, image.shape[0])
    y0, y1 = max(shift_y, 0), min(shift_y + my, image.shape[1])
    if x0 >= x1 or y0 >= y1:
        return float(shower.sum(dtype=np.float64))
    inside = shower[x0 - shift_x:x1 - shift_x, y0 - shift_y:y1 - shift_y]
    image[x0:x1, y0:y1] += inside
    return float(shower.sum(dtype=np.float64) - inside.sum(dtype=np.float64))


@dataclass
class Timings:
    """Where a hybrid run's main process spent its time (s): waiting for the Monte Carlo's results, running the
    model, and summing and placing showers into event images."""

    mc_wait_s: float = 0.0
    model_s: float = 0.0
    assemble_s: float = 0.0
    counts: dict[str, int] = field(default_factory=lambda: {"transported": 0, "fast": 0, "escaped": 0})


@dataclass(frozen=True)
class EventBatch:
    """Events ``start .. start + len(images) - 1``: images (GeV, read out) and the per-event ledger (GeV)."""

    start: int
    images: np.ndarray
    ledger: dict[str, np.ndarray]


def run_events(
    calorimeter: Calorimeter,
    settings: PhysicsSettings,
    particles: EventParticles,
    seed: int,
    todo: Sequence[tuple[int, int]],
    trigger: FastTrigger | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    device: str = "cpu",
    showers_per_launch: int = 0,
    timings: Timings | None = None,
) -> Iterator[EventBatch]:
    """Simulate the event chunks ``todo`` (``[start, stop)`` of events) of the entering ``particles``
    (:func:`fastshower.mc.events.entering_particles`); yield :class:`EventBatch` es as they complete (any order).

    The particles ``trigger`` selects get the model's shower; photons of a pi0 decay that head away from the
    calorimeter leave through the front face (ledger ``leak_front``); the rest go through
    :func:`fastshower.mc.production.run_production` (``workers``, ``scheduler``, ``device`` as there). The images of
    an event's particles are summed before the readout's zero suppression.
    """
    timings = timings if timings is not None else Timings()
    fast = trigger.select(particles) if trigger is not None else np.zeros(len(particles), dtype=bool)
    escaping = particles.theta_rad >= 0.5 * np.pi
    mc_rows = np.flatnonzero(~fast & ~escaping)
    mc_event = particles.event[mc_rows]
    offsets = particles.offsets()
    pending = {}  # first Monte Carlo row of a chunk -> the chunk
    fast_only = []
    for a, b in todo:
        pa, pb = np.searchsorted(mc_event, [a, b])
        if pb > pa:
            pending[int(pa)] = (a, b, int(pa), int(pb))
        else:
            fast_only.append((a, b))
    mc_todo = sorted((pa, pb) for _, _, pa, pb in pending.values())
    model = ModelShowers(trigger, particles, fast, seed) if trigger is not None else None
    timings.counts.update(transported=int(mc_rows.size), fast=int(fast.sum()), escaped=int(escaping.sum()))

    def assemble(a: int, b: int, mc_images: np.ndarray | None, mc_ledger: np.ndarray | None,
                 pa: int) -> EventBatch:
        n, (nx, ny, nz) = b - a, calorimeter.cell_shape
        images = np.zeros((n, nx, ny, nz), dtype=np.float32)
        ledger = np.zeros((n, len(LEDGER_KEYS)))
        t0 = time.perf_counter()
        if mc_images is not None and mc_ledger is not None:
            local = mc_event[pa:pa + mc_images.shape[0]] - a
            for image, e in zip(mc_images, local, strict=True):
                images[e] += image
            np.add.at(ledger, local, mc_ledger)
        rows = np.arange(offsets[a], offsets[b])
        out = rows[escaping[rows]]
        np.add.at(ledger[:, LEDGER_KEYS.index("leak_front")], particles.event[out] - a, particles.energy_GeV[out])
        extra = {key: np.zeros(n) for key in FAST_KEYS}
        rows = rows[fast[rows]]
        timings.assemble_s += time.perf_counter() - t0
        if rows.size and trigger is not None and model is not None:
            t0 = time.perf_counter()
            showers = model.take(rows)
            timings.model_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            where = trigger.placement(particles, rows)
            local = particles.event[rows] - a
            for i, e in enumerate(local):
                lost = place(images[e], showers[i], int(where.shift_x[i]), int(where.shift_y[i]),
                             int(where.quarter_turns[i]))
                extra["fast_outside"][e] += lost
                extra["fast_sensor"][e] += float(showers[i].sum(dtype=np.float64)) - lost
            np.add.at(extra["fast"], local, available_energy_GeV(particles.pdg[rows], particles.energy_GeV[rows]))
            timings.assemble_s += time.perf_counter() - t0
        calorimeter.zero_suppress(images)
        return EventBatch(a, images, {**{k: ledger[:, i] for i, k in enumerate(LEDGER_KEYS)}, **extra})

    if mc_todo:
        stream = run_production(calorimeter, settings, as_primaries(particles.subset(mc_rows)), seed, mc_todo,
                                workers, scheduler, device, showers_per_launch, seed_index=mc_rows, readout=False)
        try:
            while True:
                t0 = time.perf_counter()
                result = next(stream, None)
                timings.mc_wait_s += time.perf_counter() - t0
                if result is None:
                    break
                pa, batch = result
                a, b, _, _ = pending[pa]
                mc_ledger = np.stack([batch.ledger[k] for k in LEDGER_KEYS], axis=1)
                yield assemble(a, b, batch.images, mc_ledger, pa)
                if fast_only:  # the model's chunks fill the main process's time while the workers transport
                    yield assemble(*fast_only.pop(0), None, None, 0)
        finally:
            stream.close()
    for a, b in fast_only:
        yield assemble(a, b, None, None, 0)
