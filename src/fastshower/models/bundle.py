"""The generator bundle: everything needed to generate showers from a trained model, in one safe file.

A bundle is a ``torch.save``d dict of tensors and plain containers only, so that it loads with
``torch.load(..., weights_only=True)`` (no unpickling of arbitrary objects). Keys (schema 1):

- ``schema``: ``"fastshower-generator"``, ``schema_version``: 1
- ``model_name``, ``cell_shape`` (list of 3 ints), ``model_config`` (options given to :func:`build_model`)
- ``generator``: the generator's ``state_dict``
- ``transform``: ``{"power": p, "scale": s}`` — the model produces ``scale * E_cell**power``; generation inverts it
- ``conditions``: ``{"energy_GeV": [lo, hi], "theta_rad": [lo, hi], "particles": [pdg, ...]}`` — the training range
- ``geometry``: the detector description of the training data (dict), ``provenance``: free-form dict
- ``physics`` (optional): the Monte Carlo physics settings of the training data (dict); bundles made before it was
  recorded were trained on the MC of their time (``fastshower.mc.settings.RECORDED_BEFORE``)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fastshower.atomic import atomic_write
from fastshower.errors import ConfigError, DataFormatError
from fastshower.models.registry import build_model

SCHEMA = "fastshower-generator"
SCHEMA_VERSION = 1
_REQUIRED = ("schema", "schema_version", "model_name", "cell_shape", "model_config", "generator", "transform",
             "conditions")


@dataclass
class GeneratorBundle:
    """A generator ready for inference (eval mode) plus what it was trained on."""

    generator: nn.Module
    model_name: str
    cell_shape: tuple[int, int, int]
    model_config: dict[str, Any]
    transform_power: float
    transform_scale: float
    energy_range_GeV: tuple[float, float]
    theta_range_rad: tuple[float, float]
    particles: list[int]
    geometry: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    physics: dict[str, Any] = field(default_factory=dict)

    @property
    def latent_dim(self) -> int:
        """Size of the noise vector."""
        return int(self.generator.latent_dim)


def save_bundle(path: str | Path, generator: nn.Module, *, model_name: str, cell_shape: tuple[int, int, int],
                model_config: dict[str, Any], transform_power: float, transform_scale: float,
                energy_range_GeV: tuple[float, float], theta_range_rad: tuple[float, float] = (0.0, 0.0),
                particles: list[int] | None = None, geometry: dict[str, Any] | None = None,
                provenance: dict[str, Any] | None = None, physics: dict[str, Any] | None = None) -> Path:
    """Write a generator bundle atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    state = {key: value.detach().cpu().clone() for key, value in generator.state_dict().items()}
    payload = {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "model_name": model_name,
        "cell_shape": [int(v) for v in cell_shape], "model_config": dict(model_config), "generator": state,
        "transform": {"power": float(transform_power), "scale": float(transform_scale)},
        "conditions": {"energy_GeV": [float(v) for v in energy_range_GeV],
                       "theta_rad": [float(v) for v in theta_range_rad], "particles": list(particles or [11])},
        "geometry": dict(geometry or {}), "provenance": dict(provenance or {}), "physics": dict(physics or {}),
    }
    return atomic_write(path, lambda f: torch.save(payload, f))


def load_bundle(path: str | Path, map_location: str | torch.device = "cpu") -> GeneratorBundle:
    """Load a bundle safely (``weights_only=True``), check it field by field and rebuild its generator in eval
    mode; ``DataFormatError`` (one line naming the file and the field) for anything missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such model file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling/zip error means a bad file
        reason = " ".join(str(err).split())[:120]
        raise DataFormatError(f"{path}: not a loadable model file ({type(err).__name__}: {reason})") from None
    if not isinstance(payload, dict) or payload.get("schema") != SCHEMA:
        raise DataFormatError(f"{path}: not a fastshower generator bundle (schema key missing or different)")
    missing = [key for key in _REQUIRED if key not in payload]
    if missing:
        raise DataFormatError(f"{path}: generator bundle lacks {', '.join(missing)}")
    check = _FieldCheck(path)
    version = check.integer(payload["schema_version"], "schema_version", low=1)
    if version > SCHEMA_VERSION:
        raise DataFormatError(f"{path}: bundle schema {version} is newer than this fastshower "
                              f"({SCHEMA_VERSION}); upgrade fastshower")
    model_name = check.kind(payload["model_name"], str, "model_name")
    cell_shape = check.integers(payload["cell_shape"], "cell_shape", count=3, low=1)
    model_config = check.mapping(payload["model_config"], "model_config")
    weights = check.mapping(payload["generator"], "generator")
    if not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise DataFormatError(f"{path}: generator: expected a state_dict of tensors")
    transform = check.mapping(payload["transform"], "transform")
    power = check.number(transform.get("power"), "transform.power", positive=True)
    scale = check.number(transform.get("scale"), "transform.scale", positive=True)
    conditions = check.mapping(payload["conditions"], "conditions")
    energy_range = check.interval(conditions.get("energy_GeV"), "conditions.energy_GeV", positive=True)
    theta_range = check.interval(conditions.get("theta_rad"), "conditions.theta_rad")
    particles = check.integers(conditions.get("particles"), "conditions.particles")
    geometry = check.mapping(payload.get("geometry", {}), "geometry")
    provenance = check.mapping(payload.get("provenance", {}), "provenance")
    physics = check.mapping(payload.get("physics", {}), "physics")
    try:
        pair = build_model(model_name, cell_shape, **model_config)
    except ConfigError as err:
        raise DataFormatError(f"{path}: {err}") from None
    except (TypeError, ValueError) as err:  # options the model does not take, or values it refuses
        raise DataFormatError(f"{path}: model_config does not fit model '{model_name}' "
                              f"({str(err).splitlines()[0][:120]})") from None
    try:
        pair.generator.load_state_dict(weights)
        pair.generator.use_transform(power, scale)
    except RuntimeError as err:
        raise DataFormatError(f"{path}: generator weights do not fit model '{model_name}' "
                              f"({str(err).splitlines()[0][:120]})") from None
    return GeneratorBundle(
        generator=pair.generator.eval(), model_name=model_name, cell_shape=cell_shape,
        model_config=dict(model_config), transform_power=power, transform_scale=scale,
        energy_range_GeV=energy_range, theta_range_rad=theta_range, particles=list(particles),
        geometry=dict(geometry), provenance=dict(provenance), physics=dict(physics),
    )


class _FieldCheck:
    """Checks of a bundle's fields, each failure a one-line ``DataFormatError`` naming the file and field."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _fail(self, field_name: str, expected: str, value: Any) -> DataFormatError:
        shown = repr(value)
        return DataFormatError(f"{self.path}: {field_name}: expected {expected}, got "
                               f"{shown if len(shown) <= 60 else shown[:57] + '...'}")

    def kind(self, value: Any, kind: type, field_name: str) -> Any:
        if not isinstance(value, kind):
            raise self._fail(field_name, f"a {kind.__name__}", value)
        return value

    def mapping(self, value: Any, field_name: str) -> dict[str, Any]:
        if not (isinstance(value, dict) and all(isinstance(k, str) for k in value)):
            raise self._fail(field_name, "a mapping with text keys", value)
        return value

    def integer(self, value: Any, field_name: str, low: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low):
            raise self._fail(field_name, "an integer" + (f" >= {low}" if low is not None else ""), value)
        return value

    def integers(self, value: Any, field_name: str, count: int | None = None,
                 low: int | None = None) -> tuple[int, ...]:
        expected = f"a list of {count or 'one or more'} integers" + (f" >= {low}" if low is not None else "")
        if not isinstance(value, list | tuple) or (len(value) != count if count else not value):
            raise self._fail(field_name, expected, value)
        try:
            return tuple(self.integer(v, field_name, low) for v in value)
        except DataFormatError:
            raise self._fail(field_name, expected, value) from None

    def number(self, value: Any, field_name: str, positive: bool = False) -> float:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or (positive and value <= 0):
            raise self._fail(field_name, "a finite number" + (" > 0" if positive else ""), value)
        return float(value)

    def interval(self, value: Any, field_name: str, positive: bool = False) -> tuple[float, float]:
        expected = "[low, high] with low <= high" + (", both > 0" if positive else "")
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise self._fail(field_name, expected, value)
        try:
            low, high = (self.number(v, field_name, positive) for v in value)
        except DataFormatError:
            raise self._fail(field_name, expected, value) from None
        if low > high:
            raise self._fail(field_name, expected, value)
        return low, high
