r"""The total deposit of a ``3dvae`` with layer energies against the MC's, energy by energy.

What docs/models/choosing.md quotes on the layer-energy flows: for each fixed energy of a reference file, the
MC's total deposit (GeV) -- mean, relative width, and its 1 %, 16 %, 84 % and 99 % quantiles over the median --
beside the totals the model's flows draw and those of the generated showers (flows + decoder + rescaling):

    python benchmarks/layer_energies.py --model 3dvae-clic-electrons --reference ref.h5 [--n 2000]

Deterministic (seed 0).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from fastshower.data.dataset import ShowerDataset, ShowerTransform
from fastshower.train.layer_energies import layer_energies

QUANTILES = (1, 16, 84, 99)


def describe(total: np.ndarray) -> str:
    """``mean GeV, width %, quantiles / median`` of a sample of totals."""
    q = np.percentile(total, QUANTILES) / np.median(total)
    return (f"{total.mean():8.4g} GeV {100 * total.std() / total.mean():5.2f} % | "
            + " ".join(f"{x:.3f}" for x in q))


def main(argv: list[str] | None = None) -> int:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a 3dvae bundle with layer_deposits (name or path)")
    parser.add_argument("--reference", type=Path, required=True, help="MC showers at fixed energies (HDF5)")
    parser.add_argument("--n", type=int, default=2000, help="model showers per energy (default 2000)")
    args = parser.parse_args(argv)
    import fastshower

    bundle = fastshower.load(args.model).bundle
    g = bundle.generator.eval()
    if not getattr(g, "n_layers", 0):
        print(f"{args.model}: a 3dvae bundle with layer_deposits is required", file=sys.stderr)
        return 2
    data = ShowerDataset.from_file(args.reference, ShowerTransform(bundle.transform_power, bundle.transform_scale))
    mc_layers, mc_energy = layer_energies(data, g)
    mc_total, energy = mc_layers.sum(dim=1).double().numpy(), mc_energy.double().numpy()
    print(f"quantiles {QUANTILES} % over the median")
    for e in np.unique(np.round(energy, 1)):
        real = mc_total[np.abs(energy - e) < 0.05 * e]
        noise = torch.randn(args.n, g.latent_dim, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            h, drawn = g.prepare(noise, torch.full((args.n,), float(e)))
            generated = g.layer_energies_GeV(g.finish(g._decode(h), drawn)).sum(dim=1)
        print(f"{e:6.1f} GeV  MC ({len(real)}): {describe(real)}")
        print(f"{'':10} drawn:     {describe(drawn.sum(dim=1).double().numpy())}")
        print(f"{'':10} generated: {describe(generated.double().numpy())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
