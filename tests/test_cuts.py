"""Production thresholds: Geant4's range-to-energy conversion reproduced to Geant4's printed digits; the CSDA
conversion kept as it was; the setting validated, recorded and read back from older files."""

from __future__ import annotations

import pytest

from conftest import synthetic_showers
from fastshower.data import ShowerData, read_showers, write_showers
from fastshower.data.merge import merge_showers
from fastshower.errors import ConfigError
from fastshower.geometry import load_geometry
from fastshower.materials import material
from fastshower.mc.cuts import geant4_electron_cut_MeV, geant4_photon_cut_MeV, production_cuts_MeV
from fastshower.mc.settings import PhysicsSettings
from fastshower.mc.tables import build_material_tables

# Thresholds Geant4 10.x prints in its production-cuts table (G4ProductionCutsTable::DumpCouples, shown at the
# start of every run) for NIST materials: (material, range cut mm, e- MeV, gamma MeV). G4_Pb: 11.35 g/cm^3,
# G4_Si: 2.33 g/cm^3, as fastshower's Pb and Si.
GEANT4_PRINTED = [
    ("Pb", 0.7, 1.00386, None),
    ("Pb", 1.0, 1.36749, 0.101843),
    ("Si", 1.0, 0.548291, 0.00695018),
]


@pytest.mark.parametrize(("name", "cut_mm", "electron_MeV", "photon_MeV"), GEANT4_PRINTED)
def test_geant4_conversion_gives_the_thresholds_geant4_prints(name, cut_mm, electron_MeV, photon_MeV):
    mat = material(name)
    assert geant4_electron_cut_MeV(mat, cut_mm) == pytest.approx(electron_MeV, rel=2e-5)
    if photon_MeV is not None:
        assert geant4_photon_cut_MeV(mat, cut_mm) == pytest.approx(photon_MeV, rel=2e-5)


def test_geant4_thresholds_grow_with_the_cut_and_respect_the_lowest_energy():
    w = material("W")
    electrons = [geant4_electron_cut_MeV(w, c) for c in (0.01, 0.1, 0.7, 5.0)]
    assert electrons == sorted(electrons)
    # a 1 um cut in silicon is below Geant4's table: the threshold is its lowest energy, as in Geant4
    assert production_cuts_MeV(material("Si"), 1e-6, "geant4", 0.00099) == (0.00099, 0.00099)


def test_csda_conversion_is_unchanged():
    # docs/physics.md (before the Geant4 conversion existed): W e- 1.54 MeV, gamma 107 keV; Si 0.40 MeV, 10 keV
    w = production_cuts_MeV(material("W"), 0.7, "csda", 0.00099)
    si = production_cuts_MeV(material("Si"), 0.7, "csda", 0.00099)
    assert w[0] == pytest.approx(1.537, abs=0.005) and w[1] == pytest.approx(0.1066, abs=0.0005)
    assert si[0] == pytest.approx(0.403, abs=0.005) and si[1] == pytest.approx(0.0104, abs=0.0003)


def test_the_tables_use_the_chosen_conversion():
    clic = load_geometry("clic")
    g4 = build_material_tables(clic, PhysicsSettings(cut_conversion="geant4")).cut_energies_MeV()
    csda = build_material_tables(clic, PhysicsSettings(cut_conversion="csda")).cut_energies_MeV()
    assert g4["W"][0] == pytest.approx(1.6396, rel=1e-3) and g4["Si"][1] == pytest.approx(0.005875, rel=1e-3)
    assert csda["W"][0] == pytest.approx(1.537, abs=0.005)


def test_a_bad_conversion_name_is_one_line_naming_the_choices():
    with pytest.raises(ConfigError, match=r"^physics setting cut_conversion: 'g4' is not one of geant4, csda$"):
        PhysicsSettings(cut_conversion="g4")


def test_files_made_before_the_setting_existed_read_as_csda_and_merge_with_new_ones(tmp_path):
    new = PhysicsSettings(cut_conversion="csda").to_dict()
    old = {k: v for k, v in new.items() if k != "cut_conversion"}
    assert PhysicsSettings.from_recorded(old) == PhysicsSettings(cut_conversion="csda")
    paths = []
    for i, physics in enumerate((old, new)):
        d = synthetic_showers(3, (4, 4, 4), seed=i)
        attrs = {"physics": physics, "geometry": {"name": "tiny"}, "seed": i, "request": {"n": 3}}
        paths.append(write_showers(tmp_path / f"{i}.h5", ShowerData(d.ecal, d.energy_GeV, d.theta_rad, d.phi_rad,
                                                                     d.pdg, attrs=attrs)))
    merged = read_showers(merge_showers(paths, tmp_path / "m.h5"))
    assert len(merged) == 6 and merged.attrs["physics"]["cut_conversion"] == "csda"
    g4 = {**new, "cut_conversion": "geant4"}
    d = synthetic_showers(3, (4, 4, 4), seed=5)
    other = write_showers(tmp_path / "g4.h5", ShowerData(d.ecal, d.energy_GeV, d.theta_rad, d.phi_rad, d.pdg,
                                                         attrs={"physics": g4, "geometry": {"name": "tiny"},
                                                                "seed": 5, "request": {"n": 3}}))
    from fastshower.errors import DataFormatError

    with pytest.raises(DataFormatError, match="physics settings differ"):
        merge_showers([paths[0], other], tmp_path / "m2.h5")
