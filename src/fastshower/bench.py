"""Side-by-side speed of the fast model and the detailed Monte Carlo (``fastshower bench``).

Measured in one run on one machine: the generator's ms per shower for several batch sizes in fp32 and bf16, the
MC's ms per shower at the same energies, the speed-up, the generator's FLOPs per shower and the share of the
machine's measured matmul peak it reaches, and (if onnxruntime is installed) the ONNX model's speed. With several
models, their generation speeds side by side (:func:`run_side_by_side`).
"""

from __future__ import annotations

import logging
import os
import platform
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from fastshower.atomic import atomic_write_text
from fastshower.generate import ShowerSampler

logger = logging.getLogger(__name__)


def machine_description() -> str:
    """CPU model, visible cores and torch threads, as one line."""
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            found = re.search(r"model name\s*:\s*(.+)", handle.read())
            model = found.group(1).strip() if found else model
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores visible, torch {torch.__version__} with {torch.get_num_threads()} threads"


def matmul_peak_gflops(dtype: torch.dtype, size: int = 2048, seconds: float = 1.0, device: str = "cpu") -> float:
    """Measured throughput of a large square matmul (GFLOP/s): the machine's practical peak for ``dtype`` on
    ``device`` (on a GPU, the queue is drained before the clock is read)."""
    a = torch.randn(size, size).to(device=device, dtype=dtype)
    b = torch.randn(size, size).to(device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    torch.mm(a, b)
    sync()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(10 if device.startswith("cuda") else 1):
            torch.mm(a, b)
            count += 1
        sync()
    return 2.0 * size**3 * count / (time.perf_counter() - start) / 1e9


def generator_flops_per_shower(sampler: ShowerSampler) -> float:
    """FLOPs of one forward pass per shower as generation runs it (the exact inference rewrite of the generator,
    ~3.4x fewer than the generator's own layers for 3DGAN; torch's FLOP counter, batch 8)."""
    from torch.utils.flop_counter import FlopCounterMode

    noise = torch.randn(8, sampler.bundle.latent_dim)
    sampler.inference_generator("fp32")  # built before counting: its construction is not generation
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        sampler._generate(noise, np.full(8, 100.0), np.zeros(8), "fp32")
    return counter.get_total_flops() / 8.0


def generation_ms_per_shower(sampler: ShowerSampler, batch: int, precision: str, min_seconds: float = 1.0,
                             energy_GeV: float = 100.0) -> float:
    """Wall time per shower of batched generation, including the inverse transform and the copy to numpy."""
    noise = torch.randn(batch, sampler.bundle.latent_dim)
    energies, thetas = np.full(batch, energy_GeV), np.zeros(batch)
    sampler._generate(noise, energies, thetas, precision)  # warm-up: allocation, oneDNN kernel selection
    count, start = 0, time.perf_counter()
    while count == 0 or time.perf_counter() - start < min_seconds:
        sampler._generate(noise, energies, thetas, precision)
        count += batch
    return (time.perf_counter() - start) / count * 1000.0


@dataclass
class BenchResult:
    """Everything ``fastshower bench`` measures; times in ms per shower."""

    machine: str
    generation_ms: dict[tuple[str, int], float] = field(default_factory=dict)
    mc_ms: dict[float, float] = field(default_factory=dict)
    mc_mean_ms: float = 0.0
    energy_range_GeV: tuple[float, float] = (10.0, 510.0)
    flops_per_shower: float = 0.0
    peak_gflops: dict[str, float] = field(default_factory=dict)
    onnx_ms: dict[int, float] = field(default_factory=dict)

    def speedup(self, precision: str, batch: int) -> float:
        """MC time averaged over the energy range divided by the model's time."""
        return self.mc_mean_ms / self.generation_ms[(precision, batch)]

    def peak_share(self, precision: str, batch: int) -> float:
        """Achieved FLOP rate of generation as a share of the measured matmul peak of that precision."""
        achieved = self.flops_per_shower / (self.generation_ms[(precision, batch)] / 1000.0) / 1e9
        return achieved / self.peak_gflops[precision]

    def markdown(self, command: str) -> str:
        """The ``## Fast generation`` section of benchmarks/RESULTS.md."""
        lo, hi = self.energy_range_GeV
        lines = ["## Fast generation vs the Monte Carlo", "", f"Machine: {self.machine}. Command: `{command}`.", "",
                 f"Generator: {self.flops_per_shower / 1e9:.2f} GFLOP per shower (forward). Measured matmul peak: "
                 + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in self.peak_gflops.items()) + ".", "",
                 "| precision | batch | ms / shower | speed-up vs MC | share of matmul peak |", "|---|---|---|---|---|"]
        for (precision, batch), ms in sorted(self.generation_ms.items()):
            lines.append(f"| {precision} | {batch} | {ms:.2f} | {self.speedup(precision, batch):,.0f}x | "
                         f"{self.peak_share(precision, batch):.1%} |")
        for batch, ms in sorted(self.onnx_ms.items()):
            lines.append(f"| onnxruntime fp32 | {batch} | {ms:.2f} | {self.mc_mean_ms / ms:,.0f}x | |")
        lines += ["", "| MC energy (GeV) | ms / shower (one core) |", "|---|---|"]
        lines += [f"| {e:g} | {ms:.1f} |" for e, ms in sorted(self.mc_ms.items())]
        lines += ["", f"MC averaged over a uniform {lo:g}-{hi:g} GeV spectrum (linear fit in E): "
                  f"{self.mc_mean_ms:.0f} ms per shower. Speed-ups compare the model on all cores with the MC on one "
                  "core per shower (MC production scales linearly with cores: divide by the core count for a "
                  "whole-machine comparison).", ""]
        return "\n".join(lines)


def mc_ms_per_shower(energies_GeV: tuple[float, ...], geometry: str = "clic", min_seconds: float = 2.0
                     ) -> dict[float, float]:
    """The Monte Carlo's wall time per electron shower at each energy, on one core."""
    from fastshower.geometry import load_geometry
    from fastshower.mc.rng import shower_seeds
    from fastshower.mc.simulator import Primaries, Simulator

    simulator = Simulator(load_geometry(geometry))
    out = {}
    for energy in energies_GeV:
        done, start, index = 0, time.perf_counter(), 0
        while done == 0 or time.perf_counter() - start < min_seconds:
            z = np.zeros(1)
            simulator.run(Primaries(np.full(1, 11), np.full(1, energy), z, z, z, z), shower_seeds(7, index, 1))
            done, index = done + 1, index + 1
        out[float(energy)] = (time.perf_counter() - start) / done * 1000.0
    return out


def run_bench(sampler: ShowerSampler, batches: tuple[int, ...] = (1, 16, 128, 1024),
              mc_energies: tuple[float, ...] = (10.0, 100.0, 500.0), quick: bool = False) -> BenchResult:
    """Measure everything; ``quick`` shortens every timing (for tests)."""
    seconds = 0.2 if quick else 1.5
    result = BenchResult(machine_description(), energy_range_GeV=tuple(sampler.bundle.energy_range_GeV))
    result.peak_gflops = {"fp32": matmul_peak_gflops(torch.float32, seconds=seconds),
                          "bf16": matmul_peak_gflops(torch.bfloat16, seconds=seconds)}
    result.flops_per_shower = generator_flops_per_shower(sampler)
    for precision in ("fp32", "bf16"):
        for batch in batches:
            result.generation_ms[(precision, batch)] = generation_ms_per_shower(sampler, batch, precision, seconds)
            logger.info("generation %s batch %d: %.2f ms/shower", precision, batch,
                        result.generation_ms[(precision, batch)])
    result.mc_ms = mc_ms_per_shower(mc_energies, min_seconds=seconds * 2)
    slope, intercept = np.polyfit(list(result.mc_ms), list(result.mc_ms.values()), 1)
    lo, hi = result.energy_range_GeV
    result.mc_mean_ms = float(slope * 0.5 * (lo + hi) + intercept)
    result.onnx_ms = _onnx_ms(sampler, (1, 128), seconds)
    return result


@dataclass
class SideBySide:
    """``fastshower bench`` with several models: each one's generation speed measured in the same run, the
    timings interleaved (every model at one precision and batch before the next), so that all see the same
    machine; times in ms per shower."""

    machine: str
    families: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, int] = field(default_factory=dict)
    flops_per_shower: dict[str, float] = field(default_factory=dict)
    generation_ms: dict[tuple[str, str, int], float] = field(default_factory=dict)

    def markdown(self, command: str) -> str:
        """The ``## Models side by side`` section of benchmarks/RESULTS.md."""
        lines = ["## Models side by side", "", f"Machine: {self.machine}. Command: `{command}`.", "",
                 "| model | family | generator parameters | GFLOP / shower | precision | batch | ms / shower |",
                 "|---|---|---|---|---|---|---|"]
        for (name, precision, batch), ms in sorted(self.generation_ms.items(), key=lambda kv: (kv[0][1], kv[0][2])):
            lines.append(f"| {name} | {self.families[name]} | {self.parameters[name]:,} | "
                         f"{self.flops_per_shower[name] / 1e9:.3f} | {precision} | {batch} | {ms:.2f} |")
        return "\n".join(lines + [""])


def run_side_by_side(samplers: dict[str, ShowerSampler], batches: tuple[int, ...] = (1, 16, 128, 1024),
                     quick: bool = False) -> SideBySide:
    """Generation speed of each model of ``samplers`` (name -> sampler), interleaved; ``quick`` for tests."""
    seconds = 0.2 if quick else 1.5
    result = SideBySide(machine_description())
    for name, sampler in samplers.items():
        result.families[name] = sampler.bundle.model_name
        result.parameters[name] = sum(p.numel() for p in sampler.generator.parameters())
        result.flops_per_shower[name] = generator_flops_per_shower(sampler)
    for precision in ("fp32", "bf16"):
        for batch in batches:
            for name, sampler in samplers.items():
                ms = generation_ms_per_shower(sampler, batch, precision, seconds)
                result.generation_ms[(name, precision, batch)] = ms
                logger.info("%s %s batch %d: %.2f ms/shower", name, precision, batch, ms)
    return result


def _onnx_ms(sampler: ShowerSampler, batches: tuple[int, ...], seconds: float) -> dict[int, float]:
    try:
        import onnxruntime
    except ImportError:
        return {}
    from fastshower.export import export_onnx

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "g.onnx"
        export_onnx(sampler.bundle, path, check=False)
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        out = {}
        for batch in batches:
            x = np.concatenate([np.random.default_rng(0).standard_normal((batch, sampler.bundle.latent_dim)),
                                np.full((batch, 1), 100.0)], axis=1).astype(np.float32)
            session.run(None, {"input": x})
            count, start = 0, time.perf_counter()
            while count == 0 or time.perf_counter() - start < seconds:
                session.run(None, {"input": x})
                count += batch
            out[batch] = (time.perf_counter() - start) / count * 1000.0
    return out


def write_results(section: str, path: str | Path = "benchmarks/RESULTS.md") -> Path:
    """Replace (or append) the section with the same ``## `` heading in RESULTS.md, atomically."""
    path = Path(path)
    heading = section.splitlines()[0]
    old = path.read_text() if path.exists() else "# Benchmark results\n\n"
    pattern = re.compile(re.escape(heading) + r".*?(?=\n## |\Z)", re.S)
    new = pattern.sub(lambda _: section, old) if pattern.search(old) else old.rstrip("\n") + "\n\n" + section
    return atomic_write_text(path, new)
