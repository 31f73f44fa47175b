"""Writing showers in the layout of the Fast Calorimeter Simulation Challenge 2022 ("CaloChallenge"), so that the
community's evaluation code runs on them unchanged.

Layout (the challenge's data sets 1-3): dataset ``incident_energies`` (N, 1) in MeV and dataset ``showers``
(N, n_voxels) in MeV, voxel ``(layer * n_alpha + alpha) * n_radial + r`` of the binning XML. The reader
(:mod:`fastshower.data.readers`) maps such a file to cells ``(r, alpha, layer)`` in GeV; this module is its inverse.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from fastshower.atomic import atomic_output
from fastshower.data.readers import BinningSpec, _MeV_PER_GeV, inspect_showers, iter_showers, load_binning
from fastshower.errors import DataFormatError


def calochallenge_voxels(ecal_GeV: np.ndarray) -> np.ndarray:
    """Cells ``(N, r, alpha, layer)`` in GeV as the challenge's flat voxels ``(N, layer * alpha * r)`` in MeV."""
    n = ecal_GeV.shape[0]
    return np.ascontiguousarray(np.asarray(ecal_GeV, np.float64).transpose(0, 3, 2, 1)).reshape(n, -1) * _MeV_PER_GeV


def write_calochallenge(source: str | Path, out: str | Path, binning: BinningSpec, batch_size: int = 1024) -> Path:
    """Write the showers of ``source`` (any readable shower file) to ``out`` in the CaloChallenge layout of
    ``binning`` (its XML, a dict or (n_layers, n_alpha, n_radial)); atomically (temporary file + rename).

    The cells of ``source`` must be ``(n_radial, n_alpha, n_layers)`` of the binning, else ``DataFormatError``.
    """
    b = load_binning(binning)
    info = inspect_showers(source, binning)
    want = (b.n_radial, b.n_alpha, b.n_layers)
    if tuple(info["cell_shape"] or ()) != want:
        raise DataFormatError(f"{source}: cells {info['cell_shape']} do not match the binning's (r, alpha, layer) "
                              f"= {want}")

    def fill(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            showers = f.create_dataset("showers", (info["n"], b.n_voxels), dtype=np.float32,
                                       chunks=(min(info["n"], 256), b.n_voxels), compression="gzip")
            energies = f.create_dataset("incident_energies", (info["n"], 1), dtype=np.float64)
            start = 0
            for part in iter_showers(source, batch_size, binning):
                stop = start + len(part)
                showers[start:stop] = calochallenge_voxels(part.ecal)
                energies[start:stop, 0] = part.energy_GeV * _MeV_PER_GeV
                start = stop
            f.attrs["binning"] = str(b.as_attr())

    return atomic_output(out, fill)
