"""Event description files for ``fastshower simulate --events FILE``: a YAML event list or a HepMC3 ASCII file.

The format is chosen by content, not by suffix: a HepMC3 ASCII file starts with a ``HepMC::Version ...`` line
followed by ``HepMC::Asciiv3-START_EVENT_LISTING``; anything else is read as YAML::

    events:
      - particles:
          - {pdg: 11, energy_GeV: 50, x_mm: -20, y_mm: 0, theta_deg: 0, phi_deg: 0}
          - {pdg: e-, energy_GeV: 40, x_mm: 25}      # x_mm, y_mm, theta_deg, phi_deg default to 0
      - particles: [{pdg: 111, energy_GeV: 60}]

``pdg`` is a PDG code or a name (e-, e+, gamma, pi0), ``energy_GeV`` the kinetic energy, ``x_mm``/``y_mm`` the
entry point on the calorimeter's front face (0 = grid centre), ``theta_deg`` the angle to the face's normal in
[0, 90) and ``phi_deg`` the azimuth. Whether the entry point lies on the face and the energy is in range is checked by
the Monte Carlo, which knows the detector.

HepMC3 files (read through pyhepmc, the optional extra ``fastshower[hepmc]``) hold whole generator events. Which of
their particles enter the calorimeter:

- the front face is the plane z = ``front_z_mm`` of the event's coordinates, its normal along +z; x and y on the face
  are the event's x and y (0 = grid centre);
- only final-state particles (status 1) are considered; intermediate ones (a decayed pi0, partons, ...) are ignored
  without being counted, their final-state descendants stand for them;
- of those, the kinds the Monte Carlo transports are taken: e-, e+, gamma, and pi0 (the transport decays it); any
  other kind is skipped and counted as ``kind not simulated (pdg 211)``;
- the particle must be produced on or in front of the face (production vertex z <= ``front_z_mm``; a particle without
  a production vertex starts at the event's position, the origin unless the event was shifted), else it is counted as
  ``produced behind the face``, and move towards it (pz > 0), else ``moving away from the face``;
- it follows a straight line (no magnetic field) to the plane; that crossing is its entry point. With
  ``half_width_mm`` given, a crossing outside the face (|x| or |y| >= ``half_width_mm``) is counted as
  ``misses the face``;
- theta is the angle of the momentum to +z, phi = atan2(py, px); the kinetic energy is E - m with m the kind's own
  mass (0 for a photon, m_e = 0.51099895 MeV for e±, 134.9768 MeV for a pi0), not the recorded generated mass or
  sqrt(E² - p²): for these kinds both are the pole mass up to rounding, and sqrt(E² - p²) of a GeV electron keeps
  no significant digit of its 0.5 MeV. A particle with E <= m is counted as ``no kinetic energy``.

Units are converted from the event's own (MeV or GeV, mm or cm) to GeV and mm. An event whose particles all miss
stays an event in the table (``fastshower simulate`` leaves such events out of its output and records each
output event's number in the file). A record that cannot be parsed, or a file that ends without HepMC3's
``HepMC::Asciiv3-END_EVENT_LISTING`` line, is an error: the HepMC3 reader itself stops silently at a truncated
event (pyhepmc's iterator even stops at the first event without particles), so the reader checks both.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from fastshower.config import read_mapping
from fastshower.errors import ConfigError
from fastshower.events import PARTICLE_NAMES, EventParticles, describe

EVENT_FORMATS = ("yaml", "hepmc3")

#: particle name -> PDG code, the inverse of ``PARTICLE_NAMES``
PARTICLE_CODES: dict[str, int] = {name: code for code, name in PARTICLE_NAMES.items()}
#: rest masses (MeV) of the kinds taken from HepMC3 files: the values of fastshower.materials and mc.transport (the
#: data layer does not import them)
_MASS_MeV: dict[int, float] = {22: 0.0, 11: 0.51099895, -11: 0.51099895, 111: 134.9768}
_PARTICLE_KEYS = ("pdg", "energy_GeV", "x_mm", "y_mm", "theta_deg", "phi_deg")
_HEPMC_VERSION = b"HepMC::Version"
_HEPMC3_START = b"HepMC::Asciiv3-START_EVENT_LISTING"
_HEPMC3_END = b"HepMC::Asciiv3-END_EVENT_LISTING"
_GZIP_MAGIC = b"\x1f\x8b"


def read_events(path: str | Path, front_z_mm: float = 0.0,
                half_width_mm: float | None = None) -> tuple[EventParticles, dict[str, Any]]:
    """Read a YAML event list or a HepMC3 ASCII file (chosen by content, not by suffix) into :class:`EventParticles`.

    ``front_z_mm`` (the z of the calorimeter's front face in the event's coordinates) and ``half_width_mm`` (half the
    face's width; None: no cut) apply to HepMC3 files only, see the module docstring for which particles are taken.
    Returns the particles and ``info``: ``{"format": "yaml" | "hepmc3", "n_events", "n_particles", "skipped":
    {reason: count}}`` (``skipped`` is empty for YAML). Every problem is a one-line ``ConfigError`` naming the file.
    """
    path = Path(path)
    if not math.isfinite(front_z_mm):
        raise ConfigError(f"{path}: front_z_mm (the front face's z) must be a finite number, got {front_z_mm!r}")
    if half_width_mm is not None and not (math.isfinite(half_width_mm) and half_width_mm > 0):
        raise ConfigError(f"{path}: half_width_mm (half the front face's width) must be a positive number, "
                          f"got {half_width_mm!r}")
    if _sniff(path) == "hepmc3":
        return _read_hepmc3(path, float(front_z_mm), None if half_width_mm is None else float(half_width_mm))
    return _read_yaml(path)


def _sniff(path: Path) -> str:
    """``"hepmc3"`` or ``"yaml"`` from the first two non-blank lines."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read event file ({err.strerror})") from None
    if head.startswith(_GZIP_MAGIC):
        raise ConfigError(f"{path}: a compressed file: decompress it first (event files are YAML or HepMC3 ASCII)")
    lines = [line.strip() for line in head.splitlines() if line.strip()]
    if not lines or not lines[0].startswith(_HEPMC_VERSION):
        return "yaml"
    if len(lines) > 1 and lines[1] == _HEPMC3_START:
        return "hepmc3"
    # no YAML event list starts like this, so say what it is rather than "not a mapping"
    second = lines[1].decode(errors="replace")[:60] if len(lines) > 1 else "nothing"
    raise ConfigError(f"{path}: a HepMC file but not HepMC3 ASCII ({second!r} follows the version line); "
                      "convert it to HepMC3 ASCII")


# --- YAML ------------------------------------------------------------------------------------------------------------

def _read_yaml(path: Path) -> tuple[EventParticles, dict[str, Any]]:
    try:
        tree = read_mapping(path, "event file (events: a list of {particles: [...]})")
    except UnicodeDecodeError as err:  # read_mapping reads text; a binary file is neither format
        raise ConfigError(f"{path}: not a text file (event files are YAML or HepMC3 ASCII): {err.reason} "
                          f"at byte {err.start}") from None
    unknown = sorted(set(tree) - {"events"}, key=str)
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key {unknown[0]!r} (known: events)")
    events = tree.get("events")
    if not isinstance(events, list):
        raise ConfigError(f"{path}: no top-level 'events' list (events: [{{particles: [...]}}, ...])")
    if not events:
        raise ConfigError(f"{path}: the events list is empty: there is nothing to simulate")
    rows: list[tuple[int, int, float, float, float, float, float]] = []
    for e, spec in enumerate(events):
        where = f"{path}: {describe(e)}"
        if not isinstance(spec, dict) or not isinstance(spec.get("particles"), list):
            raise ConfigError(f"{where}: must be a mapping with a 'particles' list, got {_short(spec)}")
        extra = sorted(set(spec) - {"particles"}, key=str)
        if extra:
            raise ConfigError(f"{where}: unknown key {extra[0]!r} (known: particles)")
        if not spec["particles"]:
            raise ConfigError(f"{where}: has no particles")
        for p, particle in enumerate(spec["particles"]):
            rows.append((e, *_yaml_particle(particle, f"{path}: {describe(e, p)}")))
    event, pdg, energy, theta, phi, x, y = (list(col) for col in zip(*rows, strict=True))
    particles = EventParticles.from_arrays(len(events), event, pdg, energy, np.radians(theta), np.radians(phi), x, y)
    return particles, {"format": "yaml", "n_events": len(events), "n_particles": len(particles), "skipped": {}}


def _yaml_particle(spec: Any, where: str) -> tuple[int, float, float, float, float, float]:
    """(pdg, energy_GeV, theta_deg, phi_deg, x_mm, y_mm) of one particle mapping, checked."""
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: must be a mapping {{pdg, energy_GeV, ...}}, got {_short(spec)}")
    unknown = sorted(set(spec) - set(_PARTICLE_KEYS), key=str)
    if unknown:
        raise ConfigError(f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
                          f"(known: {', '.join(_PARTICLE_KEYS)})")
    for key in ("pdg", "energy_GeV"):
        if key not in spec:
            raise ConfigError(f"{where}: {key} is missing")
    pdg = _pdg(spec["pdg"], where)
    energy, theta, phi, x, y = (_number(spec, key, where) for key in
                                ("energy_GeV", "theta_deg", "phi_deg", "x_mm", "y_mm"))
    if energy <= 0:
        raise ConfigError(f"{where}: energy_GeV must be > 0, got {energy:g}")
    if not 0 <= theta < 90:
        raise ConfigError(f"{where}: theta_deg must be in [0, 90) (the angle to the face's normal), got {theta:g}")
    return pdg, energy, theta, phi, x, y


def _pdg(value: Any, where: str) -> int:
    code: int | None = None
    if isinstance(value, str):
        name = value.strip()
        code = PARTICLE_CODES.get(name)
        if code is None and name.lstrip("+-").isdigit():
            code = int(name)
    elif isinstance(value, int) and not isinstance(value, bool):
        code = value
    if code not in PARTICLE_NAMES:
        known = ", ".join(f"{name} ({c})" for c, name in PARTICLE_NAMES.items())
        raise ConfigError(f"{where}: unknown particle {value!r} for pdg (known: {known})")
    return code


def _number(spec: dict[str, Any], key: str, where: str) -> float:
    value = spec.get(key, 0.0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: {key} must be a number, got {_short(value)}")
    if not math.isfinite(value):
        raise ConfigError(f"{where}: {key} must be finite, got {value}")
    return float(value)


def _short(value: Any) -> str:
    """``repr`` cut to one short line, for quoting what the file holds."""
    text = repr(value).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


# --- HepMC3 ----------------------------------------------------------------------------------------------------------

def _read_hepmc3(path: Path, front_z_mm: float,
                 half_width_mm: float | None) -> tuple[EventParticles, dict[str, Any]]:
    try:
        import pyhepmc
    except ImportError:
        raise ConfigError(f"{path}: reading HepMC3 needs the optional extra: pip install 'fastshower[hepmc]'") from None
    rows: list[tuple[int, int, float, float, float, float, float]] = []
    skipped: Counter[str] = Counter()
    n_events = 0
    # HepMC3 prints its own multi-line complaints to stderr; the failures it reports become one ConfigError here
    saved = (pyhepmc.Setup.print_errors, pyhepmc.Setup.print_warnings, pyhepmc.Setup.debug_level)
    pyhepmc.Setup.print_errors, pyhepmc.Setup.print_warnings, pyhepmc.Setup.debug_level = False, False, 0
    try:
        reader = pyhepmc.io.ReaderAscii(str(path))
        try:
            while True:
                evt = pyhepmc.GenEvent()
                if not reader.read_event(evt):
                    raise ConfigError(f"{path}: {describe(n_events)}: cannot parse the HepMC3 record "
                                      "(corrupt or truncated file)")
                # reaching the end of the file sets failed(); the event read then is empty unless the file lacks
                # the END_EVENT_LISTING line (checked below), so pyhepmc's "no particles = end" rule is not used
                at_end = reader.failed()
                if at_end and not (len(evt.particles) or len(evt.vertices)):
                    break
                _take(evt, n_events, path, front_z_mm, half_width_mm, rows, skipped)
                n_events += 1
                if at_end:
                    break
        finally:
            reader.close()
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001 - whatever the C++ reader throws, it is the file's fault
        raise ConfigError(f"{path}: {describe(n_events)}: cannot read the HepMC3 record "
                          f"({str(err).splitlines()[0] if str(err) else type(err).__name__})") from None
    finally:
        pyhepmc.Setup.print_errors, pyhepmc.Setup.print_warnings, pyhepmc.Setup.debug_level = saved
    complete = _ends_with_footer(path)
    if n_events == 0:
        raise ConfigError(f"{path}: no events in the HepMC3 file"
                          + ("" if complete else " (and no END_EVENT_LISTING line: corrupt or truncated)"))
    if not complete:
        raise ConfigError(f"{path}: truncated HepMC3 file: it ends after {n_events} event(s) without the "
                          f"'{_HEPMC3_END.decode()}' line")
    cols = [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in range(7)]
    event, pdg, energy, theta, phi, x, y = cols
    particles = EventParticles.from_arrays(n_events, event, pdg, energy, theta, phi, x, y)
    info = {"format": "hepmc3", "n_events": n_events, "n_particles": len(particles),
            "skipped": dict(sorted(skipped.items()))}
    return particles, info


def _take(evt: Any, index: int, path: Path, front_z_mm: float, half_width_mm: float | None,
          rows: list[tuple[int, int, float, float, float, float, float]], skipped: Counter[str]) -> None:
    """Append the particles of one GenEvent that enter the face to ``rows`` and count the skipped ones."""
    import pyhepmc

    to_GeV = 1e-3 if evt.momentum_unit == pyhepmc.Units.MEV else 1.0
    to_mm = 10.0 if evt.length_unit == pyhepmc.Units.CM else 1.0
    for particle in evt.particles:
        if particle.status != 1:
            continue  # intermediate: its final-state descendants are what reaches the calorimeter
        pid = int(particle.pid)
        if pid not in _MASS_MeV:
            skipped[f"kind not simulated (pdg {pid})"] += 1
            continue
        mom = particle.momentum
        px, py, pz, e_GeV = (float(v) * to_GeV for v in (mom.px, mom.py, mom.pz, mom.e))
        vertex = particle.production_vertex  # the root vertex (the event's position) when the file gives none
        pos = vertex.position if vertex is not None else None
        x0, y0, z0 = (0.0, 0.0, 0.0) if pos is None else (float(pos.x) * to_mm, float(pos.y) * to_mm,
                                                        float(pos.z) * to_mm)
        if not all(math.isfinite(v) for v in (px, py, pz, e_GeV, x0, y0, z0)):
            raise ConfigError(f"{path}: {describe(index)}, particle id {particle.id}: momentum or production vertex "
                              "is not finite")
        if z0 > front_z_mm:
            skipped["produced behind the face"] += 1
            continue
        if pz <= 0:
            skipped["moving away from the face"] += 1
            continue
        kinetic_GeV = e_GeV - _MASS_MeV[pid] * 1e-3
        if kinetic_GeV <= 0:
            skipped["no kinetic energy"] += 1
            continue
        step = (front_z_mm - z0) / pz  # straight line: no field between the vertex and the face
        x_mm, y_mm = x0 + px * step, y0 + py * step
        if half_width_mm is not None and not (abs(x_mm) < half_width_mm and abs(y_mm) < half_width_mm):
            skipped["misses the face"] += 1
            continue
        rows.append((index, pid, kinetic_GeV, math.atan2(math.hypot(px, py), pz), math.atan2(py, px), x_mm, y_mm))


def _ends_with_footer(path: Path) -> bool:
    """True when the last non-blank line is HepMC3's END_EVENT_LISTING: a truncated file never has it."""
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - 4096))
        return handle.read().rstrip().endswith(_HEPMC3_END)
