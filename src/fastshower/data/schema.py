"""In-memory representation of a set of showers and the names/conventions of the on-disk schema.

Everything here is shared by the writer and the readers; nothing imports the Monte Carlo or the models
(the data layer sits below them in the dependency order).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import numpy as np

from fastshower.errors import DataFormatError

logger = logging.getLogger(__name__)

#: Value of the root attribute ``format`` in files written by fastshower.
FORMAT_NAME = "fastshower"
#: Version of the on-disk layout; bump when a reader for the old layout would misread the new one.
SCHEMA_VERSION = 1
#: Per-shower energy ledger entries (GeV), stored under the HDF5 group ``ledger/``.
LEDGER_KEYS: tuple[str, ...] = ("sensor", "passive", "leak_front", "leak_side", "leak_back", "available")
#: Cell energies down to this value (GeV) are accepted as float rounding of a zero deposit.
NEGATIVE_TOLERANCE_GeV = 1e-12
#: Root attributes the writer owns; values passed in ``attrs`` under these names are replaced.
RESERVED_ATTRS = ("format", "schema_version", "_json_attrs")
#: Attributes that define how a file was produced; a resumed production must agree on all of them.
CONFIG_ATTRS = ("geometry", "physics", "seed", "request")


def package_version() -> str:
    """Version string of the installed fastshower package ("0+unknown" when running from a bare tree)."""
    try:
        return metadata.version("fastshower")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays appear in configs built from computed values; JSON knows only Python types.
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def canonical_json(value: Any) -> str:
    """Deterministic JSON text of ``value`` (sorted keys), so that equal configurations compare equal."""
    return json.dumps(value, sort_keys=True, default=_json_default, allow_nan=False)


@dataclass
class ShowerData:
    """A batch of N showers with their primaries, in memory.

    Attributes:
        ecal: (N, nx, ny, nz) float32, energy deposited in each cell in GeV, axis order [x, y, layer].
            For CaloChallenge (cylindrical) binnings the first two axes are [radial bin, alpha bin].
        energy_GeV: (N,) float64 kinetic energy of the primary in GeV (> 0).
        theta_rad: (N,) float64 incidence angle from the calorimeter normal in rad (zeros if unknown).
        phi_rad: (N,) float64 azimuth in rad (zeros if unknown).
        pdg: (N,) int32 PDG code of the primary (11 e-, -11 e+, 22 gamma, 111 pi0), 0 if unknown.
        ledger: optional per-shower energy ledger, key -> (N,) float64 in GeV (see ``LEDGER_KEYS``).
        attrs: metadata ("format", "geometry", "physics", "seed", "version", "binning", ...).

    Construction coerces dtypes and validates (``DataFormatError`` on inconsistent or non-finite data).
    """

    ecal: np.ndarray
    energy_GeV: np.ndarray  # noqa: N815 - unit suffix is part of the agreed field name
    theta_rad: np.ndarray
    phi_rad: np.ndarray
    pdg: np.ndarray
    ledger: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ecal = np.asarray(self.ecal, dtype=np.float32)
        self.energy_GeV = np.asarray(self.energy_GeV, dtype=np.float64).reshape(-1)
        self.theta_rad = np.asarray(self.theta_rad, dtype=np.float64).reshape(-1)
        self.phi_rad = np.asarray(self.phi_rad, dtype=np.float64).reshape(-1)
        pdg = np.asarray(self.pdg)
        if pdg.dtype.kind == "f":
            # a float PDG code (e.g. from a 'target' column) must be integral before the int32 cast
            check_finite("ShowerData", "pdgID", pdg)
            if not np.array_equal(pdg, np.round(pdg)):
                raise DataFormatError("ShowerData: dataset 'pdgID' contains non-integer values")
        self.pdg = pdg.astype(np.int32).reshape(-1)
        self.ledger = {str(k): np.asarray(v, dtype=np.float64).reshape(-1) for k, v in self.ledger.items()}
        self.attrs = dict(self.attrs)
        self.validate("ShowerData")

    @classmethod
    def _unchecked(
        cls,
        ecal: np.ndarray,
        energy_GeV: np.ndarray,
        theta_rad: np.ndarray,
        phi_rad: np.ndarray,
        pdg: np.ndarray,
        ledger: dict[str, np.ndarray],
        attrs: dict[str, Any],
    ) -> ShowerData:
        # Readers validate with the file's own dataset names (better messages) and subsets of valid data
        # are valid, so both skip the second full pass over ECAL that __post_init__ would make.
        obj = cls.__new__(cls)
        obj.ecal, obj.energy_GeV, obj.theta_rad, obj.phi_rad, obj.pdg = (
            ecal,
            energy_GeV,
            theta_rad,
            phi_rad,
            pdg,
        )
        obj.ledger, obj.attrs = ledger, attrs
        return obj

    def __len__(self) -> int:
        return int(self.ecal.shape[0])

    @property
    def cell_shape(self) -> tuple[int, int, int]:
        """Shape (nx, ny, nz) of one shower image."""
        return tuple(int(s) for s in self.ecal.shape[1:])  # type: ignore[return-value]

    def validate(self, source: str = "ShowerData") -> None:
        """Check shapes and values; ``source`` (a file name, say) prefixes the error message.

        Raises ``DataFormatError`` when ECAL is not 4-D, a per-shower array is not of length N, any value is
        NaN/inf, a cell energy is below -1e-12 GeV, or a primary energy is not > 0 GeV.
        """
        check_ecal(source, "ECAL", self.ecal)
        n = self.ecal.shape[0]
        per_shower = {
            "energy": self.energy_GeV,
            "theta": self.theta_rad,
            "phi": self.phi_rad,
            "pdgID": self.pdg,
        }
        per_shower.update({f"ledger/{k}": v for k, v in self.ledger.items()})
        for name, arr in per_shower.items():
            check_length(source, name, arr, n, "ECAL")
            check_finite(source, name, arr)
        check_energies(source, "energy", self.energy_GeV, "GeV")

    def select(self, index: int | slice | Sequence[int] | np.ndarray) -> ShowerData:
        """Subset of the showers: ``index`` is a slice, a boolean mask of length N, an int array or an int."""
        if isinstance(index, (int, np.integer)):
            # keep the leading N axis so that the result is still a ShowerData of one shower
            index = np.array([index])
        elif not isinstance(index, slice):
            index = np.asarray(index)
            if index.dtype == bool and index.shape != (len(self),):
                raise IndexError(f"boolean mask has shape {index.shape}, expected ({len(self)},)")
        return ShowerData._unchecked(
            self.ecal[index],
            self.energy_GeV[index],
            self.theta_rad[index],
            self.phi_rad[index],
            self.pdg[index],
            {k: v[index] for k, v in self.ledger.items()},
            dict(self.attrs),
        )

    @classmethod
    def concatenate(cls, parts: Iterable[ShowerData]) -> ShowerData:
        """Join batches along N; cell shapes and ledger keys must agree; attrs are taken from the first."""
        parts = list(parts)
        if not parts:
            raise ValueError("concatenate needs at least one ShowerData")
        first = parts[0]
        for p in parts[1:]:
            if p.cell_shape != first.cell_shape or set(p.ledger) != set(first.ledger):
                raise DataFormatError(
                    f"ShowerData: cannot concatenate cell shape {p.cell_shape} / ledger {sorted(p.ledger)} "
                    f"with {first.cell_shape} / {sorted(first.ledger)}"
                )
        return cls._unchecked(
            np.concatenate([p.ecal for p in parts]),
            np.concatenate([p.energy_GeV for p in parts]),
            np.concatenate([p.theta_rad for p in parts]),
            np.concatenate([p.phi_rad for p in parts]),
            np.concatenate([p.pdg for p in parts]),
            {k: np.concatenate([p.ledger[k] for p in parts]) for k in first.ledger},
            dict(first.attrs),
        )


# --- value checks shared by ShowerData and the readers (messages name the file and the dataset) ----------


def check_ecal(source: str, name: str, ecal: np.ndarray, unit: str = "GeV") -> None:
    """Require a 4-D (N, nx, ny, nz) array of finite cell energies not below -1e-12 (in ``unit``)."""
    if ecal.ndim != 4:
        raise DataFormatError(
            f"{source}: dataset {name!r} has shape {tuple(ecal.shape)} but (N, nx, ny, nz) is required"
        )
    check_finite(source, name, ecal)
    if ecal.size and float(ecal.min()) < -NEGATIVE_TOLERANCE_GeV:
        raise DataFormatError(
            f"{source}: dataset {name!r} has negative cell energies (min {float(ecal.min()):.6g} {unit})"
        )


def check_finite(source: str, name: str, arr: np.ndarray) -> None:
    """Reject NaN and +-inf in a floating-point array."""
    if arr.dtype.kind not in "fc":
        return
    finite = np.isfinite(arr)
    if not finite.all():
        what = "NaN" if np.isnan(arr).any() else "inf"
        raise DataFormatError(f"{source}: dataset {name!r} contains {what}")


def check_length(source: str, name: str, arr: np.ndarray, n: int, ref: str) -> None:
    """Require a per-shower array of length ``n`` (the length of dataset ``ref``)."""
    if arr.ndim != 1 or arr.shape[0] != n:
        raise DataFormatError(
            f"{source}: dataset {name!r} has shape {tuple(arr.shape)} but {ref!r} holds {n} showers"
        )


def check_energies(source: str, name: str, energy: np.ndarray, unit: str) -> None:
    """Require finite primary energies > 0 (in ``unit``)."""
    check_finite(source, name, energy)
    if energy.size and float(energy.min()) <= 0.0:
        i = int(np.argmin(energy))
        raise DataFormatError(
            f"{source}: dataset {name!r} has a non-positive primary energy ({float(energy[i]):.6g} {unit} "
            f"at index {i})"
        )


# --- HDF5 root attributes ----------------------------------------------------------------------

#: Root attribute listing (as a JSON list) the attributes stored as JSON text, so that a plain string
#: attribute that happens to look like JSON is never decoded by mistake.
JSON_ATTRS_KEY = "_json_attrs"
_INT64 = np.iinfo(np.int64)


def encode_attrs(source: str, attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Turn metadata into HDF5-storable root attributes.

    bool/int/float/str are stored as-is; dicts, lists, tuples, None and arrays as JSON text (listed in the
    ``_json_attrs`` attribute). "geometry" and "physics" are always JSON. Reserved names ("format",
    "schema_version") are skipped: the writer sets them. Tuples and arrays read back as lists.
    """
    out: dict[str, Any] = {}
    json_names: list[str] = []
    for key, value in attrs.items():
        if key in RESERVED_ATTRS:
            continue
        if isinstance(value, np.generic):
            value = value.item()
        plain = isinstance(value, (bool, float, str)) or (
            isinstance(value, int) and _INT64.min <= value <= _INT64.max
        )
        if plain and key not in ("geometry", "physics"):
            out[key] = value
            continue
        try:
            out[key] = canonical_json(value)
        except (TypeError, ValueError) as exc:
            raise DataFormatError(f"{source}: attribute {key!r} cannot be stored ({exc})") from None
        json_names.append(key)
    out[JSON_ATTRS_KEY] = canonical_json(sorted(json_names))
    return out


def decode_attrs(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of ``encode_attrs`` for the attributes of an HDF5 object (h5py ``AttributeManager``)."""
    json_names = set(json.loads(_plain(raw[JSON_ATTRS_KEY]))) if JSON_ATTRS_KEY in raw else set()
    json_names |= {"geometry", "physics"}
    out: dict[str, Any] = {}
    for key in raw:
        if key == JSON_ATTRS_KEY:
            continue
        value = _plain(raw[key])
        if key in json_names and isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                logger.warning("attribute %r is not valid JSON; kept as text", key)
        out[key] = value
    return out


def _plain(value: Any) -> Any:
    # h5py hands back numpy scalars and, for fixed-length strings, bytes; callers want Python values.
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def config_json(attrs: Mapping[str, Any]) -> dict[str, str | None]:
    """Canonical JSON of the production-defining attributes (None where absent), for resume checks."""
    return {k: (canonical_json(attrs[k]) if k in attrs else None) for k in CONFIG_ATTRS}


def is_lock_error(exc: OSError) -> bool:
    """True when h5py could not open a file because another process holds its HDF5 lock."""
    return "unable to lock file" in str(exc).lower()  # not "sblock", which truncation messages contain


def hdf5_open_error(path: Any, exc: OSError) -> DataFormatError:
    """One-line ``DataFormatError`` for an ``OSError`` raised by h5py while opening or reading ``path``."""
    reason = " ".join(str(exc).split())
    if is_lock_error(exc):
        return DataFormatError(f"{path}: is locked by another process (is a job still writing it?)")
    return DataFormatError(f"{path}: cannot be read as HDF5; the file is truncated or corrupt ({reason})")
