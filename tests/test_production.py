"""Tests of the production layer: value specifications, primaries, chunks, parallel and dask runs."""

from __future__ import annotations

import multiprocessing
import sys

import numpy as np
import pytest

from fastshower.errors import ConfigError
from fastshower.geometry import load_geometry
from fastshower.mc.production import (
    ValueSpec,
    check_primaries,
    chunks,
    parse_values,
    plan_primaries,
    run_production,
)
from fastshower.mc.settings import PhysicsSettings
from fastshower.mc.simulator import LEDGER_KEYS, ShowerBatch

CALO = load_geometry("clic")
SETTINGS = PhysicsSettings()


def fixed(value: float) -> ValueSpec:
    return parse_values(str(value), "--test")


def collect(stream) -> ShowerBatch:
    """Join the (start, batch) pairs of a production, in shower order."""
    parts = sorted(stream, key=lambda item: item[0])
    starts = [start for start, _ in parts]
    assert starts == sorted(set(starts))
    images = np.concatenate([b.images for _, b in parts])
    ledger = {k: np.concatenate([b.ledger[k] for _, b in parts]) for k in LEDGER_KEYS}
    return ShowerBatch(images, ledger)


def assert_same(a: ShowerBatch, b: ShowerBatch) -> None:
    assert a.images.shape == b.images.shape
    assert np.array_equal(a.images, b.images)
    for key in LEDGER_KEYS:
        assert np.array_equal(a.ledger[key], b.ledger[key]), key


# --- parse_values ---------------------------------------------------------------------------------


def test_log_uniform_energy_spectrum_covers_the_low_edge():
    spec = parse_values("10:510:log", "--energy")
    assert (spec.kind, spec.values, spec.spec) == ("log-uniform", (10.0, 510.0), "10:510:log")
    assert parse_values(spec.spec, "--energy") == spec  # the recorded text parses back to the same spectrum
    u = np.random.default_rng(0).random(200_000)
    energy = spec.sample(u.size, u)
    assert energy.min() >= 10.0 and energy.max() <= 510.0
    # flat in ln E: the share below E is ln(E/10) / ln(51); 10-22 GeV gets 20 %, against 2.4 % when uniform
    assert np.mean(energy < 22.0) == pytest.approx(np.log(2.2) / np.log(51.0), abs=0.005)
    assert np.mean(parse_values("10:510", "--energy").sample(u.size, u) < 22.0) == pytest.approx(12 / 500, abs=0.002)
    for bad, message in (("0:10:log", "needs A > 0"), ("10:log", "expected a number"), ("1,2:log", "expected"),
                         ("5:1:log", "below its maximum")):
        with pytest.raises(ConfigError, match=message):
            parse_values(bad, "--energy")


def test_parse_fixed_range_list():
    spec = parse_values("100", "--energy")
    assert (spec.kind, spec.values, spec.spec) == ("fixed", (100.0,), "100")
    spec = parse_values(" 10:510 ", "--energy")
    assert (spec.kind, spec.values, spec.spec) == ("uniform", (10.0, 510.0), "10:510")
    assert (spec.low, spec.high) == (10.0, 510.0)
    spec = parse_values("10,50.5,100", "--energy")
    assert (spec.kind, spec.values, spec.spec) == ("list", (10.0, 50.5, 100.0), "10,50.5,100")
    assert parse_values("1e1", "--energy").spec == "10"
    assert parse_values("-5", "--energy").values == (-5.0,)  # range checks are the simulator's job


@pytest.mark.parametrize("text", ["10:abc", "abc", "", "1:2:3", "1,,2", "1,2:3", "10:"])
def test_parse_values_rejects_malformed(text):
    with pytest.raises(ConfigError) as info:
        parse_values(text, "--energy")
    message = str(info.value)
    assert message == f"--energy '{text}': expected a number, A:B, A:B:log or A,B,C"
    assert "\n" not in message


@pytest.mark.parametrize("text", ["10:5", "5:5"])
def test_parse_values_rejects_empty_range(text):
    with pytest.raises(ConfigError, match=r"^--theta '.*': the minimum .* below its maximum"):
        parse_values(text, "--theta")


@pytest.mark.parametrize("text", ["nan", "1:inf", "1,inf"])
def test_parse_values_rejects_non_finite(text):
    with pytest.raises(ConfigError, match="^--phi .*finite"):
        parse_values(text, "--phi")


# --- plan_primaries -------------------------------------------------------------------------------


def test_plan_primaries_deterministic_and_seeded():
    args = ("e-", parse_values("10:510", "e"), parse_values("0:30", "t"), parse_values("0:360", "p"), 50)
    a, b, c = plan_primaries(*args, seed=7), plan_primaries(*args, seed=7), plan_primaries(*args, seed=8)
    for field in ("pdg", "energy_GeV", "theta_rad", "phi_rad", "x_mm", "y_mm"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.energy_GeV, c.energy_GeV)
    assert np.all(a.pdg == 11) and len(a) == 50


def test_plan_primaries_uniform_range_respected():
    p = plan_primaries("gamma", parse_values("10:510", "e"), fixed(0), fixed(0), 2000, seed=1)
    assert np.all(p.pdg == 22)
    assert p.energy_GeV.min() >= 10 and p.energy_GeV.max() <= 510
    assert p.energy_GeV.min() < 20 and p.energy_GeV.max() > 500  # spans the range
    assert abs(p.energy_GeV.mean() - 260) < 15


def test_plan_primaries_list_equal_shares():
    p = plan_primaries("e+", parse_values("10,50,100", "e"), fixed(0), fixed(0), 10, seed=3)
    assert list(p.energy_GeV) == [10, 50, 100, 10, 50, 100, 10, 50, 100, 10]
    q = plan_primaries("e+", parse_values("10,50,100", "e"), fixed(0), fixed(0), 9, seed=99)
    assert np.array_equal(np.unique(q.energy_GeV, return_counts=True)[1], [3, 3, 3])


def test_plan_primaries_degrees_to_radians():
    p = plan_primaries("e-", fixed(1), fixed(30), fixed(90), 4, seed=1)
    assert np.allclose(p.theta_rad, np.pi / 6) and np.allclose(p.phi_rad, np.pi / 2)
    q = plan_primaries("e-", fixed(1), parse_values("0:60", "t"), parse_values("0:360", "p"), 500, seed=1)
    assert q.theta_rad.min() >= 0 and q.theta_rad.max() <= np.pi / 3 and q.theta_rad.max() > 1.0
    assert q.phi_rad.max() <= 2 * np.pi and q.phi_rad.max() > 6.0


def test_plan_primaries_streams_independent_of_other_specs():
    # each quantity has its own draws: making theta a range does not change the energies
    e = parse_values("1:100", "e")
    a = plan_primaries("e-", e, fixed(0), fixed(0), 20, seed=5)
    b = plan_primaries("e-", e, parse_values("0:40", "t"), fixed(0), 20, seed=5)
    assert np.array_equal(a.energy_GeV, b.energy_GeV)


def test_plan_primaries_entry_point():
    p = plan_primaries("e-", fixed(1), fixed(0), fixed(0), 200, seed=1, entry_xy_mm=(5.0, -3.0),
                       entry_spread_mm=2.0)
    assert np.all(np.abs(p.x_mm - 5.0) <= 2.0) and np.all(np.abs(p.y_mm + 3.0) <= 2.0)
    assert p.x_mm.std() > 0.5
    q = plan_primaries("e-", fixed(1), fixed(0), fixed(0), 3, seed=1)
    assert np.all(q.x_mm == 0) and np.all(q.y_mm == 0)


def test_plan_primaries_errors():
    with pytest.raises(ConfigError, match="particle 'mu-'"):
        plan_primaries("mu-", fixed(1), fixed(0), fixed(0), 3, seed=1)
    with pytest.raises(ConfigError, match="n 0: must be >= 1"):
        plan_primaries("e-", fixed(1), fixed(0), fixed(0), 0, seed=1)


@pytest.mark.parametrize(("energy", "theta", "match"), [
    ("-5", "0", "energy"), ("0", "0", "energy"), ("1", "95", "theta"), ("1", "90", "theta"),
])
def test_check_primaries_refuses_out_of_range(energy, theta, match):
    p = plan_primaries("e-", parse_values(energy, "e"), parse_values(theta, "t"), fixed(0), 3, seed=1)
    with pytest.raises(ConfigError, match=match):
        check_primaries(CALO, SETTINGS, p)
    with pytest.raises(ConfigError, match=match):  # before any work is started
        run_production(CALO, SETTINGS, p, 1, [(0, 3)], workers=2, scheduler=None)


# --- chunks ---------------------------------------------------------------------------------------


def test_chunks_aligned_and_skipping_done():
    assert chunks(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert chunks(8, 4) == [(0, 4), (4, 8)]
    assert chunks(3, 64) == [(0, 3)]
    done = np.zeros(10, dtype=bool)
    done[0:4] = True  # a whole chunk
    done[4:6] = True  # part of one: redone whole, aligned as before
    assert chunks(10, 4, done) == [(4, 8), (8, 10)]
    assert chunks(10, 4, np.ones(10, dtype=bool)) == []
    with pytest.raises(ConfigError, match="chunk size 0: must be >= 1"):
        chunks(10, 0)


# --- run_production -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def primaries_1gev():
    return plan_primaries("e-", fixed(1), fixed(0), fixed(0), 8, seed=11)


@pytest.fixture(scope="module")
def reference(primaries_1gev):
    stream = run_production(CALO, SETTINGS, primaries_1gev, 11, chunks(8, 3), workers=1, scheduler=None)
    return collect(stream)


def test_run_production_in_process(reference, primaries_1gev):
    assert reference.images.shape == (8, *CALO.cell_shape)
    assert reference.images.dtype == np.float32
    total = sum(reference.ledger[k] for k in LEDGER_KEYS)
    assert np.allclose(total, primaries_1gev.energy_GeV, rtol=1e-9)
    sampling = reference.ledger["sensor"] / primaries_1gev.energy_GeV
    assert np.all((sampling > 0.005) & (sampling < 0.05))
    # the images hold the sensor deposits on the readout grid
    assert np.allclose(reference.images.sum(axis=(1, 2, 3)), reference.ledger["sensor"], rtol=1e-4, atol=1e-6)


def test_run_production_pool_is_bit_identical(reference, primaries_1gev):
    stream = run_production(CALO, SETTINGS, primaries_1gev, 11, chunks(8, 2), workers=2, scheduler=None)
    assert_same(collect(stream), reference)


def test_run_production_subset_matches(reference, primaries_1gev):
    # a resumed run simulates some chunks only: they are the same showers
    part = dict(run_production(CALO, SETTINGS, primaries_1gev, 11, [(3, 6)], workers=1, scheduler=None))
    assert list(part) == [3]
    assert np.array_equal(part[3].images, reference.images[3:6])


def test_run_production_closing_early_stops_pool(primaries_1gev):
    stream = run_production(CALO, SETTINGS, primaries_1gev, 11, chunks(8, 1), workers=2, scheduler=None)
    start, batch = next(stream)
    assert batch.images.shape[0] == 1
    stream.close()  # must return promptly and leave no worker behind
    assert not multiprocessing.active_children()


def test_run_production_rejects_bad_arguments(primaries_1gev):
    with pytest.raises(ConfigError, match="outside"):
        run_production(CALO, SETTINGS, primaries_1gev, 11, [(0, 9)], workers=1, scheduler=None)
    with pytest.raises(ConfigError, match="workers 0: must be >= 1"):
        run_production(CALO, SETTINGS, primaries_1gev, 11, [(0, 8)], workers=0, scheduler=None)


def test_scheduler_without_dask(monkeypatch, primaries_1gev):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    expected = r"^a dask scheduler needs the optional extra: pip install 'fastshower\[dask\]'$"
    with pytest.raises(ConfigError, match=expected):
        run_production(CALO, SETTINGS, primaries_1gev, 11, [(0, 8)], workers=1, scheduler="local")


def test_dask_local_cluster_is_bit_identical(reference, primaries_1gev):
    pytest.importorskip("dask.distributed")
    stream = run_production(CALO, SETTINGS, primaries_1gev, 11, chunks(8, 2), workers=2, scheduler="local")
    assert_same(collect(stream), reference)
