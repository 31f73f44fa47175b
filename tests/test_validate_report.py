"""The validate command end to end on small synthetic samples: report files, tolerances, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fastshower.cli import main
from fastshower.data import ShowerData, write_showers
from fastshower.errors import ConfigError, DataFormatError
from fastshower.validate.report import check_compatible, judge, load_tolerances, run_validation
from test_validate_metrics import toy_showers


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("validate")
    out = {}
    for name, data in {"ref": toy_showers(300, seed=1), "cand": toy_showers(150, seed=2),
                       "shifted": toy_showers(150, seed=2, shift_layers=1)}.items():
        out[name] = write_showers(folder / f"{name}.h5", data)
    other = toy_showers(20, seed=3, shape=(9, 9, 10))
    out["other_shape"] = write_showers(folder / "other.h5", other)
    return out


def test_report_renders_with_table_images_and_json(files, tmp_path, capsys) -> None:
    out = tmp_path / "report"
    code = main(["validate", "--reference", str(files["ref"]), "--candidate", str(files["cand"]), "--out",
                 str(out), "--energy-bins", "1,5", "--seed", "2", "-q"])
    assert code == 0, capsys.readouterr().err
    assert "checks pass" in capsys.readouterr().out
    page = (out / "index.html").read_text()
    assert '<table id="summary">' in page and "data:image/png;base64," in page
    assert "command: <code>fastshower validate --reference" in page and "sha256 <code" in page
    assert "http" not in page and "<script" not in page
    metrics = json.loads((out / "metrics.json").read_text())
    assert {r["metric"] for r in metrics["summary"]} >= {"sep_power", "ks", "auc", "jsd", "fpd", "kpd"}
    provenance = metrics["provenance"]
    assert provenance["command"].startswith("fastshower validate --reference") and provenance["fastshower_version"]
    assert set(provenance["inputs"]) == {"reference", "candidate"}
    assert len(provenance["inputs"]["reference"]["sha256"]) == 64
    auc_row = next(r for r in metrics["summary"] if r["metric"] == "auc")  # |AUC - 0.5|, as tested
    assert auc_row["value"] == pytest.approx(abs(metrics["classifier"]["low"]["value"]["auc"] - 0.5))
    assert all(r["threshold"] >= r["tolerance"] for r in metrics["summary"])
    assert metrics["bins"][1]["label"] == "1-5 GeV" and metrics["spatial_unit"] == "mm"
    pngs = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert "longitudinal_bin0.png" in pngs and "sampling_fraction_vs_energy.png" in pngs
    auc = metrics["classifier"]["low"]["value"]["auc"]
    assert 0.3 < auc < 0.7


def test_shifted_candidate_fails_longitudinal_checks(files, tmp_path) -> None:
    metrics = run_validation(files["ref"], files["shifted"], tmp_path / "r", energy_edges=(1, 5),
                             classifier=False, plots=False)
    rows = {(r["bin"], r["metric"]): r for r in metrics["summary"]}
    assert rows[("all", "ks")]["pass"] is False
    assert rows[("all", "mean_rel_err")]["pass"] is False
    assert rows[("all", "mean_rel_err")]["observable"] in ("long_profile", "centre_z", "width_z")
    assert not metrics["passed"]


def test_mismatched_shapes_are_refused(files, tmp_path, capsys) -> None:
    code = main(["validate", "--reference", str(files["ref"]), "--candidate", str(files["other_shape"]),
                 "--out", str(tmp_path / "r"), "--no-classifier"])
    assert code == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("fastshower: error: ") and "\n" not in line
    assert str(files["ref"]) in line and str(files["other_shape"]) in line and "cell shapes" in line


def test_different_geometries_are_refused() -> None:
    geo_a = {"name": "a", "grid": {"nx": 2, "ny": 2, "pitch_mm": 1.0}}
    geo_b = {"name": "b", "grid": {"nx": 2, "ny": 2, "pitch_mm": 2.0}}
    info = {"cell_shape": (2, 2, 2), "attrs": {"geometry": geo_a}}
    with pytest.raises(DataFormatError, match="a.h5 vs b.h5: geometries differ"):
        check_compatible("a.h5", info, "b.h5", {"cell_shape": (2, 2, 2), "attrs": {"geometry": geo_b}})
    check_compatible("a.h5", info, "b.h5", {"cell_shape": (2, 2, 2), "attrs": {}})  # one without: accepted


def test_tolerances_and_pass_rule(tmp_path) -> None:
    tol = load_tolerances(None)
    assert judge("ks", 0.04, 0.001, tol) is True  # below the absolute tolerance
    assert judge("ks", 0.2, 0.05, tol) is False  # above 3 x floor and the tolerance
    assert judge("ks", 0.14, 0.05, tol) is True  # within 3 x floor
    assert judge("auc", 0.45, 0.5, tol) is True and judge("auc", 0.8, 0.52, tol) is False
    assert judge("ks", None, 0.1, tol) is None
    path = tmp_path / "tol.yaml"
    path.write_text("ks: 0.5\nfactor: 2\n")
    assert load_tolerances(path)["ks"] == 0.5 and load_tolerances(path)["factor"] == 2.0
    path.write_text("kss: 0.5\n")
    with pytest.raises(ConfigError, match="unknown metric 'kss'"):
        load_tolerances(path)


def test_bad_energy_bins_is_a_one_line_error(files, tmp_path, capsys) -> None:
    code = main(["validate", "--reference", str(files["ref"]), "--candidate", str(files["cand"]), "--out",
                 str(tmp_path / "r"), "--energy-bins", "5,x"])
    assert code == 2 and "--energy-bins" in capsys.readouterr().err


def test_tiny_sample_is_refused(tmp_path) -> None:
    z = np.zeros(2)
    tiny = write_showers(tmp_path / "tiny.h5", ShowerData(np.zeros((2, 2, 2, 2)), z + 1, z, z, z))
    with pytest.raises(DataFormatError, match="at least 4"):
        run_validation(tiny, tiny, tmp_path / "r", classifier=False, plots=False)


def test_auc_tolerance_follows_the_test_sample_size():
    from fastshower.validate.report import auc_null_sigma

    # Mann-Whitney null: 80 + 80 test showers -> sigma ~0.046, so an AUC of 0.58 is not significant
    assert abs(auc_null_sigma(160) - 0.0458) < 0.001
    assert auc_null_sigma(20000) < 0.005


def test_angle_bins_are_added_after_the_energy_bins(tmp_path) -> None:
    data = toy_showers(120, seed=4)
    rng = np.random.default_rng(0)
    inclined = ShowerData(data.ecal, data.energy_GeV, np.radians(rng.uniform(0, 40, 120)), data.phi_rad, data.pdg,
                          attrs=data.attrs)
    path = write_showers(tmp_path / "inclined.h5", inclined)
    metrics = run_validation(path, path, tmp_path / "r", energy_edges=(1, 5), classifier=False,
                             theta_edges_deg=(0, 20, 40), plots=False)  # figures: as for any bin, tested above
    labels = [b["label"] for b in metrics["bins"]]
    assert labels == ["all", "1-5 GeV", "theta 0-20 deg", "theta 20-40 deg"]
    low, high = metrics["bins"][2]["n"]["cand"], metrics["bins"][3]["n"]["cand"]
    assert low + high == 120 and low > 30 and high > 30
    with pytest.raises(ConfigError, match="angle bins"):
        run_validation(path, path, tmp_path / "r2", energy_edges=(1, 5), classifier=False, theta_edges_deg=(20, 0))


def test_too_few_showers_are_insufficient_never_a_pass_and_differing_ranges_are_cut_to_their_overlap(tmp_path,
                                                                                                      capsys) -> None:
    """The case of issue 14: a 60-shower reference at 2-4 GeV against 300 candidate showers at 2-16 GeV passed a
    check with AUC 1.0; now the candidate is cut to the common range, with a note, and nothing can pass."""
    from fastshower.validate.report import MIN_SHOWERS

    ref = write_showers(tmp_path / "ref.h5", toy_showers(60, seed=5))
    cand = write_showers(tmp_path / "cand.h5", toy_showers(300, seed=6, energies=(2.0, 4.0, 8.0, 16.0)))
    out = tmp_path / "r"
    assert main(["validate", "--reference", str(ref), "--candidate", str(cand), "--out", str(out),
                 "--energy-bins", "1,5,20", "--no-classifier", "-q"]) == 0
    printed = capsys.readouterr().out
    assert "note: energy ranges differ (reference 2-4 GeV, candidate 2-16 GeV): compared on their common range " \
           "2-4 GeV only" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["bins"][0]["n"]["cand"] < 300 and metrics["bins"][2]["n"]["cand"] == 0
    statuses = {r["status"] for r in metrics["summary"]}
    assert statuses <= {"insufficient", "fail", "n/a"} and "insufficient" in statuses and metrics["min_showers"] == 100
    assert metrics["verdict"] in ("INSUFFICIENT", "FAIL") and not metrics["passed"]
    assert all(r["pass"] is None for r in metrics["summary"] if r["status"] == "insufficient")
    assert f"fewer than {MIN_SHOWERS} showers in a compared sample" in printed
    assert "insufficient" in (out / "index.html").read_text()


def test_ranges_that_do_not_overlap_are_refused(tmp_path) -> None:
    ref = write_showers(tmp_path / "ref.h5", toy_showers(20, seed=5, energies=(2.0,)))
    cand = write_showers(tmp_path / "cand.h5", toy_showers(20, seed=6, energies=(8.0,)))
    with pytest.raises(DataFormatError, match="energy ranges 2-2 GeV and 8-8 GeV do not overlap"):
        run_validation(ref, cand, tmp_path / "r", classifier=False, plots=False)


def _chromium() -> str | None:
    import shutil

    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.mark.skipif(_chromium() is None, reason="no Chromium on this machine (Debian: apt install chromium)")
def test_report_renders_in_a_headless_browser(files, tmp_path) -> None:
    """The page as a physicist sees it: Chromium draws it offline, and the screenshot holds the coloured summary
    grid (not a blank or broken page)."""
    import subprocess

    from matplotlib.image import imread

    out = tmp_path / "report"
    run_validation(files["ref"], files["shifted"], out, energy_edges=(1, 5), classifier=False)
    shot = tmp_path / "page.png"
    subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={shot}", "--window-size=1200,1600", (out / "index.html").as_uri()],
                   check=True, capture_output=True, timeout=120)
    image = imread(shot)[..., :3]
    assert image.shape[:2] == (1600, 1200) and image.std() > 0.05  # text and figures, not an empty page
    red = (image[..., 0] > 0.9) & (image[..., 1] < 0.8) & (image[..., 2] < 0.8)  # the grid's FAIL cells (#f6c1c1)
    assert red.sum() > 500
