"""Detector description: a planar sampling calorimeter read out as a 3D image ``ECAL[x, y, layer]``.

The calorimeter is a stack of layers along +z (the beam axis). Each layer is an absorber slab, a sensor slab
(read out) and an optional gap slab, in that order. The sensors are segmented transversely into a grid of
``nx x ny`` cells of a given pitch, centred on the beam axis: ``x = y = 0`` is the centre of the grid (for the
25 x 25 CLIC grid, the centre of cell (12, 12)). The front face of the first layer is at ``z = 0``.
Lengths are in mm throughout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from fastshower.config import read_mapping
from fastshower.errors import ConfigError
from fastshower.materials import Material, material, material_from_dict, material_to_dict


@dataclass(frozen=True)
class Layer:
    """One sampling layer: absorber, then sensor (read out), then an optional gap. Thicknesses in mm."""

    absorber: str
    absorber_mm: float
    sensor: str
    sensor_mm: float
    gap: str | None = None
    gap_mm: float = 0.0

    def slabs(self) -> list[tuple[str, float, bool]]:
        """The non-empty slabs of this layer as ``(material name, thickness mm, is_sensor)``, front to back."""
        parts = [(self.absorber, self.absorber_mm, False), (self.sensor, self.sensor_mm, True)]
        if self.gap is not None and self.gap_mm > 0:
            parts.append((self.gap, self.gap_mm, False))
        return [p for p in parts if p[1] > 0]


@dataclass(frozen=True)
class Grid:
    """Transverse readout segmentation of every sensor: ``nx x ny`` cells of ``pitch_mm``, centred on the axis.

    ``threshold_MeV``: the readout's zero suppression. A cell whose deposit in the sensor is below it reads 0, in
    the Monte Carlo's images and in a model's showers alike (the energy ledger keeps the true deposits). 0: every
    deposit is read out.
    """

    nx: int
    ny: int
    pitch_mm: float
    threshold_MeV: float = 0.0

    @property
    def half_width_x_mm(self) -> float:
        """Half of the grid's extent in x (mm)."""
        return 0.5 * self.nx * self.pitch_mm

    @property
    def half_width_y_mm(self) -> float:
        """Half of the grid's extent in y (mm)."""
        return 0.5 * self.ny * self.pitch_mm


@dataclass(frozen=True)
class Slabs:
    """Flat arrays describing every slab, for the transport kernel (all lengths in mm)."""

    z_front_mm: np.ndarray  # (n_slabs,) float64
    z_back_mm: np.ndarray  # (n_slabs,) float64
    material_index: np.ndarray  # (n_slabs,) int64, index into Calorimeter.material_list
    sensor_layer: np.ndarray  # (n_slabs,) int64, readout layer of a sensor slab, -1 for passive slabs


@dataclass(frozen=True)
class Calorimeter:
    """A planar sampling calorimeter.

    ``half_width_mm`` is the physical transverse half-extent of the slabs (square); particles leaving through
    the sides count as side leakage. By default the detector is as wide as its readout grid.
    ``custom_materials`` holds materials defined in a detector file, looked up before the built-in library.
    """

    name: str
    layers: tuple[Layer, ...]
    grid: Grid
    half_width_mm: float | None = None
    custom_materials: tuple[Material, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.layers:
            raise ConfigError(f"geometry '{self.name}': no layers")
        if self.grid.nx < 1 or self.grid.ny < 1 or not self.grid.pitch_mm > 0:
            raise ConfigError(f"geometry '{self.name}': grid needs nx, ny >= 1 and pitch_mm > 0")
        if not (np.isfinite(self.grid.threshold_MeV) and self.grid.threshold_MeV >= 0):
            raise ConfigError(f"geometry '{self.name}': grid threshold_MeV {self.grid.threshold_MeV!r} must be a "
                              "finite number >= 0")
        for i, layer in enumerate(self.layers):
            for thickness in (layer.absorber_mm, layer.sensor_mm, layer.gap_mm):
                if not (np.isfinite(thickness) and thickness >= 0):
                    raise ConfigError(f"geometry '{self.name}': layer {i} has a bad thickness {thickness!r}")
            if not layer.sensor_mm > 0:
                raise ConfigError(f"geometry '{self.name}': layer {i} needs a sensor thicker than 0 mm")
        for name in self.material_names:
            self.material(name)  # fail early on unknown materials

    @property
    def n_layers(self) -> int:
        """Number of readout layers (the image's z dimension)."""
        return len(self.layers)

    @property
    def cell_shape(self) -> tuple[int, int, int]:
        """Shape of one shower image ``(nx, ny, n_layers)``."""
        return (self.grid.nx, self.grid.ny, self.n_layers)

    @property
    def transverse_half_width_mm(self) -> float:
        """Physical half-width of the slabs in x and y (mm)."""
        if self.half_width_mm is not None:
            return float(self.half_width_mm)
        return max(self.grid.half_width_x_mm, self.grid.half_width_y_mm)

    @property
    def material_names(self) -> list[str]:
        """Distinct material names in order of first appearance, front to back."""
        names: list[str] = []
        for layer in self.layers:
            for name, _, _ in layer.slabs():
                if name not in names:
                    names.append(name)
        return names

    def material(self, name: str) -> Material:
        """The material called ``name``: a custom one from the detector file, else the built-in library."""
        for custom in self.custom_materials:
            if custom.name == name:
                return custom
        try:
            return material(name)
        except ValueError as err:
            raise ConfigError(f"geometry '{self.name}': {err}") from None

    @cached_property
    def material_list(self) -> list[Material]:
        """Materials indexed as in :attr:`Slabs.material_index`."""
        return [self.material(n) for n in self.material_names]

    @cached_property
    def slabs(self) -> Slabs:
        """Flattened slab table; the front face of the calorimeter is at z = 0 mm."""
        names = self.material_names
        fronts, backs, mats, sensors = [], [], [], []
        z = 0.0
        for index, layer in enumerate(self.layers):
            for name, thickness, is_sensor in layer.slabs():
                fronts.append(z)
                z += thickness
                backs.append(z)
                mats.append(names.index(name))
                sensors.append(index if is_sensor else -1)
        return Slabs(np.array(fronts), np.array(backs), np.array(mats, dtype=np.int64),
                     np.array(sensors, dtype=np.int64))

    @property
    def depth_mm(self) -> float:
        """Total depth of the stack (mm)."""
        return float(self.slabs.z_back_mm[-1])

    def zero_suppress(self, images_GeV: Any) -> Any:
        """``images_GeV`` (numpy array or torch tensor, GeV per cell) with the cells below the readout threshold set
        to 0, in place; returned."""
        threshold_GeV = self.grid.threshold_MeV / 1000.0
        if threshold_GeV > 0:
            images_GeV[images_GeV < threshold_GeV] = 0
        return images_GeV

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-serialisable description that :meth:`from_dict` reads back."""
        out: dict[str, Any] = {
            "name": self.name,
            "grid": {"nx": self.grid.nx, "ny": self.grid.ny, "pitch_mm": self.grid.pitch_mm},
            "layers": [_layer_to_dict(layer) for layer in self.layers],
        }
        if self.grid.threshold_MeV > 0:  # absent when 0: descriptions written before the field read the same
            out["grid"]["threshold_MeV"] = self.grid.threshold_MeV
        if self.half_width_mm is not None:
            out["half_width_mm"] = self.half_width_mm
        if self.custom_materials:
            out["materials"] = [material_to_dict(m) for m in self.custom_materials]
        return out

    def to_json(self) -> str:
        """Canonical JSON of :meth:`to_dict` (sorted keys), stored in data files."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, spec: dict[str, Any], source: str = "geometry") -> Calorimeter:
        """Build from a dict (as written by :meth:`to_dict` or a YAML file); ``source`` names it in errors.

        Layers may be given one by one, or in blocks: ``{"repeat": 17, "absorber": "W", "absorber_mm": 2.4, ...}``.
        """
        if not isinstance(spec, dict):
            raise ConfigError(f"{source}: a detector description must be a mapping")
        try:
            grid = Grid(int(spec["grid"]["nx"]), int(spec["grid"]["ny"]), float(spec["grid"]["pitch_mm"]),
                        float(spec["grid"].get("threshold_MeV", 0.0)))
            layers: list[Layer] = []
            for block in spec["layers"]:
                block = dict(block)
                repeat = int(block.pop("repeat", 1))
                layers.extend([_layer_from_dict(block)] * repeat)
            customs = tuple(material_from_dict(m) for m in spec.get("materials", []))
        except KeyError as err:
            raise ConfigError(f"{source}: missing field {err}") from None
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{source}: {err}") from None
        half_width = spec.get("half_width_mm")
        try:
            return cls(str(spec.get("name", Path(source).stem)), tuple(layers), grid,
                       None if half_width is None else float(half_width), customs)
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None

    @classmethod
    def from_file(cls, path: str | Path) -> Calorimeter:
        """Read a detector description from a YAML (``.yaml``/``.yml``/``.json``) or TOML (``.toml``) file."""
        spec = read_mapping(path, "detector file")
        return cls.from_dict(spec, source=str(path))


def _layer_to_dict(layer: Layer) -> dict[str, Any]:
    out: dict[str, Any] = {"absorber": layer.absorber, "absorber_mm": layer.absorber_mm,
                           "sensor": layer.sensor, "sensor_mm": layer.sensor_mm}
    if layer.gap is not None:
        out.update(gap=layer.gap, gap_mm=layer.gap_mm)
    return out


def _layer_from_dict(spec: dict[str, Any]) -> Layer:
    unknown = set(spec) - {"absorber", "absorber_mm", "sensor", "sensor_mm", "gap", "gap_mm"}
    if unknown:
        raise ValueError(f"unknown layer field(s) {sorted(unknown)}")
    return Layer(str(spec["absorber"]), float(spec["absorber_mm"]), str(spec["sensor"]), float(spec["sensor_mm"]),
                 None if spec.get("gap") is None else str(spec["gap"]), float(spec.get("gap_mm", 0.0)))


def _clic_layers() -> tuple[Layer, ...]:
    # CLIC ECAL as in the 3DGAN data set: 17 layers of 2.4 mm W then 8 of 4.8 mm W, 0.5 mm Si sensors.
    thin = Layer("W", 2.4, "Si", 0.5)
    thick = Layer("W", 4.8, "Si", 0.5)
    return (thin,) * 17 + (thick,) * 8


PRESETS: dict[str, Calorimeter] = {
    "clic": Calorimeter("clic", _clic_layers(), Grid(25, 25, 5.1)),
    "clic-wide": Calorimeter("clic-wide", _clic_layers(), Grid(51, 51, 5.1)),
}


def load_geometry(name_or_path: str | Path) -> Calorimeter:
    """A preset by name (``clic``, ``clic-wide``) or a detector file path (YAML/TOML)."""
    key = str(name_or_path)
    if key in PRESETS:
        return PRESETS[key]
    path = Path(key)
    if path.suffix in {".yaml", ".yml", ".toml", ".json"} or path.exists():
        return Calorimeter.from_file(path)
    raise ConfigError(f"geometry '{key}': unknown preset (known: {', '.join(PRESETS)}) and no such file")
