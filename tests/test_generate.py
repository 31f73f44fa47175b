"""Generation from a generator bundle: shapes, units, reproducibility, precision, condition checks, safe loading."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

import fastshower
from fastshower.errors import ConfigError, DataFormatError
from fastshower.generate import ShowerSampler
from fastshower.models import build_model
from fastshower.models.bundle import load_bundle, save_bundle

CELLS = (12, 12, 12)


@pytest.fixture(scope="module")
def bundle_path(tmp_path_factory):
    torch.manual_seed(0)
    pair = build_model("3dgan", CELLS)
    # non-trivial BatchNorm statistics, as after training
    pair.generator.train()
    with torch.no_grad():
        pair.generator(torch.randn(16, 200), torch.full((16,), 50.0))
    path = tmp_path_factory.mktemp("model") / "g.pt"
    return save_bundle(path, pair.generator, model_name="3dgan", cell_shape=CELLS, model_config=pair.config,
                       transform_power=0.85, transform_scale=2.0, energy_range_GeV=(10.0, 100.0),
                       geometry={"name": "tiny"}, provenance={"note": "untrained"})


def test_sample_shape_units_and_inverse_transform(bundle_path):
    sampler = fastshower.load(str(bundle_path))
    showers = sampler.sample(energy=50.0, n=5, seed=1)
    assert showers.shape == (5, *CELLS) and showers.dtype == np.float32
    assert np.all(showers >= 0)
    # the inverse transform is exact: re-applying the forward transform gives the raw generator output
    with torch.no_grad():
        noise = torch.randn(2, 200)
        raw = sampler.generator(noise, torch.full((2,), 50.0)).clamp_min(0)[:, 0].numpy()
    cells = sampler._generate(noise, np.full(2, 50.0), np.zeros(2), "fp32")
    np.testing.assert_allclose(2.0 * cells**0.85, raw, rtol=1e-5, atol=1e-7)


def test_same_seed_same_showers_whatever_the_batch(bundle_path):
    sampler = fastshower.load(str(bundle_path))
    energies = np.linspace(10, 100, 7)
    a = sampler.sample(energy=energies, seed=3, batch_size=7)
    b = sampler.sample(energy=energies, seed=3, batch_size=2)
    c = sampler.sample(energy=energies, seed=4, batch_size=7)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert not np.allclose(a, c)


def test_bf16_close_to_fp32(bundle_path):
    sampler = fastshower.load(str(bundle_path))
    fp32 = sampler.sample(energy=60.0, n=8, seed=2, precision="fp32")
    bf16 = sampler.sample(energy=60.0, n=8, seed=2, precision="bf16")
    relative = abs(bf16.sum() - fp32.sum()) / fp32.sum()
    assert relative < 0.05


def test_conditions_outside_training_range_are_refused(bundle_path):
    sampler = fastshower.load(str(bundle_path))
    with pytest.raises(ConfigError, match="outside the model's training range 10..100 GeV"):
        sampler.sample(energy=500.0, n=2)
    assert sampler.sample(energy=500.0, n=2, allow_extrapolation=True).shape == (2, *CELLS)
    with pytest.raises(ConfigError, match="theta"):
        sampler.sample(energy=50.0, theta_deg=17.0, n=2)
    with pytest.raises(ConfigError, match="precision"):
        sampler.sample(energy=50.0, n=2, precision="fp8")


def test_bad_model_files(tmp_path, bundle_path):
    with pytest.raises(ConfigError, match="no such file and not a shipped model"):
        fastshower.load(str(tmp_path / "missing.pt"))
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(bundle_path.read_bytes()[:1000])
    with pytest.raises(DataFormatError, match="not a loadable model file"):
        load_bundle(corrupt)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(DataFormatError, match="not a fastshower generator bundle"):
        load_bundle(other)


class _Evil:
    def __reduce__(self):
        return (print, ("unpickled arbitrary code",))


def test_model_files_never_unpickle_arbitrary_objects(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump({"schema": "fastshower-generator", "x": _Evil()}, handle)
    with pytest.raises(DataFormatError):
        load_bundle(path)
    assert "unpickled arbitrary code" not in capsys.readouterr().out


def test_sampler_type(bundle_path):
    assert isinstance(fastshower.load(str(bundle_path)), ShowerSampler)


def test_generated_showers_read_out_like_the_detector(bundle_path):
    # the readout threshold of the detector the model learned is applied to its showers, as the MC applies it
    bundle = load_bundle(bundle_path)
    plain = ShowerSampler(bundle).sample(energy=50.0, n=4, seed=3)
    positive = plain[plain > 0]
    threshold_GeV = float(np.quantile(positive, 0.5))  # a threshold that removes half of the lit cells
    bundle.geometry["grid"] = {"nx": 12, "ny": 12, "pitch_mm": 5.1, "threshold_MeV": threshold_GeV * 1000.0}
    read_out = ShowerSampler(bundle).sample(energy=50.0, n=4, seed=3)
    kept = plain >= threshold_GeV
    np.testing.assert_array_equal(read_out[kept], plain[kept])
    assert np.all(read_out[~kept] == 0) and 0 < kept.sum() < (plain > 0).sum()


def test_the_fastest_cpu_precision_is_bf16_only_where_the_cpu_computes_it_natively():
    from fastshower.hardware import cpu_has_native_bf16

    assert cpu_has_native_bf16("flags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_tile")
    assert cpu_has_native_bf16("flags\t\t: fpu avx2 amx_bf16 amx_tile")
    assert not cpu_has_native_bf16("flags\t\t: fpu sse avx2 avx512f avx512bw")  # AVX-512 without BF16: emulated
    assert not cpu_has_native_bf16("")
