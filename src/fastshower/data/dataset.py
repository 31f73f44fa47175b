"""The torch side of the data layer: the invertible cell transform, splits, a Dataset and a resumable sampler.

Preprocessing happens here and only here: the training step sees transformed cells and never transforms
anything itself. ``ShowerTransform.inverse`` takes generated showers back to GeV.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from fastshower.data.readers import BinningSpec, inspect_showers, iter_showers, read_showers
from fastshower.data.schema import ShowerData
from fastshower.errors import ConfigError, DataFormatError

logger = logging.getLogger(__name__)

#: Showers per block when streaming a large file once to collect its conditions.
_SCAN_BATCH = 1024


class ShowerTransform:
    """Cell-energy transform ``y = scale * x**power`` (x in GeV) and its exact inverse.

    The original 3DGAN multiplies cells by 50 (1 / sampling fraction) and optionally raises them to 0.85; here
    ``power`` (default 0.85) and ``scale`` (default 1.0) are configurable. Inputs below zero (float rounding of
    empty cells, down to -1e-12 GeV) are clamped to 0 first, because a fractional power of them is NaN.
    """

    def __init__(self, power: float = 0.85, scale: float = 1.0) -> None:
        if not (isinstance(power, int | float) and math.isfinite(power) and power > 0):
            raise ConfigError(f"transform power must be a positive number, got {power!r}")
        if not (isinstance(scale, int | float) and math.isfinite(scale) and scale > 0):
            raise ConfigError(f"transform scale must be a positive number, got {scale!r}")
        self.power = float(power)
        self.scale = float(scale)

    def forward(self, x_GeV: Any) -> Any:
        """Transformed cells (torch tensor or numpy array, same type and dtype as the input)."""
        if isinstance(x_GeV, torch.Tensor):
            return self.scale * x_GeV.clamp_min(0.0).pow(self.power)
        x = np.maximum(np.asarray(x_GeV), 0.0)
        return (self.scale * np.power(x, self.power)).astype(x.dtype, copy=False)

    __call__ = forward

    def inverse(self, y: Any) -> Any:
        """Cells in GeV from transformed cells (negative inputs are clamped to 0)."""
        if isinstance(y, torch.Tensor):
            return (y.clamp_min(0.0) / self.scale).pow(1.0 / self.power)
        y = np.maximum(np.asarray(y), 0.0)
        return np.power(y / self.scale, 1.0 / self.power).astype(y.dtype, copy=False)

    def to_dict(self) -> dict[str, float]:
        return {"power": self.power, "scale": self.scale}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ShowerTransform:
        return cls(d["power"], d["scale"])


def split_indices(n: int, validation_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic (train, validation) split of ``range(n)``; both index arrays sorted, int64.

    At least one shower stays in training; a positive fraction gives at least one validation shower.
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise ConfigError(f"validation_fraction must be in [0, 1), got {validation_fraction!r}")
    if n < 1:
        raise DataFormatError(f"cannot split {n} showers")
    n_val = round(n * validation_fraction)
    if validation_fraction > 0:
        n_val = max(n_val, 1)
    n_val = min(n_val, n - 1)
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_val:]).astype(np.int64), np.sort(order[:n_val]).astype(np.int64)


class ShowerDataset(Dataset):
    """Showers of one file (or one ``ShowerData``) as transformed tensors, with their conditions.

    Item ``i`` is a dict: ``showers`` (1, X, Y, Z) float32 transformed cells, ``energy_GeV`` and ``theta_rad``
    (float32 scalars), ``particle`` (int64 index into ``particles``, the sorted PDG codes of the file) and
    ``index`` (int64 position in the file).

    In memory the whole image array is transformed once at construction. Lazily (see ``from_file``) each item
    is read from the HDF5 file on access; the conditions and the per-shower transformed sums are collected by
    one streaming pass at construction.
    """

    def __init__(self, data: ShowerData, transform: ShowerTransform) -> None:
        self.transform = transform
        self.path: Path | None = None
        self.binning: BinningSpec | None = None
        self.cell_shape = data.cell_shape
        self._images: np.ndarray | None = transform(data.ecal)
        self._set_conditions(data.energy_GeV, data.theta_rad, data.pdg)
        self.transformed_sum = self._images.sum(axis=(1, 2, 3), dtype=np.float64)

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        transform: ShowerTransform,
        max_in_memory_gb: float = 8.0,
        max_showers: int | None = None,
        binning: BinningSpec | None = None,
    ) -> ShowerDataset:
        """Dataset over the first ``max_showers`` (all if None) showers of ``path``.

        Held in memory when the images take at most ``max_in_memory_gb`` GiB (float32), read lazily otherwise.
        ``binning``: the binning of a CaloChallenge file (see :func:`fastshower.data.read_showers`).
        """
        info = inspect_showers(path, binning, require_binning=True)
        n = info["n"] if max_showers is None else min(info["n"], int(max_showers))
        if n < 1:
            raise DataFormatError(f"{path}: holds no showers")
        size_gb = n * math.prod(info["cell_shape"]) * 4 / 2**30
        if size_gb <= max_in_memory_gb:
            return cls(read_showers(path, 0, n, binning), transform)
        logger.info("%s: %.1f GiB of images > %.1f GiB, reading showers lazily", path, size_gb, max_in_memory_gb)
        return cls._lazy(Path(path), n, tuple(info["cell_shape"]), transform, binning)

    @classmethod
    def _lazy(cls, path: Path, n: int, cell_shape: tuple[int, ...], transform: ShowerTransform,
              binning: BinningSpec | None = None) -> ShowerDataset:
        obj = cls.__new__(cls)
        obj.transform, obj.path, obj.cell_shape, obj._images = transform, path, cell_shape, None
        obj.binning = binning
        energy, theta, pdg, sums = [], [], [], []
        seen = 0
        for part in iter_showers(path, _SCAN_BATCH, binning):
            part = part.select(slice(0, n - seen))
            energy.append(part.energy_GeV)
            theta.append(part.theta_rad)
            pdg.append(part.pdg)
            sums.append(transform(part.ecal).sum(axis=(1, 2, 3), dtype=np.float64))
            seen += len(part)
            if seen >= n:
                break
        obj._set_conditions(np.concatenate(energy), np.concatenate(theta), np.concatenate(pdg))
        obj.transformed_sum = np.concatenate(sums)
        return obj

    def _set_conditions(self, energy_GeV: np.ndarray, theta_rad: np.ndarray, pdg: np.ndarray) -> None:
        self.energy_GeV = np.asarray(energy_GeV, dtype=np.float64)
        self.theta_rad = np.asarray(theta_rad, dtype=np.float64)
        self.pdg = np.asarray(pdg, dtype=np.int64)
        self.particles: list[int] = sorted(int(p) for p in np.unique(self.pdg))
        self.particle_index = np.searchsorted(np.asarray(self.particles), self.pdg).astype(np.int64)

    @property
    def lazy(self) -> bool:
        """True when showers are read from the file on access."""
        return self._images is None

    def __len__(self) -> int:
        return int(self.energy_GeV.shape[0])

    def image(self, i: int) -> np.ndarray:
        """Transformed cells of shower ``i``, (X, Y, Z) float32."""
        if self._images is not None:
            return self._images[i]
        return self.transform(read_showers(self.path, i, i + 1, self.binning).ecal[0])  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        i = int(i)
        return {
            "showers": torch.from_numpy(np.ascontiguousarray(self.image(i))).unsqueeze(0),
            "energy_GeV": torch.tensor(self.energy_GeV[i], dtype=torch.float32),
            "theta_rad": torch.tensor(self.theta_rad[i], dtype=torch.float32),
            "particle": torch.tensor(self.particle_index[i], dtype=torch.int64),
            "index": torch.tensor(i, dtype=torch.int64),
        }

    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """Items ``indices`` stacked into one batch (same keys as an item)."""
        items = [self[i] for i in indices]
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}

    def to_device(self, device: torch.device | str) -> DeviceShowers:
        """The whole (in-memory) dataset as tensors on ``device``, batched there without a DataLoader."""
        if self._images is None:
            raise DataFormatError(f"{self.path}: read lazily (larger than data.max_in_memory_gb); it cannot be held "
                                  "on a device")
        return DeviceShowers(self, torch.device(device))


class DeviceShowers:
    """A dataset's transformed showers and conditions as tensors on one device (a GPU's memory, or the host's).

    ``batch(indices)`` gathers a batch on that device: the same dict, values and dtypes as stacking the
    ``ShowerDataset`` items (so a run gives the same numbers either way), without per-item Python work, worker
    processes or host-to-device copies. On the CPU the images are the dataset's own array, not a copy.
    """

    def __init__(self, dataset: ShowerDataset, device: torch.device) -> None:
        images = torch.from_numpy(dataset._images)  # type: ignore[arg-type]
        self.device = device
        self.images = images.unsqueeze(1).to(device)  # (N, 1, X, Y, Z) float32
        self.conditions = {
            "energy_GeV": torch.from_numpy(dataset.energy_GeV.astype(np.float32)).to(device),
            "theta_rad": torch.from_numpy(dataset.theta_rad.astype(np.float32)).to(device),
            "particle": torch.from_numpy(dataset.particle_index).to(device),
        }

    @staticmethod
    def nbytes(dataset: ShowerDataset) -> int:
        """Bytes the images of ``dataset`` take on a device (float32)."""
        return len(dataset) * math.prod(dataset.cell_shape) * 4

    def batch(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        """Showers ``indices`` (int64 positions in the file) as one batch on the device."""
        index = torch.from_numpy(np.ascontiguousarray(indices, dtype=np.int64))
        on_device = index.to(self.device)
        out = {"showers": self.images.index_select(0, on_device)}
        out.update({k: v.index_select(0, on_device) for k, v in self.conditions.items()})
        out["index"] = index
        return out


class ResumableSampler(Sampler[int]):
    """``DistributedSampler`` over a subset of indices that can start part-way through an epoch.

    Each epoch the subset is shuffled with a generator seeded by ``seed + epoch`` (identical on every rank),
    padded by wrapping (or truncated, with ``drop_last``) to a multiple of ``num_replicas``, and rank ``r``
    takes positions ``r, r + num_replicas, ...`` - the layout of ``torch.utils.data.DistributedSampler``.
    ``set_start(k)`` skips the first ``k`` of this rank's indices for the current epoch, so that a resumed
    run sees exactly the showers the interrupted one had not yet seen.
    """

    def __init__(
        self,
        indices: Sequence[int] | np.ndarray,
        num_replicas: int = 1,
        rank: int = 0,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
    ) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} not in [0, {num_replicas})")
        self.indices = np.asarray(indices, dtype=np.int64)
        self.num_replicas, self.rank, self.seed = num_replicas, rank, seed
        self.shuffle, self.drop_last = shuffle, drop_last
        self.epoch = 0
        self.start = 0
        n = len(self.indices)
        self.per_rank = n // num_replicas if drop_last else -(-n // num_replicas)

    def set_epoch(self, epoch: int) -> None:
        """Select the shuffle of ``epoch`` and start from its beginning."""
        self.epoch, self.start = int(epoch), 0

    def set_start(self, start: int) -> None:
        """Skip the first ``start`` indices of this rank in the current epoch."""
        self.start = int(start)

    def rank_indices(self) -> np.ndarray:
        """All indices of this rank for the current epoch, in order (ignores ``set_start``)."""
        order = np.arange(len(self.indices))
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(len(self.indices), generator=g).numpy()
        total = self.per_rank * self.num_replicas
        order = np.resize(order, total) if total > len(order) else order[:total]  # np.resize wraps around
        return self.indices[order[self.rank : total : self.num_replicas]]

    def __iter__(self) -> Iterator[int]:
        return iter(int(i) for i in self.rank_indices()[self.start :])

    def __len__(self) -> int:
        return max(self.per_rank - self.start, 0)
