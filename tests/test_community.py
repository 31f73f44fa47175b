"""The community's metrics (validate/community.py): the CaloChallenge's high-level features on cylindrical and
Cartesian readouts, its classifier, jetnet's FPD/KPD; checked where the answer is known (identical samples give
AUC ~0.5 and FPD ~0; a shifted sample is told apart; a rotated shower keeps its radial features)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conftest import synthetic_showers
from fastshower.data import ShowerData, write_showers
from fastshower.validate.community import (
    _frechet,
    challenge_classifier,
    fpd,
    high_level_features,
    high_level_inputs,
    kpd,
    transverse_grid,
)
from fastshower.validate.report import auc_null_sigma, run_validation

DS2_EDGES = [0.0, 4.65, 9.3, 13.95, 18.6, 27.9, 37.2, 46.5, 55.8, 74.4]  # 9 radial bins, mm


def test_cylindrical_grid_places_voxels_at_bin_centres_and_features_are_periodic_in_alpha() -> None:
    binning = {"kind": "cylindrical", "n_layers": 45, "n_alpha": 16, "n_radial": 9, "r_edges_mm": DS2_EDGES}
    grid = transverse_grid((9, 16, 45), {"binning": binning})
    assert grid.unit == "mm" and grid.dataset == "2"  # 6,480 voxels: the challenge's data set 2
    alpha0 = -math.pi + math.pi / 16  # first alpha bin's centre (the challenge's bins start at -pi)
    assert grid.x_mm[1, 0] == pytest.approx(6.975 * math.cos(alpha0))
    assert grid.y_mm[1, 0] == pytest.approx(6.975 * math.sin(alpha0))
    rng = np.random.default_rng(1)
    showers = rng.exponential(1.0, (5, 9, 16, 45)) * (np.arange(9) < 4)[None, :, None, None]
    base = high_level_features(showers, grid)
    rotated = high_level_features(np.roll(showers, 1, axis=2), grid)  # one alpha bin round the axis
    for name in ("E_tot", "E_layer", "EC_r", "width_r", "sparsity"):
        np.testing.assert_allclose(rotated[name], base[name], rtol=1e-12, atol=1e-9)
    turn = 2 * math.pi / 16
    np.testing.assert_allclose(rotated["EC_x"], base["EC_x"] * math.cos(turn) - base["EC_y"] * math.sin(turn),
                               atol=1e-9)
    single = np.zeros((1, 9, 16, 45))
    single[0, 2, 5, 10] = 0.002  # 2 MeV in one voxel: the centre of energy is the voxel, the width zero
    one = high_level_features(single, grid)
    assert one["E_layer"][0, 10] == pytest.approx(2.0) and one["E_tot"][0] == pytest.approx(2.0)
    assert one["EC_x"][0, 10] == pytest.approx(grid.x_mm[2, 5]) and one["width_x"][0, 10] == pytest.approx(0.0)
    assert one["EC_x"][0, 0] == 0.0  # empty layers give 0, as the challenge's code
    assert high_level_inputs(np.array([10.0]), one).shape == (1, 1 + 5 * 45)


def test_cartesian_grid_uses_the_geometry_pitch() -> None:
    grid = transverse_grid((5, 5, 3), {"geometry": {"grid": {"nx": 5, "ny": 5, "pitch_mm": 5.1}}})
    assert grid.unit == "mm" and grid.x_mm[0, 2] == pytest.approx(-10.2) and grid.y_mm[2, 4] == pytest.approx(10.2)
    assert transverse_grid((5, 5, 3), {}).unit == "cell"


def test_fpd_and_kpd_follow_jetnet_on_gaussians() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 1, (20000, 3)), rng.normal(0, 1, (20000, 3))
    assert _frechet(a, b + [1.0, 0.0, 0.0]) == pytest.approx(1.0, abs=0.05)  # |mu1 - mu2|^2 for equal covariances
    same, same_err = fpd(a[:6000], b[:6000], seed=1)
    shifted, _ = fpd(a[:6000], b[:6000] + 0.5, seed=1)
    scale = np.abs(a[:6000]).max(axis=0)  # jetnet normalises by the reference's largest |value| per feature
    assert same < 0.002 and same_err < 0.002
    assert shifted == pytest.approx(np.sum((0.5 / scale) ** 2), rel=0.1)
    k_same, k_err = kpd(a, b, batch_size=1000)
    k_shifted, _ = kpd(a, b + 0.5, batch_size=1000)
    assert abs(k_same) < 3 * k_err + 1e-4 and k_shifted > 20 * k_err


def test_challenge_classifier_cannot_tell_halves_of_one_sample_apart_but_tells_a_shifted_one() -> None:
    data = synthetic_showers(2400, (8, 8, 8), 0, (11,))
    grid = transverse_grid((8, 8, 8), {})
    features = high_level_inputs(data.energy_GeV, high_level_features(data.ecal, grid))
    same = challenge_classifier(features[:1200], features[1200:], seed=3)
    sigma = auc_null_sigma(same["n_val"])
    assert same["n_train"] == 1440 and same["n_val"] == 480 and abs(same["auc"] - 0.5) < 4 * sigma
    assert same["jsd"] < 0.05  # negative for small samples: the isotonic calibration overfits the test split
    shifted = high_level_inputs(data.energy_GeV[1200:], high_level_features(data.ecal[1200:] * 1.2, grid))
    told = challenge_classifier(features[:1200], shifted, seed=3)
    assert told["auc"] > 0.9 and told["jsd"] > 0.3


def test_validate_community_reports_each_metric_beside_its_floor(tmp_path, capsys) -> None:
    from fastshower.cli import main

    def sample(n: int, seed: int, scale: float = 1.0) -> ShowerData:
        d = synthetic_showers(n, (8, 8, 8), seed, (11,))
        return ShowerData(d.ecal * scale, d.energy_GeV, d.theta_rad, d.phi_rad, d.pdg)

    ref = write_showers(tmp_path / "ref.h5", sample(400, 1))
    cand = write_showers(tmp_path / "cand.h5", sample(200, 2, 1.15))
    out = tmp_path / "report"
    run_validation(ref, cand, out, energy_edges=(10, 510), community=True, community_max_showers=150, plots=False)
    metrics = json.loads((out / "metrics.json").read_text())
    community = metrics["community"]
    assert community["max_showers"] == 150 and community["transverse_unit"] == "cell"
    value, floor = community["value"], community["floor"]
    assert value["n"] == {"reference": 150, "generated": 150} and floor["n"]["generated"] == 150
    assert value["classifier"]["high"]["auc"] > floor["classifier"]["high"]["auc"]
    assert value["separation_power"]["mean"] > floor["separation_power"]["mean"]
    page = (out / "index.html").read_text()
    assert "Community metrics" in page and "CaloChallenge 2022 evaluation code" in page and "FPD (jetnet)" in page
    capsys.readouterr()
    assert main(["validate", "--reference", str(ref), "--candidate", str(cand), "--out", str(out), "--community",
                 "--community-max-showers", "5"]) == 2
    assert "--community-max-showers 5: must be at least 10" in capsys.readouterr().err


def test_our_observables_on_a_cylindrical_readout_are_radial_in_mm_and_periodic_in_alpha() -> None:
    from fastshower.validate.observables import compute_observables

    binning = {"kind": "cylindrical", "n_layers": 45, "n_alpha": 16, "n_radial": 9, "r_edges_mm": DS2_EDGES}
    ecal = np.zeros((2, 9, 16, 45), np.float32)
    ecal[0, 1, [15, 0], 10] = 1.0  # both sides of alpha = -pi/+pi: a compact shower, not one spread round the axis
    ecal[1, 3, [3, 4], 10] = 1.0
    data = ShowerData(ecal, np.array([50.0, 50.0]), np.zeros(2), np.zeros(2), np.full(2, 11),
                      attrs={"binning": binning})
    obs = compute_observables(data)
    assert obs.axis_labels[:2] == ("r [mm]", "alpha [rad]") and obs.label("width_y") == "width alpha [rad]"
    np.testing.assert_allclose(obs.centre_x, [6.975, 16.275])  # radial bin midpoints, mm
    assert abs(abs(obs.centre_y[0]) - math.pi) < 1e-6  # circular mean at the seam
    alpha = -math.pi + (np.array([3, 4]) + 0.5) * 2 * math.pi / 16
    assert obs.centre_y[1] == pytest.approx(alpha.mean())
    np.testing.assert_allclose(obs.width_y, obs.width_y[1])  # the same spread on the seam and away from it
    assert obs.width_y[0] < 0.25 and np.isnan(obs.angle_rad).all()
    assert obs.centre_mm[0, 0] == pytest.approx(-6.975 * math.cos(math.pi / 16), rel=1e-6)
