"""The generation commands end to end: generate (streamed, reproducible), export, bench, validate --model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fastshower.cli import main
from fastshower.data import ShowerData, read_showers, write_showers
from fastshower.models import build_model
from fastshower.models.bundle import save_bundle

CELLS = (12, 12, 12)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    torch.manual_seed(1)
    pair = build_model("3dgan", CELLS)
    return save_bundle(tmp_path_factory.mktemp("m") / "g.pt", pair.generator, model_name="3dgan",
                       cell_shape=CELLS, model_config=pair.config, transform_power=0.85, transform_scale=1.0,
                       energy_range_GeV=(10.0, 100.0), geometry={"name": "tiny"})


def test_generate_streams_reproducibly(bundle, tmp_path, capsys):
    common = ["generate", "--model", str(bundle), "--energy", "10:100", "--n", "10", "--precision", "fp32",
              "--seed", "3"]
    assert main([*common, "--out", str(tmp_path / "a.h5"), "--batch", "4"]) == 0
    assert "10 showers from" in capsys.readouterr().out
    assert main([*common, "--out", str(tmp_path / "b.h5"), "--batch", "10"]) == 0
    a, b = read_showers(tmp_path / "a.h5"), read_showers(tmp_path / "b.h5")
    assert a.ecal.shape == (10, *CELLS) and np.all(a.ecal >= 0)
    assert np.all((a.energy_GeV >= 10) & (a.energy_GeV <= 100))
    np.testing.assert_array_equal(a.energy_GeV, b.energy_GeV)
    np.testing.assert_allclose(a.ecal, b.ecal, rtol=1e-5, atol=1e-7)
    assert a.attrs["geometry"] == {"name": "tiny"}


@pytest.mark.parametrize(("extra", "message"), [
    (["--energy", "500"], "outside the model's training range"),
    (["--energy", "50", "--particle", "gamma"], "the model was trained on PDG [11]"),
    (["--energy", "50", "--batch", "0"], "must be >= 1"),
])
def test_generate_errors(bundle, tmp_path, capsys, extra, message):
    assert main(["generate", "--model", str(bundle), "--n", "2", "--out", str(tmp_path / "x.h5"), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "x.h5").exists()


def test_export_and_bench(bundle, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    assert main(["export", "--model", str(bundle), "--onnx", str(tmp_path / "g.onnx")]) == 0
    assert "max rel diff" in capsys.readouterr().out
    results = tmp_path / "RESULTS.md"
    assert main(["bench", "--model", str(bundle), "--batches", "1,4", "--quick", "--write", str(results)]) == 0
    text = results.read_text()
    assert "## Fast generation vs the Monte Carlo" in text and "| bf16 | 4 |" in text and "onnxruntime" in text


def test_bench_times_several_models_side_by_side(bundle, tmp_path, capsys):
    import shutil

    twin = shutil.copy(bundle, tmp_path / "twin.pt")
    results = tmp_path / "RESULTS.md"
    assert main(["bench", "--model", str(bundle), "--model", str(twin), "--batches", "2", "--quick",
                 "--write", str(results)]) == 0
    rows = [line for line in results.read_text().splitlines() if "| 3dgan |" in line]
    assert "## Models side by side" in results.read_text() and len(rows) == 4  # 2 models x fp32, bf16
    assert {row.split("|")[5].strip() for row in rows} == {"fp32", "bf16"}
    capsys.readouterr()
    assert main(["bench", "--model", str(bundle), "--model", "3dgan-clic-electrons", "--quick"]) == 2
    err = capsys.readouterr().err
    assert "the models make different grids" in err and err.count("\n") == 1
    assert main(["bench", "--model", str(bundle), "--model", str(bundle), "--quick"]) == 2
    assert "a model is named twice" in capsys.readouterr().err


def test_validate_with_model_generates_the_candidate(bundle, tmp_path, capsys):
    rng = np.random.default_rng(0)
    n = 60
    energies = rng.uniform(10, 100, n)
    ecal = rng.gamma(2.0, 1e-3, (n, *CELLS)).astype(np.float32) * energies[:, None, None, None] / 100
    write_showers(tmp_path / "ref.h5", ShowerData(ecal, energies, np.zeros(n), np.zeros(n), np.full(n, 11)))
    out = tmp_path / "report"
    assert main(["validate", "--reference", str(tmp_path / "ref.h5"), "--model", str(bundle), "--out", str(out),
                 "--energy-bins", "10,100", "--no-classifier"]) == 0
    candidate = read_showers(out / "candidate.h5")
    np.testing.assert_allclose(candidate.energy_GeV, energies)
    assert json.loads((out / "metrics.json").read_text())["summary"]
