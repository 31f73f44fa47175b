"""3DGAN (Khattak et al., Eur. Phys. J. C 82 (2022) 386; CERN openlab 3DGAN), in PyTorch.

Two registered models:

* ``3dgan``: the original energy-conditioned 3DGAN for 25x25x25 grids. The latent noise is
  multiplied element-wise by ``E / 100 GeV``.
* ``3dgan-angle``: the same convolutional structure, conditioned by concatenating
  ``[E / 100 GeV, theta (rad), particle one-hot (if n_particles > 1), noise]`` into the first
  Dense layer; its discriminator has an extra learned ``theta`` regression head.

Generator layer list (Keras original, channels-last; here channels-first ``(B, C, X, Y, Z)``)::

    Dense(latent -> 8*sx*sy*sz) -> reshape (sx, sy, sz, 8) -> channels first
    Conv3D 64 (6,6,8) 'same' -> LeakyReLU -> BatchNorm -> UpSampling (2,2,2)
    ZeroPad (2,2,0) -> Conv3D 6 (6,5,8) valid -> LeakyReLU -> BatchNorm -> UpSampling (2,2,3)
    ZeroPad (1,0,3) -> Conv3D 6 (3,3,8) valid -> LeakyReLU
    Conv3D 1 (2,2,2) valid, no bias -> ReLU -> centre crop to the target grid

Keras 'same' padding of an even kernel ``k`` pads ``(k-1)//2`` before and ``k//2`` after.
Following that list, a start size ``s`` gives a "natural" output of ``4s-3`` along X and Y
and ``6s-23`` along Z. **Shape rule**: for a target ``(X, Y, Z)`` the start size is the
smallest ``s`` whose natural output is at least the target (``sx = ceil((X+3)/4)``,
``sy = ceil((Y+3)/4)``, ``sz = ceil((Z+23)/6)``), and the natural output is centre-cropped
(the odd cell, if any, comes off the end). For 25x25x25 the start is (7, 7, 8), the natural
output is exactly 25^3 and no crop happens: the original is reproduced verbatim.

**Depth margin** (option ``depth_margin``, default 0: the original). The last upsampling (x3 in z) is followed by
3 zero layers of padding at each end, and the last two convolutions (8 and 2 deep) make the last three output
layers (22-24 of 25, and 0-2 at the front) see them: the shower's tail meets a hard wall of zeros that no other
layer sees. ``depth_margin = m`` starts ``m`` cells deeper, so the natural output is ``6m`` layers longer, and the
centre crop cuts the layers that see that padding away (``m = 1``: 31 layers, 3 cut at each end, at ~24 % more
computation in the trunk).

Discriminator (original)::

    Conv3D 32 (5,5,5) 'same' -> LeakyReLU -> Dropout
    [ZeroPad p -> Conv3D 8 (5,5,5) valid -> LeakyReLU -> BatchNorm -> Dropout] for p = 2, 2, 1
    AvgPool3D 2 -> Flatten -> heads

(here each zero padding is the padding of its convolution, and the dropout and first convolution are the
CPU-friendly drop-in versions of ``fastshower.models.layers``: same parameters, same mathematics).

Heads: ``logit`` (Linear -> 1, no sigmoid: use BCE-with-logits), ``energy`` (Linear -> 1,
primary energy in units of 100 GeV), ``ecal_sum`` (analytic sum of the input cells, same units
as the input) and, for the angle variant, ``theta`` (Linear -> 1, rad).

BatchNorm uses the Keras defaults (momentum 0.99 -> torch momentum 0.01, eps 1e-3); weights
use PyTorch's default initialisation. Data transforms (e.g. a power on the cell energies)
are the training code's job, not the model's.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from fastshower.errors import ConfigError
from fastshower.models.layers import BatchNorm3d, Conv3d, Dropout, use_cpu_bf16_paths
from fastshower.models.polyphase import upsampled_conv3d
from fastshower.models.registry import GanPair, register

MIN_CELLS = 8
MAX_CELLS = 128
_BN = {"eps": 1e-3, "momentum": 0.01}  # Keras BatchNormalization defaults


def _pad(x: tuple[int, int], y: tuple[int, int], z: tuple[int, int]) -> nn.ConstantPad3d:
    """Zero padding of (B, C, X, Y, Z) given (before, after) per spatial axis."""
    return nn.ConstantPad3d((z[0], z[1], y[0], y[1], x[0], x[1]), 0.0)


def _same(kernel: tuple[int, int, int]) -> nn.ConstantPad3d:
    """Keras/TensorFlow 'same' padding (asymmetric for even kernels)."""
    return _pad(*(((k - 1) // 2, k // 2) for k in kernel))


def _check_shape(model: str, cell_shape: tuple[int, ...]) -> tuple[int, int, int]:
    ok = len(cell_shape) == 3 and all(
        isinstance(n, int) and not isinstance(n, bool) and MIN_CELLS <= n <= MAX_CELLS for n in cell_shape
    )
    if not ok:
        raise ConfigError(
            f"model '{model}': cell shape {tuple(cell_shape)} not supported "
            f"(need 3 integer dimensions, each between {MIN_CELLS} and {MAX_CELLS})"
        )
    return (int(cell_shape[0]), int(cell_shape[1]), int(cell_shape[2]))


def generator_geometry(cell_shape: tuple[int, int, int], depth_margin: int = 0) -> dict[str, tuple[int, int, int]]:
    """Start size, natural output size and crop offsets of the generator for ``cell_shape`` (``depth_margin``: extra
    start cells along z, see the module docstring)."""
    X, Y, Z = cell_shape
    start = (math.ceil((X + 3) / 4), math.ceil((Y + 3) / 4), math.ceil((Z + 23) / 6) + int(depth_margin))
    natural = (4 * start[0] - 3, 4 * start[1] - 3, 6 * start[2] - 23)
    offset = tuple((n - t) // 2 for n, t in zip(natural, cell_shape, strict=True))
    return {"start": start, "natural": natural, "offset": offset}  # type: ignore[dict-item]


def _as_column(value: Any, n: int, like: torch.Tensor, what: str) -> torch.Tensor:
    """A per-sample scalar (float, (B,) or (B, 1)) as a (n, 1) tensor on ``like``'s device."""
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device).reshape(-1, 1)
    if t.shape[0] == 1:
        t = t.expand(n, 1)
    if t.shape[0] != n:
        raise ValueError(f"{what}: {t.shape[0]} values for a batch of {n}")
    return t


class _GeneratorBase(nn.Module):
    """Dense stem + the 3DGAN convolutional trunk; subclasses build the Dense input."""

    def __init__(self, cell_shape: tuple[int, int, int], latent_dim: int, dense_in: int, leaky_slope: float,
                 depth_margin: int = 0):
        super().__init__()
        self.cell_shape = tuple(cell_shape)
        self.latent_dim = latent_dim
        geo = generator_geometry(self.cell_shape, depth_margin)
        self.start_shape: tuple[int, int, int] = geo["start"]
        self.natural_shape: tuple[int, int, int] = geo["natural"]
        self._offset = geo["offset"]
        sx, sy, sz = self.start_shape
        self.dense = nn.Linear(dense_in, 8 * sx * sy * sz)
        self.trunk = nn.Sequential(
            _same((6, 6, 8)),
            Conv3d(8, 64, (6, 6, 8)),
            nn.LeakyReLU(leaky_slope),
            BatchNorm3d(64, **_BN),
            nn.Upsample(scale_factor=(2, 2, 2), mode="nearest"),
            _pad((2, 2), (2, 2), (0, 0)),
            Conv3d(64, 6, (6, 5, 8)),
            nn.LeakyReLU(leaky_slope),
            BatchNorm3d(6, **_BN),
            nn.Upsample(scale_factor=(2, 2, 3), mode="nearest"),
            _pad((1, 1), (0, 0), (3, 3)),
            Conv3d(6, 6, (3, 3, 8)),
            nn.LeakyReLU(leaky_slope),
            Conv3d(6, 1, (2, 2, 2), bias=False),
            nn.ReLU(),
        )

    def _decode(self, h: torch.Tensor, rectify: bool = True) -> torch.Tensor:
        """The Dense stem and the trunk on the Dense input ``h``; ``rectify=False`` leaves out the final ReLU (the
        cells' pre-activations, which a likelihood objective needs: the ReLU passes no gradient below zero)."""
        sx, sy, sz = self.start_shape
        # Keras reshapes the Dense output channels-last (sx, sy, sz, 8); keep that ordering.
        x = self.dense(h).view(-1, sx, sy, sz, 8).permute(0, 4, 1, 2, 3)
        modules = self.trunk if rectify else self.trunk[:-1]  # the trunk ends in its ReLU
        x = self._run_trunk(modules, x) if use_cpu_bf16_paths(x) else modules(x)
        (ox, oy, oz), (X, Y, Z) = self._offset, self.cell_shape
        return x[:, :, ox : ox + X, oy : oy + Y, oz : oz + Z]

    @staticmethod
    def _run_trunk(trunk: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        """The trunk with each upsampling + zero padding + convolution done as one polyphase convolution
        (:func:`~fastshower.models.polyphase.upsampled_conv3d`): the same function and the same parameters, ~6x
        faster in training under CPU bf16 autocast (no upsampled tensor, ~1/4 of the multiply-adds)."""
        modules = list(trunk)
        i = 0
        while i < len(modules):
            padding = getattr(modules[i + 1], "padding", None) if i + 1 < len(modules) else None
            if isinstance(modules[i], nn.Upsample) and padding is not None and padding[0::2] == padding[1::2]:
                scale, conv = modules[i].scale_factor, modules[i + 2]
                x = upsampled_conv3d(x, conv.weight, conv.bias, tuple(int(f) for f in scale),
                                     (padding[4], padding[2], padding[0]))  # symmetric: (x, y, z) before
                i += 3
            else:
                x = modules[i](x)
                i += 1
        return x

    def forward(self, noise: torch.Tensor, energy_GeV: float | torch.Tensor, theta: Any = None,
                particle: torch.Tensor | None = None) -> torch.Tensor:
        """Showers ``(B, 1, X, Y, Z)`` for noise ``(B, latent_dim)`` and the conditions (see ``dense_input``)."""
        h, state = self.prepare(noise, energy_GeV, theta, particle)
        return self.finish(self._decode(h), state)

    def prepare(self, noise: torch.Tensor, energy_GeV: float | torch.Tensor, theta: Any = None,
                particle: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
        """The Dense layer's input and what :meth:`finish` needs of this call (nothing here: the 3DGAN's
        output is the trunk's). Every path that runs the trunk itself (the fast inference rewrite) calls these two."""
        return self.dense_input(noise, energy_GeV, theta, particle), None

    def use_transform(self, power: float, scale: float) -> None:
        """Tells the generator the cell transform ``y = scale * E_cell**power`` (E in GeV) its output is in, for a
        generator whose output depends on it (the ``3dvae``'s layer energies); the 3DGAN's does not. Called by the
        trainer and the bundle loader, which know the transform; not part of the saved weights."""

    def finish(self, cells: torch.Tensor, state: Any) -> torch.Tensor:
        """The showers from the trunk's output ``cells`` ``(B, 1, X, Y, Z)`` (unchanged here; a subclass may
        post-process, e.g. the ``3dvae``'s per-layer deposits)."""
        return cells

    def dense_input(self, noise: torch.Tensor, energy_GeV: float | torch.Tensor, theta: Any = None,
                    particle: torch.Tensor | None = None) -> torch.Tensor:
        """The Dense layer's input for these conditions (each subclass builds its own)."""
        raise NotImplementedError

    def _check_noise(self, noise: torch.Tensor) -> None:
        if noise.dim() != 2 or noise.shape[1] != self.latent_dim:
            raise ValueError(f"noise: shape {tuple(noise.shape)} but (B, {self.latent_dim}) is required")

    def sample(
        self,
        n: int,
        energy_GeV: float | torch.Tensor,
        generator: torch.Generator | None = None,
        **conditions: Any,
    ) -> torch.Tensor:
        """Draw ``n`` showers with noise ~ N(0, 1); ``conditions`` are passed to ``forward``."""
        p = next(self.parameters())
        device = generator.device if generator is not None else p.device
        noise = torch.randn(n, self.latent_dim, generator=generator, device=device, dtype=p.dtype)
        return self(noise.to(p.device), energy_GeV, **conditions)


class EnergyGenerator(_GeneratorBase):
    """Original 3DGAN generator: ``noise * E/100`` -> shower ``(B, 1, X, Y, Z)`` in GeV."""

    def __init__(self, cell_shape: tuple[int, int, int], latent_dim: int = 200, leaky_slope: float = 0.3,
                 depth_margin: int = 0):
        super().__init__(cell_shape, latent_dim, latent_dim, leaky_slope, depth_margin)

    def dense_input(
        self,
        noise: torch.Tensor,
        energy_GeV: float | torch.Tensor,
        theta: torch.Tensor | None = None,
        particle: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The Dense layer's input ``noise * E/100`` (checks the arguments)."""
        if theta is not None or particle is not None:
            raise ValueError("model '3dgan' is conditioned on energy only: theta and particle must be None")
        self._check_noise(noise)
        e = _as_column(energy_GeV, noise.shape[0], noise, "energy_GeV") / 100.0
        return noise * e


class AngleGenerator(_GeneratorBase):
    """Angle 3DGAN generator: Dense input is ``[E/100, theta, particle one-hot?, noise]``."""

    def __init__(
        self,
        cell_shape: tuple[int, int, int],
        latent_dim: int = 200,
        leaky_slope: float = 0.3,
        n_particles: int = 1,
        depth_margin: int = 0,
    ):
        self.n_particles = n_particles
        extra = 2 + (n_particles if n_particles > 1 else 0)
        super().__init__(cell_shape, latent_dim, latent_dim + extra, leaky_slope, depth_margin)

    def dense_input(
        self,
        noise: torch.Tensor,
        energy_GeV: float | torch.Tensor,
        theta: float | torch.Tensor | None = None,
        particle: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The Dense layer's input ``[E/100, theta, one-hot?, noise]`` (checks the arguments)."""
        self._check_noise(noise)
        n = noise.shape[0]
        if theta is None:
            raise ValueError("model '3dgan-angle': theta (rad) is required")
        parts = [
            _as_column(energy_GeV, n, noise, "energy_GeV") / 100.0,
            _as_column(theta, n, noise, "theta"),
        ]
        if self.n_particles > 1:
            if particle is None or tuple(particle.shape) != (n, self.n_particles):
                got = None if particle is None else tuple(particle.shape)
                raise ValueError(f"particle: one-hot of shape ({n}, {self.n_particles}) required, got {got}")
            parts.append(particle.to(noise))
        parts.append(noise)
        return torch.cat(parts, dim=1)


class Discriminator3D(nn.Module):
    """3DGAN discriminator; ``forward`` returns {"logit", "energy", "ecal_sum"} (+ "theta")."""

    def __init__(
        self,
        cell_shape: tuple[int, int, int],
        leaky_slope: float = 0.3,
        dropout: float = 0.2,
        angle_head: bool = False,
    ):
        super().__init__()
        self.cell_shape = tuple(cell_shape)
        # The zero padding of each block (Keras ZeroPadding3D / 'same') is the padding of its convolution
        # (layers.Conv3d: inside the bf16 kernel, an explicit F.pad otherwise); nn.Identity keeps each layer's
        # index, hence the state_dict keys of existing checkpoints (features.1, .5, .7, ...).
        layers: list[nn.Module] = [
            nn.Identity(),
            Conv3d(1, 32, 5, padding=2),  # 'same'
            nn.LeakyReLU(leaky_slope),
            Dropout(dropout),
        ]
        c_in = 32
        for p in (2, 2, 1):  # zero padding as in the original EcalEnergyGan discriminator
            layers += [
                nn.Identity(),
                Conv3d(c_in, 8, 5, padding=p),
                nn.LeakyReLU(leaky_slope),
                BatchNorm3d(8, **_BN),
                Dropout(dropout),
            ]
            c_in = 8
        layers += [nn.AvgPool3d(2), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        # spatial size: unchanged by the 'same' conv and the two pad-2 blocks, -2 by the pad-1 block
        self.n_features = 8 * math.prod((n - 2) // 2 for n in self.cell_shape)
        self.logit = nn.Linear(self.n_features, 1)
        self.energy = nn.Linear(self.n_features, 1)
        self.theta = nn.Linear(self.n_features, 1) if angle_head else None

    def forward(self, showers: torch.Tensor) -> dict[str, torch.Tensor]:
        if showers.dim() == 4:
            showers = showers.unsqueeze(1)
        if showers.dim() != 5 or showers.shape[1] != 1 or tuple(showers.shape[2:]) != self.cell_shape:
            raise ValueError(f"showers: shape {tuple(showers.shape)} but (B, 1, {self.cell_shape}) is required")
        h = self.features(showers)
        out = {
            "logit": self.logit(h).squeeze(1),
            "energy": self.energy(h).squeeze(1),
            "ecal_sum": showers.sum(dim=(1, 2, 3, 4)),
        }
        if self.theta is not None:
            out["theta"] = self.theta(h).squeeze(1)
        return out


def _common_options(model: str, latent_dim: Any, leaky_slope: Any, dropout: Any, depth_margin: Any = 0
                    ) -> dict[str, Any]:
    if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
        raise ConfigError(f"model '{model}': latent_dim must be a positive integer, got {latent_dim!r}")
    if not isinstance(leaky_slope, int | float) or not 0.0 <= leaky_slope < 1.0:
        raise ConfigError(f"model '{model}': leaky_slope must be in [0, 1), got {leaky_slope!r}")
    if not isinstance(dropout, int | float) or not 0.0 <= dropout < 1.0:
        raise ConfigError(f"model '{model}': dropout must be in [0, 1), got {dropout!r}")
    if isinstance(depth_margin, bool) or not isinstance(depth_margin, int) or not 0 <= depth_margin <= 4:
        raise ConfigError(f"model '{model}': depth_margin must be an integer in [0, 4], got {depth_margin!r}")
    out = {"latent_dim": int(latent_dim), "leaky_slope": float(leaky_slope), "dropout": float(dropout)}
    if depth_margin:  # absent when 0: the configuration of the original (and of bundles made before the option)
        out["depth_margin"] = int(depth_margin)
    return out


def _reject_unknown(model: str, options: dict[str, Any], known: list[str]) -> None:
    if options:
        bad = ", ".join(sorted(options))
        raise ConfigError(f"model '{model}': unknown option(s) {bad} (known: {', '.join(known)})")


@register("3dgan")
def build_3dgan(
    cell_shape: tuple[int, int, int],
    latent_dim: int = 200,
    leaky_slope: float = 0.3,
    dropout: float = 0.2,
    depth_margin: int = 0,
    **unknown: Any,
) -> GanPair:
    _reject_unknown("3dgan", unknown, ["latent_dim", "leaky_slope", "dropout", "depth_margin"])
    shape = _check_shape("3dgan", cell_shape)
    cfg = _common_options("3dgan", latent_dim, leaky_slope, dropout, depth_margin)
    gen = EnergyGenerator(shape, cfg["latent_dim"], cfg["leaky_slope"], cfg.get("depth_margin", 0))
    disc = Discriminator3D(shape, cfg["leaky_slope"], cfg["dropout"])
    return GanPair(gen, disc, cfg["latent_dim"], cfg, cell_shape=shape)


@register("3dgan-angle")
def build_3dgan_angle(
    cell_shape: tuple[int, int, int],
    latent_dim: int = 200,
    leaky_slope: float = 0.3,
    dropout: float = 0.2,
    n_particles: int = 1,
    depth_margin: int = 0,
    **unknown: Any,
) -> GanPair:
    _reject_unknown("3dgan-angle", unknown, ["latent_dim", "leaky_slope", "dropout", "n_particles", "depth_margin"])
    shape = _check_shape("3dgan-angle", cell_shape)
    cfg = _common_options("3dgan-angle", latent_dim, leaky_slope, dropout, depth_margin)
    if isinstance(n_particles, bool) or not isinstance(n_particles, int) or n_particles < 1:
        raise ConfigError(f"model '3dgan-angle': n_particles must be a positive integer, got {n_particles!r}")
    cfg["n_particles"] = n_particles
    gen = AngleGenerator(shape, cfg["latent_dim"], cfg["leaky_slope"], n_particles, cfg.get("depth_margin", 0))
    disc = Discriminator3D(shape, cfg["leaky_slope"], cfg["dropout"], angle_head=True)
    return GanPair(gen, disc, cfg["latent_dim"], cfg, cell_shape=shape)
