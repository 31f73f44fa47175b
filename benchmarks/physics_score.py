r"""The per-epoch physics check of training (``fastshower.train.physics_check``), applied to finished models.

It rebuilds a training run's held-out showers exactly as ``fastshower train`` does (the run's resolved config: the
same data, transform, split seed and ``run.physics_check_max_showers``) and scores each model on them, so that
shipped bundles, or checkpoints of a run trained before the check changed, are ranked by today's check:

    python benchmarks/physics_score.py --run vae 3dvae-clic-electrons 3dgan-clic-electrons vae/last.pt

A model is a bundle name or path, or a training checkpoint (``last.pt``, ``epoch-NNN.pt``; its generator is
rebuilt from the checkpoint's model options). Prints one line per model: the score (the worst bin's root mean
square of pulls; about 1 at the statistical floor) and the bin scores.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
import yaml

from fastshower.train import TrainConfig
from fastshower.train import distributed as dd
from fastshower.train.physics_check import physics_check, validation_set


def _generator(model: str) -> tuple[torch.nn.Module, int]:
    """The generator of a bundle (name or path) or of a training checkpoint, and its noise dimension."""
    if model.endswith(".pt") and Path(model).exists():
        payload = torch.load(model, weights_only=True, map_location="cpu")
        if "discriminator" in payload:  # a training checkpoint
            from fastshower.models.registry import build_model

            spec = payload["model"]
            pair = build_model(spec["name"], tuple(spec["cell_shape"]), **spec["options"])
            pair.generator.load_state_dict(payload["generator"])
            pair.generator.use_transform(payload["transform"]["power"], payload["transform"]["scale"])
            return pair.generator.eval(), pair.latent_dim
    import fastshower

    bundle = fastshower.load(model).bundle
    return bundle.generator.eval(), bundle.latent_dim


def main(argv: list[str] | None = None) -> int:
    """Score each model on the held-out showers of ``--run``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a training run folder (its resolved_config.yaml)")
    parser.add_argument("models", nargs="+", help="bundle names or paths, or training checkpoints")
    args = parser.parse_args(argv)
    config_path = args.run / "resolved_config.yaml"
    if not config_path.exists():
        print(f"{config_path}: no such file (a folder of fastshower train)", file=sys.stderr)
        return 2
    cfg = TrainConfig.from_dict(yaml.safe_load(config_path.read_text()))
    cfg.run.physics_check_every = 0  # the set-up only: no training, no checks of its own
    from fastshower.train.trainer import Trainer

    with tempfile.TemporaryDirectory() as scratch:  # the trainer's set-up writes a log; not into the run
        trainer = Trainer(cfg, Path(scratch), False, dd.init_distributed("cpu"), progress=False)
        real, cond, summary = validation_set(trainer.dataset, trainer.val_idx[: cfg.run.physics_check_max_showers])
    for model in args.models:
        generator, latent_dim = _generator(model)
        check = physics_check(generator, real, cond, trainer.transform, latent_dim, trainer.n_particles,
                              cfg.run.seed, trainer.device, summary)
        bins = ", ".join(f"{b:.1f}" for b in check["bin_scores"])
        print(f"{model}: score {check['score']:.2f} (bins {bins}; {len(real)} showers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
