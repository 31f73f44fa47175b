"""Readers of shower files, with auto-detection of the layout.

Supported layouts:

* ``fastshower``: files written by ``ShowerWriter`` (root attribute ``format="fastshower"``).
* ``3dgan``: the original 3DGAN / LCD files: ``ECAL`` (N, nx, ny, nz) in GeV, the primary energy in ``energy``
  (N,) / (N, 1) GeV or in column 1 of ``target`` (N, k) (column 0 holds the PDG code in some versions), and
  optionally ``theta`` (rad, used as-is) or ``eta`` (theta = 2 atan(exp(-eta))), ``phi`` and ``pdgID``.
* ``calochallenge``: CaloChallenge datasets 2 and 3: ``incident_energies`` (N, 1) and ``showers``
  (N, n_voxels), both in MeV, with voxel index ((layer * n_alpha) + alpha) * n_radial + r. These need the
  binning (the challenge's XML file, or (n_layers, n_alpha, n_radial)); the images become
  ``ecal[N, radial bin, alpha bin, layer]`` in GeV.
* ``root``: ROOT files (flat ntuples of cell arrays, or EDM4hep ``SimCalorimeterHit`` collections voxelised by hit
  position), read through uproot as described by a mapping file (``fastshower.data.root``).

A file's layout is recognised from its content (ROOT's magic bytes, the HDF5 datasets), never from its name. Files
that do not describe their own cells take that description as ``binning``: a CaloChallenge binning, or a
``RootMapping`` for ROOT files (``--binning`` and ``--mapping`` on the command line; :func:`layout_from_options`).
"""

from __future__ import annotations

import logging
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from fastshower.data.root import RootMapping, RootShowers, is_root_file, load_mapping
from fastshower.data.schema import (
    FORMAT_NAME,
    SCHEMA_VERSION,
    ShowerData,
    check_ecal,
    check_energies,
    check_finite,
    decode_attrs,
    hdf5_open_error,
)
from fastshower.data.writer import DONE_KEY
from fastshower.errors import ConfigError, DataFormatError

logger = logging.getLogger(__name__)

#: A binning description: path of a CaloChallenge binning XML, a dict with n_layers/n_alpha/n_radial
#: (optionally r_edges_mm), or a tuple (n_layers, n_alpha, n_radial); for a ROOT file, its ``RootMapping``.
BinningSpec = str | Path | Mapping[str, Any] | tuple[int, int, int] | RootMapping

_PDG_LIKE = (11, 22, 111, 211)
_PARTICLE_PDG = {"electron": 11, "positron": -11, "photon": 22, "gamma": 22, "pion": 211, "pi0": 111}
_MeV_PER_GeV = 1000.0


# --- CaloChallenge binning ----------------------------------------------------------------------


@dataclass(frozen=True)
class CylindricalBinning:
    """Regular cylindrical binning of a CaloChallenge data set (radial edges in mm)."""

    n_layers: int
    n_alpha: int
    n_radial: int
    r_edges_mm: tuple[tuple[float, ...], ...] | None = None  # per layer, when known
    particle: str | None = None

    @property
    def n_voxels(self) -> int:
        """Number of voxels of one shower."""
        return self.n_layers * self.n_alpha * self.n_radial

    def as_attr(self) -> dict[str, Any]:
        """Description stored in ``ShowerData.attrs["binning"]``."""
        out: dict[str, Any] = {
            "kind": "cylindrical",
            "n_layers": self.n_layers,
            "n_alpha": self.n_alpha,
            "n_radial": self.n_radial,
        }
        if self.r_edges_mm is not None:
            if all(e == self.r_edges_mm[0] for e in self.r_edges_mm):
                out["r_edges_mm"] = list(self.r_edges_mm[0])
            else:
                out["r_edges_mm_per_layer"] = [list(e) for e in self.r_edges_mm]
        return out


def binning_from_text(text: str | None, option: str = "--binning") -> BinningSpec | None:
    """The binning an option or a config gives as text: a binning XML path, or ``N_LAYERS,N_ALPHA,N_RADIAL``
    (None: no binning). ``option`` names it in the one-line error."""
    if text is None or str(text).strip() == "":
        return None
    text = str(text).strip()
    if "," in text:
        try:
            return tuple(int(v) for v in text.split(","))
        except ValueError:
            raise ConfigError(f"{option} '{text}': expected an XML file or N_LAYERS,N_ALPHA,N_RADIAL") from None
    return text


def layout_from_options(binning: str | None, mapping: str | None, names: tuple[str, str] = ("--binning", "--mapping")
                        ) -> BinningSpec | None:
    """The layout description of the input files from the two options (at most one may be given): a CaloChallenge
    binning (``binning``, see :func:`binning_from_text`) or a ROOT mapping file (``mapping``)."""
    if binning and mapping:
        raise ConfigError(f"{names[0]} and {names[1]}: give one (a binning for CaloChallenge HDF5 files, a mapping "
                          "for ROOT files)")
    if mapping:
        return load_mapping(mapping)
    return binning_from_text(binning, names[0])


def load_binning(binning: BinningSpec) -> CylindricalBinning:
    """Parse a binning description: CaloChallenge XML file, dict or (n_layers, n_alpha, n_radial) tuple.

    Raises ``DataFormatError`` for a missing/invalid XML file or an irregular binning (layers with different
    numbers of bins, as in CaloChallenge dataset 1).
    """
    if isinstance(binning, Mapping):
        try:
            counts = [int(binning[k]) for k in ("n_layers", "n_alpha", "n_radial")]
        except (KeyError, TypeError, ValueError):
            raise DataFormatError(
                "binning: a dict needs integer 'n_layers', 'n_alpha', 'n_radial' "
                f"(got keys {sorted(binning)})"
            ) from None
        edges = binning.get("r_edges_mm")
        r_edges = (tuple(float(e) for e in edges),) * counts[0] if edges is not None else None
        return _regular("binning", counts, r_edges, binning.get("particle"))
    if isinstance(binning, tuple | list):
        if len(binning) != 3:
            raise DataFormatError(f"binning: expected (n_layers, n_alpha, n_radial), got {tuple(binning)}")
        return _regular("binning", [int(b) for b in binning], None, None)
    return _load_binning_xml(Path(binning))


def _regular(source: str, counts: list[int], r_edges: Any, particle: str | None) -> CylindricalBinning:
    if min(counts) < 1:
        raise DataFormatError(
            f"{source}: bin counts must be positive (n_layers, n_alpha, n_radial = {counts})"
        )
    return CylindricalBinning(*counts, r_edges_mm=r_edges, particle=particle)


def _load_binning_xml(path: Path) -> CylindricalBinning:
    if not path.is_file():
        raise DataFormatError(f"{path}: binning file not found")
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise DataFormatError(f"{path}: not a valid binning XML ({exc})") from None
    particles = list(root.iter("Particle"))
    if len(particles) > 1:
        logger.warning("%s: %d <Particle> entries; using the first", path, len(particles))
    scope = particles[0] if particles else root
    layers = list(scope.iter("Layer"))
    if not layers:
        raise DataFormatError(f"{path}: no <Layer> elements found")
    r_edges: list[tuple[float, ...]] = []
    n_alpha: list[int] = []
    try:
        layers.sort(key=lambda el: int(el.get("id", "0")))
        for el in layers:
            r_edges.append(tuple(float(x) for x in el.attrib["r_edges"].split(",") if x.strip()))
            n_alpha.append(int(el.attrib["n_bin_alpha"]))
    except (KeyError, ValueError) as exc:
        raise DataFormatError(f"{path}: a <Layer> lacks a valid id, r_edges or n_bin_alpha ({exc})") from None
    n_radial = [len(e) - 1 for e in r_edges]
    if len(set(n_radial)) > 1 or len(set(n_alpha)) > 1:
        raise DataFormatError(
            f"{path}: layers have different numbers of bins; only regular binnings are supported"
        )
    particle = particles[0].get("name") if particles else None
    return _regular(str(path), [len(layers), n_alpha[0], n_radial[0]], tuple(r_edges), particle)


# --- readers --------------------------------------------------------------------------------


class _Reader:
    """An open file of one layout; ``read(start, stop)`` loads and validates one slice of showers."""

    fmt = ""

    def __init__(self, path: Path, f: h5py.File) -> None:
        self.path, self.f, self.src = path, f, str(path)
        self.n = 0
        self.cell_shape: tuple[int, int, int] | None = None
        self.attrs: dict[str, Any] = {}
        self.ledger_keys: list[str] = []

    def dataset(self, key: str, required: bool = True) -> h5py.Dataset | None:
        obj = self.f.get(key)
        if obj is None:
            if required:
                raise DataFormatError(f"{self.src}: dataset {key!r} is missing (found: {_keys(self.f)})")
            return None
        if not isinstance(obj, h5py.Dataset):
            raise DataFormatError(f"{self.src}: {key!r} is a group, not a dataset")
        return obj

    def per_shower(self, key: str, required: bool = True) -> h5py.Dataset | None:
        """A dataset of shape (N,) or (N, 1)."""
        ds = self.dataset(key, required)
        if ds is not None and ds.shape not in ((self.n,), (self.n, 1)):
            raise DataFormatError(
                f"{self.src}: dataset {key!r} has shape {ds.shape} but 'ECAL' holds {self.n} showers"
            )
        return ds

    def load(self, ds: h5py.Dataset, start: int, stop: int, dtype: Any) -> np.ndarray:
        try:
            arr = ds[start:stop]
        except OSError as exc:
            raise hdf5_open_error(self.src, exc) from None
        return np.asarray(arr, dtype=dtype)

    def image_shape(self, ds: h5py.Dataset) -> None:
        shape = ds.shape
        if len(shape) == 5 and shape[-1] == 1:
            shape = shape[:-1]  # some 3DGAN files carry a trailing channel axis
        if len(shape) != 4:
            raise DataFormatError(
                f"{self.src}: dataset {ds.name.lstrip('/')!r} has shape {ds.shape} "
                "but (N, nx, ny, nz) is required"
            )
        self.n, self.cell_shape = int(shape[0]), tuple(int(s) for s in shape[1:])  # type: ignore[assignment]

    def read(self, start: int, stop: int) -> ShowerData:
        raise NotImplementedError

    def finish(
        self,
        ecal: np.ndarray,
        energy: np.ndarray,
        theta: np.ndarray,
        phi: np.ndarray,
        pdg: np.ndarray,
        ledger: dict[str, np.ndarray],
        names: tuple[str, str],
    ) -> ShowerData:
        """Validate one slice, naming the file's datasets (``names`` = ECAL and energy dataset names)."""
        check_ecal(self.src, names[0], ecal)
        check_energies(self.src, names[1], energy, "GeV")
        for name, arr in (("theta", theta), ("phi", phi), *((f"ledger/{k}", v) for k, v in ledger.items())):
            check_finite(self.src, name, arr)
        return ShowerData._unchecked(ecal, energy, theta, phi, pdg.astype(np.int32), ledger, dict(self.attrs))


class _FastshowerReader(_Reader):
    fmt = FORMAT_NAME

    def __init__(self, path: Path, f: h5py.File) -> None:
        super().__init__(path, f)
        version = f.attrs.get("schema_version", 1)
        if int(version) > SCHEMA_VERSION:
            raise DataFormatError(
                f"{self.src}: written with schema_version {int(version)} by a newer fastshower "
                f"(this one reads up to {SCHEMA_VERSION}); upgrade fastshower"
            )
        self.image_shape(self.dataset("ECAL"))
        self.cols = {
            k: self.per_shower(k, required=(k == "energy")) for k in ("energy", "theta", "phi", "pdgID")
        }
        grp = f.get("ledger")
        self.ledger_keys = list(grp.keys()) if isinstance(grp, h5py.Group) else []
        for k in self.ledger_keys:
            self.per_shower(f"ledger/{k}")
        self.attrs = decode_attrs(f.attrs)

    def read(self, start: int, stop: int) -> ShowerData:
        b = stop - start

        def col(key: str, dtype: Any) -> np.ndarray:
            ds = self.cols[key]
            return np.zeros(b, dtype) if ds is None else self.load(ds, start, stop, dtype).reshape(-1)

        ledger = {
            k: self.load(self.f["ledger"][k], start, stop, np.float64).reshape(-1) for k in self.ledger_keys
        }
        ecal = self.load(self.f["ECAL"], start, stop, np.float32)
        return self.finish(
            ecal,
            col("energy", np.float64),
            col("theta", np.float64),
            col("phi", np.float64),
            col("pdgID", np.int64),
            ledger,
            ("ECAL", "energy"),
        )


class _GanReader(_Reader):
    fmt = "3dgan"

    def __init__(self, path: Path, f: h5py.File) -> None:
        super().__init__(path, f)
        self.ecal = self.dataset("ECAL")
        self.image_shape(self.ecal)
        self.energy = self.per_shower("energy", required=False)
        self.target: h5py.Dataset | None = None
        self.pdg_from_target = False
        if self.energy is None:
            self.target = self.dataset("target", required=False)
            if self.target is None:
                raise DataFormatError(
                    f"{self.src}: no primary energy found: expected dataset 'energy' or 'target' "
                    f"(found: {_keys(f)})"
                )
            t = self.target.shape
            if not (len(t) in (2, 3) and t[0] == self.n and t[-1] >= 2 and math.prod(t[1:-1]) == 1):
                raise DataFormatError(
                    f"{self.src}: dataset 'target' has shape {t} "
                    f"but (N, k >= 2) with N = {self.n} is required"
                )
            col0 = self.load(self.target, 0, self.n, np.float64).reshape(self.n, -1)[:, 0]
            # old LCD files put the PDG code in column 0, others something else: trust it only if it
            # looks like one
            self.pdg_from_target = bool(np.isfinite(col0).all() and np.isin(np.abs(col0), _PDG_LIKE).all())
        self.pdg = self.per_shower("pdgID", required=False)
        self.theta = self.per_shower("theta", required=False)
        self.eta = self.per_shower("eta", required=False) if self.theta is None else None
        self.phi = self.per_shower("phi", required=False)
        theta_from = "theta" if self.theta is not None else ("eta" if self.eta is not None else None)
        self.attrs = {"format": self.fmt, "source_file": path.name, "theta_from": theta_from}

    def read(self, start: int, stop: int) -> ShowerData:
        b = stop - start
        ecal = self.load(self.ecal, start, stop, np.float32).reshape(b, *self.cell_shape)  # type: ignore[misc]
        pdg = np.zeros(b, np.int64)
        if self.energy is not None:
            energy = self.load(self.energy, start, stop, np.float64).reshape(-1)
        else:
            target = self.load(self.target, start, stop, np.float64).reshape(b, -1)  # type: ignore[arg-type]
            check_finite(self.src, "target", target)
            energy = target[:, 1].copy()
            if self.pdg_from_target:
                pdg = target[:, 0].astype(np.int64)
        if self.pdg is not None:
            raw = self.load(self.pdg, start, stop, np.float64).reshape(-1)
            check_finite(self.src, "pdgID", raw)
            pdg = raw.astype(np.int64)
        if self.theta is not None:
            theta = self.load(self.theta, start, stop, np.float64).reshape(-1)
        elif self.eta is not None:
            eta = self.load(self.eta, start, stop, np.float64).reshape(-1)
            check_finite(self.src, "eta", eta)
            theta = 2.0 * np.arctan(np.exp(-eta))
        else:
            theta = np.zeros(b)
        phi = np.zeros(b) if self.phi is None else self.load(self.phi, start, stop, np.float64).reshape(-1)
        names = ("ECAL", "energy" if self.energy is not None else "target")
        return self.finish(ecal, energy, theta, phi, pdg, {}, names)


class _CaloChallengeReader(_Reader):
    fmt = "calochallenge"

    def __init__(self, path: Path, f: h5py.File, binning: BinningSpec | None, require_binning: bool) -> None:
        super().__init__(path, f)
        self.showers = self.dataset("showers")
        if len(self.showers.shape) != 2:
            raise DataFormatError(
                f"{self.src}: dataset 'showers' has shape {self.showers.shape} but (N, n_voxels) is required"
            )
        self.n, n_vox = (int(s) for s in self.showers.shape)
        self.energy = self.per_shower("incident_energies")
        self.attrs = {"format": self.fmt, "source_file": path.name, "n_voxels": n_vox}
        self.binning: CylindricalBinning | None = None
        if binning is None:
            if require_binning:
                raise DataFormatError(
                    f"{self.src}: CaloChallenge file ({n_vox} voxels per shower) needs its binning; pass "
                    "--binning with the challenge's binning XML (or n_layers, n_alpha, n_radial)"
                )
            return
        self.binning = b = load_binning(binning)
        if b.n_voxels != n_vox:
            raise DataFormatError(
                f"{self.src}: dataset 'showers' has {n_vox} voxels per shower but the binning has "
                f"{b.n_layers} layers x {b.n_alpha} alpha x {b.n_radial} radial = {b.n_voxels}"
            )
        self.cell_shape = (b.n_radial, b.n_alpha, b.n_layers)
        self.attrs["binning"] = b.as_attr()

    def read(self, start: int, stop: int) -> ShowerData:
        b = self.binning
        assert b is not None  # guaranteed by require_binning=True in read paths
        n = stop - start
        flat = self.load(self.showers, start, stop, np.float64)
        check_finite(self.src, "showers", flat)
        # voxel = ((layer * n_alpha) + alpha) * n_radial + r -> [N, layer, alpha, r] -> [N, r, alpha, layer]
        ecal = flat.reshape(n, b.n_layers, b.n_alpha, b.n_radial).transpose(0, 3, 2, 1) / _MeV_PER_GeV
        ecal = np.ascontiguousarray(ecal, dtype=np.float32)
        energy = self.load(self.energy, start, stop, np.float64).reshape(-1) / _MeV_PER_GeV
        pdg = np.full(n, _PARTICLE_PDG.get((b.particle or "").lower(), 0), np.int64)
        zeros = np.zeros(n)
        return self.finish(ecal, energy, zeros, zeros.copy(), pdg, {}, ("showers", "incident_energies"))


class _RootReader(_Reader):
    fmt = "root"

    def __init__(self, path: Path, mapping: RootMapping) -> None:
        super().__init__(path, RootShowers(path, mapping))  # type: ignore[arg-type]
        self.mapping = mapping
        self.n, self.cell_shape = self.f.n, mapping.cell_shape
        self.ledger_keys = ["outside_grid"] if mapping.format == "edm4hep" else []
        self.attrs = {"format": self.fmt, "source_file": path.name, "root": mapping.as_attr()}

    def read(self, start: int, stop: int) -> ShowerData:
        ecal, cond, ledger = self.f.read(start, stop)  # type: ignore[attr-defined]
        m = self.mapping
        names = (m.cells.branch or f"{m.hits}.energy", m.energy.branch or f"{m.primary} (primary energy)")
        return self.finish(ecal, cond["energy"], cond["theta"], cond["phi"], np.rint(cond["pdg"]).astype(np.int64),
                           ledger, names)


def _open_root(path: Path, binning: BinningSpec | None) -> _Reader:
    if not isinstance(binning, RootMapping):
        raise DataFormatError(f"{path}: ROOT file: pass --mapping FILE (YAML naming its tree, branches and grid; "
                              "see docs/byo.md)")
    return _RootReader(path, binning)


def _keys(f: h5py.Group) -> str:
    keys = list(f.keys())
    return ", ".join(repr(k) for k in keys) if keys else "nothing"


def _open(path: str | Path, binning: BinningSpec | None, require_binning: bool = True) -> _Reader:
    path = Path(path)
    if not path.exists():
        raise DataFormatError(f"{path}: no such file")
    if not path.is_file():
        raise DataFormatError(f"{path}: is not a file")
    if is_root_file(path):
        return _open_root(path, binning)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise hdf5_open_error(path, exc) from None
    try:
        if DONE_KEY in f:
            done = int(np.count_nonzero(f[DONE_KEY][...]))
            raise DataFormatError(
                f"{path}: unfinished production file ({done} of {f[DONE_KEY].shape[0]} showers written); "
                "resume the job that writes it"
            )
        if isinstance(binning, RootMapping):
            logger.info("%s: HDF5 file, mapping %s ignored", path, binning.source)
            binning = None
        fmt = f.attrs.get("format")
        if isinstance(fmt, bytes):
            fmt = fmt.decode()
        reader: _Reader
        if fmt == FORMAT_NAME:
            reader = _FastshowerReader(path, f)
        elif "showers" in f and "incident_energies" in f:
            reader = _CaloChallengeReader(path, f, binning, require_binning)
        elif "ECAL" in f:
            reader = _GanReader(path, f)
        else:
            raise DataFormatError(
                f"{path}: no recognised datasets (found: {_keys(f)}); expected 'ECAL' (fastshower/3DGAN) "
                "or 'showers' and 'incident_energies' (CaloChallenge)"
            )
        if binning is not None and reader.fmt != "calochallenge":
            logger.info("%s: %s file, binning ignored", path, reader.fmt)
        return reader
    except OSError as exc:  # metadata of a damaged file can fail after a successful open
        f.close()
        raise hdf5_open_error(path, exc) from None
    except BaseException:
        f.close()
        raise


def read_showers(
    path: str | Path, start: int = 0, stop: int | None = None, binning: BinningSpec | None = None
) -> ShowerData:
    """Load showers ``[start, stop)`` (Python slice semantics) of a fastshower, 3DGAN or CaloChallenge file.

    Energies are returned in GeV, angles in rad. ``binning`` is required for CaloChallenge files (binning XML
    path, dict or (n_layers, n_alpha, n_radial)) and ignored otherwise. Raises ``DataFormatError`` (one line,
    naming the file) for missing, truncated or malformed files and for NaN/inf, negative cell energies or
    non-positive primary energies.
    """
    reader = _open(path, binning)
    try:
        rng = range(reader.n)[slice(start, stop)]
        return reader.read(rng.start, max(rng.start, rng.stop))
    except OSError as exc:
        raise hdf5_open_error(path, exc) from None
    finally:
        reader.f.close()


def iter_showers(
    path: str | Path, batch_size: int, binning: BinningSpec | None = None
) -> Iterator[ShowerData]:
    """Yield the showers of a file in order, ``batch_size`` at a time, holding one batch in memory.

    Same formats, units and errors as ``read_showers``. A missing or malformed file raises at the call, a bad
    value (NaN, negative energy) when its batch is reached.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1 (got {batch_size})")
    # open now, not at the first next(), so that a bad path is reported where the iterator is made
    return _batches(_open(path, binning), batch_size)


def _batches(reader: _Reader, batch_size: int) -> Iterator[ShowerData]:
    try:
        for start in range(0, reader.n, batch_size):
            yield reader.read(start, min(start + batch_size, reader.n))
    finally:
        reader.f.close()


def inspect_showers(path: str | Path, binning: BinningSpec | None = None,
                    require_binning: bool = False) -> dict[str, Any]:
    """Describe a shower file without loading the images.

    Returns a dict with "path", "format" ("fastshower" | "3dgan" | "calochallenge" | "root"), "n" (showers),
    "cell_shape" ((nx, ny, nz), or None for a CaloChallenge file given no binning), "ledger_keys" and "attrs".
    ``require_binning``: a CaloChallenge file given no binning is a ``DataFormatError`` (as when reading it).
    """
    reader = _open(path, binning, require_binning)
    try:
        return {
            "path": str(path),
            "format": reader.fmt,
            "n": reader.n,
            "cell_shape": reader.cell_shape,
            "ledger_keys": list(reader.ledger_keys),
            "attrs": dict(reader.attrs),
        }
    finally:
        reader.f.close()
