"""A conditional variational autoencoder whose decoder is the 3DGAN generator (registry name ``3dvae``).

Why (docs/models/choosing.md): a GAN's speed is its generator's cost, one feed-forward pass per shower. A VAE
samples with the same single pass, its decoder, so with the 3DGAN generator as decoder it is as fast as the GAN by
construction (the same inference rewrite, ONNX export and benchmarks apply unchanged), while its training is a
likelihood bound instead of a two-player game: no mode collapse, a loss that falls monotonically, and every shower of
the training set reconstructed rather than only imitated in distribution.

- Encoder ``q(z | x, E)``: three strided 3D convolutions over the (transformed) shower, then a dense layer that
  also sees ln(E / 100 GeV), giving the mean and log-variance of a diagonal Gaussian over ``latent_dim``.
- Decoder ``p(x | z, E)``: :class:`VaeDecoder`, the 3DGAN's :class:`~fastshower.models.gan3d.EnergyGenerator`
  whose dense input is ``z * E/100`` (the GAN's energy conditioning).
- Prior ``p(z | E)``: with ``prior_layers`` > 0 (the default) a conditional normalising flow
  (:class:`~fastshower.models.flows.ConditionalFlow`) maps Gaussian noise to ``z``, learned jointly with the VAE;
  with 0 it is N(0, 1). The decoder owns the flow, so the generator's call ``(noise, E)`` -- sampling, the fast
  inference rewrite, ONNX export, benchmarks -- is the 3DGAN's, with the flow in front of the dense layer.
- The objective (``fastshower.train.objectives.VaeObjective``): the censored summed squared error of the cells in
  the transformed space (a Gaussian likelihood of fixed width for a cell with a deposit, a hinge on the decoder's
  pre-activation for an empty one, so that a cell switched off by the final ReLU still learns), plus ``loss.kl``
  times the KL divergence to the prior, plus ``loss.ecal`` times the percentage error of the shower's summed
  (transformed) energy, as the GAN's, plus ``loss.cells`` times the cell-spectrum term on the reconstructions.

The pair's ``discriminator`` slot holds the encoder, so that checkpoints, DDP and resume treat both families alike.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from fastshower.errors import ConfigError
from fastshower.models.flows import ConditionalFlow
from fastshower.models.gan3d import EnergyGenerator, _as_column, _check_shape, _common_options, _reject_unknown
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


class VaeDecoder(EnergyGenerator):
    """The 3DGAN generator as a VAE decoder, with the prior's flow in front: ``forward(noise, E)`` maps the
    Gaussian ``noise`` to the latent ``z = g(noise; E)`` and decodes it; ``forward(z, E, encoded=True)`` decodes a
    given ``z`` (the training path, from the encoder); :meth:`prior_log_prob` is ``ln p(z | E)``."""

    def __init__(self, cell_shape: tuple[int, int, int], latent_dim: int = 200, leaky_slope: float = 0.3,
                 depth_margin: int = 0, prior_layers: int = 6, prior_hidden: int = 256) -> None:
        super().__init__(cell_shape, latent_dim, leaky_slope, depth_margin)
        self.prior = ConditionalFlow(latent_dim, 1, prior_layers, prior_hidden) if prior_layers else None

    @staticmethod
    def flow_condition(energy_GeV: torch.Tensor) -> torch.Tensor:
        """The flow's condition: ln(E / 100 GeV), ``(B, 1)``."""
        return torch.log(energy_GeV / 100.0)

    def latent(self, noise: torch.Tensor, energy_GeV: float | torch.Tensor) -> torch.Tensor:
        """``z = g(noise; E)`` (the noise itself without a flow)."""
        self._check_noise(noise)
        if self.prior is None:
            return noise
        energy = _as_column(energy_GeV, noise.shape[0], noise, "energy_GeV")
        with torch.autocast(noise.device.type, enabled=False):  # the flow's exp and Jacobian in fp32
            return self.prior(noise.float(), self.flow_condition(energy.float())).to(noise.dtype)

    def prior_log_prob(self, z: torch.Tensor, energy_GeV: torch.Tensor) -> torch.Tensor:
        """``ln p(z | E)`` per row (nats), fp32."""
        z = z.float()
        if self.prior is None:
            return -0.5 * (z.square().sum(dim=1) + z.shape[1] * math.log(2.0 * math.pi))
        energy = _as_column(energy_GeV, z.shape[0], z, "energy_GeV")
        with torch.autocast(z.device.type, enabled=False):
            return self.prior.log_prob(z, self.flow_condition(energy))

    def dense_input(self, noise: torch.Tensor, energy_GeV: float | torch.Tensor, theta: torch.Tensor | None = None,
                    particle: torch.Tensor | None = None) -> torch.Tensor:
        """The Dense layer's input ``g(noise; E) * E/100`` (checks the arguments)."""
        return super().dense_input(self.latent(noise, energy_GeV), energy_GeV, theta, particle)

    def forward(self, noise: torch.Tensor, energy_GeV: float | torch.Tensor, theta: Any = None,
                particle: torch.Tensor | None = None, encoded: bool = False) -> Any:
        """Showers ``(B, 1, X, Y, Z)`` for Gaussian ``noise`` ``(B, latent_dim)``; with ``encoded=True`` (the training
        path) ``noise`` holds latent points ``z`` from the encoder, and the result is ``(pre-activations,
        ln p(z | E))``: the cells before the final ReLU (the showers are their positive part), so that the
        likelihood sees a gradient in cells the decoder has switched off; one call through both networks, so that
        DDP sees every parameter used."""
        if not encoded:
            return super().forward(noise, energy_GeV, theta, particle)
        pre = self._decode(EnergyGenerator.dense_input(self, noise, energy_GeV, theta, particle), rectify=False)
        return pre, self.prior_log_prob(noise, energy_GeV)


@register("3dvae")
def build_3dvae(
    cell_shape: tuple[int, int, int],
    latent_dim: int = 200,
    leaky_slope: float = 0.3,
    encoder_width: int = 16,
    depth_margin: int = 0,
    prior_layers: int = 6,
    prior_hidden: int = 256,
    **unknown: Any,
) -> GanPair:
    """The conditional VAE (energy only): decoder = :class:`VaeDecoder` (the 3DGAN generator behind a flow prior of
    ``prior_layers`` couplings of width ``prior_hidden``; 0 layers: N(0, 1)), encoder = :class:`Encoder3D`."""
    _reject_unknown("3dvae", unknown, ["latent_dim", "leaky_slope", "encoder_width", "depth_margin", "prior_layers",
                                       "prior_hidden"])
    shape = _check_shape("3dvae", cell_shape)
    cfg = _common_options("3dvae", latent_dim, leaky_slope, 0.0, depth_margin)
    del cfg["dropout"]
    if isinstance(encoder_width, bool) or not isinstance(encoder_width, int) or encoder_width < 1:
        raise ConfigError(f"model '3dvae': encoder_width must be a positive integer, got {encoder_width!r}")
    cfg["encoder_width"] = encoder_width
    for name, value, low in (("prior_layers", prior_layers, 0), ("prior_hidden", prior_hidden, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"model '3dvae': {name} must be an integer >= {low}, got {value!r}")
        cfg[name] = value
    if cfg["latent_dim"] < 2 and prior_layers:
        raise ConfigError("model '3dvae': a flow prior needs latent_dim >= 2 (or prior_layers: 0)")
    decoder = VaeDecoder(shape, cfg["latent_dim"], cfg["leaky_slope"], cfg.get("depth_margin", 0), prior_layers,
                         prior_hidden)
    encoder = Encoder3D(shape, cfg["latent_dim"], cfg["leaky_slope"], encoder_width)
    return GanPair(decoder, encoder, cfg["latent_dim"], cfg, cell_shape=shape, objective="vae")
