"""Event description files: the YAML event list and HepMC3 ASCII files (written here with pyhepmc itself)."""

from __future__ import annotations

import gzip
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from fastshower.data.event_files import EVENT_FORMATS, read_events
from fastshower.errors import ConfigError

pyhepmc = pytest.importorskip("pyhepmc")

M_E_MeV = 0.51099895
M_PI0_MeV = 134.9768


def _raises(path: Path, pattern: str, **kwargs: float) -> str:
    """The one-line ConfigError text of ``read_events(path)``, which must match ``pattern`` and name the file."""
    with pytest.raises(ConfigError, match=pattern) as info:
        read_events(path, **kwargs)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(str(path))
    return text


# --- YAML ------------------------------------------------------------------------------------------------------------

def test_yaml_two_events_names_codes_defaults_and_degrees(tmp_path: Path) -> None:
    path = tmp_path / "events.hepmc"  # the suffix does not matter: the content is YAML
    path.write_text("""
events:
  - particles:
      - {pdg: 11, energy_GeV: 50, x_mm: -20, y_mm: 3.5, theta_deg: 30, phi_deg: -45}
      - {pdg: e-, energy_GeV: 40, x_mm: 25}
      - {pdg: gamma, energy_GeV: 7.5, theta_deg: 10}
  - particles: [{pdg: 111, energy_GeV: 60}, {pdg: e+, energy_GeV: 1}, {pdg: -11, energy_GeV: 2, phi_deg: 180}]
""")
    parts, info = read_events(path)
    assert info == {"format": "yaml", "n_events": 2, "n_particles": 6, "skipped": {}}
    assert info["format"] in EVENT_FORMATS
    assert parts.n_events == 2
    np.testing.assert_array_equal(parts.event, [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(parts.pdg, [11, 11, 22, 111, -11, -11])
    np.testing.assert_allclose(parts.energy_GeV, [50, 40, 7.5, 60, 1, 2])
    np.testing.assert_allclose(parts.theta_rad, [math.pi / 6, 0, math.pi / 18, 0, 0, 0])
    np.testing.assert_allclose(parts.phi_rad, [-math.pi / 4, 0, 0, 0, 0, math.pi])
    np.testing.assert_allclose(parts.x_mm, [-20, 25, 0, 0, 0, 0])
    np.testing.assert_allclose(parts.y_mm, [3.5, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(parts.offsets(), [0, 3, 6])


def _particles(line: str) -> str:
    return "events:\n  - particles: [{pdg: 22, energy_GeV: 1}]\n  - particles:\n      - {pdg: 11, energy_GeV: 5}\n" \
        f"      - {line}\n"


YAML_ERRORS = {
    "not yaml": ("events: [unclosed\n", r"not valid YAML"),
    "empty file": ("", r"no top-level 'events' list"),
    "no events key": ("event:\n  - particles: []\n", r"unknown top-level key 'event' \(known: events\)"),
    "events not a list": ("events: {particles: []}\n", r"no top-level 'events' list"),
    "zero events": ("events: []\n", r"the events list is empty"),
    "event not a mapping": ("events:\n  - [1, 2]\n", r"event 0: must be a mapping with a 'particles' list"),
    "event without particles list": ("events:\n  - {particles: 3}\n",
                                     r"event 0: must be a mapping with a 'particles' list, got \{'particles': 3\}"),
    "unknown event key": ("events:\n  - {particles: [{pdg: 22, energy_GeV: 1}], weight: 2}\n",
                          r"event 0: unknown key 'weight' \(known: particles\)"),
    "empty particles": ("events:\n  - particles: [{pdg: 22, energy_GeV: 1}]\n  - particles: []\n",
                        r"event 1: has no particles"),
    "particle not a mapping": (_particles("[22, 5]"), r"event 1, particle 1: must be a mapping"),
    "unknown particle keys": (_particles("{pdg: 22, energy_GeV: 1, energy: 3, theta: 1}"),
                              r"event 1, particle 1: unknown keys 'energy', 'theta' \(known: pdg, energy_GeV, x_mm, "
                              r"y_mm, theta_deg, phi_deg\)"),
    "missing energy": (_particles("{pdg: 22}"), r"event 1, particle 1: energy_GeV is missing"),
    "missing pdg": (_particles("{energy_GeV: 3}"), r"event 1, particle 1: pdg is missing"),
    "energy not a number": (_particles("{pdg: 22, energy_GeV: lots}"),
                            r"event 1, particle 1: energy_GeV must be a number, got 'lots'"),
    "energy nan": (_particles("{pdg: 22, energy_GeV: .nan}"), r"event 1, particle 1: energy_GeV must be finite"),
    "x inf": (_particles("{pdg: 22, energy_GeV: 1, x_mm: .inf}"), r"event 1, particle 1: x_mm must be finite"),
    "angle bool": (_particles("{pdg: 22, energy_GeV: 1, phi_deg: true}"),
                   r"event 1, particle 1: phi_deg must be a number, got True"),
    "unknown name": (_particles("{pdg: mu-, energy_GeV: 1}"),
                     r"event 1, particle 1: unknown particle 'mu-' for pdg \(known: e- \(11\), e\+ \(-11\), "
                     r"gamma \(22\), pi0 \(111\)\)"),
    "unknown code": (_particles("{pdg: 13, energy_GeV: 1}"), r"event 1, particle 1: unknown particle 13 for pdg"),
    "pdg not an integer": (_particles("{pdg: 11.0, energy_GeV: 1}"),
                           r"event 1, particle 1: unknown particle 11.0 for pdg"),
    "zero energy": (_particles("{pdg: 22, energy_GeV: 0}"), r"event 1, particle 1: energy_GeV must be > 0, got 0"),
    "negative energy": (_particles("{pdg: 22, energy_GeV: -2}"),
                        r"event 1, particle 1: energy_GeV must be > 0, got -2"),
    "theta 90": (_particles("{pdg: 22, energy_GeV: 1, theta_deg: 90}"),
                 r"event 1, particle 1: theta_deg must be in \[0, 90\).*got 90"),
    "theta negative": (_particles("{pdg: 22, energy_GeV: 1, theta_deg: -1}"),
                       r"event 1, particle 1: theta_deg must be in \[0, 90\).*got -1"),
}


@pytest.mark.parametrize("case", sorted(YAML_ERRORS))
def test_yaml_errors_are_one_line_and_name_the_place(tmp_path: Path, case: str) -> None:
    text, pattern = YAML_ERRORS[case]
    path = tmp_path / "events.yaml"
    path.write_text(text)
    _raises(path, pattern)


def test_unreadable_and_binary_files(tmp_path: Path) -> None:
    _raises(tmp_path / "missing.yaml", r"cannot read event file \(No such file or directory\)")
    _raises(tmp_path, r"cannot read event file")  # a directory
    binary = tmp_path / "events.bin"
    binary.write_bytes(b"\xff\xfe\x00\x01" * 10)
    _raises(binary, r"not a text file")
    packed = tmp_path / "events.hepmc3.gz"
    packed.write_bytes(gzip.compress(b"HepMC::Version 3.02.05\n"))
    _raises(packed, r"a compressed file: decompress it first")


def test_bad_geometry_arguments(tmp_path: Path) -> None:
    path = tmp_path / "events.yaml"
    path.write_text("events: [{particles: [{pdg: 22, energy_GeV: 1}]}]\n")
    _raises(path, r"half_width_mm .* must be a positive number, got -1", half_width_mm=-1.0)
    _raises(path, r"front_z_mm .* must be a finite number, got nan", front_z_mm=float("nan"))


# --- HepMC3 ----------------------------------------------------------------------------------------------------------

def _vertex(x: float, y: float, z: float, beam: bool = False) -> object:
    """A vertex at (x, y, z); ``beam``: with an incoming beam proton (status 4), as generators write them (HepMC3
    writes a vertex without incoming particles as ``V -1 0 []``, which its own reader then refuses)."""
    vertex = pyhepmc.GenVertex(pyhepmc.FourVector(x, y, z, 0.0))
    if beam:
        vertex.add_particle_in(_particle(0, 0, 1e5, 2212, status=4))
    return vertex


def _particle(px: float, py: float, pz: float, pid: int, status: int = 1, mass: float = 0.0) -> object:
    e = math.sqrt(px * px + py * py + pz * pz + mass * mass)
    return pyhepmc.GenParticle(pyhepmc.FourVector(px, py, pz, e), pid, status)


def _collision() -> object:
    """Event 0, in MeV and cm: a pi0 -> gamma gamma at a displaced vertex and other products of a primary vertex."""
    evt = pyhepmc.GenEvent(pyhepmc.Units.MEV, pyhepmc.Units.CM)
    primary = _vertex(0.0, 0.0, -50.0, beam=True)  # cm: z = -500 mm
    g1, g2 = _particle(300, 400, 12000, 22), _particle(-200, 100, 8000, 22)
    pi0 = pyhepmc.GenParticle(g1.momentum + g2.momentum, 111, 2)
    primary.add_particle_out(pi0)
    for p in (_particle(0, 0, 5000, 211), _particle(10, 0, 900, 14), _particle(0, 0, -3000, 22),
              _particle(3000, 0, 3000, 22), _particle(0, 100, 20000, 11, mass=M_E_MeV)):
        primary.add_particle_out(p)  # pi+, nu_mu, backward photon, wide photon (x = 600 mm), electron
    evt.add_vertex(primary)
    decay = _vertex(1.0, -0.5, -20.0)  # cm: (10, -5, -200) mm
    decay.add_particle_in(pi0)
    decay.add_particle_out(g1)
    decay.add_particle_out(g2)
    evt.add_vertex(decay)
    evt.add_particle(_particle(0, 0, 30000, 111, mass=M_PI0_MeV))  # no production vertex: starts at the origin
    return evt


def _write(path: Path) -> Path:
    """Three events: the collision, one with a pi- only, one e+ in GeV and mm."""
    empty = pyhepmc.GenEvent(pyhepmc.Units.GEV, pyhepmc.Units.MM)
    vertex = _vertex(0, 0, -10, beam=True)
    vertex.add_particle_out(_particle(0, 1, 5, -211))
    empty.add_vertex(vertex)
    positron = pyhepmc.GenEvent(pyhepmc.Units.GEV, pyhepmc.Units.MM)
    vertex = _vertex(5.0, 0.0, -100.0, beam=True)
    vertex.add_particle_out(_particle(0, 0, 10, -11, mass=M_E_MeV * 1e-3))
    positron.add_vertex(vertex)
    with pyhepmc.io.WriterAscii(str(path)) as writer:
        for i, evt in enumerate((_collision(), empty, positron)):
            evt.event_number = 100 + i
            writer.write_event(evt)
    return path


def test_hepmc3_entry_points_energies_angles_and_skips(tmp_path: Path) -> None:
    path = _write(tmp_path / "events.yaml")  # the suffix does not matter: the content is HepMC3
    parts, info = read_events(path, front_z_mm=100.0)
    assert info["format"] == "hepmc3" and info["n_events"] == 3 and info["n_particles"] == 6
    assert info["skipped"] == {"kind not simulated (pdg -211)": 1, "kind not simulated (pdg 14)": 1,
                               "kind not simulated (pdg 211)": 1, "moving away from the face": 1}
    np.testing.assert_array_equal(parts.event, [0, 0, 0, 0, 0, 2])  # event 1 stays, empty
    rows = {(int(p), round(float(x), 6)): i for i, (p, x) in enumerate(zip(parts.pdg, parts.x_mm, strict=True))}
    # the photons start at (10, -5, -200) mm and fly 300 mm to z = 100: x = 10 + px/pz * 300, y = -5 + py/pz * 300
    expected = {
        (22, 17.5): (5.0, math.sqrt(300**2 + 400**2 + 12000**2) * 1e-3, math.atan2(500, 12000), math.atan2(400, 300)),
        (22, 2.5): (-1.25, math.sqrt(200**2 + 100**2 + 8000**2) * 1e-3, math.atan2(math.hypot(200, 100), 8000),
                    math.atan2(100, -200)),
        # from (0, 0, -500) mm, 600 mm to the face
        (22, 600.0): (0.0, math.sqrt(2) * 3.0, math.pi / 4, 0.0),
        (11, 0.0): (3.0, (math.sqrt(100**2 + 20000**2 + M_E_MeV**2) - M_E_MeV) * 1e-3, math.atan2(100, 20000),
                    math.pi / 2),
        (111, 0.0): (0.0, (math.sqrt(30000**2 + M_PI0_MeV**2) - M_PI0_MeV) * 1e-3, 0.0, 0.0),
        (-11, 5.0): (0.0, math.sqrt(100 + (M_E_MeV * 1e-3) ** 2) - M_E_MeV * 1e-3, 0.0, 0.0),
    }
    assert set(rows) == set(expected)
    for key, (y, energy, theta, phi) in expected.items():
        i = rows[key]
        assert parts.y_mm[i] == pytest.approx(y, abs=1e-9)
        assert parts.energy_GeV[i] == pytest.approx(energy, rel=1e-12)
        assert parts.theta_rad[i] == pytest.approx(theta, abs=1e-12)
        assert parts.phi_rad[i] == pytest.approx(phi, abs=1e-12)
    # the decayed pi0 (status 2) is not among the particles: its photons are
    assert np.count_nonzero(parts.pdg == 111) == 1


def test_hepmc3_face_cut_and_vertices_behind_the_face(tmp_path: Path) -> None:
    path = _write(tmp_path / "events.hepmc3")
    parts, info = read_events(path, front_z_mm=100.0, half_width_mm=150.0)
    assert info["n_particles"] == 5 and info["skipped"]["misses the face"] == 1
    assert float(np.max(np.abs(parts.x_mm))) == pytest.approx(17.5)
    parts, info = read_events(path, front_z_mm=-300.0)  # the decay vertex (z -200 mm), origin and e+'s lie behind
    assert info["skipped"]["produced behind the face"] == 4
    np.testing.assert_array_equal(np.sort(parts.pdg), [11, 22])
    np.testing.assert_allclose(np.sort(parts.x_mm), [0.0, 200.0])  # the wide photon after 200 mm; the electron


def test_hepmc3_empty_events_keep_their_place(tmp_path: Path) -> None:
    path = tmp_path / "events.hepmc3"
    with pyhepmc.io.WriterAscii(str(path)) as writer:
        for k in range(4):
            evt = pyhepmc.GenEvent()
            if k == 2:  # events 0, 1 and 3 have no particles at all (pyhepmc's own iterator would stop at event 0)
                evt.add_particle(_particle(0, 0, 7, 22))
            writer.write_event(evt)
    parts, info = read_events(path)
    assert info["n_events"] == 4 and parts.n_events == 4
    np.testing.assert_array_equal(parts.event, [2])
    np.testing.assert_allclose(parts.energy_GeV, [7.0])


def test_hepmc3_truncated_and_garbage_files(tmp_path: Path) -> None:
    good = _write(tmp_path / "good.hepmc3").read_text()
    lines = good.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.startswith("E ")]
    assert len(starts) == 3
    cut_line = tmp_path / "cut_line.hepmc3"
    cut_line.write_text("".join(lines[:starts[2] + 3]))  # inside event 2: its E line promises more than is there
    _raises(cut_line, r"event 2: cannot parse the HepMC3 record \(corrupt or truncated file\)")
    cut_byte = tmp_path / "cut_byte.hepmc3"
    cut_byte.write_text(good[:len("".join(lines[:starts[1] + 3])) + 20])  # in the middle of a line of event 1
    _raises(cut_byte, r"event 1: cannot parse the HepMC3 record")
    cut_event = tmp_path / "cut_event.hepmc3"
    cut_event.write_text("".join(lines[:starts[2]]))  # at an event boundary: only the missing footer shows it
    _raises(cut_event, r"truncated HepMC3 file: it ends after 2 event\(s\) without the "
                       r"'HepMC::Asciiv3-END_EVENT_LISTING' line")
    header = "HepMC::Version 3.02.05\nHepMC::Asciiv3-START_EVENT_LISTING\n"
    garbage = tmp_path / "garbage.hepmc3"
    garbage.write_text(header + "this is not\nan event listing 1 2 3\n")
    _raises(garbage, r"no events in the HepMC3 file \(and no END_EVENT_LISTING line: corrupt or truncated\)")
    bad_record = tmp_path / "bad_record.hepmc3"
    bad_record.write_text(header + "E 0 1 1\nU GEV MM\nP 1 0 22 one two three\n")
    _raises(bad_record, r"event 0: cannot parse the HepMC3 record")
    nothing = tmp_path / "nothing.hepmc3"
    nothing.write_text(header + "HepMC::Asciiv3-END_EVENT_LISTING\n\n")
    _raises(nothing, r"no events in the HepMC3 file$")
    hepmc2 = tmp_path / "old.hepmc"
    hepmc2.write_text("HepMC::Version 2.06.09\nHepMC::IO_GenEvent-START_EVENT_LISTING\nE 1 2 3\n")
    _raises(hepmc2, r"a HepMC file but not HepMC3 ASCII \('HepMC::IO_GenEvent-START_EVENT_LISTING'")


def test_hepmc3_reading_restores_the_library_settings(tmp_path: Path) -> None:
    bad = tmp_path / "bad.hepmc3"
    bad.write_text("HepMC::Version 3.02.05\nHepMC::Asciiv3-START_EVENT_LISTING\nE 0 1 1\nU GEV MM\nP 1 0 22 x\n")
    saved = (pyhepmc.Setup.print_errors, pyhepmc.Setup.print_warnings)
    pyhepmc.Setup.print_errors, pyhepmc.Setup.print_warnings = True, False
    try:
        _raises(bad, r"cannot parse")
        assert (pyhepmc.Setup.print_errors, pyhepmc.Setup.print_warnings) == (True, False)
    finally:
        pyhepmc.Setup.print_errors, pyhepmc.Setup.print_warnings = saved


def test_hepmc3_without_pyhepmc_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "events.hepmc3")
    monkeypatch.setitem(sys.modules, "pyhepmc", None)  # makes ``import pyhepmc`` fail
    _raises(path, r"reading HepMC3 needs the optional extra: pip install 'fastshower\[hepmc\]'")
    yaml_path = tmp_path / "events.yaml"  # YAML files never need it
    yaml_path.write_text("events: [{particles: [{pdg: gamma, energy_GeV: 3}]}]\n")
    assert read_events(yaml_path)[1]["n_particles"] == 1
