"""Event-level checks (validate/events.py) on synthetic two-particle events: Gaussian blobs, no Monte Carlo."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from fastshower.data import ShowerData
from fastshower.data.events import EventShowers, event_summary
from fastshower.errors import ConfigError
from fastshower.events import EventParticles
from fastshower.geometry import load_geometry
from fastshower.validate import events as ev
from fastshower.validate.report import MIN_SHOWERS

CALO = load_geometry("clic-wide")  # 51 x 51 cells of 5.1 mm, 25 layers
PITCH = CALO.grid.pitch_mm
X_CELL = (np.arange(CALO.grid.nx) + 0.5) * PITCH - CALO.grid.half_width_x_mm
Y_CELL = (np.arange(CALO.grid.ny) + 0.5) * PITCH - CALO.grid.half_width_y_mm
Z_LAYER = ev.sensor_depths_mm(CALO)
LAYER = np.arange(CALO.n_layers) + 0.5
# a gamma-function longitudinal shape peaking near layer 7, normalised over the 25 layers
LONG = LAYER**3 * np.exp(-LAYER / 2.5)
LONG /= LONG.sum()
SAMPLING_FRACTION = 0.02
N_EVENTS = 400


def make_events(n_events: int, seed: int, *, scale: float = 1.0, fast_scale: float = 1.0,
                shift_mm: float = 0.0, fast_every: int = 0, threshold_GeV: float = 1e-4, cell_noise: float = 0.2,
                table_seed: int | None = None, theta_max: float = 0.1) -> tuple[EventShowers, np.ndarray]:
    """Events of an e- (left) and a gamma (right, >= 40 mm away) with Gaussian-blob showers of sigma = 1 cell.

    The particle table comes from ``table_seed`` (default ``seed``): samples with one table and other seeds are the
    same events with independent showers. Deposit = 2 % x E x (1 + 0.15 / sqrt(E) N(0, 1)) x ``scale`` (x
    ``fast_scale`` for the particles marked fast: the second particle of every ``fast_every``-th event); the second
    particle's blob is drawn ``shift_mm`` to +x of its axis. Cells below ``threshold_GeV`` read 0, the others are
    smeared by ``cell_noise``. Returns the sample and each particle's blob energy before threshold and smearing.
    """
    table = np.random.default_rng(seed if table_seed is None else table_seed)
    event = np.repeat(np.arange(n_events), 2)
    pdg = np.tile([11, 22], n_events)
    energy = table.uniform(40.0, 60.0, 2 * n_events)
    x0 = np.stack([table.uniform(-50.0, -20.0, n_events), table.uniform(20.0, 50.0, n_events)], 1).reshape(-1)
    y0 = table.uniform(-30.0, 30.0, 2 * n_events)
    theta = table.uniform(0.0, theta_max, 2 * n_events)
    phi = table.uniform(-math.pi, math.pi, 2 * n_events)
    particles = EventParticles.from_arrays(n_events, event, pdg, energy, theta, phi, x0, y0)
    fast = np.zeros(2 * n_events, dtype=bool)
    if fast_every:
        fast[1::2] = np.arange(n_events) % fast_every == 0

    rng = np.random.default_rng(seed + 1000)
    deposit = SAMPLING_FRACTION * energy * (1.0 + 0.15 / np.sqrt(energy) * rng.normal(size=energy.size)) * scale
    deposit = np.where(fast, deposit * fast_scale, deposit)
    shift = np.tile([0.0, shift_mm], n_events)
    images = np.zeros((n_events, *CALO.cell_shape), dtype=np.float32)
    for slot in (0, 1):
        p = np.arange(slot, 2 * n_events, 2)
        cx = x0[p, None] + shift[p, None] + Z_LAYER * (np.tan(theta[p]) * np.cos(phi[p]))[:, None]  # (N, nz)
        cy = y0[p, None] + Z_LAYER * (np.tan(theta[p]) * np.sin(phi[p]))[:, None]
        gx = np.exp(-0.5 * ((X_CELL[None, :, None] - cx[:, None, :]) / PITCH) ** 2)
        gy = np.exp(-0.5 * ((Y_CELL[None, :, None] - cy[:, None, :]) / PITCH) ** 2)
        gx /= gx.sum(axis=1, keepdims=True)  # each layer's blob holds exactly its share of the deposit
        gy /= gy.sum(axis=1, keepdims=True)
        gx *= (deposit[p, None] * LONG)[:, None, :]
        images += np.einsum("nxz,nyz->nxyz", gx.astype(np.float32), gy.astype(np.float32))
    if threshold_GeV > 0:
        images[images < threshold_GeV] = 0.0
    if cell_noise > 0:
        hit = np.flatnonzero(images)
        flat = images.reshape(-1)
        flat[hit] *= np.clip(rng.normal(1.0, cell_noise, hit.size), 0.0, None).astype(np.float32)
    total, lead_theta, lead_phi, lead_pdg = event_summary(particles)
    showers = ShowerData(images, total, lead_theta, lead_phi, lead_pdg, ledger={},
                         attrs={"geometry": CALO.to_dict()})
    return EventShowers(showers, particles, fast), deposit


@pytest.fixture(scope="module")
def reference() -> EventShowers:
    return make_events(N_EVENTS, seed=1)[0]


@pytest.fixture(scope="module")
def twin() -> EventShowers:
    """An independent sample of the reference's events from the same generator (half the gammas marked fast)."""
    return make_events(N_EVENTS, seed=2, table_seed=1, fast_every=2)[0]


@pytest.fixture(scope="module")
def same(reference: EventShowers, twin: EventShowers) -> dict:
    return ev.compare_events(reference, twin)


def test_clusters_recover_each_blob() -> None:
    sample, blob_GeV = make_events(20, seed=5, threshold_GeV=0.0, cell_noise=0.0)
    obs = ev.event_observables(sample, CALO)
    assert obs["cluster_GeV"].shape == (40,)
    np.testing.assert_allclose(obs["cluster_GeV"], blob_GeV, rtol=0.01)
    np.testing.assert_allclose(obs["cluster_fraction"], blob_GeV / sample.particles.energy_GeV, rtol=0.01)
    np.testing.assert_allclose(obs["deposit_GeV"], blob_GeV.reshape(-1, 2).sum(1), rtol=1e-4)
    np.testing.assert_allclose(obs["longitudinal"], np.broadcast_to(LONG, (20, CALO.n_layers)), atol=1e-4)
    assert obs["pair_index"].tolist() == [[2 * e, 2 * e + 1] for e in range(20)]
    # with well-separated blobs the centroids sit on the entry points, inclined particles included
    np.testing.assert_allclose(obs["centroid_x_mm"], 0.0, atol=0.02)
    np.testing.assert_allclose(obs["centroid_y_mm"], 0.0, atol=0.02)
    np.testing.assert_allclose(obs["separation_mm"], 0.0, atol=0.05)


def test_centroid_offset_recovers_a_known_shift() -> None:
    # every gamma's blob drawn half a cell (+2.55 mm) to +x of its axis
    sample, _ = make_events(10, seed=6, shift_mm=0.5 * PITCH, threshold_GeV=0.0, cell_noise=0.0)
    obs = ev.event_observables(sample, CALO)
    np.testing.assert_allclose(obs["centroid_x_mm"][1::2], 0.5 * PITCH, atol=0.02)
    np.testing.assert_allclose(obs["centroid_x_mm"][0::2], 0.0, atol=0.02)
    np.testing.assert_allclose(obs["centroid_y_mm"], 0.0, atol=0.02)
    # the gamma lies to +x of the electron: the clusters lie further apart than the entry points, by the shift's
    # projection on the line between them
    np.testing.assert_allclose(obs["separation_mm"], _separation_shift(sample, 0.5 * PITCH), atol=0.05)
    assert np.all(obs["separation_mm"] > 1.5)


def _separation_shift(sample: EventShowers, shift_mm: float) -> np.ndarray:
    """How much further apart two clusters are when the second one moves by ``shift_mm`` in +x."""
    dx = np.diff(sample.particles.x_mm.reshape(-1, 2), axis=1)[:, 0]
    dy = np.diff(sample.particles.y_mm.reshape(-1, 2), axis=1)[:, 0]
    return np.hypot(dx + shift_mm, dy) - np.hypot(dx, dy)


def test_inclined_particle_projects_back_to_its_entry_point() -> None:
    sample, _ = make_events(10, seed=7, threshold_GeV=0.0, cell_noise=0.0, theta_max=0.35)
    assert sample.particles.theta_rad.max() > 0.2  # axes move by > 40 mm over the 25 layers
    obs = ev.event_observables(sample, CALO)
    np.testing.assert_allclose(obs["centroid_x_mm"], 0.0, atol=0.05)
    np.testing.assert_allclose(obs["centroid_y_mm"], 0.0, atol=0.05)
    # without the projection the centroid would lie on average at the mean depth times the slope: far off
    depth = float(LONG @ Z_LAYER)
    slope = np.tan(sample.particles.theta_rad) * np.cos(sample.particles.phi_rad)
    assert np.max(np.abs(depth * slope)) > 10.0


def test_same_generator_passes_with_values_near_their_floors(same: dict) -> None:
    checks = same["checks"]
    assert same["verdict"] == "PASS", ev.format_event_checks(same)
    assert same["n_events"] == N_EVENTS and same["n_pairs"] == N_EVENTS and same["n_fast"] == N_EVENTS // 2
    expected = {"response", "resolution", "particle_response", "particle_spread", "centroid_x", "centroid_y",
                "separation", "separation_spread", "profile", "profile_rel_err"}
    splits = {f"{c}[{s}]" for c in ("particle_response", "particle_spread")
              for s in ("e-", "gamma", "fast", "transported")}
    assert set(checks) == expected | splits
    for name, row in checks.items():
        assert row["status"] == "pass", name
        assert row["floor"] is not None and row["floor"] > 0, name
        assert row["n"] >= MIN_SHOWERS, name
        # two samples of one distribution: the value is a few floors at most (the floor is its standard error)
        assert row["value"] <= 3.0 * row["floor"], (name, row)
    # and on average about one floor (|N(0, 1)| averages 0.8), not far below: floors that are too large would pass
    # anything
    ratios = [r["value"] / r["floor"] for n, r in checks.items() if n != "profile_rel_err"]
    assert 0.2 < float(np.mean(ratios)) < 1.6, ratios
    assert checks["profile"]["layers"] >= 10 and checks["profile"]["max_pull"] < 4.5


def test_higher_response_fails_response_but_not_centroids(reference: EventShowers) -> None:
    result = ev.compare_events(reference, make_events(N_EVENTS, seed=3, table_seed=1, scale=1.05)[0])
    checks = result["checks"]
    assert result["verdict"] == "FAIL"
    for name in ("response", "particle_response", "particle_response[e-]", "particle_response[gamma]"):
        assert checks[name]["status"] == "fail", name
        assert checks[name]["value"] == pytest.approx(0.05, abs=0.01), name
    for name in ("centroid_x", "centroid_y", "separation", "separation_spread", "profile", "profile_rel_err"):
        assert checks[name]["status"] == "pass", (name, checks[name])


def test_a_biased_fast_model_shows_in_the_fast_split(reference: EventShowers) -> None:
    # a model 10 % high on the quarter of the gammas it makes: the all-particle mean moves by 2.5 %
    candidate = make_events(N_EVENTS, seed=4, table_seed=1, fast_every=2, fast_scale=1.10)[0]
    checks = ev.compare_events(reference, candidate)["checks"]
    assert checks["particle_response[fast]"]["status"] == "fail"
    assert checks["particle_response[fast]"]["value"] == pytest.approx(0.10, abs=0.015)
    assert checks["particle_response[fast]"]["n"] == N_EVENTS // 2
    assert checks["particle_response[transported]"]["status"] == "pass"
    assert checks["particle_response[e-]"]["status"] == "pass"


def test_shifted_blobs_fail_centroid_and_separation(reference: EventShowers) -> None:
    result = ev.compare_events(reference, make_events(N_EVENTS, seed=3, table_seed=1, shift_mm=2.0)[0])
    checks = result["checks"]
    assert result["verdict"] == "FAIL"
    # the gammas' blobs moved by 2 mm in x: the mean over both particles by 1 mm, the separations by the shift's
    # projection on the line between the two particles
    assert checks["centroid_x"]["status"] == "fail"
    assert checks["centroid_x"]["value"] == pytest.approx(1.0, abs=0.1)
    assert checks["separation"]["status"] == "fail"
    expected = float(_separation_shift(reference, 2.0).mean())
    assert expected > 1.5 and checks["separation"]["value"] == pytest.approx(expected, abs=0.1)
    assert checks["centroid_y"]["status"] == "pass"
    assert checks["response"]["status"] == "pass"


def test_few_events_are_insufficient() -> None:
    n = MIN_SHOWERS // 2
    result = ev.compare_events(make_events(n, seed=8)[0], make_events(n, seed=9, table_seed=8)[0])
    assert result["verdict"] == "INSUFFICIENT"
    for name in ("response", "resolution", "profile", "profile_rel_err"):
        assert result["checks"][name]["status"] == "insufficient", name
        assert result["checks"][name]["n"] == n
    # 100 particles (two per event) are enough for the per-particle checks, 50 pairs are not
    assert result["checks"]["particle_response"]["status"] == "pass"
    assert result["checks"]["separation"]["status"] == "insufficient"


def test_mismatched_events_are_refused(reference: EventShowers) -> None:
    small = make_events(MIN_SHOWERS, seed=10)[0]
    with pytest.raises(ConfigError, match="events") as err:
        ev.compare_events(reference, small)
    assert "\n" not in str(err.value) and "400" in str(err.value)
    energy = reference.particles.energy_GeV.copy()
    energy[[6, 9]] *= 1.01
    other = replace(reference, particles=replace(reference.particles, energy_GeV=energy))
    with pytest.raises(ConfigError, match="energy_GeV") as err:
        ev.compare_events(reference, other)
    assert "\n" not in str(err.value) and "event 3, particle 0" in str(err.value) and "2 rows" in str(err.value)
    codes = reference.particles.pdg.copy()
    codes[5] = 11
    swapped = replace(reference, particles=replace(reference.particles, pdg=codes))
    with pytest.raises(ConfigError, match="pdg") as err:
        ev.compare_events(reference, swapped)
    assert "event 2, particle 1" in str(err.value)
    clic = load_geometry("clic").to_dict()
    regridded = replace(reference, showers=ShowerData(reference.images, reference.showers.energy_GeV,
                                                      reference.showers.theta_rad, reference.showers.phi_rad,
                                                      reference.showers.pdg, attrs={"geometry": clic}))
    with pytest.raises(ConfigError, match="geometries differ"):
        ev.compare_events(reference, regridded)


def _plain(value: object) -> bool:
    """True when ``value`` holds only JSON's own Python types (no numpy scalars)."""
    if isinstance(value, dict):
        return all(type(k) is str and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or type(value) in (str, int, float, bool)


def test_result_is_json(same: dict) -> None:
    text = json.dumps(same, allow_nan=False)
    assert json.loads(text) == same
    assert _plain(same)


def test_table_has_a_row_per_check(same: dict) -> None:
    table = ev.format_event_checks(same)
    lines = table.splitlines()
    assert lines[0].split() == ["check", "n", "unit", "value", "floor", "threshold", "status"]
    assert len(lines) == len(same["checks"]) + 2  # header, the rows, the verdict
    for name, row in same["checks"].items():
        (line,) = [s for s in lines if s.split()[0] == name]
        assert line.split() == [name, str(row["n"]), row["unit"], f"{row['value']:.4g}", f"{row['floor']:.4g}",
                                f"{row['threshold']:.4g}", row["status"]]
    assert lines[-1].endswith(": PASS") and f"{len(same['checks'])} of {len(same['checks'])}" in lines[-1]


def test_standard_errors_match_the_scatter() -> None:
    # the floors are standard errors: over many pairs of independent samples, value / floor has rms ~ 1
    rng = np.random.default_rng(12)
    pulls = {"mean": [], "std": []}
    for _ in range(400):
        a, b = rng.gamma(20.0, 1.0, 300), rng.gamma(20.0, 1.0, 500)  # a tailed distribution
        for key, stat in (("mean", ev._mean_se), ("std", ev._std_se)):
            value, floor = ev._ratio(stat(a), stat(b))
            pulls[key].append(value / floor)
    for key, p in pulls.items():
        assert 0.85 < float(np.sqrt(np.mean(np.square(p)))) < 1.15, key


def test_single_particle_events_have_no_separation_rows(reference: EventShowers, twin: EventShowers) -> None:
    # keep only the electrons in the tables: no pairs, so the separation rows have nothing to test and do not make
    # the verdict insufficient
    electrons = np.arange(0, 2 * N_EVENTS, 2)
    ref, cand = (replace(s, particles=s.particles.subset(electrons), fast=s.fast[electrons])
                 for s in (reference, twin))
    result = ev.compare_events(ref, cand)
    assert result["n_pairs"] == 0 and result["n_particles"] == N_EVENTS
    assert result["checks"]["separation"]["status"] == "n/a"
    assert result["checks"]["separation_spread"]["status"] == "n/a"
    assert "particle_response[e-]" not in result["checks"]  # one kind only: no split
    assert result["verdict"] == "PASS", ev.format_event_checks(result)
