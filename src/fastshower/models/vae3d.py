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
from fastshower.models.flows import ConditionalFlow, SinhArcsinhFlow, standard_normal_log_prob
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
    given ``z`` (the training path, from the encoder); :meth:`prior_log_prob` is ``ln p(z | E)``.

    With ``layer_deposits`` (CaloFlow's split of a shower into its layer energies and their shapes, Krause and
    Shih, arXiv:2106.05285) two more flows, ``total_flow`` and ``deposit_flow``, draw the shower's energy in each of
    its ``Z`` layers, ``p(v | E)``, with ``v`` = :meth:`layer_code` of the layer energies ``d_l`` (GeV, each
    layer's sum of cell energies): the log of the total and the logits of the layers' shares. The noise then has
    ``latent_dim + Z`` numbers (``self.latent_dim``, what every caller draws: the latent's, then the deposits'); a
    generated shower is decoded from ``z`` and each of its layers rescaled to the drawn energy, so that the layer
    energies -- response, resolution, longitudinal profile -- are the layer flows', fitted by maximum likelihood to
    the data's, rather than the decoder's, whose Gaussian likelihood blurs them. They are independent of the
    latent prior: one
    flow over the joint ``(z, v)`` (tried first) learned the density but drew deposits far from the data's
    (docs/models/choosing.md); the deposits alone are learned in minutes.

    The layer energies are in GeV, not in the transformed units the decoder works in (``y = s * E**p``): a layer's
    sum of transformed cells is not its energy (it depends on how the energy is shared among the cells), and a
    flow of transformed sums widened the generated resolution by 20-45 % (docs/models/choosing.md). The decoder
    learns the transform from :meth:`use_transform`.

    The total is drawn first, by a one-dimensional flow of its own, ``total_flow`` (:class:`SinhArcsinhFlow`:
    location, width, skewness and tail weight as functions of E), and the shares after it by ``deposit_flow``,
    conditioned on E and on the total's Gaussian noise ``u_0`` (how far the shower is above or below its typical
    response, in standard deviations): CaloFlow's order. In one 25-dimensional coupling flow the total depended on
    the 24 shares, and one shower in 5,000 at 100 GeV came out with 17 times the median deposit."""

    #: the dequantisation width of the layer energies (GeV): 10 keV, a fifteenth of a minimum-ionising particle's
    #: most probable ~150 keV in the CLIC ECAL's 0.5 mm of silicon (PDG, Passage of particles through matter). A
    #: layer energy ``d`` enters the flow as ``ln(d + LAYER_FLOOR * u)``, ``u ~ U(0, 1)``, so that empty layers (5 %
    #: of the last one at 10 GeV) are no spike a flow could collapse on
    LAYER_FLOOR = 1.0e-5

    def __init__(self, cell_shape: tuple[int, int, int], latent_dim: int = 200, leaky_slope: float = 0.3,
                 depth_margin: int = 0, prior_layers: int = 6, prior_hidden: int = 256,
                 layer_deposits: bool = False) -> None:
        super().__init__(cell_shape, latent_dim, leaky_slope, depth_margin)
        self.z_dim = latent_dim
        self.n_layers = self.cell_shape[2] if layer_deposits else 0
        self.latent_dim = latent_dim + self.n_layers  # the noise every caller draws
        self.prior = ConditionalFlow(latent_dim, 1, prior_layers, prior_hidden) if prior_layers else None
        self.total_flow = SinhArcsinhFlow(1) if self.n_layers else None
        self.deposit_flow = (ConditionalFlow(self.n_layers - 1, 2, prior_layers, prior_hidden, permutation_seed=1)
                             if self.n_layers else None)
        # (power, scale) of the cell transform, set by use_transform: not saved with the weights, whose owner (the
        # trainer's config, the bundle) holds the transform once
        self.register_buffer("cell_transform", torch.tensor([1.0, 1.0]), persistent=False)

    def use_transform(self, power: float, scale: float) -> None:
        """The cell transform ``y = scale * E**power`` of the decoder's cells, so that :meth:`layer_energies_GeV`
        and :meth:`finish` work in GeV (``layer_deposits`` only; the latent prior does not need it)."""
        self.cell_transform.copy_(torch.tensor([float(power), float(scale)]))

    def layer_energies_GeV(self, cells: torch.Tensor) -> torch.Tensor:
        """Each layer's energy (GeV, fp32) ``(B, Z)`` of transformed ``cells`` ``(B, 1, X, Y, Z)``: the inverse
        transform ``(y / s)**(1 / p)`` of each cell, summed over the layer."""
        power, scale = self.cell_transform[0], self.cell_transform[1]
        return (cells.float().clamp_min(0.0) / scale).pow(1.0 / power).sum(dim=(1, 2, 3))

    @staticmethod
    def flow_condition(energy_GeV: torch.Tensor) -> torch.Tensor:
        """The flow's condition: ln(E / 100 GeV), ``(B, 1)``."""
        return torch.log(energy_GeV / 100.0)

    def latent(self, noise: torch.Tensor, energy_GeV: float | torch.Tensor) -> torch.Tensor:
        """``g(noise; E)``: the latent ``z`` [joined with the layer codes ``v``] (the noise itself without a flow)."""
        self._check_noise(noise)
        if self.prior is None:
            return noise
        energy = _as_column(energy_GeV, noise.shape[0], noise, "energy_GeV")
        with torch.autocast(noise.device.type, enabled=False):  # the flows' exp and Jacobian in fp32
            cond = self.flow_condition(energy.float())
            z = self.prior(noise[:, : self.z_dim].float(), cond)
            if self.deposit_flow is not None:
                z = torch.cat([z, self.draw_layer_code(noise[:, self.z_dim :].float(), cond)], dim=1)
            return z.to(noise.dtype)

    def draw_layer_code(self, u: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The layer code ``v`` ``(B, Z)`` (:meth:`layer_code`) for Gaussian noise ``u`` ``(B, Z)`` and the flows'
        condition ``cond`` ``(B, 1)``: the log total from ``u_0``, then the shares' logits from the rest given
        ``(cond, u_0)``."""
        u_total = u[:, :1]
        shares = self.deposit_flow(u[:, 1:], torch.cat([cond, u_total], dim=1))
        return torch.cat([self.total_flow(u_total, cond), shares], dim=1)

    def layer_code_log_prob(self, code: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """``ln p(v | E)`` per row (nats) of layer codes ``v`` ``(B, Z)``: the total's density times the shares'
        given the total's noise ``u_0``. ``u_0`` enters the shares' flow as a fixed condition (detached), so the
        total's flow is fitted to the totals alone, by maximum likelihood."""
        u_total, log_det = self.total_flow.inverse(code[:, :1], cond)
        log_p_total = standard_normal_log_prob(u_total) + log_det
        return log_p_total + self.deposit_flow.log_prob(code[:, 1:], torch.cat([cond, u_total.detach()], dim=1))

    @staticmethod
    def layer_code(deposits: torch.Tensor) -> torch.Tensor:
        """The flow's coordinates ``v`` ``(B, Z)`` of (dequantised, positive) layer energies ``d`` ``(B, Z)``:
        ``v_0 = ln(sum_l d_l)`` and, layer by layer, the logit of the share of what is left that the layer takes,
        ``v_(l+1) = logit(d_l / sum_(j>=l) d_j) = ln d_l - ln sum_(j>l) d_j`` (CaloFlow's stick-breaking, Krause and
        Shih, arXiv:2106.05285). The total is one coordinate, so its width -- the calorimeter's resolution -- is
        learned directly, not left to the anticorrelations of 25 independent-looking layer energies."""
        d = deposits.double()  # the tail sums of the last layers are small differences of large numbers
        after = torch.flip(torch.cumsum(torch.flip(d, [1]), 1), [1])  # after[:, l] = sum_(j>=l) d_j
        v = torch.cat([torch.log(after[:, :1]), torch.log(d[:, :-1]) - torch.log(after[:, 1:])], dim=1)
        return v.to(deposits.dtype)

    def layer_deposits(self, code: torch.Tensor) -> torch.Tensor:
        """The layer energies ``(B, Z)`` (GeV, >= 0) of flow coordinates ``v``: the inverse of
        :meth:`layer_code` less the dequantisation's mean. The share of layer ``l`` of what is left is
        ``sigmoid(v_(l+1))`` (the last layer takes the rest), in logs so that no product underflows."""
        shares = code[:, 1:]
        log_left = code[:, :1] + torch.cat([torch.zeros_like(code[:, :1]),
                                            torch.cumsum(-nn.functional.softplus(shares), 1)], dim=1)
        log_take = torch.cat([-nn.functional.softplus(-shares), torch.zeros_like(code[:, :1])], dim=1)
        return torch.relu(torch.exp(log_left + log_take) - 0.5 * self.LAYER_FLOOR)

    def prior_log_prob(self, z: torch.Tensor, energy_GeV: torch.Tensor,
                       deposits: torch.Tensor | None = None) -> torch.Tensor:
        """``ln p(z | E)`` per row (nats), fp32; with layer deposits, ``ln p(z | E) + ln p(v | E)`` at ``v`` =
        :meth:`layer_code` of the layer energies ``deposits`` ``(B, Z)`` (GeV, dequantised by the caller), a density
        in ``(z, v)``."""
        z = z.float()
        if self.n_layers and (deposits is None or tuple(deposits.shape) != (z.shape[0], self.n_layers)):
            got = None if deposits is None else tuple(deposits.shape)
            raise ValueError(f"deposits: shape ({z.shape[0]}, {self.n_layers}) required, got {got}")
        if self.prior is None:
            return standard_normal_log_prob(z)
        energy = _as_column(energy_GeV, z.shape[0], z, "energy_GeV")
        with torch.autocast(z.device.type, enabled=False):
            cond = self.flow_condition(energy)
            log_p = self.prior.log_prob(z, cond)
            if self.deposit_flow is not None:
                log_p = log_p + self.layer_code_log_prob(self.layer_code(deposits.float()), cond)
            return log_p

    def _scaled(self, z: torch.Tensor, energy_GeV: float | torch.Tensor, theta: Any,
                particle: torch.Tensor | None) -> torch.Tensor:
        """The Dense layer's input ``z * E/100`` for latent points ``z`` ``(B, z_dim)``."""
        if theta is not None or particle is not None:
            raise ValueError("model '3dvae' is conditioned on energy only: theta and particle must be None")
        return z * (_as_column(energy_GeV, z.shape[0], z, "energy_GeV") / 100.0)

    def prepare(self, noise: torch.Tensor, energy_GeV: float | torch.Tensor, theta: Any = None,
                particle: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The Dense layer's input ``z * E/100`` and the drawn layer energies ``(B, Z)`` (GeV; None without them)."""
        latent = self.latent(noise, energy_GeV)
        h = self._scaled(latent[:, : self.z_dim], energy_GeV, theta, particle)
        return h, (self.layer_deposits(latent[:, self.z_dim :].float()) if self.n_layers else None)

    def dense_input(self, noise: torch.Tensor, energy_GeV: float | torch.Tensor, theta: torch.Tensor | None = None,
                    particle: torch.Tensor | None = None) -> torch.Tensor:
        """The Dense layer's input ``z * E/100``, ``z`` the latent part of ``g(noise; E)`` (checks the arguments)."""
        return self.prepare(noise, energy_GeV, theta, particle)[0]

    def finish(self, cells: torch.Tensor, deposits: torch.Tensor | None) -> torch.Tensor:
        """Each layer of the decoded ``cells`` ``(B, 1, X, Y, Z)`` rescaled to its drawn energy (in fp32): its cell
        energies multiplied by ``f = drawn / decoded`` (GeV), its transformed cells by ``f**power``; unchanged
        without layer deposits. A layer the decoder left empty -- below ``LAYER_FLOOR``, the resolution of the
        energies the flow learned -- keeps what it has: scaling a residue of 1e-12 to a real deposit would put the
        layer's energy in one arbitrary cell (a 10 GeV shower's last layer, 7 % of the time)."""
        if deposits is None:
            return cells
        decoded = self.layer_energies_GeV(cells)
        factor = torch.where(decoded > self.LAYER_FLOOR, deposits / decoded.clamp_min(self.LAYER_FLOOR),
                             torch.ones_like(decoded))
        return (cells.float() * factor.pow(self.cell_transform[0])[:, None, None, None, :]).to(cells.dtype)

    def forward(self, noise: torch.Tensor, energy_GeV: float | torch.Tensor, theta: Any = None,
                particle: torch.Tensor | None = None, encoded: bool = False,
                deposits: torch.Tensor | None = None) -> Any:
        """Showers ``(B, 1, X, Y, Z)`` for Gaussian ``noise`` ``(B, latent_dim)``; with ``encoded=True`` (the training
        path) ``noise`` holds latent points ``z`` ``(B, z_dim)`` from the encoder (and ``deposits`` the showers'
        dequantised layer energies, GeV, where the prior has them), and the result is ``(pre-activations, ln p(z [, v] |
        E))``: the cells before the final ReLU (the showers are their positive part, not rescaled), so that the
        likelihood sees a gradient in cells the decoder has switched off; one call through both networks, so that
        DDP sees every parameter used."""
        if not encoded:
            return super().forward(noise, energy_GeV, theta, particle)
        if noise.dim() != 2 or noise.shape[1] != self.z_dim:
            raise ValueError(f"z: shape {tuple(noise.shape)} but (B, {self.z_dim}) is required")
        pre = self._decode(self._scaled(noise, energy_GeV, theta, particle), rectify=False)
        return pre, self.prior_log_prob(noise, energy_GeV, deposits)


@register("3dvae")
def build_3dvae(
    cell_shape: tuple[int, int, int],
    latent_dim: int = 200,
    leaky_slope: float = 0.3,
    encoder_width: int = 16,
    depth_margin: int = 0,
    prior_layers: int = 6,
    prior_hidden: int = 256,
    layer_deposits: bool = False,
    **unknown: Any,
) -> GanPair:
    """The conditional VAE (energy only): decoder = :class:`VaeDecoder` (the 3DGAN generator behind a flow prior of
    ``prior_layers`` couplings of width ``prior_hidden``; 0 layers: N(0, 1); ``layer_deposits``: a one-dimensional
    flow draws the total energy and a coupling flow of the same size the layers' shares), encoder =
    :class:`Encoder3D`."""
    _reject_unknown("3dvae", unknown, ["latent_dim", "leaky_slope", "encoder_width", "depth_margin", "prior_layers",
                                       "prior_hidden", "layer_deposits"])
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
    if not isinstance(layer_deposits, bool):
        raise ConfigError(f"model '3dvae': layer_deposits must be true or false, got {layer_deposits!r}")
    if layer_deposits:  # only then in the config, so that the first shipped bundles' configs stay as they were
        if not prior_layers:
            raise ConfigError("model '3dvae': layer_deposits needs a flow (prior_layers >= 1)")
        cfg["layer_deposits"] = True
    if cfg["latent_dim"] < 2 and prior_layers:
        raise ConfigError("model '3dvae': a flow prior needs latent_dim >= 2 (or prior_layers: 0)")
    decoder = VaeDecoder(shape, cfg["latent_dim"], cfg["leaky_slope"], cfg.get("depth_margin", 0), prior_layers,
                         prior_hidden, layer_deposits)
    encoder = Encoder3D(shape, cfg["latent_dim"], cfg["leaky_slope"], encoder_width)
    return GanPair(decoder, encoder, decoder.latent_dim, cfg, cell_shape=shape, objective="vae")
