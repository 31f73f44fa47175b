"""Fit a ``3dvae``'s layer-energy flows on a shower file, keeping its decoder (``fastshower fit-layers``).

Why a stage of its own: with ``layer_deposits`` the VAE's objective is a sum of two independent parts, the
decoder's bound (reconstruction + KL of the latent) and the layer energies' negative log-likelihood
``-ln p(v | E)`` (``models.vae3d.VaeDecoder.total_flow`` and ``deposit_flow``); no parameter is shared. Fitting
the flows apart from a trained decoder is therefore the same maximum-likelihood problem as fitting them in
``fastshower train``, at the cost of a small flow instead of a 3D convolutional network per step: 20,000 steps
take ~6.5 minutes on one CPU core, where the flows of a full training run get ~150 steps an epoch. A 3dvae bundle
trained without layer deposits gains them here; one trained with them gets its flows refitted.

The result draws each shower's layer energies from the flows and rescales the decoded layers to them
(``VaeDecoder.finish``). Deterministic for a seed: the flows are fitted on one thread.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from fastshower.data.dataset import ShowerDataset, ShowerTransform
from fastshower.errors import ConfigError, DataFormatError
from fastshower.models.bundle import GeneratorBundle
from fastshower.models.registry import build_model


def layer_energies(dataset: ShowerDataset, decoder: torch.nn.Module,
                   chunk: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """Each shower's energy per layer (GeV) ``(N, Z)`` as the decoder's flows see it, and its primary energy
    (GeV) ``(N,)``, read through the data layer as ``fastshower train`` reads it."""
    sums, energy = [], []
    for start in range(0, len(dataset), chunk):
        batch = dataset.batch(range(start, min(start + chunk, len(dataset))))
        sums.append(decoder.layer_energies_GeV(batch["showers"]))
        energy.append(batch["energy_GeV"].float())
    return torch.cat(sums), torch.cat(energy)


def _check(bundle: GeneratorBundle, data: Path, steps: int, batch: int, lr: float) -> None:
    if bundle.model_name != "3dvae":
        raise ConfigError(f"fit-layers: the model is a '{bundle.model_name}' bundle; a '3dvae' one is required")
    for name, value in (("steps", steps), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"fit-layers: --{name} must be a positive integer, got {value!r}")
    if not (isinstance(lr, float | int) and 0.0 < lr < 1.0):
        raise ConfigError(f"fit-layers: --lr must be in (0, 1), got {lr!r}")
    if not data.exists():
        raise DataFormatError(f"{data}: no such file")


def fit_layer_energies(bundle: GeneratorBundle, data: Path, steps: int = 20000, batch: int = 256,
                       lr: float = 3e-4, seed: int = 0,
                       report: Callable[[int, float], None] | None = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The bundle's decoder (its weights unchanged) with layer-energy flows fitted by maximum likelihood on the
    showers of ``data``: Adam at ``lr``, cosine-annealed to 0 over ``steps`` (the last steps settle the tails),
    minibatches of ``batch`` drawn with replacement. Returns the decoder and its model options (with
    ``layer_deposits: true``); ``report(step, nats)`` is called every 1,000 steps with the batch's
    ``-ln p(v | E)`` (nats per shower)."""
    _check(bundle, data, steps, batch, lr)
    options = {**bundle.model_config, "layer_deposits": True}
    torch.manual_seed(seed)  # the flows' initial weights (each coupling starts as the identity)
    decoder = build_model("3dvae", tuple(bundle.cell_shape), **options).generator
    state = {k: v for k, v in bundle.generator.state_dict().items()
             if not k.startswith(("total_flow.", "deposit_flow."))}  # refitted from their initialisation
    decoder.load_state_dict(state, strict=False)
    decoder.use_transform(bundle.transform_power, bundle.transform_scale)
    dataset = ShowerDataset.from_file(data, ShowerTransform(bundle.transform_power, bundle.transform_scale))
    if tuple(dataset.cell_shape) != tuple(bundle.cell_shape):
        raise DataFormatError(f"{data}: cell shape {tuple(dataset.cell_shape)} but the model's is "
                              f"{tuple(bundle.cell_shape)}")

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same result on any machine: no thread-count-dependent reductions
    try:
        with torch.no_grad():
            deposits, energy = layer_energies(dataset, decoder)
        g = torch.Generator().manual_seed(seed)
        code = decoder.layer_code(deposits + decoder.LAYER_FLOOR * torch.rand(deposits.shape, generator=g))
        cond = decoder.flow_condition(energy.reshape(-1, 1))
        params = [*decoder.total_flow.parameters(), *decoder.deposit_flow.parameters()]
        opt = torch.optim.Adam(params, lr=lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        for step in range(steps):
            pick = torch.randint(len(code), (batch,), generator=g)
            loss = -decoder.layer_code_log_prob(code[pick], cond[pick]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            if report is not None and (step % 1000 == 0 or step == steps - 1):
                report(step, float(loss.detach()))
    finally:
        torch.set_num_threads(threads)
    return decoder.eval(), options
