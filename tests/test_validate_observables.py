"""Observables on synthetic showers with known answers (fastshower.validate.observables)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fastshower.data import ShowerData, write_showers
from fastshower.validate.observables import (
    SPECTRUM_EDGES,
    bin_by_energy,
    compute_observables,
    compute_observables_file,
    layer_geometry,
    response,
)


def geometry(nx: int, ny: int, nz: int, pitch: float = 5.0, absorber: float = 2.0, sensor: float = 0.5) -> dict:
    return {"name": "toy", "grid": {"nx": nx, "ny": ny, "pitch_mm": pitch},
            "layers": [{"repeat": nz, "absorber": "W", "absorber_mm": absorber, "sensor": "Si",
                        "sensor_mm": sensor}]}


def showers(ecal: np.ndarray, energy: float = 100.0, geo: dict | None = None) -> ShowerData:
    n = ecal.shape[0]
    z = np.zeros(n)
    return ShowerData(ecal, np.full(n, energy), z, z, np.full(n, 11), attrs={"geometry": geo} if geo else {})


def test_single_cell_shower() -> None:
    ecal = np.zeros((1, 7, 8, 9), np.float32)
    ecal[0, 3, 4, 5] = 2.0
    obs = compute_observables(showers(ecal, geo=geometry(7, 8, 9)))
    assert obs.deposit_GeV[0] == pytest.approx(2.0)
    assert obs.sampling_fraction[0] == pytest.approx(0.02)
    assert (obs.centre_x[0], obs.centre_y[0], obs.centre_z[0]) == (3.0, 4.0, 5.0)
    assert obs.width_x[0] == obs.width_y[0] == obs.width_z[0] == 0.0
    assert obs.n_hits[0] == 1 and obs.max_layer[0] == 5 and obs.start_layer[0] == 5
    # mm: x, y from the grid centre; z = depth of the sensor centre of layer 5 (6 absorbers + 5.5 sensors)
    np.testing.assert_allclose(obs.centre_mm[0], [0.0, 5.0 * (4 - 3.5), 6 * 2.0 + 5.5 * 0.5])
    assert obs.spectrum.sum() == 1
    assert obs.spectrum[0, np.searchsorted(SPECTRUM_EDGES, math.log10(2.0)) - 1] == 1
    assert obs.long_profile[0, 5] == pytest.approx(2.0) and obs.x_profile[0, 3] == pytest.approx(2.0)


def test_threshold_and_two_cell_moments() -> None:
    ecal = np.zeros((1, 5, 5, 4), np.float32)
    ecal[0, 1, 2, 0] = 1.0
    ecal[0, 3, 2, 0] = 1.0
    ecal[0, 0, 0, 3] = 5e-5  # below the default 0.1 MeV threshold
    obs = compute_observables(showers(ecal))
    assert obs.n_hits[0] == 2
    assert obs.centre_x[0] == pytest.approx(2.0, abs=1e-3) and obs.width_x[0] == pytest.approx(1.0, abs=1e-3)
    assert compute_observables(showers(ecal), threshold_GeV=1e-5).n_hits[0] == 3


def test_start_layer_uses_one_percent_of_the_maximum() -> None:
    ecal = np.zeros((1, 3, 3, 6), np.float32)
    ecal[0, 1, 1, :] = [0.005, 0.02, 1.0, 0.5, 0.3, 0.0]
    obs = compute_observables(showers(ecal))
    assert obs.start_layer[0] == 1 and obs.max_layer[0] == 2


@pytest.mark.parametrize("with_geometry", [True, False])
def test_barycentre_angle_of_an_inclined_line(with_geometry: bool) -> None:
    nz = 10
    ecal = np.zeros((1, 5, 14, nz), np.float32)
    for layer in range(nz):
        ecal[0, 2, 2 + layer, layer] = 1.0  # one cell per layer, one cell further in y per layer
    geo = geometry(5, 14, nz, pitch=5.0, absorber=2.0, sensor=0.5) if with_geometry else None
    obs = compute_observables(showers(ecal, geo=geo))
    # with geometry: 5 mm in y per 2.5 mm in depth; without: 1 cell per layer
    expected = math.atan(2.0) if with_geometry else math.atan(1.0)
    assert obs.angle_rad[0] == pytest.approx(expected, rel=1e-6)
    assert obs.spatial_unit == ("mm" if with_geometry else "cell")


def test_empty_shower_gives_nan_moments() -> None:
    obs = compute_observables(showers(np.zeros((2, 3, 3, 3), np.float32)))
    assert np.isnan(obs.centre_x).all() and np.isnan(obs.angle_rad).all() and (obs.n_hits == 0).all()


def test_layer_geometry_repeat_and_gap_and_mismatch() -> None:
    geo = {"grid": {"nx": 2, "ny": 2, "pitch_mm": 1.0},
           "layers": [{"repeat": 2, "absorber_mm": 1.0, "sensor_mm": 1.0, "gap": "Air", "gap_mm": 1.0},
                      {"absorber_mm": 2.0, "sensor_mm": 0.0}]}
    pitch, depths = layer_geometry(geo, (2, 2, 3))
    assert pitch == 1.0
    np.testing.assert_allclose(depths, [1.5, 4.5, 8.0])
    assert layer_geometry(geo, (2, 2, 4)) == (None, None)
    assert layer_geometry(None, (2, 2, 3)) == (None, None)


def test_bin_by_energy() -> None:
    idx = bin_by_energy(np.array([5.0, 10.0, 49.9, 50.0, 100.0, 101.0]), [10, 50, 100])
    assert idx.tolist() == [-1, 0, 0, 1, 1, -1]


def test_batched_file_equals_in_memory(tmp_path) -> None:
    rng = np.random.default_rng(3)
    ecal = (rng.random((13, 4, 4, 5)) ** 4).astype(np.float32)
    data = showers(ecal, geo=geometry(4, 4, 5))
    write_showers(tmp_path / "s.h5", data)
    a = compute_observables(data)
    b = compute_observables_file(tmp_path / "s.h5", batch_size=4)
    for name in ("deposit_GeV", "centre_z", "width_y", "angle_rad", "n_hits", "spectrum", "start_layer"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-6, err_msg=name)
    r = response(a)
    assert r["response"] == pytest.approx(float(np.mean(a.deposit_GeV / 100.0)))
    assert r["resolution"] == pytest.approx(float(a.deposit_GeV.std(ddof=1) / a.deposit_GeV.mean()))
