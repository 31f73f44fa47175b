"""What one training step optimises, apart from the loop that feeds it (:class:`fastshower.train.trainer.Trainer`).

The loop owns the data, the epochs, the two networks of a model pair and their optimisers, checkpoints, DDP, the
physics check and the bundles; an objective owns the updates made on one batch. A model names its objective
(``GanPair.objective``): ``adversarial`` for the 3DGAN (two discriminator and two generator updates with the
original BCE + MAPE losses), ``vae`` for the conditional VAE (one update of encoder and decoder on the evidence
bound). Both leave every random draw to the trainer's seeded generators, so resume stays exact.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Protocol

import torch

from fastshower.train.losses import cell_spectrum_loss, flip_labels, gan_loss, mape
from fastshower.train.physics_check import model_conditions

if TYPE_CHECKING:
    from fastshower.train.trainer import Trainer


class Objective(Protocol):
    """One step's updates on a batch: ``real`` showers (transformed, on the device) and their conditions; returns
    the detached 0-d loss terms to log."""

    def step(self, t: Trainer, real: torch.Tensor, cond: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        ...


class AdversarialObjective:
    """The 3DGAN's step: two discriminator updates (real, then generated showers, labels flipped at
    ``optim.label_flip``) and two generator updates against the fixed discriminator, with the auxiliary energy and
    deposit regressions (``loss.*`` weights) and the optional cell-spectrum term."""

    def step(self, t: Trainer, real: torch.Tensor, cond: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        n, flip = real.shape[0], t.cfg.optim.label_flip
        ones, zeros = torch.ones(n, device=t.device), torch.zeros(n, device=t.device)
        logs: dict[str, torch.Tensor] = {}

        with t.autocast():
            out = t.disc_t(real)
        loss, parts = gan_loss(out, t.targets(flip_labels(ones, flip, t.flip_gen), cond, real.sum(dim=(1, 2, 3, 4))),
                               t.weights)
        t.update("discriminator", loss)
        logs.update({"d_real": loss.detach()} | {f"d_real_{k}": v for k, v in parts.items()})

        with torch.no_grad(), t.autocast():
            fake = t.gen(t.noise(n), *model_conditions(cond, slice(None), t.n_particles, t.device))
        with t.autocast():
            out = t.disc_t(fake.detach())
        loss, parts = gan_loss(out, t.targets(flip_labels(zeros, flip, t.flip_gen), cond,
                                              t.ecal_fit(cond["energy_GeV"])), t.weights)
        t.update("discriminator", loss)
        logs.update({"d_fake": loss.detach()} | {f"d_fake_{k}": v for k, v in parts.items()})

        t.disc.requires_grad_(False)  # the discriminator is only a fixed critic in the generator steps
        try:
            for i in range(2):
                pick = torch.randint(n, (n,), generator=t.noise_gen).to(t.device)
                c = {k: v[pick] for k, v in cond.items()}
                with t.autocast():
                    # the plain discriminator: no DDP reduction for parameters that take no gradient here
                    generated = t.gen_t(t.noise(n), *model_conditions(c, slice(None), t.n_particles, t.device))
                    out = t.disc(generated)
                loss, parts = gan_loss(out, t.targets(ones, c, t.ecal_fit(c["energy_GeV"])), t.weights)
                if t.weights.cells > 0:  # against the real showers of the same conditions
                    cells = cell_spectrum_loss(generated, real[pick], t.cell_thresholds)
                    loss = loss + t.weights.cells * cells
                    parts["cells"] = cells.detach()
                t.update("generator", loss)
                logs[f"g{i}"] = loss.detach()
                if i == 1:
                    logs.update({f"g_{k}": v for k, v in parts.items()})
        finally:
            t.disc.requires_grad_(True)
        return logs


class VaeObjective:
    """The conditional VAE's step (``models.vae3d``): encode, draw ``z`` by the reparametrisation, decode, and make
    one update of encoder, decoder and prior on ``censored SSE + loss.kl * KL + loss.ecal * MAPE(summed deposit)
    [+ loss.cells * cell spectrum]`` per shower (cells in the transformed space). The KL term is analytic against
    N(0, 1); against a flow prior it is ``-H(q) - ln p(z | E)`` at the drawn ``z`` (the entropy of the Gaussian
    posterior is analytic), which also fits the flow to the aggregate posterior by maximum likelihood. Where the
    model also draws the layer deposits ``v`` (their own flow) the term adds ``-ln p(v | E)``: the bound of the model
    whose ``v`` is observed, so the deposit flow is fitted by maximum likelihood (weighted by ``loss.kl`` too). Logs
    ``loss``, ``recon``, ``kl``, ``ecal`` [and ``cells``] (means over the batch)."""

    def step(self, t: Trainer, real: torch.Tensor, cond: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        energy = cond["energy_GeV"]
        with t.autocast():
            mu, log_var = t.disc_t(real, energy)
            eps = torch.randn(mu.shape, generator=t.noise_gen).to(t.device)
            z = mu + torch.exp(0.5 * log_var) * eps.to(mu.dtype)
            pre, log_prior = t.gen_t(z, *model_conditions(cond, slice(None), t.n_particles, t.device),
                                     encoded=True, deposits=dequantised_layer_deposits(t, real))
        pre, mu, log_var = pre.float(), mu.float(), log_var.float()
        recon = torch.relu(pre)
        sse = censored_sse(pre, real).mean()
        if getattr(t.gen, "prior", None) is None:
            kl = (-0.5 * (1.0 + log_var - mu.square() - log_var.exp()).sum(dim=1)).mean()
        else:
            entropy = 0.5 * (1.0 + math.log(2.0 * math.pi) + log_var).sum(dim=1)
            kl = (-entropy - log_prior).mean()
        ecal = mape(recon.sum(dim=(1, 2, 3, 4)), real.sum(dim=(1, 2, 3, 4)))
        loss = sse + t.cfg.loss.kl * kl + t.weights.ecal * ecal
        logs = {"recon": sse.detach(), "kl": kl.detach(), "ecal": ecal.detach()}
        if t.weights.cells > 0:
            cells = cell_spectrum_loss(recon, real, t.cell_thresholds)
            loss = loss + t.weights.cells * cells
            logs["cells"] = cells.detach()
        t.update_all(loss)
        return {"loss": loss.detach()} | logs


def dequantised_layer_deposits(t: Trainer, real: torch.Tensor) -> torch.Tensor | None:
    """The showers' energy per layer (GeV) ``(B, Z)`` plus ``LAYER_FLOOR * U(0, 1)``, for a decoder whose prior
    draws the layer energies (None otherwise); the uniform draw comes from the trainer's seeded noise generator, so
    resume stays exact."""
    if not getattr(t.gen, "n_layers", 0):
        return None
    deposits = t.gen.layer_energies_GeV(real)
    jitter = torch.rand(deposits.shape, generator=t.noise_gen).to(t.device)
    return deposits + t.gen.LAYER_FLOOR * jitter


def censored_sse(pre: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Per shower, the summed squared error of a ReLU output ``relu(pre)`` against ``real`` (both transformed
    cells, ``(B, 1, X, Y, Z)``), with the gradient the ReLU withholds restored: a cell with a deposit is pulled
    from its pre-activation (``(pre - real)^2``, even where ``pre < 0`` and the output is 0), an empty cell only
    while its output is positive (``relu(pre)^2``). Equal to the plain SSE wherever ``pre >= 0`` or the cell is
    empty. Without it the decoder's zero cells (a shower's sparse lateral halo early in training) stay dead: they
    get no gradient, and the halo's energy is lost for good (docs/models/choosing.md)."""
    residual = torch.where(real > 0, pre - real, torch.relu(pre))
    return residual.square().sum(dim=(1, 2, 3, 4))


OBJECTIVES: dict[str, type] = {"adversarial": AdversarialObjective, "vae": VaeObjective}


def objective_for(name: str) -> Objective:
    """The objective a model names."""
    return OBJECTIVES[name]()
