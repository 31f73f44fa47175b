"""ONNX export of a generator bundle, checked against PyTorch with onnxruntime.

The exported graph has ONE input, ``input`` of shape ``(batch, latent_dim + n_conditions)``: the latent vector
followed by the conditions — primary energy in GeV, then (angle models) theta in rad and the particle one-hot —
the convention of Geant4's ML fast-simulation example (Par04), so that C++ frameworks can call it directly.
The output ``showers`` is ``(batch, X, Y, Z)`` in GeV: the inverse cell transform is part of the graph.

``par04=True`` exports the layout Geant4's example Par04 feeds its model (``Par04InferenceSetup::GetEnergies``): the
input is ``[latent | E / E_max | theta_deg / theta_max_deg | geometry one-hot]`` (E in the same unit as E_max; the
geometry columns are accepted and ignored: one model, one detector) and the output ``(batch, X * Y * Z)`` holds each
cell's share of the particle's energy, which Par04 multiplies by the energy in MeV; the cells are in C order with the
layer axis fastest, Par04's (r, phi, z) loop order for a cylindrical readout. An angle model with several particles
is exported for its first particle. Either file records in its ONNX metadata (``metadata_props``) the latent size,
the input columns and their normalisations, the units, the ranges and the cell transform.
Needs the optional extra ``pip install 'fastshower[onnx]'``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fastshower.atomic import file_mode
from fastshower.errors import ConfigError
from fastshower.models.bundle import GeneratorBundle
from fastshower.models.inference import inference_generator

logger = logging.getLogger(__name__)
OPSET = 18
#: Par04's angle normalisation: "the angle is normalised to the highest angle in the considered range (0-90 degrees)".
PAR04_THETA_MAX_deg = 90.0


class SingleInputGenerator(nn.Module):
    """``[latent | E_GeV (| theta_rad | one-hot)] -> showers (GeV)``: the bundle's generator plus the inverse
    cell transform, behind one input tensor. With ``fast`` (the default, and what is exported) the generator is
    its exact fp32 rewrite :func:`fastshower.models.inference.inference_generator` (~10x faster in
    onnxruntime); otherwise the generator as trained."""

    def __init__(self, bundle: GeneratorBundle, fast: bool = True, par04: bool = False,
                 par04_geometries: int = 2) -> None:
        super().__init__()
        self.generator = inference_generator(bundle.generator) if fast else bundle.generator.eval()
        self.latent_dim = bundle.latent_dim
        from fastshower.models.gan3d import AngleGenerator

        self.angle = isinstance(bundle.generator, AngleGenerator)
        self.n_particles = int(bundle.model_config.get("n_particles", 1))
        self.power, self.scale = bundle.transform_power, bundle.transform_scale
        self.par04, self.par04_geometries = par04, int(par04_geometries)
        self.energy_max_GeV = float(bundle.energy_range_GeV[1])

    @property
    def n_conditions(self) -> int:
        """Number of condition columns after the latent vector."""
        if self.par04:
            return 2 + self.par04_geometries
        return 1 + (1 + (self.n_particles if self.n_particles > 1 else 0) if self.angle else 0)

    def _cells_GeV(self, noise: torch.Tensor, energy: torch.Tensor, theta: torch.Tensor | None,
                   particle: torch.Tensor | None) -> torch.Tensor:
        if self.angle:
            out = self.generator(noise, energy, theta=theta, particle=particle)
        else:
            out = self.generator(noise, energy)
        return (torch.clamp(out[:, 0], min=0.0) / self.scale) ** (1.0 / self.power)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        noise, column = x[:, : self.latent_dim], x[:, self.latent_dim]
        if self.par04:
            energy = column * self.energy_max_GeV
            theta = x[:, self.latent_dim + 1] * (PAR04_THETA_MAX_deg * math.pi / 180.0)
            particle = None
            if self.angle and self.n_particles > 1:  # the first particle: Par04's input has no particle
                first = torch.ones_like(energy)[:, None]
                particle = torch.cat([first, torch.zeros_like(first).expand(-1, self.n_particles - 1)], dim=1)
            cells = self._cells_GeV(noise, energy, theta, particle)
            return (cells / energy[:, None, None, None]).reshape(x.shape[0], -1)
        theta = x[:, self.latent_dim + 1] if self.angle else None
        particle = x[:, self.latent_dim + 2 :] if self.angle and self.n_particles > 1 else None
        return self._cells_GeV(noise, column, theta, particle)


def onnx_metadata(bundle: GeneratorBundle, model: SingleInputGenerator) -> dict[str, str]:
    """What a C++ caller needs to build the input and read the output, as ONNX ``metadata_props`` (strings)."""
    from fastshower import __version__

    lo, hi = bundle.energy_range_GeV
    t_lo, t_hi = (math.degrees(t) for t in bundle.theta_range_rad)
    if model.par04:
        columns = ["latent"] * model.latent_dim + ["E / energy_max", "theta_deg / theta_max_deg"] + \
            [f"geometry one-hot {i} (ignored)" for i in range(model.par04_geometries)]
        output = "share of the particle's energy per cell: multiply by E in MeV (Par04) for MeV"
    else:
        columns = ["latent"] * model.latent_dim + ["E_GeV"] + (["theta_rad"] if model.angle else []) + \
            ([f"particle one-hot {i}" for i in range(model.n_particles)] if model.angle and model.n_particles > 1
             else [])
        output = "cell energies in GeV"
    return {
        "producer": f"fastshower {__version__}", "model_name": bundle.model_name, "layout": "par04" if model.par04
        else "fastshower", "latent_size": str(model.latent_dim), "condition_size": str(model.n_conditions),
        "input_columns": json.dumps(columns), "output": output,
        "output_shape": json.dumps(list(bundle.cell_shape)), "cell_order": "C order over the cell axes, last fastest",
        "energy_range_GeV": json.dumps([lo, hi]), "energy_max_GeV": repr(model.energy_max_GeV),
        "energy_max_MeV": repr(1000.0 * model.energy_max_GeV), "theta_range_deg": json.dumps([t_lo, t_hi]),
        "theta_max_deg": repr(PAR04_THETA_MAX_deg), "theta_definition": "incidence angle from the calorimeter's "
        "normal", "particles_pdg": json.dumps(list(bundle.particles)),
        "transform": json.dumps({"power": model.power, "scale": model.scale}),
        "geometry": json.dumps(bundle.geometry.get("name", "") if bundle.geometry else ""),
    }


@dataclass(frozen=True)
class ParityReport:
    """Agreement of onnxruntime with PyTorch on random inputs."""

    max_abs_diff_GeV: float
    max_rel_diff: float  # relative to the largest cell of the PyTorch output
    n_showers: int


def export_onnx(bundle: GeneratorBundle, path: str | Path, check: bool = True, par04: bool = False,
                par04_geometries: int = 2) -> ParityReport | None:
    """Write the ONNX graph atomically (``par04``: Par04's input and output layout, see the module docstring),
    with its metadata; with ``check``, compare onnxruntime against PyTorch."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise ConfigError("ONNX export needs the optional extra: pip install 'fastshower[onnx]'") from None
    path = Path(path)
    if par04_geometries < 0:
        raise ConfigError(f"par04_geometries {par04_geometries}: must be >= 0")
    model = SingleInputGenerator(bundle, par04=par04, par04_geometries=par04_geometries).eval()
    example = _example_input(model, bundle, 4, seed=0)
    batch = torch.export.Dim("batch", min=1, max=65536)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=path.stem, suffix=".onnx", dir=path.parent)
    os.close(handle)
    try:
        # the dynamo exporter: the TorchScript one mis-exports this generator (large output mismatch)
        program = torch.onnx.export(model, (example,), dynamic_shapes=({0: batch},), input_names=["input"],
                                    output_names=["showers"], opset_version=OPSET, dynamo=True, verbose=False)
        program.save(tmp)
        _add_metadata(tmp, onnx_metadata(bundle, model))
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return parity(bundle, path, par04=par04, par04_geometries=par04_geometries) if check else None


def _add_metadata(path: str, metadata: dict[str, str]) -> None:
    import onnx

    graph = onnx.load(path, load_external_data=False)
    for key, value in metadata.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(graph, path)


def parity(bundle: GeneratorBundle, path: str | Path, n_showers: int = 16, seed: int = 1, par04: bool = False,
           par04_geometries: int = 2) -> ParityReport:
    """Run the ONNX file with onnxruntime and PyTorch (the generator as trained, so that the check also covers
    the exported rewrite) on the same random inputs."""
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError("the ONNX check needs onnxruntime: pip install 'fastshower[onnx]'") from None
    model = SingleInputGenerator(bundle, fast=False, par04=par04, par04_geometries=par04_geometries).eval()
    x = _example_input(model, bundle, n_showers, seed)
    with torch.inference_mode():
        reference = model(x).numpy()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    result = session.run(["showers"], {"input": x.numpy()})[0]
    diff = float(np.max(np.abs(result - reference)))
    return ParityReport(diff, diff / max(float(np.max(np.abs(reference))), 1e-30), n_showers)


def _example_input(model: SingleInputGenerator, bundle: GeneratorBundle, n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    lo, hi = bundle.energy_range_GeV
    if model.par04:
        t_lo, t_hi = (math.degrees(t) / PAR04_THETA_MAX_deg for t in bundle.theta_range_rad)
        geometry = torch.zeros(n, model.par04_geometries)
        if model.par04_geometries:
            geometry[:, -1] = 1.0  # Par04 sets [0, 1]
        return torch.cat([torch.randn(n, model.latent_dim, generator=gen),
                          (lo + (hi - lo) * torch.rand(n, 1, generator=gen)) / hi,
                          t_lo + (t_hi - t_lo) * torch.rand(n, 1, generator=gen), geometry], dim=1)
    columns = [torch.randn(n, model.latent_dim, generator=gen), lo + (hi - lo) * torch.rand(n, 1, generator=gen)]
    if model.angle:
        t_lo, t_hi = bundle.theta_range_rad
        columns.append(t_lo + (t_hi - t_lo) * torch.rand(n, 1, generator=gen))
        if model.n_particles > 1:
            columns.append(nn.functional.one_hot(torch.zeros(n, dtype=torch.long), model.n_particles).float())
    return torch.cat(columns, dim=1)
