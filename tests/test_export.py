"""ONNX export: one input [latent | conditions], dynamic batch, onnxruntime agrees with PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastshower.export import SingleInputGenerator, export_onnx
from fastshower.models import build_model
from fastshower.models.bundle import load_bundle, save_bundle

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    torch.manual_seed(0)
    pair = build_model("3dgan", (12, 12, 12))
    path = save_bundle(tmp_path_factory.mktemp("m") / "g.pt", pair.generator, model_name="3dgan",
                       cell_shape=(12, 12, 12), model_config=pair.config, transform_power=0.85,
                       transform_scale=1.5, energy_range_GeV=(10.0, 500.0))
    return load_bundle(path)


def test_onnx_matches_torch_for_any_batch(tmp_path, bundle):
    report = export_onnx(bundle, tmp_path / "g.onnx")
    assert report.max_rel_diff < 1e-4
    session = onnxruntime.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    wrapper = SingleInputGenerator(bundle)
    for batch in (1, 7):
        x = torch.cat([torch.randn(batch, 200), torch.full((batch, 1), 100.0)], dim=1)
        out = session.run(None, {"input": x.numpy()})[0]
        assert out.shape == (batch, 12, 12, 12)
        with torch.no_grad():
            np.testing.assert_allclose(out, wrapper(x).numpy(), rtol=1e-4, atol=1e-6)


def test_par04_layout_takes_its_input_vector_and_returns_shares_of_the_energy(tmp_path, bundle):
    """Geant4 Par04 builds [latent | E/E_max | theta_deg/theta_max | geometry one-hot] and multiplies the output by
    E in MeV (Par04InferenceSetup::GetEnergies): that product must be our showers in MeV."""
    import json

    import onnx

    path = tmp_path / "par04.onnx"
    report = export_onnx(bundle, path, par04=True, par04_geometries=2)
    assert report.max_rel_diff < 1e-4
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["layout"] == "par04" and meta["latent_size"] == "200" and meta["condition_size"] == "4"
    assert float(meta["energy_max_MeV"]) == 500_000.0 and float(meta["theta_max_deg"]) == 90.0
    assert json.loads(meta["output_shape"]) == [12, 12, 12] and len(json.loads(meta["input_columns"])) == 204
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    noise = torch.randn(3, 200)
    energy_GeV = torch.tensor([20.0, 100.0, 400.0])
    par04_input = torch.cat([noise, (energy_GeV / 500.0)[:, None], torch.zeros(3, 1), torch.tensor([[0.0, 1.0]] * 3)],
                            dim=1)
    share = session.run(None, {"input": par04_input.numpy()})[0]
    assert share.shape == (3, 12 * 12 * 12)
    cells_MeV = share * (energy_GeV.numpy() * 1000.0)[:, None]
    with torch.no_grad():
        ours_GeV = SingleInputGenerator(bundle)(torch.cat([noise, energy_GeV[:, None]], dim=1)).numpy()
    expected_MeV = ours_GeV.reshape(3, -1) * 1000.0  # float32 rounding of E / E_max x E_max: relative to the peak
    np.testing.assert_allclose(cells_MeV, expected_MeV, rtol=1e-3, atol=1e-4 * float(expected_MeV.max()))
    assert export_onnx(bundle, tmp_path / "plain.onnx", check=False) is None
    plain = {p.key: p.value for p in onnx.load(str(tmp_path / "plain.onnx")).metadata_props}
    assert plain["layout"] == "fastshower" and plain["output"] == "cell energies in GeV"
