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
