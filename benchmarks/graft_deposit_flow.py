r"""Probe: fit a ``3dvae`` layer-deposit flow alone on a shower file and graft it onto a trained ``3dvae`` bundle.

Is the split into layer energies (a flow) and shapes (the decoder) worth a full training run? This fits only the
deposit flow ``p(v | E)`` (``models.vae3d.VaeDecoder.deposit_flow``, the layer deposits' maximum likelihood, as
``fastshower train`` fits it with ``layer_deposits: true``) on the showers the bundle was trained on, keeps the
bundle's decoder and latent prior as they are, and writes a bundle that draws its layer energies from the new flow:

    python benchmarks/graft_deposit_flow.py --model 3dvae-clic-electrons --data train.h5 --out grafted.pt
    fastshower validate --reference ref.h5 --model grafted.pt --out val_grafted --energy-bins 9,15,35,75,150,350,510

A probe, not a recipe: the latent and the deposits are fitted apart, so nothing ties a shower's shape to its layer
energies beyond the energy. Deterministic for a seed (single thread).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from fastshower.data.dataset import ShowerDataset, ShowerTransform
from fastshower.models.bundle import load_bundle, save_bundle
from fastshower.models.registry import build_model


def layer_deposits(path: Path, transform: ShowerTransform, chunk: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """Each shower's summed transformed deposit per layer ``(N, Z)`` and its energy (GeV) ``(N,)``, read through
    the data layer as ``fastshower train`` reads it."""
    dataset = ShowerDataset.from_file(path, transform)
    sums, energy = [], []
    for start in range(0, len(dataset), chunk):
        batch = dataset.batch(range(start, min(start + chunk, len(dataset))))
        sums.append(batch["showers"].float().sum(dim=(1, 2, 3)))
        energy.append(batch["energy_GeV"].float())
    return torch.cat(sums), torch.cat(energy)


def main(argv: list[str] | None = None) -> int:
    """Fit the deposit flow and write the grafted bundle."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a 3dvae bundle (name or path)")
    parser.add_argument("--data", type=Path, required=True, help="the showers to fit (HDF5, ECAL + energy)")
    parser.add_argument("--out", type=Path, required=True, help="the grafted bundle to write")
    parser.add_argument("--steps", type=int, default=20000,
                        help="Adam steps, cosine-annealed to 0 (default 20000, ~7 min on 1 core)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import fastshower

    bundle = fastshower.load(args.model).bundle
    if bundle.model_name != "3dvae":
        print(f"{args.model}: model '{bundle.model_name}', a 3dvae bundle is required", file=sys.stderr)
        return 2
    options = {**bundle.model_config, "layer_deposits": True}
    decoder = build_model("3dvae", tuple(bundle.cell_shape), **options).generator
    missing, unexpected = decoder.load_state_dict(bundle.generator.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("deposit_flow.") for k in missing), (missing, unexpected)

    deposits, energy = layer_deposits(args.data, ShowerTransform(bundle.transform_power, bundle.transform_scale))
    g = torch.Generator().manual_seed(args.seed)
    code = decoder.layer_code(deposits + decoder.LAYER_FLOOR * torch.rand(deposits.shape, generator=g))
    cond = decoder.flow_condition(energy.reshape(-1, 1))
    flow = decoder.deposit_flow
    opt = torch.optim.Adam(flow.parameters(), lr=args.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps)  # to 0: the last steps settle the tails
    for step in range(args.steps):
        pick = torch.randint(len(code), (args.batch,), generator=g)
        loss = -flow.log_prob(code[pick], cond[pick]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        if step % 1000 == 0 or step == args.steps - 1:
            print(f"step {step}: -ln p(v | E) {float(loss.detach()):.3f} nats per shower", flush=True)
    provenance = {**bundle.provenance, "grafted_deposit_flow": {"data": str(args.data), "steps": args.steps,
                                                                "batch": args.batch, "lr": args.lr,
                                                                "seed": args.seed}}
    save_bundle(args.out, decoder.eval(), model_name="3dvae", cell_shape=tuple(bundle.cell_shape),
                model_config=options, transform_power=bundle.transform_power,
                transform_scale=bundle.transform_scale, energy_range_GeV=bundle.energy_range_GeV,
                theta_range_rad=bundle.theta_range_rad, particles=list(bundle.particles), geometry=bundle.geometry,
                provenance=provenance, physics=bundle.physics)
    load_bundle(args.out)
    print(f"{args.out}: written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
