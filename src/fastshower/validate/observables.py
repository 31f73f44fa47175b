"""High-level shower observables, vectorised over showers (numpy only).

Conventions (documented in ``docs/validation.md``):

- Cell indices run ``0 .. n-1`` along x, y and the layer axis z (front to back). Moments "in cells" use these
  indices, as the 3DGAN paper does (Khattak et al., 2021).
- Moments in mm use the geometry stored in ``attrs["geometry"]``: x, y are measured from the grid centre,
  ``(i - (n - 1) / 2) * pitch_mm``; z is the depth of the centre of each sensor slab from the front face. Without
  a geometry (or one that does not match the cell shape) the mm fields are NaN and ``spatial_unit`` is "cell".
- The shower start layer is the first layer whose energy exceeds ``start_fraction`` (default 1 %) of the largest
  layer sum of that shower.
- The incidence angle is ``atan(slope)`` of an energy-weighted least-squares line through the per-layer
  y-barycentres versus layer depth (mm with a geometry, cell units otherwise: then it is not a physical angle).
- A cylindrical readout (a CaloChallenge binning in ``attrs["binning"]``, cells (r, alpha, layer)) has other
  transverse axes: the "x" moments are radial, in mm at the radial bins' midpoints (bin units without radial edges),
  the "y" moments are circular in alpha (periodic: the energy-weighted circular mean ``atan2(sum E sin a,
  sum E cos a)`` and the circular standard deviation ``sqrt(-2 ln R)``, rad, alpha bin centres from -pi as the
  challenge's); ``centre_mm`` / ``width_mm`` hold the challenge's centre and width in x = r cos(alpha),
  y = r sin(alpha) and NaN in depth (the binning gives no layer depths), and the angle is NaN.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from fastshower.data import BinningSpec, ShowerData, iter_showers

logger = logging.getLogger(__name__)

#: Default cell threshold for hit counting (GeV): 0.1 MeV.
DEFAULT_THRESHOLD_GeV = 1e-4
#: Default fraction of the largest layer sum that defines the shower start layer.
DEFAULT_START_FRACTION = 0.01
#: Edges of the log10(cell energy / GeV) histogram of the cell spectrum.
SPECTRUM_EDGES = np.linspace(-6.0, 2.0, 41)

#: Scalar per-shower observables compared with distribution distances (name -> label for tables and plots).
SCALAR_OBSERVABLES: dict[str, str] = {
    "deposit_GeV": "deposited energy [GeV]",
    "sampling_fraction": "sampling fraction (deposit / E)",
    "centre_x": "centre of energy x [cell]",
    "centre_y": "centre of energy y [cell]",
    "centre_z": "centre of energy z [layer]",
    "width_x": "width x [cell]",
    "width_y": "width y [cell]",
    "width_z": "width z [layer]",
    "n_hits": "cells above threshold",
    "max_layer": "layer of maximum",
    "start_layer": "shower start layer",
    "angle_rad": "barycentre angle [rad]",
}


@dataclass
class Observables:
    """Per-shower observables of N showers; every array has N as its first axis.

    Energies in GeV, angles in rad; ``*_mm`` fields are NaN without a usable geometry (see module docstring).
    """

    energy_GeV: np.ndarray  # primary energy
    theta_rad: np.ndarray  # primary incidence angle (from the file)
    deposit_GeV: np.ndarray  # total deposited (visible) energy
    sampling_fraction: np.ndarray  # deposit / primary energy
    long_profile: np.ndarray  # (N, nz) energy per layer, GeV
    x_profile: np.ndarray  # (N, nx) GeV
    y_profile: np.ndarray  # (N, ny) GeV
    centre_x: np.ndarray  # first moments, cell units
    centre_y: np.ndarray
    centre_z: np.ndarray
    width_x: np.ndarray  # square root of the second central moments, cell units
    width_y: np.ndarray
    width_z: np.ndarray
    centre_mm: np.ndarray  # (N, 3) x, y, z in mm
    width_mm: np.ndarray  # (N, 3)
    n_hits: np.ndarray  # cells above the threshold
    spectrum: np.ndarray  # (N, len(SPECTRUM_EDGES) - 1) counts of log10(cell energy) for cells above threshold
    max_layer: np.ndarray  # layer of the largest layer sum
    start_layer: np.ndarray  # first layer above start_fraction * largest layer sum
    angle_rad: np.ndarray  # atan(slope) of the y-barycentre vs depth fit
    spatial_unit: str = "mm"  # "mm" when the geometry was used for the angle, otherwise "cell"
    threshold_GeV: float = DEFAULT_THRESHOLD_GeV
    axis_labels: tuple[str, str, str] = ("x [cell]", "y [cell]", "z [layer]")  # the moments' axes and units
    pitch_mm: float = float("nan")  # transverse cell size of a Cartesian grid when the geometry gives it

    def label(self, name: str) -> str:
        """Axis label of a scalar observable, with the units of this readout."""
        kind, _, axis = name.partition("_")
        if kind in ("centre", "width") and axis in "xyz" and axis:
            return f"{'centre of energy' if kind == 'centre' else 'width'} {self.axis_labels['xyz'.index(axis)]}"
        return SCALAR_OBSERVABLES.get(name, name)

    def __len__(self) -> int:
        return int(self.energy_GeV.shape[0])

    def select(self, index: Any) -> Observables:
        """Subset of the showers (slice, boolean mask or integer array)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return Observables(**{k: (v[index] if isinstance(v, np.ndarray) else v) for k, v in values.items()})

    def scalars(self, names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """The scalar observables (default: all of ``SCALAR_OBSERVABLES``) as float64 arrays."""
        return {n: np.asarray(getattr(self, n), dtype=np.float64) for n in (names or SCALAR_OBSERVABLES)}

    @classmethod
    def concatenate(cls, parts: list[Observables]) -> Observables:
        """Join along N; the unit and threshold are taken from the first part."""
        first = parts[0]
        out = {}
        for f in fields(cls):
            v = getattr(first, f.name)
            out[f.name] = np.concatenate([getattr(p, f.name) for p in parts]) if isinstance(v, np.ndarray) else v
        return cls(**out)


def layer_geometry(geometry: Mapping[str, Any] | None, cell_shape: tuple[int, int, int]) -> tuple[
    float | None, np.ndarray | None
]:
    """(pitch in mm, depth of each sensor-slab centre in mm) from a serialised geometry, or (None, None).

    Layers are absorber, sensor, optional gap; blocks may carry ``repeat``. Returns (None, None) when the
    geometry is absent, malformed, or its grid / layer count disagrees with ``cell_shape``.
    """
    if not isinstance(geometry, Mapping):
        return None, None
    try:
        grid = geometry["grid"]
        pitch = float(grid["pitch_mm"])
        if (int(grid["nx"]), int(grid["ny"])) != tuple(cell_shape[:2]):
            return None, None
        depths, z = [], 0.0
        for block in geometry["layers"]:
            for _ in range(int(block.get("repeat", 1))):
                z += float(block.get("absorber_mm", 0.0))
                sensor = float(block.get("sensor_mm", 0.0))
                depths.append(z + 0.5 * sensor)
                z += sensor + float(block.get("gap_mm", 0.0) or 0.0)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None, None
    if len(depths) != cell_shape[2] or not pitch > 0:
        return None, None
    return pitch, np.asarray(depths)


def _moments(profile: np.ndarray, coord: np.ndarray, total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = profile @ coord / total
        var = profile @ (coord**2) / total - mean**2
    return mean, np.sqrt(np.clip(var, 0.0, None))


def _barycentre_angle(long: np.ndarray, y_profile_layers: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """atan of the slope of the energy-weighted straight-line fit of y-barycentre vs depth (per shower)."""
    w = long  # (N, nz) layer energies are the fit weights
    with np.errstate(invalid="ignore", divide="ignore"):
        yb = np.einsum("nyz,y->nz", y_profile_layers, y) / w  # (N, nz)
        yb = np.where(w > 0, yb, 0.0)
        sw = w.sum(1)
        swz = w @ z
        swzz = w @ (z**2)
        swy = (w * yb).sum(1)
        swzy = (w * yb) @ z
        den = sw * swzz - swz**2
        slope = (sw * swzy - swz * swy) / den
    # fewer than two layers with deposit: no line can be fitted
    slope = np.where(np.abs(den) > 1e-12 * np.maximum(sw * swzz, 1e-300), slope, np.nan)
    return np.arctan(slope)


def compute_observables(
    data: ShowerData,
    threshold_GeV: float = DEFAULT_THRESHOLD_GeV,
    start_fraction: float = DEFAULT_START_FRACTION,
) -> Observables:
    """All observables of ``data`` (one pass over the cells; hold the batch in memory).

    ``threshold_GeV`` is the cell threshold for the hit count and the cell spectrum (default 1e-4 GeV =
    0.1 MeV). Showers without any deposit give NaN moments and angle, max/start layer 0.
    """
    ecal = data.ecal
    n, nx, ny, nz = ecal.shape
    cells = ecal.reshape(n, -1)
    long = ecal.sum(axis=(1, 2), dtype=np.float64)  # (N, nz)
    yz = ecal.sum(axis=1, dtype=np.float64)  # (N, ny, nz)
    xprof = ecal.sum(axis=(2, 3), dtype=np.float64)
    yprof = yz.sum(axis=2)
    total = long.sum(axis=1)
    ix, iy, iz = np.arange(nx, dtype=float), np.arange(ny, dtype=float), np.arange(nz, dtype=float)
    cx, wx = _moments(xprof, ix, total)
    cy, wy = _moments(yprof, iy, total)
    cz, wz = _moments(long, iz, total)

    pitch, depths = layer_geometry(data.attrs.get("geometry"), (nx, ny, nz))
    binning = data.attrs.get("binning")
    axis_labels = ("x [cell]", "y [cell]", "z [layer]")
    if isinstance(binning, Mapping) and binning.get("kind") == "cylindrical":
        cx, wx, cy, wy, centre_mm, width_mm, r_unit = _cylindrical_moments(ecal, xprof, yprof, total, binning)
        angle, unit = np.full(n, np.nan), "cell"
        axis_labels = (f"r [{r_unit}]", "alpha [rad]", "z [layer]")
    elif pitch is not None and depths is not None:
        ys_mm = (iy - (ny - 1) / 2) * pitch
        mz = _moments(long, depths, total)
        centre_mm = np.stack([(cx - (nx - 1) / 2) * pitch, (cy - (ny - 1) / 2) * pitch, mz[0]], axis=1)
        width_mm = np.stack([wx * pitch, wy * pitch, mz[1]], axis=1)
        angle = _barycentre_angle(long, yz, ys_mm, depths)
        unit = "mm"
    else:
        centre_mm = width_mm = np.full((n, 3), np.nan)
        angle = _barycentre_angle(long, yz, iy, iz)
        unit = "cell"

    above = cells > threshold_GeV
    n_hits = above.sum(axis=1)
    rows = np.nonzero(above)[0]
    nb = len(SPECTRUM_EDGES) - 1
    bins = np.clip(np.digitize(np.log10(cells[above]), SPECTRUM_EDGES) - 1, 0, nb - 1)
    spectrum = np.bincount(rows * nb + bins, minlength=n * nb).reshape(n, nb)

    lmax = long.max(axis=1)
    max_layer = long.argmax(axis=1)
    start_layer = np.argmax(long > (start_fraction * lmax)[:, None], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sf = total / data.energy_GeV
    return Observables(
        energy_GeV=data.energy_GeV.copy(), theta_rad=data.theta_rad.copy(), deposit_GeV=total,
        sampling_fraction=sf, long_profile=long, x_profile=xprof, y_profile=yprof,
        centre_x=cx, centre_y=cy, centre_z=cz, width_x=wx, width_y=wy, width_z=wz,
        centre_mm=centre_mm, width_mm=width_mm, n_hits=n_hits, spectrum=spectrum,
        max_layer=max_layer, start_layer=start_layer, angle_rad=angle, spatial_unit=unit,
        threshold_GeV=float(threshold_GeV), axis_labels=axis_labels,
        pitch_mm=float(pitch) if pitch is not None and unit == "mm" else float("nan"),
    )


def cylindrical_centres(binning: Mapping[str, Any], n_radial: int, n_alpha: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Voxel centres of a cylindrical readout: radii (the radial bins' midpoints in mm, or the bin indices when the
    binning gives no radial edges), alpha (rad, bin centres from -pi, as the CaloChallenge's) and whether the radii
    are in mm."""
    edges = binning.get("r_edges_mm")
    if edges:
        r = 0.5 * (np.asarray(edges[1:], float) + np.asarray(edges[:-1], float))
    else:
        r = np.arange(n_radial, dtype=float)
    alpha = -np.pi + (np.arange(n_alpha) + 0.5) * 2 * np.pi / n_alpha
    return r, alpha, bool(edges)


def _cylindrical_moments(ecal: np.ndarray, r_profile: np.ndarray, alpha_profile: np.ndarray, total: np.ndarray,
                         binning: Mapping[str, Any]) -> tuple[np.ndarray, ...]:
    """Radial moments (mm, or radial bins without edges), circular alpha moments (rad) and the challenge's
    x/y centre and width (mm) of showers on (r, alpha, layer) cells (see the module docstring)."""
    n, nr, na, _ = ecal.shape
    r, alpha, in_mm = cylindrical_centres(binning, nr, na)
    cr, wr = _moments(r_profile, r, total)
    with np.errstate(invalid="ignore", divide="ignore"):
        c, s = alpha_profile @ np.cos(alpha), alpha_profile @ np.sin(alpha)
        length = np.hypot(c, s) / total
        ca = np.arctan2(s, c)
        wa = np.sqrt(-2.0 * np.log(np.clip(length, 1e-300, 1.0)))
    ca, wa = np.where(total > 0, ca, np.nan), np.where(total > 0, wa, np.nan)
    transverse = ecal.sum(axis=3, dtype=np.float64).reshape(n, -1)  # (N, nr * na)
    rr, aa = np.meshgrid(r, alpha, indexing="ij")
    centre_mm, width_mm = np.full((n, 3), np.nan), np.full((n, 3), np.nan)
    for k, coord in enumerate((rr * np.cos(aa), rr * np.sin(aa))):
        centre_mm[:, k], width_mm[:, k] = _moments(transverse, coord.reshape(-1), total)
    return cr, wr, ca, wa, centre_mm, width_mm, "mm" if in_mm else "radial bin"


def compute_observables_file(
    path: str | Path, threshold_GeV: float = DEFAULT_THRESHOLD_GeV, batch_size: int = 2000,
    binning: BinningSpec | None = None,
) -> Observables:
    """``compute_observables`` over a whole file, ``batch_size`` showers at a time (bounded memory); ``binning``
    for a CaloChallenge file."""
    parts = [compute_observables(batch, threshold_GeV) for batch in iter_showers(path, batch_size, binning)]
    if not parts:
        raise ValueError(f"{path}: holds no showers")
    return Observables.concatenate(parts)


def bin_by_energy(energies: np.ndarray, edges: Iterable[float]) -> np.ndarray:
    """Bin index of each energy for bins ``[edges[i], edges[i+1])`` (the last bin includes its upper edge).

    Energies outside ``[edges[0], edges[-1]]`` get -1. Works for any binned variable (angles too).
    """
    e = np.asarray(list(edges), dtype=float)
    x = np.asarray(energies, dtype=float)
    idx = np.searchsorted(e, x, side="right") - 1
    idx = np.where(x == e[-1], len(e) - 2, idx)
    return np.where((idx >= 0) & (idx < len(e) - 1), idx, -1)


def response(obs: Observables) -> dict[str, float]:
    """Mean sampling fraction (response), its spread and the resolution sigma/mean of the deposit.

    The resolution is meaningful within a narrow energy bin (or at a fixed energy).
    """
    dep, sf = obs.deposit_GeV, obs.sampling_fraction
    if len(obs) == 0:
        return {"n": 0, "response": float("nan"), "response_std": float("nan"), "resolution": float("nan")}
    mean = float(dep.mean())
    return {
        "n": len(obs),
        "response": float(sf.mean()),
        "response_std": float(sf.std(ddof=1)) if len(obs) > 1 else float("nan"),
        "resolution": float(dep.std(ddof=1) / mean) if len(obs) > 1 and mean > 0 else float("nan"),
    }
