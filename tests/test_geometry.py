"""Detector description: presets, files, round trips and errors."""

from __future__ import annotations

import numpy as np
import pytest

from fastshower.errors import ConfigError
from fastshower.geometry import Calorimeter, load_geometry


def test_clic_preset_matches_the_3dgan_detector():
    clic = load_geometry("clic")
    assert clic.cell_shape == (25, 25, 25)
    assert [layer.absorber_mm for layer in clic.layers] == [2.4] * 17 + [4.8] * 8
    assert all(layer.sensor == "Si" and layer.sensor_mm == 0.5 for layer in clic.layers)
    assert clic.depth_mm == pytest.approx(17 * 2.9 + 8 * 5.3)
    # the beam (x = y = 0) enters at the centre of cell (12, 12)
    assert int((0.0 + clic.grid.half_width_x_mm) // clic.grid.pitch_mm) == 12
    slabs = clic.slabs
    assert list(slabs.sensor_layer[:4]) == [-1, 0, -1, 1]
    np.testing.assert_allclose(slabs.z_front_mm[1:], slabs.z_back_mm[:-1])


def test_shipped_calice_prototype_file():
    # CALICE Si-W ECAL physics prototype (NIM A 608 (2009) 372): 10 x 1.4 + 10 x 2.8 + 10 x 4.2 mm W, each with
    # 0.525 mm Si, 1 cm pads; 84 mm of tungsten = 24 X0
    from pathlib import Path

    calice = load_geometry(Path(__file__).resolve().parents[1] / "configs" / "calice-siw.yaml")
    assert calice.cell_shape == (18, 18, 30) and calice.grid.pitch_mm == 10.0
    assert [layer.absorber_mm for layer in calice.layers] == [1.4] * 10 + [2.8] * 10 + [4.2] * 10
    assert all(layer.absorber == "W" and layer.sensor == "Si" and layer.sensor_mm == 0.525 for layer in calice.layers)
    assert sum(layer.absorber_mm for layer in calice.layers) / 3.504 == pytest.approx(24.0, abs=0.05)


def test_clic_wide_has_51_by_51_cells():
    assert load_geometry("clic-wide").cell_shape == (51, 51, 25)


def test_yaml_detector_with_blocks_gaps_and_custom_material(tmp_path):
    path = tmp_path / "pbwo.yaml"
    path.write_text("""
name: sandwich
grid: {nx: 10, ny: 12, pitch_mm: 3.0}
materials:
  - {name: FR4ish, density_g_cm3: 1.85, elements: {Si: 0.28, O: 0.47, C: 0.23, H: 0.02}}
layers:
  - {repeat: 3, absorber: Pb, absorber_mm: 2.0, sensor: Si, sensor_mm: 0.3, gap: FR4ish, gap_mm: 1.0}
  - {absorber: Cu, absorber_mm: 5.0, sensor: Si, sensor_mm: 0.3}
""")
    calo = load_geometry(str(path))
    assert calo.cell_shape == (10, 12, 4)
    assert calo.material_names == ["Pb", "Si", "FR4ish", "Cu"]
    assert calo.depth_mm == pytest.approx(3 * 3.3 + 5.3)
    again = Calorimeter.from_dict(calo.to_dict())
    assert again == calo


def test_toml_detector(tmp_path):
    path = tmp_path / "det.toml"
    path.write_text('name = "t"\n[grid]\nnx = 5\nny = 5\npitch_mm = 2.0\n'
                    '[[layers]]\nabsorber = "W"\nabsorber_mm = 3.5\nsensor = "Si"\nsensor_mm = 0.5\nrepeat = 4\n')
    assert load_geometry(str(path)).cell_shape == (5, 5, 4)


@pytest.mark.parametrize(("text", "message"), [
    ("grid: {nx: 5, ny: 5, pitch_mm: 1}\nlayers: [{absorber: Unobtainium, absorber_mm: 1, sensor: Si, sensor_mm: 1}]",
     "unknown material"),
    ("grid: {nx: 5, ny: 5, pitch_mm: 1}\nlayers: [{absorber: W, absorber_mm: -1, sensor: Si, sensor_mm: 1}]",
     "bad thickness"),
    ("grid: {nx: 5, ny: 5}\nlayers: []", "missing field"),
    ("grid: {nx: 5, ny: 5, pitch_mm: 1}\nlayers: [{absorber: W, absorber_mm: 1, sensor: Si, sensor_mm: 1, foo: 2}]",
     "unknown layer field"),
    ("grid: [unclosed", "not valid"),
])
def test_bad_detector_files_give_one_line_errors(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_geometry(str(path))
    assert "\n" not in str(info.value)
    assert "bad.yaml" in str(info.value)


def test_unknown_preset_and_missing_file():
    with pytest.raises(ConfigError, match="unknown preset"):
        load_geometry("clik")
    with pytest.raises(ConfigError, match="cannot read"):
        load_geometry("/nonexistent/detector.yaml")


def test_readout_threshold_round_trip_and_zero_suppression(tmp_path):
    spec = load_geometry("clic").to_dict()
    assert "threshold_MeV" not in spec["grid"]  # absent when 0: older descriptions read back the same
    spec["grid"]["threshold_MeV"] = 0.08
    calo = Calorimeter.from_dict(spec)
    assert calo.grid.threshold_MeV == 0.08
    assert Calorimeter.from_dict(calo.to_dict()) == calo
    images = np.array([0.0, 0.5e-4, 0.79e-4, 0.8e-4, 2e-3], dtype=np.float32)  # GeV
    expected = np.array([0.0, 0.0, 0.0, 0.8e-4, 2e-3], dtype=np.float32)
    np.testing.assert_array_equal(calo.zero_suppress(images.copy()), expected)
    spec["grid"]["threshold_MeV"] = -1.0
    with pytest.raises(ConfigError, match="threshold_MeV -1.0 must be a finite number >= 0"):
        Calorimeter.from_dict(spec)


def test_monte_carlo_images_are_zero_suppressed_and_the_ledger_is_not():
    from fastshower.mc.rng import shower_seeds
    from fastshower.mc.simulator import Primaries, Simulator

    plain_calo = load_geometry("clic")
    spec = plain_calo.to_dict()
    spec["grid"]["threshold_MeV"] = 0.1  # about 0.7 MIP in 0.5 mm of silicon
    z = np.zeros(3)
    primaries = Primaries(np.full(3, 11), np.full(3, 2.0), z, z, z, z)
    seeds = shower_seeds(2, 0, 3)
    plain = Simulator(plain_calo).run(primaries, seeds)
    read_out = Simulator(Calorimeter.from_dict(spec)).run(primaries, seeds)
    kept = plain.images >= 1e-4
    np.testing.assert_array_equal(read_out.images[kept], plain.images[kept])
    assert np.all(read_out.images[~kept] == 0) and (~kept & (plain.images > 0)).sum() >= 10
    for key in plain.ledger:
        np.testing.assert_array_equal(read_out.ledger[key], plain.ledger[key])
