"""The generator bundle: everything needed to generate showers from a trained model, in one safe file.

A bundle is a ``torch.save``d dict of tensors and plain containers only, so that it loads with
``torch.load(..., weights_only=True)`` (no unpickling of arbitrary objects). Keys (schema 1):

- ``schema``: ``"fastshower-generator"``, ``schema_version``: 1
- ``model_name``, ``cell_shape`` (list of 3 ints), ``model_config`` (options given to :func:`build_model`)
- ``generator``: the generator's ``state_dict``
- ``transform``: ``{"power": p, "scale": s}`` — the model produces ``scale * E_cell**power``; generation inverts it
- ``conditions``: ``{"energy_GeV": [lo, hi], "theta_rad": [lo, hi], "particles": [pdg, ...]}`` — the training range
- ``geometry``: the detector description of the training data (dict), ``provenance``: free-form dict
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fastshower.errors import DataFormatError
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

    @property
    def latent_dim(self) -> int:
        """Size of the noise vector."""
        return int(self.generator.latent_dim)


def save_bundle(path: str | Path, generator: nn.Module, *, model_name: str, cell_shape: tuple[int, int, int],
                model_config: dict[str, Any], transform_power: float, transform_scale: float,
                energy_range_GeV: tuple[float, float], theta_range_rad: tuple[float, float] = (0.0, 0.0),
                particles: list[int] | None = None, geometry: dict[str, Any] | None = None,
                provenance: dict[str, Any] | None = None) -> Path:
    """Write a generator bundle atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    state = {key: value.detach().cpu().clone() for key, value in generator.state_dict().items()}
    payload = {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "model_name": model_name,
        "cell_shape": [int(v) for v in cell_shape], "model_config": dict(model_config), "generator": state,
        "transform": {"power": float(transform_power), "scale": float(transform_scale)},
        "conditions": {"energy_GeV": [float(v) for v in energy_range_GeV],
                       "theta_rad": [float(v) for v in theta_range_rad], "particles": list(particles or [11])},
        "geometry": dict(geometry or {}), "provenance": dict(provenance or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        torch.save(payload, tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; a model file is meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_bundle(path: str | Path, map_location: str | torch.device = "cpu") -> GeneratorBundle:
    """Load a bundle safely (``weights_only=True``) and rebuild its generator in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such model file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling/zip error means a bad file
        raise DataFormatError(f"{path}: not a loadable model file ({str(err).splitlines()[0][:120]})") from None
    if not isinstance(payload, dict) or payload.get("schema") != SCHEMA:
        raise DataFormatError(f"{path}: not a fastshower generator bundle (schema key missing or different)")
    missing = [key for key in _REQUIRED if key not in payload]
    if missing:
        raise DataFormatError(f"{path}: generator bundle lacks {', '.join(missing)}")
    if payload["schema_version"] > SCHEMA_VERSION:
        raise DataFormatError(f"{path}: bundle schema {payload['schema_version']} is newer than this fastshower "
                              f"({SCHEMA_VERSION}); upgrade fastshower")
    cell_shape = tuple(int(v) for v in payload["cell_shape"])
    pair = build_model(payload["model_name"], cell_shape, **payload["model_config"])
    try:
        pair.generator.load_state_dict(payload["generator"])
    except RuntimeError as err:
        raise DataFormatError(f"{path}: generator weights do not fit model '{payload['model_name']}' "
                              f"({str(err).splitlines()[0][:120]})") from None
    conditions = payload["conditions"]
    return GeneratorBundle(
        generator=pair.generator.eval(), model_name=payload["model_name"], cell_shape=cell_shape,
        model_config=dict(payload["model_config"]), transform_power=float(payload["transform"]["power"]),
        transform_scale=float(payload["transform"]["scale"]),
        energy_range_GeV=tuple(conditions["energy_GeV"]), theta_range_rad=tuple(conditions["theta_rad"]),
        particles=[int(p) for p in conditions["particles"]], geometry=dict(payload.get("geometry", {})),
        provenance=dict(payload.get("provenance", {})),
    )
