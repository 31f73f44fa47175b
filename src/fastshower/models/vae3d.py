"""A conditional variational autoencoder whose decoder is the 3DGAN generator (registry name ``3dvae``).

Why (docs/models/choosing.md): a GAN's speed is its generator's cost, one feed-forward pass per shower. A VAE
samples with the same single pass, its decoder, so with the 3DGAN generator as decoder it is as fast as the GAN by
construction (the same inference rewrite, ONNX export and benchmarks apply unchanged), while its training is a
likelihood bound instead of a two-player game: no mode collapse, a loss that falls monotonically, and every shower of
the training set reconstructed rather than only imitated in distribution.

- Encoder ``q(z | x, E)``: three strided 3D convolutions over the (transformed) shower, then a dense layer that
  also sees ln(E / 100 GeV), giving the mean and log-variance of a diagonal Gaussian over ``latent_dim``.
- Decoder ``p(x | z, E)``: :class:`~fastshower.models.gan3d.EnergyGenerator`, whose dense input is ``z * E/100``
  (the GAN's energy conditioning); at sampling time ``z ~ N(0, 1)``, the prior.
- The objective (``fastshower.train.objectives.VaeObjective``): the summed squared error of the cells in the
  transformed space (a Gaussian likelihood of fixed width), plus ``loss.kl`` times the KL divergence to the prior,
  plus ``loss.ecal`` times the percentage error of the shower's summed (transformed) energy, as the GAN's.

The pair's ``discriminator`` slot holds the encoder, so that checkpoints, DDP and resume treat both families alike.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from fastshower.errors import ConfigError
from fastshower.models.gan3d import EnergyGenerator, _check_shape, _common_options, _reject_unknown
from fastshower.models.registry import GanPair, register


class Encoder3D(nn.Module):
    """``q(z | x, E)``: showers ``(B, 1, X, Y, Z)`` and energies (GeV) -> ``(mu, log_var)``, each ``(B, latent)``."""

    def __init__(self, cell_shape: tuple[int, int, int], latent_dim: int, leaky_slope: float = 0.3,
                 width: int = 16) -> None:
        super().__init__()
        self.cell_shape, self.latent_dim = tuple(cell_shape), latent_dim
        layers: list[nn.Module] = []
        c_in, size = 1, list(self.cell_shape)
        for c_out in (width, 2 * width, 2 * width):
            layers += [nn.Conv3d(c_in, c_out, 3, stride=2, padding=1), nn.LeakyReLU(leaky_slope)]
            c_in, size = c_out, [(n + 1) // 2 for n in size]
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.n_features = c_in * math.prod(size)
        self.head = nn.Linear(self.n_features + 1, 2 * latent_dim)

    def forward(self, showers: torch.Tensor, energy_GeV: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if showers.dim() != 5 or showers.shape[1] != 1 or tuple(showers.shape[2:]) != self.cell_shape:
            raise ValueError(f"showers: shape {tuple(showers.shape)} but (B, 1, {self.cell_shape}) is required")
        h = self.features(showers)
        log_e = torch.log(energy_GeV.to(h.dtype).reshape(-1, 1) / 100.0)
        mu, log_var = self.head(torch.cat([h, log_e], dim=1)).chunk(2, dim=1)
        return mu, log_var.clamp(-12.0, 8.0)  # keeps exp(log_var) finite in bf16 early in training


@register("3dvae")
def build_3dvae(
    cell_shape: tuple[int, int, int],
    latent_dim: int = 200,
    leaky_slope: float = 0.3,
    encoder_width: int = 16,
    depth_margin: int = 0,
    **unknown: Any,
) -> GanPair:
    """The conditional VAE (energy only): decoder = the 3DGAN generator, encoder = :class:`Encoder3D`."""
    _reject_unknown("3dvae", unknown, ["latent_dim", "leaky_slope", "encoder_width", "depth_margin"])
    shape = _check_shape("3dvae", cell_shape)
    cfg = _common_options("3dvae", latent_dim, leaky_slope, 0.0, depth_margin)
    del cfg["dropout"]
    if isinstance(encoder_width, bool) or not isinstance(encoder_width, int) or encoder_width < 1:
        raise ConfigError(f"model '3dvae': encoder_width must be a positive integer, got {encoder_width!r}")
    cfg["encoder_width"] = encoder_width
    decoder = EnergyGenerator(shape, cfg["latent_dim"], cfg["leaky_slope"], cfg.get("depth_margin", 0))
    encoder = Encoder3D(shape, cfg["latent_dim"], cfg["leaky_slope"], encoder_width)
    return GanPair(decoder, encoder, cfg["latent_dim"], cfg, cell_shape=shape, objective="vae")
