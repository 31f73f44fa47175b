"""Events and fast simulation inside the detailed simulation: pi0 decays at dispatch, the trigger's choices, the
placement of the model's showers, the event files, reproducibility and the refusals (issue 15)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fastshower.cli import main
from fastshower.data.events import read_event_showers
from fastshower.errors import ConfigError
from fastshower.events import EventParticles
from fastshower.generate import load
from fastshower.geometry import load_geometry
from fastshower.hybrid import FastTrigger, ModelShowers, model_seed, place
from fastshower.mc import transport
from fastshower.mc.events import as_primaries, check_events, decay_seeds, entering_particles
from fastshower.mc.production import chunk_seeds
from fastshower.mc.simulator import Simulator

MODEL = "3dgan-clic-electrons"
PI0_MASS_GeV = transport.PI0_MASS_MeV / 1000.0
# four events: two electrons; a pi0; an electron and a photon; an electron at 1 degree
EVENTS_YAML = """
events:
  - particles:
      - {pdg: e-, energy_GeV: 12, x_mm: -30, y_mm: 0}
      - {pdg: 11, energy_GeV: 10, x_mm: 31.2, y_mm: 5}
  - particles:
      - {pdg: pi0, energy_GeV: 3, x_mm: 0, y_mm: 0}
  - particles:
      - {pdg: e-, energy_GeV: 11, x_mm: 10, y_mm: -10}
      - {pdg: gamma, energy_GeV: 2, x_mm: -40, y_mm: 20}
  - particles:
      - {pdg: e-, energy_GeV: 12, x_mm: 0, y_mm: 0, theta_deg: 1, phi_deg: 30}
"""


def events(*rows: tuple[int, int, float, float, float, float, float]) -> EventParticles:
    """Particles from rows (event, pdg, energy GeV, theta rad, phi rad, x mm, y mm)."""
    cols = list(zip(*rows, strict=True))
    return EventParticles.from_arrays(max(cols[0]) + 1, *cols)


@pytest.fixture(scope="module")
def wide():
    return load_geometry("clic-wide")


@pytest.fixture(scope="module")
def trigger(wide) -> FastTrigger:
    return FastTrigger.load(MODEL, wide)


@pytest.fixture(scope="module")
def event_files(tmp_path_factory) -> dict[str, Path]:
    """The four events with the full Monte Carlo and with the shipped model (one worker, chunks of 2)."""
    folder = tmp_path_factory.mktemp("events")
    spec = folder / "events.yaml"
    spec.write_text(EVENTS_YAML)
    out = {"spec": spec}
    for name, extra in (("full", []), ("hybrid", ["--fast-model", MODEL])):
        out[name] = folder / f"{name}.h5"
        assert main(["simulate", "--events", str(spec), "--geometry", "clic-wide", "--seed", "7", "--workers", "1",
                     "--chunk-size", "2", "--out", str(out[name]), "--quiet", *extra]) == 0
    return out


# --- pi0 decays and the entering particles ------------------------------------------------------------------


def test_pi0_decay_keeps_energy_momentum_and_mass():
    n = 200
    energies = np.full(n, 5000.0)  # MeV
    directions = np.tile([0.0, 0.0, 1.0], (n, 1))
    photons = transport.decay_pi0s(decay_seeds(3, np.arange(n)), energies, directions)
    k = photons[:, :, 0]
    p = k[:, :, None] * photons[:, :, 1:]
    assert np.allclose(k.sum(axis=1), 5000.0 + transport.PI0_MASS_MeV, rtol=1e-12)
    total_p = p.sum(axis=1)
    p_pi0 = np.sqrt((5000.0 + transport.PI0_MASS_MeV) ** 2 - transport.PI0_MASS_MeV ** 2)
    assert np.allclose(total_p, [0.0, 0.0, p_pi0], atol=1e-6 * p_pi0)
    mass = np.sqrt(k.sum(axis=1) ** 2 - np.sum(total_p ** 2, axis=1))
    assert np.allclose(mass, transport.PI0_MASS_MeV, rtol=1e-6)
    # isotropic in the rest frame: the lab energy of photon 1 is uniform in [E-, E+] (mean at half the energy)
    assert abs(k[:, 0].mean() / (0.5 * k.sum(axis=1).mean()) - 1.0) < 0.1
    again = transport.decay_pi0s(decay_seeds(3, np.arange(n)), energies, directions)
    assert np.array_equal(photons, again)


def test_entering_particles_replace_a_pi0_by_its_photons():
    given = events((0, 11, 20.0, 0.0, 0.0, -5.0, 0.0), (0, 111, 30.0, 0.1, 0.5, 10.0, 2.0),
                   (1, 22, 7.0, 0.0, 0.0, 0.0, 0.0))
    entering = entering_particles(given, seed=4)
    assert entering.pdg.tolist() == [11, 22, 22, 22]
    assert entering.event.tolist() == [0, 0, 0, 1] and entering.source.tolist() == [0, 1, 1, 2]
    assert np.allclose(entering.x_mm[1:3], 10.0) and np.allclose(entering.y_mm[1:3], 2.0)
    assert entering.energy_GeV[1:3].sum() == pytest.approx(30.0 + PI0_MASS_GeV, rel=1e-12)
    # boosted: the photons fly near the pi0's direction (opening angle ~ 2 m / E ~ 9 mrad)
    assert np.all(np.abs(entering.theta_rad[1:3] - 0.1) < 0.05)
    assert np.array_equal(entering.energy_GeV, entering_particles(given, seed=4).energy_GeV)
    assert not np.array_equal(entering.energy_GeV, entering_particles(given, seed=5).energy_GeV)


def test_check_events_names_the_event_and_the_particle(wide):
    outside = events((0, 11, 20.0, 0.0, 0.0, 0.0, 0.0), (1, 11, 20.0, 0.0, 0.0, 0.0, 0.0),
                     (1, 11, 20.0, 0.0, 0.0, 140.0, 0.0))
    with pytest.raises(ConfigError, match=r"^event 1, particle 1: entry point \(140, 0\) mm is outside the front "
                                          r"face of 'clic-wide'"):
        check_events(wide, outside)
    with pytest.raises(ConfigError, match=r"^event 0, particle 0: particle kind 211 is not simulated"):
        check_events(wide, events((0, 211, 20.0, 0.0, 0.0, 0.0, 0.0)))
    with pytest.raises(ConfigError, match=r"^event 0, particle 0: theta 95 deg must be in \[0, 90\)"):
        check_events(wide, events((0, 11, 20.0, np.radians(95), 0.0, 0.0, 0.0)))


# --- the trigger and the placement ----------------------------------------------------------------------


def test_place_shifts_clips_and_turns():
    shower = np.zeros((3, 3, 2), np.float32)
    shower[2, 1, 0] = 1.0  # one cell at +x of the centre
    shower[0, 0, 1] = 0.5
    image = np.zeros((5, 5, 2), np.float32)
    assert place(image, shower, 1, 1) == 0.0
    assert image[3, 2, 0] == 1.0 and image[1, 1, 1] == 0.5 and image.sum() == 1.5
    turned = np.zeros_like(image)
    place(turned, shower, 1, 1, quarter_turns=1)  # +x turns to +y
    assert turned[2, 3, 0] == 1.0
    clipped = np.zeros_like(image)
    assert place(clipped, shower, -1, -1) == pytest.approx(0.5)  # the (0, 0) cell lands at (-1, -1): outside
    assert clipped[1, 0, 0] == 1.0 and clipped.sum() == 1.0
    assert place(np.zeros_like(image), shower, 10, 0) == pytest.approx(1.5)


def test_placement_puts_the_entry_cell_on_the_entry_point(trigger):
    # clic-wide: 51 cells of 5.1 mm, the centre cell spans -2.55..2.55 mm; the model's 25 cells enter at cell 12
    rows = np.arange(4)
    particles = events(*((i, 11, 50.0, 0.0, 0.0, x, 0.0) for i, x in enumerate((0.0, 2.0, 2.6, -10.2))))
    where = trigger.placement(particles, rows)
    assert where.shift_x.tolist() == [13, 13, 14, 11]  # model cell 12 -> event cells 25, 25, 26, 23
    assert np.allclose(where.offset_x_mm, [0.0, 2.0, 2.6 - 5.1, 0.0])
    assert np.all(np.abs(where.offset_x_mm) <= 0.5 * 5.1) and where.shift_y.tolist() == [13] * 4


def test_trigger_takes_what_the_model_knows(wide):
    particles = events((0, 11, 50.0, 0.0, 0.0, 0, 0), (0, 22, 50.0, 0.0, 0.0, 0, 0), (0, -11, 50.0, 0.0, 0.0, 0, 0),
                       (0, 11, 5.0, 0.0, 0.0, 0, 0), (0, 11, 600.0, 0.0, 0.0, 0, 0),
                       (0, 11, 50.0, np.radians(1.0), 0.0, 0, 0), (0, 11, 30.0, 0.0, 0.0, 0, 0))
    strict = FastTrigger.load(MODEL, wide)
    assert strict.select(particles).tolist() == [True, False, False, False, False, False, True]
    loose = FastTrigger.load(MODEL, wide, min_energy_GeV=40.0, theta_tolerance_deg=2.0)
    assert loose.select(particles).tolist() == [True, False, False, False, False, True, False]
    assert "takes e- of 40-510 GeV at normal incidence (within 2 deg) on 'clic-wide'" in loose.describe()


def test_trigger_refuses_a_model_of_another_detector(tmp_path):
    detector = tmp_path / "thin.yaml"
    detector.write_text("name: thin\ngrid: {nx: 51, ny: 51, pitch_mm: 5.1}\n"
                        "layers: [{repeat: 25, absorber: W, absorber_mm: 2.4, sensor: Si, sensor_mm: 0.5}]\n")
    with pytest.raises(ConfigError, match=r"^model '3dgan-clic-electrons': learned detector 'clic', which differs "
                                          r"from 'thin' \(layer 17: W 4.8 mm \+ Si 0.5 mm vs W 2.4 mm"):
        FastTrigger.load(MODEL, load_geometry(detector))
    coarse = tmp_path / "coarse.yaml"
    coarse.write_text(detector.read_text().replace("name: thin", "name: coarse").replace("5.1", "10.2")
                      .replace("{repeat: 25, absorber: W, absorber_mm: 2.4, sensor: Si, sensor_mm: 0.5}",
                               "{repeat: 17, absorber: W, absorber_mm: 2.4, sensor: Si, sensor_mm: 0.5}, "
                               "{repeat: 8, absorber: W, absorber_mm: 4.8, sensor: Si, sensor_mm: 0.5}"))
    with pytest.raises(ConfigError, match=r"cell pitch 5.1 mm vs 10.2 mm"):
        FastTrigger.load(MODEL, load_geometry(coarse))


# --- event files ------------------------------------------------------------------------------------------


def test_event_file_holds_the_particles_and_a_closed_ledger(event_files):
    full, hybrid = read_event_showers(event_files["full"]), read_event_showers(event_files["hybrid"])
    assert full.images.shape == (4, 51, 51, 25)
    assert full.particles.pdg.tolist() == [11, 11, 22, 22, 11, 22, 11]  # the pi0 entered as two photons
    assert full.particles.source.tolist() == [0, 1, 2, 2, 3, 4, 5]
    assert not full.fast.any()
    assert hybrid.fast.tolist() == [True, True, False, False, True, False, False]  # e- at 1 deg: not at 0 deg
    assert np.allclose(full.showers.energy_GeV, [22.0, 3.0, 13.0, 12.0])
    for sample in (full, hybrid):
        ledger = sample.showers.ledger
        total = sum(ledger[k] for k in ("sensor", "passive", "leak_front", "leak_side", "leak_back", "fast"))
        assert np.allclose(total, ledger["available"], rtol=1e-9)
        assert np.allclose(ledger["available"], [22.0, 3.0 + PI0_MASS_GeV, 13.0, 12.0])
    h = hybrid.showers.ledger
    assert np.allclose(h["fast"], [22.0, 0.0, 11.0, 0.0])
    assert np.allclose(h["fast_sensor"] + h["sensor"], hybrid.images.sum(axis=(1, 2, 3)), rtol=1e-5)
    assert np.all(h["fast_outside"] == 0.0)


def test_pi0_photons_stay_in_the_monte_carlo_with_the_shipped_electron_model(event_files):
    """No photon model is shipped: the photons of a pi0 (and the electron at 1 degree, outside the model's normal
    incidence) are transported, so those events are the full simulation's, bit for bit (same seeds)."""
    full, hybrid = read_event_showers(event_files["full"]), read_event_showers(event_files["hybrid"])
    photons = hybrid.particles.pdg == 22
    assert photons.sum() == 3 and not hybrid.fast[photons].any()
    for event in (1, 3):
        assert np.array_equal(hybrid.images[event], full.images[event])
        for key in ("sensor", "passive", "leak_front", "leak_side", "leak_back"):
            assert hybrid.showers.ledger[key][event] == full.showers.ledger[key][event]


def test_hybrid_image_is_the_placed_model_showers_plus_the_transported_particles(event_files, wide, trigger):
    hybrid = read_event_showers(event_files["hybrid"])
    particles = hybrid.particles
    rows = np.flatnonzero(hybrid.fast)
    showers = ModelShowers(trigger, particles, hybrid.fast, 7).take(rows)
    # each is the model's shower number `row` of the run's model seed (the same noise in any batch)
    alone = load(MODEL).sample_rows(particles.energy_GeV[rows[:1]], np.zeros(1), rows[:1], model_seed(7))
    assert np.allclose(alone[0], showers[0], rtol=0.05, atol=1e-4)
    where = trigger.placement(particles, rows)
    # event 2: the photon (row 5) transported from its own seed, then the electron's (row 4) model shower
    expected = Simulator(wide).run(as_primaries(particles.subset(np.array([5]))), chunk_seeds(7, 5, 6),
                                   readout=False).images[0]
    expected2 = np.zeros_like(expected)
    place(expected2, showers[2], int(where.shift_x[2]), int(where.shift_y[2]))
    assert np.array_equal(hybrid.images[2], expected + expected2)
    # event 0: the two electrons' model showers, each centred on its entry cell
    expected = np.zeros_like(expected)
    for i in (0, 1):
        place(expected, showers[i], int(where.shift_x[i]), int(where.shift_y[i]))
    assert np.array_equal(hybrid.images[0], expected)
    x_cells = (np.arange(51) + 0.5) * 5.1 - 130.05
    profile = hybrid.images[0].sum(axis=(1, 2))
    left, right = profile[:25], profile[26:]
    assert abs(np.average(x_cells[:25], weights=left) + 30.6) < 1.0  # -30 mm lies in the cell centred at -30.6
    assert abs(np.average(x_cells[26:], weights=right) - 30.6) < 1.0  # 31.2 mm: in the cell centred at 30.6


def test_hybrid_events_do_not_depend_on_workers_or_chunks(event_files, tmp_path):
    other = tmp_path / "other.h5"
    assert main(["simulate", "--events", str(event_files["spec"]), "--geometry", "clic-wide", "--seed", "7",
                 "--workers", "2", "--chunk-size", "3", "--out", str(other), "--quiet", "--fast-model", MODEL]) == 0
    a, b = read_event_showers(event_files["hybrid"]), read_event_showers(other)
    assert np.array_equal(a.images, b.images)
    for key, values in a.showers.ledger.items():
        assert np.array_equal(values, b.showers.ledger[key]), key


def test_first_n_events(event_files, tmp_path):
    out = tmp_path / "two.h5"
    assert main(["simulate", "--events", str(event_files["spec"]), "--geometry", "clic-wide", "--seed", "7",
                 "--workers", "1", "--n", "2", "--out", str(out), "--quiet"]) == 0
    assert np.array_equal(read_event_showers(out).images, read_event_showers(event_files["full"]).images[:2])


# --- refusals ------------------------------------------------------------------------------------------------


def one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("fastshower: error: ")
    return lines[0]


@pytest.mark.parametrize(("content", "extra", "message"), [
    ("events: [{particles: [{pdg: e-, energy_GeV: 20}]}, {particles: [{pdg: e-, energy_GeV: 20, x_mm: 300}]}]",
     [], "event 1, particle 0: entry point (300, 0) mm is outside the front face of 'clic-wide'"),
    ("events: [{particles: [{pdg: e-, energy_GeV: 20}]}]", ["--fast-model", "no-such-model"],
     "model 'no-such-model': no such file and not a shipped model"),
    ("events: [{particles: [{pdg: e-, energy_GeV: 20}]}]", ["--geometry", "configs/calice-siw.yaml",
                                                             "--fast-model", MODEL],
     "model '3dgan-clic-electrons': learned detector 'clic', which differs from"),
    ("events: [{particles: [{pdg: e-, energy_GeV: 20}]}]", ["--fast-model", MODEL, "--fast-min-energy", "-1"],
     "fast-model minimum energy -1.0: must be a finite number >= 0 GeV"),
])
def test_bad_events_or_models_are_refused_before_anything_is_written(tmp_path, capsys, content, extra, message):
    spec = tmp_path / "events.yaml"
    spec.write_text(content)
    out = tmp_path / "out.h5"
    args = ["simulate", "--events", str(spec), "--geometry", "clic-wide", "--out", str(out), "--quiet"]
    if "--geometry" in extra:
        at = args.index("--geometry")
        args[at + 1] = str(Path(__file__).parents[1] / extra[extra.index("--geometry") + 1])
        extra = [v for i, v in enumerate(extra) if i not in (extra.index("--geometry"), extra.index("--geometry") + 1)]
    assert main([*args, *extra]) != 0
    assert message in one_error_line(capsys)
    assert not out.exists() and not Path(f"{out}.partial").exists()


def test_fast_model_without_events_and_missing_primaries_are_refused(tmp_path, capsys):
    out = tmp_path / "out.h5"
    assert main(["simulate", "--particle", "e-", "--energy", "20", "--n", "2", "--out", str(out),
                 "--fast-model", MODEL]) != 0
    assert "--fast-model: works on events (--events FILE)" in one_error_line(capsys)
    assert main(["simulate", "--energy", "20", "--out", str(out)]) != 0
    assert "--particle, --n: required (or --events FILE)" in one_error_line(capsys)
    assert not out.exists()


def test_event_files_are_not_merged_into_shower_files(event_files, tmp_path):
    from fastshower.data import merge_showers
    from fastshower.errors import DataFormatError

    with pytest.raises(DataFormatError, match=r"full.h5: is an event file; merging would drop its particle table"):
        merge_showers([event_files["full"], event_files["hybrid"]], tmp_path / "merged.h5")
    assert not (tmp_path / "merged.h5").exists()


def test_hepmc3_events_through_simulate(tmp_path, capsys):
    import h5py

    from test_event_files import _write  # the HepMC3 file of the reader's tests: a collision, a pi- event, an e+

    source = _write(tmp_path / "events.hepmc3")
    out = tmp_path / "hepmc.h5"
    assert main(["simulate", "--events", str(source), "--front-z-mm", "100", "--geometry", "clic-wide", "--workers",
                 "1", "--out", str(out), "--fast-model", MODEL, "--fast-angle-tolerance", "0.5"]) == 0
    printed = capsys.readouterr().out
    assert "1 particles skipped: misses the face" in printed and "1 events without an entering particle left out" \
        in printed
    sample = read_event_showers(out)
    assert sample.images.shape[0] == 2
    with h5py.File(out) as f:
        assert f["events/number"][...].tolist() == [0, 2]
    # the collision's photons, electron (0.29 deg: taken within 0.5 deg) and pi0 (two photons); then the e+
    assert sorted(sample.particles.pdg[sample.particles.event == 0].tolist()) == [11, 22, 22, 22, 22]
    assert sample.particles.pdg[sample.fast].tolist() == [11]
    assert sample.particles.pdg[sample.particles.event == 1].tolist() == [-11]
    ledger = sample.showers.ledger
    total = sum(ledger[k] for k in ("sensor", "passive", "leak_front", "leak_side", "leak_back", "fast"))
    assert np.allclose(total, ledger["available"], rtol=1e-9)


# --- event-level physics: the machinery adds nothing to the model's own showers ----------------------------------


def far_apart_events(n: int, seed: int) -> str:
    """YAML of n events of two 20-80 GeV electrons ~130 mm apart on clic-wide (the model's 25-cell grids do not
    overlap), entry points anywhere inside their cells."""
    rng = np.random.default_rng(seed)
    lines = ["events:"]
    for _ in range(n):
        e1, e2 = rng.uniform(20, 80, 2)
        x1, x2 = rng.uniform(-66, -62), rng.uniform(62, 66)
        y1, y2 = rng.uniform(-10, 10, 2)
        lines.append(f"  - particles: [{{pdg: e-, energy_GeV: {e1:.6f}, x_mm: {x1:.6f}, y_mm: {y1:.6f}}}, "
                     f"{{pdg: e-, energy_GeV: {e2:.6f}, x_mm: {x2:.6f}, y_mm: {y2:.6f}}}]")
    return "\n".join(lines) + "\n"


def test_cluster_energies_and_centroids_in_hybrid_events_are_the_models_own(tmp_path, wide, trigger):
    from fastshower.validate.events import event_observables

    spec = tmp_path / "far.yaml"
    spec.write_text(far_apart_events(150, seed=2))
    out = tmp_path / "far.h5"
    assert main(["simulate", "--events", str(spec), "--geometry", "clic-wide", "--seed", "3", "--out", str(out),
                 "--quiet", "--fast-model", MODEL]) == 0
    sample = read_event_showers(out)
    assert sample.fast.all()
    observed = event_observables(sample, wide)
    particles, rows = sample.particles, np.arange(len(sample.particles))
    showers = ModelShowers(trigger, particles, sample.fast, 3).take(rows)
    # every cell of a model shower lands in the event and in its particle's cluster
    assert np.allclose(observed["cluster_GeV"], showers.sum(axis=(1, 2, 3), dtype=np.float64), rtol=1e-5)
    assert np.all(sample.showers.ledger["fast_outside"] == 0.0)
    # the cluster's centre is the model's own shower centre, moved by the entry cell's placement
    x_model = (np.arange(25) + 0.5) * 5.1 - 63.75
    px, py = showers.sum(axis=(2, 3)), showers.sum(axis=(1, 3))
    centre_x, centre_y = (px * x_model).sum(1) / px.sum(1), (py * x_model).sum(1) / py.sum(1)
    where = trigger.placement(particles, rows)
    assert np.allclose(observed["centroid_x_mm"], centre_x - where.offset_x_mm, atol=1e-3)
    assert np.allclose(observed["centroid_y_mm"], centre_y - where.offset_y_mm, atol=1e-3)
    # entry points anywhere in their cells: the offsets the placement leaves are within half a pitch, rms ~ p/sqrt(12)
    assert np.all(np.abs(where.offset_x_mm) <= 2.55 + 1e-9) and np.all(np.abs(where.offset_y_mm) <= 2.55 + 1e-9)
    assert 1.0 < np.std(where.offset_x_mm) < 2.0


@pytest.mark.slow
def test_hybrid_against_full_simulation_differs_by_the_models_own_error(tmp_path, wide):
    """150 events of two 20-80 GeV electrons, full MC and hybrid with the shipped model. The placement-driven checks
    (separation, the y centroid) pass; the particles' response differs from the full MC's by exactly the model's own
    error (its showers against the MC's at the same energies), within the floor: the trigger adds nothing."""
    from fastshower.validate.events import compare_events, event_observables

    spec = tmp_path / "far.yaml"
    spec.write_text(far_apart_events(150, seed=5))
    files = {}
    for name, extra in (("full", []), ("hybrid", ["--fast-model", MODEL])):
        files[name] = tmp_path / f"{name}.h5"
        assert main(["simulate", "--events", str(spec), "--geometry", "clic-wide", "--seed", "9", "--out",
                     str(files[name]), "--quiet", *extra]) == 0
    full, hybrid = read_event_showers(files["full"]), read_event_showers(files["hybrid"])
    result = compare_events(full, hybrid)
    checks = result["checks"]
    assert checks["separation"]["status"] == "pass" and checks["centroid_y"]["status"] == "pass"
    # the model's own response against the MC's, from showers made apart from the events (another seed)
    energies = full.particles.energy_GeV
    model_fraction = load(MODEL).sample(energies, seed=99).sum(axis=(1, 2, 3), dtype=np.float64) / energies
    mc_fraction = event_observables(full, wide)["cluster_fraction"]
    expected = model_fraction.mean() / mc_fraction.mean() - 1.0
    response = checks["particle_response"]
    # the two share the MC's showers: they differ by the noise of two independent model samples only
    se = np.sqrt(2.0 / energies.size) * model_fraction.std() / model_fraction.mean()
    assert abs(abs(expected) - response["value"]) < 3 * se


def test_validate_compares_event_files_event_by_event(event_files, tmp_path, capsys):
    from fastshower.validate.report import run_validation

    metrics = run_validation(event_files["full"], event_files["hybrid"], tmp_path / "report", energy_edges=(1, 30),
                             reference2=event_files["full"], classifier=False, plots=False)
    events = metrics["events"]
    assert events["n_events"] == 4 and events["n_fast"] == 3
    assert events["verdict"] == "INSUFFICIENT" and metrics["verdict"] == "INSUFFICIENT"  # 4 events: no verdict
    assert set(events["checks"]) >= {"response", "particle_response", "centroid_x", "separation", "profile"}
    page = (tmp_path / "report" / "index.html").read_text()
    assert "Event-level checks" in page and "particle_response" in page
    assert main(["inspect", str(event_files["hybrid"])]) == 0
    printed = capsys.readouterr().out
    assert "events:     4" in printed and "7 entered, 3 made by a fast model" in printed
