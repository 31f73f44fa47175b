"""ROOT files through uproot, described by a mapping file (YAML): a flat ntuple of cell arrays, or EDM4hep
``SimCalorimeterHit`` collections voxelised into a readout grid.

Trees are TTrees or RNTuples. A ROOT file does not say which of its branches are showers, so the reader needs a
mapping (``--mapping FILE``)::

    # a flat ntuple: one entry per shower, a fixed-length array of cell energies
    format: ntuple
    tree: showers
    cells: {branch: cell_energy, unit: MeV, shape: [25, 25, 25], order: [x, y, z]}
    energy: {branch: primary_energy, unit: GeV}
    theta: {branch: theta, unit: rad}          # optional (0); also phi
    pdg: {branch: pdg}                         # optional: a branch, or a constant such as 11

    # EDM4hep (podio) files from ddsim / Key4hep: hits voxelised by their positions
    format: edm4hep
    tree: events
    hits: ECalBarrelCollection                 # SimCalorimeterHit: .energy (GeV), .position.x/y/z (mm)
    primary: MCParticles                       # MCParticle: the first with generatorStatus 1 (E, theta, phi, PDG)
    grid:                                      # readout cells: edges in mm (x, y transverse, z the depth)
      x: {min: -63.75, max: 63.75, n: 25}
      y: {min: -63.75, max: 63.75, n: 25}
      z: {min: 1500.0, max: 1650.0, n: 25}

``order`` is the axis order of the flat cell array (C order: the last named axis runs fastest; default
``[x, y, z]``). The EDM4hep primary's angles come from its momentum with z as the calorimeter's depth axis. Hit energy
outside the grid is not lost silently: it is booked per shower in the ledger as ``outside_grid`` (GeV).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fastshower.config import read_mapping
from fastshower.errors import ConfigError, DataFormatError

#: First bytes of every ROOT file.
ROOT_MAGIC = b"root"
FORMATS = ("ntuple", "edm4hep")
_ENERGY_UNITS = {"keV": 1e-6, "MeV": 1e-3, "GeV": 1.0, "TeV": 1e3}
_ANGLE_UNITS = {"rad": 1.0, "deg": np.pi / 180.0}
_AXES = ("x", "y", "z")


@dataclass(frozen=True)
class Branch:
    """One per-shower quantity: a branch name, or a constant ``value``, and the factor to GeV / rad (neither: not
    given, 0 unless the EDM4hep primary gives it)."""

    branch: str = ""
    to_unit: float = 1.0
    value: float | None = None


@dataclass(frozen=True)
class Axis:
    """Regular bins of one axis of the readout grid, edges in mm."""

    low_mm: float
    high_mm: float
    n: int

    @property
    def width_mm(self) -> float:
        return (self.high_mm - self.low_mm) / self.n


@dataclass(frozen=True)
class RootMapping:
    """How the showers of a ROOT file are laid out (see the module docstring); ``source`` names the mapping file."""

    source: str
    format: str
    tree: str
    cell_shape: tuple[int, int, int]
    energy: Branch
    theta: Branch = field(default_factory=Branch)
    phi: Branch = field(default_factory=Branch)
    pdg: Branch = field(default_factory=Branch)
    cells: Branch = field(default_factory=Branch)
    order: tuple[str, str, str] = _AXES
    hits: str = ""
    primary: str = ""
    grid: tuple[Axis, Axis, Axis] | None = None

    def as_attr(self) -> dict[str, Any]:
        """A JSON-friendly description, recorded in the showers' attributes."""
        out: dict[str, Any] = {"mapping": self.source, "format": self.format, "tree": self.tree}
        if self.grid is not None:
            out["grid_mm"] = {a: [g.low_mm, g.high_mm, g.n] for a, g in zip(_AXES, self.grid, strict=True)}
        return out


def load_mapping(path: str | Path) -> RootMapping:
    """Read and check a mapping file; every problem is a one-line ``ConfigError`` naming the file and the key."""
    src = str(path)
    tree = read_mapping(path, "mapping file (format, tree, ...; docs/byo.md)")
    fmt = tree.get("format")
    if fmt not in FORMATS:
        raise ConfigError(f"{src}: format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    allowed = {"format", "tree", "energy", "theta", "phi", "pdg"} | (
        {"cells"} if fmt == "ntuple" else {"hits", "primary", "grid"})
    unknown = sorted(set(tree) - allowed)
    if unknown:
        raise ConfigError(f"{src}: unknown key {unknown[0]!r} for format {fmt} (allowed: {', '.join(sorted(allowed))})")
    name = _text(tree, "tree", src)
    angles = {k: _branch(tree, k, src, _ANGLE_UNITS, "rad", optional=True) for k in ("theta", "phi")}
    pdg = _branch(tree, "pdg", src, {"": 1.0}, "", optional=True)
    if fmt == "ntuple":
        cells = tree.get("cells")
        if not isinstance(cells, dict):
            raise ConfigError(f"{src}: cells must be a mapping {{branch, unit, shape, order}}")
        shape = cells.get("shape")
        if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(s, int) and s > 0 for s in shape)):
            raise ConfigError(f"{src}: cells.shape must be 3 positive integers [nx, ny, nz], got {shape!r}")
        order = cells.get("order", list(_AXES))
        if not (isinstance(order, list) and sorted(order) == list(_AXES)):
            raise ConfigError(f"{src}: cells.order must be a permutation of [x, y, z], got {order!r}")
        return RootMapping(src, fmt, name, tuple(shape), _branch(tree, "energy", src, _ENERGY_UNITS, "GeV"),
                           cells=_branch(tree, "cells", src, _ENERGY_UNITS, "GeV", constant=False),
                           order=tuple(order), pdg=pdg, **angles)  # type: ignore[arg-type]
    hits = _text(tree, "hits", src)
    primary = tree.get("primary", "")
    if not isinstance(primary, str):
        raise ConfigError(f"{src}: primary must be the name of an MCParticle collection, got {primary!r}")
    if not primary and "energy" not in tree:
        raise ConfigError(f"{src}: give primary (an MCParticle collection) or energy (a branch of incident energies)")
    energy = _branch(tree, "energy", src, _ENERGY_UNITS, "GeV") if "energy" in tree else Branch()
    grid = tree.get("grid")
    if not (isinstance(grid, dict) and set(grid) == set(_AXES)):
        raise ConfigError(f"{src}: grid must have x, y and z, each {{min, max, n}} in mm")
    axes = tuple(_axis(grid[a], f"grid.{a}", src) for a in _AXES)
    return RootMapping(src, fmt, name, tuple(a.n for a in axes), energy, hits=hits, primary=primary,  # type: ignore
                       grid=axes, pdg=pdg, **angles)  # type: ignore[arg-type]


def _text(tree: dict[str, Any], key: str, src: str) -> str:
    value = tree.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{src}: {key} must be a name (a string), got {value!r}")
    return value


def _branch(tree: dict[str, Any], key: str, src: str, units: dict[str, float], default_unit: str,
            optional: bool = False, constant: bool = True) -> Branch:
    spec = tree.get(key)
    if spec is None:
        if optional:
            return Branch()
        raise ConfigError(f"{src}: {key} is missing (a mapping {{branch, unit}})")
    if constant and isinstance(spec, int | float) and not isinstance(spec, bool):
        return Branch(value=float(spec))
    if not isinstance(spec, dict) or not isinstance(spec.get("branch"), str):
        raise ConfigError(f"{src}: {key} must be {{branch: NAME, unit: ...}}" + (" or a number" if constant else ""))
    unit = spec.get("unit", default_unit)
    if unit not in units:
        raise ConfigError(f"{src}: {key}.unit must be one of {', '.join(units)}, got {unit!r}")
    return Branch(spec["branch"], units[unit])


def _axis(spec: Any, key: str, src: str) -> Axis:
    ok = isinstance(spec, dict) and all(isinstance(spec.get(k), int | float) for k in ("min", "max", "n"))
    if not ok or not isinstance(spec["n"], int) or spec["n"] < 1 or not spec["max"] > spec["min"]:
        raise ConfigError(f"{src}: {key} must be {{min, max, n}} with max > min (mm) and n a positive integer")
    return Axis(float(spec["min"]), float(spec["max"]), int(spec["n"]))


def is_root_file(path: Path) -> bool:
    """True when ``path`` starts with ROOT's magic bytes (the reader is chosen by content, not by name)."""
    with open(path, "rb") as handle:
        return handle.read(4) == ROOT_MAGIC


class RootShowers:
    """An open ROOT file read through a mapping; ``read(start, stop)`` gives cells (GeV), conditions and ledger."""

    def __init__(self, path: Path, mapping: RootMapping) -> None:
        try:
            import uproot
        except ImportError:
            raise DataFormatError(f"{path}: reading ROOT files needs uproot and awkward: "
                                  "pip install 'fastshower[root]'") from None
        self.src, self.mapping = str(path), mapping
        try:
            self.f = uproot.open(path)
        except Exception as err:  # noqa: BLE001 - uproot raises many kinds for damaged files
            raise DataFormatError(f"{path}: not a readable ROOT file ({str(err).splitlines()[0]})") from None
        try:
            self.tree = self.f[mapping.tree]
        except Exception:  # noqa: BLE001
            trees = [k.split(";")[0] for k, v in self.f.classnames().items() if v in ("TTree", "ROOT::RNTuple")]
            self.f.close()
            raise DataFormatError(f"{path}: no tree {mapping.tree!r} (mapping {mapping.source}); the file has "
                                  f"{', '.join(map(repr, trees)) or 'no trees'}") from None
        self.n = int(self.tree.num_entries)
        self.names: dict[str, str] = {}

    def close(self) -> None:
        self.f.close()

    def _branch(self, name: str) -> Any:
        """A branch by name, also when it sits inside a split object (EDM4hep's ``coll/coll.energy``)."""
        if name not in self.names:
            keys = self.tree.keys(recursive=True)
            found = [k for k in keys if k == name or k.endswith("/" + name)]
            if not found:
                raise DataFormatError(f"{self.src}: tree {self.mapping.tree!r} has no branch {name!r} "
                                      f"(mapping {self.mapping.source}; branches: {', '.join(keys[:12])}"
                                      f"{' ...' if len(keys) > 12 else ''})")
            self.names[name] = found[0]
        return self.tree[self.names[name]]

    def _array(self, name: str, start: int, stop: int) -> Any:
        import awkward as ak

        return ak.Array(self._branch(name).array(entry_start=start, entry_stop=stop, library="ak"))

    def _column(self, spec: Branch, start: int, stop: int) -> np.ndarray:
        if spec.value is not None or not spec.branch:
            return np.full(stop - start, spec.value or 0.0, np.float64)
        import awkward as ak

        arr = self._array(spec.branch, start, stop)
        if arr.ndim != 1:
            raise DataFormatError(f"{self.src}: branch {spec.branch!r} holds {arr.ndim - 1}-d arrays per entry but "
                                  "one number per shower is required")
        return ak.to_numpy(arr).astype(np.float64) * spec.to_unit

    def read(self, start: int, stop: int) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Showers ``[start, stop)``: cells (N, nx, ny, nz) float32 GeV, the conditions (``energy`` GeV,
        ``theta``/``phi`` rad, ``pdg``) and the ledger (``outside_grid`` GeV for EDM4hep)."""
        m = self.mapping
        if m.format == "ntuple":
            ecal, ledger = self._cells(start, stop), {}
        else:
            ecal, ledger = self._voxelise(start, stop)
        conditions = {"theta": self._column(m.theta, start, stop), "phi": self._column(m.phi, start, stop),
                      "pdg": self._column(m.pdg, start, stop)}
        if m.energy.branch or m.energy.value is not None:
            conditions["energy"] = self._column(m.energy, start, stop)
        if m.primary:
            primary = self._primary(start, stop)
            if not (m.energy.branch or m.energy.value is not None):
                conditions["energy"] = primary["energy"]
            for key in ("theta", "phi", "pdg"):  # what the mapping names wins over the primary's value
                spec = getattr(m, key)
                if not spec.branch and spec.value is None:
                    conditions[key] = primary[key]
        return ecal, conditions, ledger

    def _cells(self, start: int, stop: int) -> np.ndarray:
        import awkward as ak

        m, n = self.mapping, stop - start
        arr = self._array(m.cells.branch, start, stop)
        need = int(np.prod(m.cell_shape))
        counts = ak.to_numpy(ak.num(arr, axis=1)) if arr.ndim == 2 else np.full(n, -1)
        bad = np.flatnonzero(counts != need)
        if bad.size:
            raise DataFormatError(f"{self.src}: branch {m.cells.branch!r} holds {counts[bad[0]]} values in entry "
                                  f"{start + bad[0]} but the mapping's cells.shape "
                                  f"{'x'.join(map(str, m.cell_shape))} needs {need}")
        flat = ak.to_numpy(ak.flatten(arr)).astype(np.float64).reshape(n, -1) * m.cells.to_unit
        shape = {a: s for a, s in zip(_AXES, m.cell_shape, strict=True)}
        stored = flat.reshape(n, *(shape[a] for a in m.order))
        perm = [0] + [1 + m.order.index(a) for a in _AXES]
        return np.ascontiguousarray(stored.transpose(perm), dtype=np.float32)

    def _voxelise(self, start: int, stop: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Hits into the grid: each hit's energy to the cell holding its position; the rest to ``outside_grid``."""
        import awkward as ak

        m, n = self.mapping, stop - start
        assert m.grid is not None
        energy = self._array(f"{m.hits}.energy", start, stop)
        counts = ak.to_numpy(ak.num(energy, axis=1))
        event = np.repeat(np.arange(n), counts)
        e_GeV = ak.to_numpy(ak.flatten(energy)).astype(np.float64)
        index = np.zeros(e_GeV.size, np.int64)
        inside = np.ones(e_GeV.size, bool)
        for axis, name in zip(m.grid, _AXES, strict=True):
            pos = ak.to_numpy(ak.flatten(self._array(f"{m.hits}.position.{name}", start, stop))).astype(np.float64)
            cell = np.floor((pos - axis.low_mm) / axis.width_mm).astype(np.int64)
            inside &= (cell >= 0) & (cell < axis.n)
            index = index * axis.n + np.clip(cell, 0, axis.n - 1)
        n_cells = int(np.prod(m.cell_shape))
        image = np.bincount(event[inside] * n_cells + index[inside], weights=e_GeV[inside], minlength=n * n_cells)
        outside = np.bincount(event[~inside], weights=e_GeV[~inside], minlength=n)
        return image.reshape(n, *m.cell_shape).astype(np.float32), {"outside_grid": outside}

    def _primary(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """Energy (GeV), theta, phi (rad) and PDG code of each event's first particle with generatorStatus 1."""
        import awkward as ak

        coll = self.mapping.primary
        status = self._array(f"{coll}.generatorStatus", start, stop)
        first = ak.to_numpy(ak.fill_none(ak.firsts(ak.local_index(status)[status == 1]), -1))
        if np.any(first < 0):
            raise DataFormatError(f"{self.src}: entry {start + int(np.flatnonzero(first < 0)[0])} of {coll!r} has no "
                                  "particle with generatorStatus 1 (no primary)")

        def pick(name: str) -> np.ndarray:
            arr = self._array(f"{coll}.{name}", start, stop)
            return ak.to_numpy(arr[np.arange(stop - start), first]).astype(np.float64)

        px, py, pz = pick("momentum.x"), pick("momentum.y"), pick("momentum.z")
        p = np.sqrt(px**2 + py**2 + pz**2)
        mass = pick("mass")
        return {"energy": np.sqrt(p**2 + mass**2), "theta": np.arccos(np.clip(pz / np.where(p > 0, p, 1), -1, 1)),
                "phi": np.arctan2(py, px), "pdg": pick("PDG")}
