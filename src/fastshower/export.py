"""ONNX export of a generator bundle, checked against PyTorch with onnxruntime.

The exported graph has ONE input, ``input`` of shape ``(batch, latent_dim + n_conditions)``: the latent vector
followed by the conditions — primary energy in GeV, then (angle models) theta in rad and the particle one-hot —
the convention of Geant4's ML fast-simulation example (Par04), so that C++ frameworks can call it directly.
The output ``showers`` is ``(batch, X, Y, Z)`` in GeV: the inverse cell transform is part of the graph.
Needs the optional extra ``pip install 'fastshower[onnx]'``.
"""

from __future__ import annotations

import logging
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


class SingleInputGenerator(nn.Module):
    """``[latent | E_GeV (| theta_rad | one-hot)] -> showers (GeV)``: the bundle's generator plus the inverse
    cell transform, behind one input tensor. With ``fast`` (the default, and what is exported) the generator is
    its exact fp32 rewrite :func:`fastshower.models.inference.inference_generator` (~10x faster in
    onnxruntime); otherwise the generator as trained."""

    def __init__(self, bundle: GeneratorBundle, fast: bool = True) -> None:
        super().__init__()
        self.generator = inference_generator(bundle.generator) if fast else bundle.generator.eval()
        self.latent_dim = bundle.latent_dim
        self.angle = bundle.model_name != "3dgan"
        self.n_particles = int(bundle.model_config.get("n_particles", 1))
        self.power, self.scale = bundle.transform_power, bundle.transform_scale

    @property
    def n_conditions(self) -> int:
        """Number of condition columns after the latent vector."""
        return 1 + (1 + (self.n_particles if self.n_particles > 1 else 0) if self.angle else 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        noise, energy = x[:, : self.latent_dim], x[:, self.latent_dim]
        if self.angle:
            theta = x[:, self.latent_dim + 1]
            particle = x[:, self.latent_dim + 2 :] if self.n_particles > 1 else None
            out = self.generator(noise, energy, theta=theta, particle=particle)
        else:
            out = self.generator(noise, energy)
        return (torch.clamp(out[:, 0], min=0.0) / self.scale) ** (1.0 / self.power)


@dataclass(frozen=True)
class ParityReport:
    """Agreement of onnxruntime with PyTorch on random inputs."""

    max_abs_diff_GeV: float
    max_rel_diff: float  # relative to the largest cell of the PyTorch output
    n_showers: int


def export_onnx(bundle: GeneratorBundle, path: str | Path, check: bool = True) -> ParityReport | None:
    """Write the ONNX graph atomically; with ``check``, compare onnxruntime against PyTorch."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise ConfigError("ONNX export needs the optional extra: pip install 'fastshower[onnx]'") from None
    path = Path(path)
    model = SingleInputGenerator(bundle).eval()
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
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return parity(bundle, path) if check else None


def parity(bundle: GeneratorBundle, path: str | Path, n_showers: int = 16, seed: int = 1) -> ParityReport:
    """Run the ONNX file with onnxruntime and PyTorch (the generator as trained, so that the check also covers
    the exported rewrite) on the same random inputs."""
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError("the ONNX check needs onnxruntime: pip install 'fastshower[onnx]'") from None
    model = SingleInputGenerator(bundle, fast=False).eval()
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
    columns = [torch.randn(n, model.latent_dim, generator=gen), lo + (hi - lo) * torch.rand(n, 1, generator=gen)]
    if model.angle:
        t_lo, t_hi = bundle.theta_range_rad
        columns.append(t_lo + (t_hi - t_lo) * torch.rand(n, 1, generator=gen))
        if model.n_particles > 1:
            columns.append(nn.functional.one_hot(torch.zeros(n, dtype=torch.long), model.n_particles).float())
    return torch.cat(columns, dim=1)
