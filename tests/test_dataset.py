"""Tests of fastshower.data.dataset: transform, split, Dataset (in memory and lazy), resumable sampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import synthetic_showers
from fastshower.data import ShowerData, write_showers
from fastshower.data.dataset import ResumableSampler, ShowerDataset, ShowerTransform, split_indices
from fastshower.errors import ConfigError


def synth(n: int, shape: tuple[int, int, int] = (8, 8, 8), seed: int = 0, pdg: list[int] | None = None) -> ShowerData:
    return synthetic_showers(n, shape, seed, pdg, theta_max=0.1)


def test_transform_inverse_is_exact_to_float_precision() -> None:
    t = ShowerTransform(0.85, 50.0)
    x = torch.rand(100, dtype=torch.float64) * 10
    assert torch.allclose(t.inverse(t(x)), x, rtol=1e-12, atol=0)
    a = np.array([0.0, -1e-13, 1.5], np.float32)
    y = t(a)
    assert y.dtype == np.float32 and y[1] == 0.0 and np.isclose(y[2], 50.0 * 1.5**0.85)
    assert np.allclose(t.inverse(y), [0.0, 0.0, 1.5], rtol=1e-6)
    with pytest.raises(ConfigError):
        ShowerTransform(power=0)


def test_split_is_deterministic_disjoint_and_complete() -> None:
    tr, va = split_indices(100, 0.1, seed=3)
    tr2, va2 = split_indices(100, 0.1, seed=3)
    assert np.array_equal(tr, tr2) and np.array_equal(va, va2)
    assert len(va) == 10 and not set(tr) & set(va) and set(tr) | set(va) == set(range(100))
    assert not np.array_equal(va, split_indices(100, 0.1, seed=4)[1])
    assert len(split_indices(5, 0.0, 1)[1]) == 0
    with pytest.raises(ConfigError):
        split_indices(10, 1.0, 1)


def test_dataset_items_in_memory_and_lazy_agree(tmp_path) -> None:
    data = synth(12, pdg=[11, 22])
    path = write_showers(tmp_path / "s.h5", data)
    t = ShowerTransform()
    mem = ShowerDataset.from_file(path, t)
    lazy = ShowerDataset.from_file(path, t, max_in_memory_gb=1e-9)
    assert not mem.lazy and lazy.lazy and len(mem) == len(lazy) == 12
    assert mem.particles == [11, 22] and mem.particle_index.tolist() == [0, 1] * 6
    item = mem[3]
    assert item["showers"].shape == (1, 8, 8, 8) and item["showers"].dtype == torch.float32
    assert item["index"].item() == 3 and item["particle"].item() == 1
    assert torch.allclose(item["showers"][0], torch.from_numpy(t(data.ecal[3])))
    for key in item:
        assert torch.equal(item[key], lazy[3][key])
    assert np.allclose(mem.transformed_sum, lazy.transformed_sum)
    assert len(ShowerDataset.from_file(path, t, max_in_memory_gb=1e-9, max_showers=5)) == 5
    batch = mem.batch([0, 5])
    assert batch["showers"].shape == (2, 1, 8, 8, 8) and batch["index"].tolist() == [0, 5]


def test_sampler_ranks_are_disjoint_and_resume_mid_epoch() -> None:
    idx = np.arange(100, 140)
    ranks = [ResumableSampler(idx, 2, r, seed=7) for r in range(2)]
    for s in ranks:
        s.set_epoch(3)
    seen = [list(s) for s in ranks]
    assert not set(seen[0]) & set(seen[1]) and set(seen[0]) | set(seen[1]) == set(idx.tolist())
    ranks[0].set_epoch(4)
    assert list(ranks[0]) != seen[0]
    ranks[0].set_epoch(3)
    ranks[0].set_start(5)
    assert list(ranks[0]) == seen[0][5:] and len(ranks[0]) == 15
    padded = ResumableSampler(np.arange(5), 2, 1, seed=0, drop_last=False)
    assert len(list(padded)) == 3
