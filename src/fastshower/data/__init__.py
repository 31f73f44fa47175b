"""Data layer: the in-memory ``ShowerData``, the fastshower HDF5 format and readers of external formats.

Imports nothing from fastshower but ``fastshower.errors`` and ``fastshower.config`` (file parsing): it sits below
the Monte Carlo and the models.
"""

from fastshower.data.merge import merge_showers
from fastshower.data.readers import (
    BinningSpec,
    CylindricalBinning,
    inspect_showers,
    iter_showers,
    load_binning,
    read_showers,
)
from fastshower.data.schema import FORMAT_NAME, LEDGER_KEYS, SCHEMA_VERSION, ShowerData
from fastshower.data.writer import ShowerWriter, partial_path, write_showers

__all__ = [
    "FORMAT_NAME",
    "LEDGER_KEYS",
    "SCHEMA_VERSION",
    "BinningSpec",
    "CylindricalBinning",
    "ShowerData",
    "ShowerWriter",
    "inspect_showers",
    "iter_showers",
    "load_binning",
    "merge_showers",
    "partial_path",
    "read_showers",
    "write_showers",
]
