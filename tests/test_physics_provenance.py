"""A model remembers the Monte Carlo physics it was trained on, and a comparison with a reference of other physics
says so (issue 10: the shipped model predates the mixed elastic scheme and Geant4's cut conversion)."""

from __future__ import annotations

import torch

from conftest import synthetic_showers
from fastshower.data import inspect_showers, write_showers
from fastshower.generate import generate_like
from fastshower.mc.settings import PhysicsSettings, physics_differences
from fastshower.models import build_model
from fastshower.models.bundle import load_bundle, save_bundle
from fastshower.validate.report import physics_notes

TODAY = PhysicsSettings().to_dict()


def test_settings_that_predate_a_file_compare_as_the_values_of_their_time():
    assert physics_differences(TODAY, TODAY) == []
    # a file or bundle that records nothing was made with the MC of its time: Highland msc, CSDA cuts
    assert physics_differences({}, TODAY) == ["cut_conversion: 'csda' vs 'geant4'", "msc: 'highland' vs 'wentzel'"]
    assert physics_differences({**TODAY, "range_cut_mm": 1.0}, TODAY) == ["range_cut_mm: 1.0 vs 0.7"]
    # a dict that no longer parses is still compared, key by key
    assert physics_differences({**TODAY, "msc": "urban"}, TODAY) == ["msc: 'urban' vs 'wentzel'"]


def _bundle(tmp_path, physics):
    torch.manual_seed(0)
    pair = build_model("3dgan", (8, 8, 8))
    return save_bundle(tmp_path / "g.pt", pair.generator, model_name="3dgan", cell_shape=(8, 8, 8),
                       model_config=pair.config, transform_power=0.85, transform_scale=1.0,
                       energy_range_GeV=(10.0, 100.0), physics=physics)


def _reference(tmp_path, physics):
    data = synthetic_showers(6, (8, 8, 8))
    data.attrs.update({"physics": physics})
    return write_showers(tmp_path / "ref.h5", data)


def test_bundles_keep_the_training_physics_and_older_ones_load_without_it(tmp_path):
    path = _bundle(tmp_path, TODAY)
    assert load_bundle(path).physics == TODAY
    payload = torch.load(path, weights_only=True)
    del payload["physics"]
    torch.save(payload, tmp_path / "old.pt")
    assert load_bundle(tmp_path / "old.pt").physics == {}


def test_a_model_of_other_physics_than_the_reference_is_flagged(tmp_path):
    reference = _reference(tmp_path, TODAY)
    for trained_on, expected in (({}, 1), (TODAY, 0)):
        out = generate_like(reference, _bundle(tmp_path, trained_on), tmp_path / "cand.h5")
        notes = physics_notes(inspect_showers(reference)["attrs"], inspect_showers(out)["attrs"])
        assert len(notes) == expected
        if expected:
            assert "msc: 'highland' vs 'wentzel'" in notes[0] and "not the model" in notes[0]


def test_the_shipped_model_says_it_predates_todays_physics():
    # the shipped 3dgan-clic-electrons was trained on the Highland/CSDA Monte Carlo: its bundle records no physics
    from fastshower.generate import load

    assert physics_differences(load("3dgan-clic-electrons").bundle.physics, TODAY) != []


def test_the_shipped_vae_was_trained_on_todays_physics():
    from fastshower.generate import load

    assert physics_differences(load("3dvae-clic-electrons").bundle.physics, TODAY) == []
