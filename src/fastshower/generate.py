"""Fast generation: showers from a trained generator, batched, in fp32 or bf16, reproducible by seed.

``fastshower.load(MODEL)`` returns a :class:`ShowerSampler`; MODEL is a bundle path or the name of a shipped
model (``fastshower.generate.shipped_models()``). Showers come out as numpy arrays ``(N, X, Y, Z)`` in GeV.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fastshower.errors import ConfigError
from fastshower.models.bundle import GeneratorBundle, load_bundle
from fastshower.models.inference import InferenceGenerator, inference_generator

SHIPPED_DIR = Path(__file__).parent / "shipped"
NOISE_BLOCK = 1024  # showers per noise block: noise of shower i depends only on (seed, i), not on the batching
PRECISIONS = ("fp32", "bf16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
_RANGE_TOLERANCE = 1e-6


def shipped_models() -> list[str]:
    """Names of the models shipped with the package."""
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.pt"))


def resolve_model(model: str | Path) -> Path:
    """A bundle path from a path or a shipped model's name."""
    path = Path(model)
    if path.is_file():
        return path
    shipped = SHIPPED_DIR / f"{model}.pt"
    if shipped.is_file():
        return shipped
    names = ", ".join(shipped_models()) or "none"
    raise ConfigError(f"model '{model}': no such file and not a shipped model (shipped: {names})")


def load(model: str | Path, device: str = "cpu") -> ShowerSampler:
    """Load a generator bundle (path or shipped name) for sampling."""
    return ShowerSampler(load_bundle(resolve_model(model), map_location=device), device=device)


class ShowerSampler:
    """Samples showers from a :class:`GeneratorBundle`.

    Generation runs :func:`fastshower.models.inference.inference_generator`'s rewrite of ``generator`` (the same
    function up to float rounding, several times faster), built once per precision on first use: modify
    ``generator``'s weights after sampling and the sampler keeps using the old ones.
    """

    def __init__(self, bundle: GeneratorBundle, device: str = "cpu") -> None:
        self.bundle = bundle
        self.device = torch.device(device)
        self.generator = bundle.generator.to(self.device).eval()
        self._fast: dict[str, InferenceGenerator] = {}
        #: the readout's zero suppression of the detector the model learned (GeV), applied as the Monte Carlo does
        self.threshold_GeV = float((bundle.geometry.get("grid") or {}).get("threshold_MeV", 0.0)) / 1000.0

    def inference_generator(self, precision: str = "fp32") -> InferenceGenerator:
        """The fast eval-only generator used for ``precision`` (weights in that precision; call without
        autocast)."""
        if precision not in self._fast:
            self._fast[precision] = inference_generator(self.generator, _DTYPES[precision])
        return self._fast[precision]

    @property
    def energy_only(self) -> bool:
        """True for models conditioned on the primary energy alone (no angle input)."""
        from fastshower.models.gan3d import EnergyGenerator

        return isinstance(self.generator, EnergyGenerator)  # the 3DGAN's generator, also the 3dvae's decoder

    @property
    def cell_shape(self) -> tuple[int, int, int]:
        """Shape of one shower ``(X, Y, Z)``."""
        return self.bundle.cell_shape

    def check_conditions(self, energy_GeV: np.ndarray, theta_rad: np.ndarray,
                         allow_extrapolation: bool = False) -> None:
        """Refuse conditions outside the training range unless ``allow_extrapolation``."""
        if not (np.all(np.isfinite(energy_GeV)) and np.all(energy_GeV > 0)):
            raise ConfigError("energy: must be finite and > 0 GeV")
        if not np.all(np.isfinite(theta_rad)):
            raise ConfigError("theta: must be finite")
        checks = [("energy", energy_GeV, self.bundle.energy_range_GeV, "GeV")]
        if self.energy_only:
            if np.any(theta_rad != 0):
                raise ConfigError(f"theta: model '{self.bundle.model_name}' is conditioned on the energy only")
        else:
            checks.append(("theta", theta_rad, self.bundle.theta_range_rad, "rad"))
        if allow_extrapolation:
            return
        for name, values, (lo, hi), unit in checks:
            slack = _RANGE_TOLERANCE * max(1.0, abs(hi))
            if values.min() < lo - slack or values.max() > hi + slack:
                raise ConfigError(f"{name} {values.min():g}..{values.max():g} {unit} is outside the model's "
                                  f"training range {lo:g}..{hi:g} {unit}; allow_extrapolation (the "
                                  "command line's --allow-extrapolation) generates anyway")

    def sample(self, energy: float | np.ndarray, theta_deg: float | np.ndarray | None = None, n: int | None = None,
               seed: int = 1, batch_size: int = 128, precision: str = "bf16",
               allow_extrapolation: bool = False) -> np.ndarray:
        """``n`` showers (GeV) for the given energies (GeV) and incidence angles (degrees); scalars are broadcast to
        ``n``. The defaults are those of ``fastshower generate`` (seed 1, bf16, batches of 128)."""
        theta = None if theta_deg is None else np.radians(np.asarray(theta_deg, dtype=np.float64))
        energy_GeV, theta_rad = _conditions(energy, theta, n)
        return np.concatenate(list(self.iter_batches(energy_GeV, theta_rad, seed, batch_size, precision,
                                                     allow_extrapolation)), axis=0)

    def iter_batches(self, energy_GeV: np.ndarray, theta_rad: np.ndarray, seed: int = 1, batch_size: int = 128,
                     precision: str = "bf16", allow_extrapolation: bool = False,
                     first: int = 0) -> Iterator[np.ndarray]:
        """Yield showers in batches of ``batch_size`` (constant memory for any N).

        ``first`` is the index of the first shower in the run, so that a slice of a run gets the same noise as
        the run itself (used to resume or to skip finished batches).
        """
        if precision not in PRECISIONS:
            raise ConfigError(f"precision '{precision}': expected one of {', '.join(PRECISIONS)}")
        if batch_size < 1:
            raise ConfigError(f"batch size {batch_size}: must be >= 1")
        self.check_conditions(energy_GeV, theta_rad, allow_extrapolation)
        noise = _NoiseStream(int(seed), self.bundle.latent_dim)
        for start in range(0, energy_GeV.shape[0], batch_size):
            stop = min(start + batch_size, energy_GeV.shape[0])
            yield self._generate(noise.take(first + start, first + stop), energy_GeV[start:stop],
                                 theta_rad[start:stop], precision)

    def sample_rows(self, energy_GeV: np.ndarray, theta_rad: np.ndarray, rows: np.ndarray, seed: int,
                    batch_size: int = 128, precision: str = "bf16") -> np.ndarray:
        """Showers number ``rows`` of a run with ``seed`` (shower ``rows[i]`` at ``energy_GeV[i]``, ``theta_rad[i]``):
        each gets the noise it would get in ``sample(..., seed=seed)`` at that position, so that a caller can make
        any subset of a run, in any batches. Conditions must lie inside the training range."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.shape != np.shape(energy_GeV) or rows.shape != np.shape(theta_rad):
            raise ConfigError(f"rows ({rows.size}), energies ({np.size(energy_GeV)}) and angles "
                              f"({np.size(theta_rad)}) differ in number")
        if precision not in PRECISIONS:
            raise ConfigError(f"precision '{precision}': expected one of {', '.join(PRECISIONS)}")
        if batch_size < 1:
            raise ConfigError(f"batch size {batch_size}: must be >= 1")
        out = np.empty((rows.size, *self.cell_shape), dtype=np.float32)
        if rows.size == 0:
            return out
        self.check_conditions(np.asarray(energy_GeV, np.float64), np.asarray(theta_rad, np.float64))
        noise = _NoiseStream(int(seed), self.bundle.latent_dim)
        for start in range(0, rows.size, batch_size):
            stop = min(start + batch_size, rows.size)
            out[start:stop] = self._generate(noise.rows(rows[start:stop]), energy_GeV[start:stop],
                                             theta_rad[start:stop], precision)
        return out

    @torch.inference_mode()
    def _generate(self, noise: torch.Tensor, energy_GeV: np.ndarray, theta_rad: np.ndarray,
                  precision: str) -> np.ndarray:
        energy = torch.as_tensor(energy_GeV, dtype=torch.float32, device=self.device)
        kwargs = {}
        if not self.energy_only:
            kwargs["theta"] = torch.as_tensor(theta_rad, dtype=torch.float32, device=self.device)
        out = self.inference_generator(precision)(noise.to(self.device), energy, **kwargs)
        cells = out.float().clamp_min(0.0)[:, 0]  # a new tensor: the inverse transform can work in place
        cells.div_(self.bundle.transform_scale).pow_(1.0 / self.bundle.transform_power)
        if self.threshold_GeV > 0:  # the sea of tiny positive cells a ReLU leaves is below any readout threshold
            cells[cells < self.threshold_GeV] = 0.0
        return cells.cpu().numpy()


def generate_like(reference: str | Path, model: str | Path, out: str | Path, seed: int = 1,
                  precision: str = "bf16", binning: Any = None) -> Path:
    """Generate one shower per shower of the ``reference`` file, at its energies (and angles for angle models),
    into ``out`` (atomic write); used by ``fastshower validate --model``. ``binning``: that of a CaloChallenge
    reference."""
    from fastshower.data import ShowerData, read_showers, write_showers

    ref = read_showers(reference, binning=binning)
    sampler = load(model)
    theta = np.zeros_like(ref.theta_rad) if sampler.energy_only else ref.theta_rad
    showers = sampler.sample(ref.energy_GeV, np.degrees(theta), seed=seed, precision=precision)
    # the MC physics of the model's training data (as recorded; {}: made before it was), so that a comparison with
    # the reference can say when the two differ
    attrs = {"geometry": sampler.bundle.geometry or ref.attrs.get("geometry", {}), "generator": str(model),
             "seed": int(seed), "trained_on_physics": dict(sampler.bundle.physics)}
    return write_showers(out, ShowerData(showers, ref.energy_GeV, ref.theta_rad, ref.phi_rad, ref.pdg, attrs=attrs),
                         overwrite=True)


class _NoiseStream:
    """Standard-normal noise where shower ``i``'s vector depends only on ``(seed, i)``."""

    def __init__(self, seed: int, latent_dim: int) -> None:
        self.seed, self.latent_dim = seed, latent_dim
        self._block_index, self._block = -1, torch.empty(0)

    def _load(self, block: int) -> torch.Tensor:
        if block != self._block_index:
            state = np.random.SeedSequence([self.seed, block]).generate_state(1, dtype=np.uint64)[0]
            gen = torch.Generator().manual_seed(int(state) & 0x7FFF_FFFF_FFFF_FFFF)
            self._block_index, self._block = block, torch.randn(NOISE_BLOCK, self.latent_dim, generator=gen)
        return self._block

    def rows(self, indices: np.ndarray) -> torch.Tensor:
        """The noise vectors of showers ``indices`` (any order)."""
        if len(indices) == 0:
            return torch.empty(0, self.latent_dim)
        return torch.cat([self.take(int(i), int(i) + 1) for i in indices], dim=0)

    def take(self, start: int, stop: int) -> torch.Tensor:
        parts = []
        index = start
        while index < stop:
            block, offset = divmod(index, NOISE_BLOCK)
            count = min(stop - index, NOISE_BLOCK - offset)
            parts.append(self._load(block)[offset:offset + count])
            index += count
        return torch.cat(parts, dim=0)


def _conditions(energy: float | np.ndarray, theta: float | np.ndarray | None,
                n: int | None) -> tuple[np.ndarray, np.ndarray]:
    energy_GeV = np.atleast_1d(np.asarray(energy, dtype=np.float64))
    theta_rad = np.atleast_1d(np.asarray(0.0 if theta is None else theta, dtype=np.float64))
    size = n if n is not None else max(energy_GeV.size, theta_rad.size)
    if size < 1:
        raise ConfigError(f"n {size}: must be >= 1")
    try:
        return np.broadcast_to(energy_GeV, (size,)).copy(), np.broadcast_to(theta_rad, (size,)).copy()
    except ValueError:
        raise ConfigError(f"energy ({energy_GeV.size}) and theta ({theta_rad.size}) do not match n={size}") from None
