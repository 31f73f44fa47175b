"""Tests of the second model family, the conditional VAE ``3dvae`` (issue 17): built by name, trained by the same
trainer (the objective seam), its step lowers the objective, resume is exact, its bundle samples reproducibly by
seed, refuses bad conditions and exports to ONNX like the 3DGAN's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import synthetic_showers
from fastshower.data import write_showers
from fastshower.errors import ConfigError
from fastshower.models import build_model
from fastshower.models.flows import ConditionalFlow
from fastshower.models.gan3d import EnergyGenerator
from fastshower.models.vae3d import Encoder3D
from fastshower.train import TrainConfig, load_checkpoint, train
from fastshower.train.objectives import AdversarialObjective, VaeObjective, censored_sse


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory) -> Path:
    return write_showers(tmp_path_factory.mktemp("data") / "tiny.h5", synthetic_showers(40, (8, 8, 8), 0))


def vae_config(path: Path, options: dict | None = None, **run: object) -> TrainConfig:
    """8^3 showers, 32 to train in batches of 4 (8 steps an epoch), 8 for the physics check."""
    return TrainConfig.from_dict({
        "model": {"name": "3dvae", "options": {"latent_dim": 8, "encoder_width": 4, **(options or {})}},
        "data": {"path": str(path), "validation_fraction": 0.2},
        "optim": {"name": "adam", "batch_size": 4, "epochs": 2, "lr": 1e-3},
        "run": {"precision": "fp32", "device": "cpu", "log_every": 1, **run},
    })


def test_the_vae_is_built_by_name_with_the_gan_generator_as_decoder():
    pair = build_model("3dvae", (8, 8, 8), latent_dim=8, encoder_width=4)
    assert pair.objective == "vae" and isinstance(pair.generator, EnergyGenerator)
    assert isinstance(pair.discriminator, Encoder3D)
    assert pair.config == {"latent_dim": 8, "leaky_slope": 0.3, "encoder_width": 4, "prior_layers": 6,
                           "prior_hidden": 256}
    mu, log_var = pair.discriminator(torch.rand(3, 1, 8, 8, 8), torch.tensor([10.0, 50.0, 90.0]))
    assert mu.shape == log_var.shape == (3, 8)
    assert build_model("3dgan", (8, 8, 8), latent_dim=8).objective == "adversarial"
    with pytest.raises(ConfigError, match=r"model '3dvae': unknown option\(s\) dropout"):
        build_model("3dvae", (8, 8, 8), dropout=0.2)
    with pytest.raises(ConfigError, match=r"model '3dvae': encoder_width must be a positive integer"):
        build_model("3dvae", (8, 8, 8), encoder_width=0)
    with pytest.raises(ConfigError, match=r"model '3dvae': prior_layers must be an integer >= 0, got -1"):
        build_model("3dvae", (8, 8, 8), prior_layers=-1)
    assert build_model("3dvae", (8, 8, 8), latent_dim=8, prior_layers=0).generator.prior is None


def _trained_looking_flow(dim: int = 6) -> ConditionalFlow:
    """A flow with weights far from the identity it starts as, scales near their clamp."""
    flow = ConditionalFlow(dim, 1, n_layers=4, hidden=16)
    with torch.no_grad():
        for p in flow.parameters():
            p.normal_(0.0, 0.4, generator=torch.Generator().manual_seed(p.numel()))
    return flow.double()


def test_the_flow_prior_inverts_exactly_and_its_density_has_the_jacobian():
    flow = _trained_looking_flow()
    u, cond = torch.randn(7, 6, dtype=torch.float64), torch.randn(7, 1, dtype=torch.float64)
    z = flow(u, cond)
    back, log_det = flow.inverse(z, cond)
    assert torch.allclose(back, u, atol=1e-10) and not torch.allclose(z, u, atol=1e-2)
    # ln |det du/dz| against autograd's Jacobian of the inverse, row by row
    for i in range(3):
        jac = torch.autograd.functional.jacobian(lambda x, c=cond[i : i + 1]: flow.inverse(x[None], c)[0][0], z[i])
        assert float(log_det[i].detach()) == pytest.approx(float(torch.linalg.slogdet(jac).logabsdet), abs=1e-9)
    # the density integrates the change of variables: ln p(z) = ln N(u) + ln |det du/dz|
    normal = -0.5 * (u.square().sum(dim=1) + 6 * np.log(2 * np.pi))
    assert torch.allclose(flow.log_prob(z, cond), normal + log_det, atol=1e-10)


@pytest.mark.parametrize("dim, n_layers, seed", [(25, 6, 1), (200, 6, 0), (7, 4, 3)])
def test_every_coordinate_of_the_flow_is_transformed_in_every_pair_of_couplings(dim, n_layers, seed):
    flow = ConditionalFlow(dim, 1, n_layers=n_layers, hidden=8, permutation_seed=seed)
    for first, second in zip(flow.layers[0::2], flow.layers[1::2], strict=True):
        transformed = set(first.permutation[first.n_a :].tolist()) | set(second.permutation[second.n_a :].tolist())
        assert transformed == set(range(dim))


def test_an_untrained_flow_prior_is_the_standard_normal():
    decoder = build_model("3dvae", (8, 8, 8), latent_dim=8, encoder_width=4).generator
    noise, energy = torch.randn(4, 8), torch.tensor([10.0, 30.0, 60.0, 90.0])
    assert torch.equal(decoder.latent(noise, energy), noise)
    normal = -0.5 * (noise.square().sum(dim=1) + 8 * np.log(2 * np.pi))
    assert torch.allclose(decoder.prior_log_prob(noise, energy), normal, atol=1e-5)


def test_the_fast_inference_path_keeps_the_flow_prior_in_front_of_the_decoder():
    from fastshower.models.inference import inference_generator

    torch.manual_seed(1)  # an initialisation with cells on both sides of the final ReLU (most seeds; not all)
    decoder = build_model("3dvae", (8, 8, 8), latent_dim=8, encoder_width=4).generator.eval()
    with torch.no_grad():
        for p in decoder.prior.parameters():
            p.normal_(0.0, 0.05, generator=torch.Generator().manual_seed(p.numel()))
        noise, energy = torch.randn(5, 8, generator=torch.Generator().manual_seed(1)), torch.full((5,), 40.0)
        assert not torch.allclose(decoder.latent(noise, energy), noise, atol=0.1)
        slow, fast = decoder(noise, energy), inference_generator(decoder)(noise, energy)
        assert torch.allclose(fast, slow, rtol=1e-4, atol=1e-5 * float(slow.abs().max()))
        pre, log_prior = decoder(decoder.latent(noise, energy), energy, encoded=True)
        # the training path gives the cells before the final ReLU: generation is their positive part
        assert torch.allclose(torch.relu(pre), slow, rtol=1e-5, atol=1e-7) and log_prior.shape == (5,)
        assert float(pre.min()) < 0.0


def test_a_prior_with_layer_deposits_sets_each_generated_layers_energy():
    from fastshower.models.inference import inference_generator

    with pytest.raises(ConfigError, match="model '3dvae': layer_deposits must be true or false, got 1"):
        build_model("3dvae", (8, 8, 8), layer_deposits=1)
    torch.manual_seed(1)  # the initialisation: most of the decoded layers above LAYER_FLOOR
    pair = build_model("3dvae", (8, 8, 10), latent_dim=8, encoder_width=4, layer_deposits=True)
    decoder = pair.generator.eval()
    assert pair.latent_dim == decoder.latent_dim == 8 + 10 and decoder.z_dim == 8  # the noise: latent + layers
    assert pair.config["layer_deposits"] is True
    assert "layer_deposits" not in build_model("3dvae", (8, 8, 10), latent_dim=8).config  # old bundles unchanged
    with pytest.raises(ConfigError, match=r"layer_deposits needs a flow \(prior_layers >= 1\)"):
        build_model("3dvae", (8, 8, 10), latent_dim=8, prior_layers=0, layer_deposits=True)
    with torch.no_grad():
        for p in [*decoder.prior.parameters(), *decoder.deposit_flow.parameters()]:
            p.normal_(0.0, 0.05, generator=torch.Generator().manual_seed(p.numel()))
        noise, energy = torch.randn(5, 18, generator=torch.Generator().manual_seed(1)), torch.full((5,), 40.0)
        drawn = decoder.layer_deposits(decoder.latent(noise, energy)[:, 8:])
        showers = decoder(noise, energy)
        raw = decoder._decode(decoder.prepare(noise, energy)[0])  # the decoder's layers before the flow's deposits
        raw[0, :, :, :, 0] = 0.0
        raw[1, :, :, :, 1] = 0.0
        raw[1, 0, 0, 0, 1] = 1e-12  # a residue below LAYER_FLOOR
        finished = decoder.finish(raw, drawn)
        raw_sums, sums = raw.sum(dim=(1, 2, 3)), finished.sum(dim=(1, 2, 3))
        # every layer the decoder fills carries the flow's deposit; one it leaves empty (or at a residue) keeps it
        filled = raw_sums > decoder.LAYER_FLOOR
        assert filled.float().mean() > 0.3 and not filled[0, 0] and not filled[1, 1]
        assert torch.allclose(sums[filled], drawn[filled], rtol=1e-5)
        assert torch.equal(finished[~filled.reshape(5, 1, 1, 1, 10).expand_as(raw)],
                           raw[~filled.reshape(5, 1, 1, 1, 10).expand_as(raw)])
        assert torch.allclose(showers, decoder.finish(decoder._decode(decoder.prepare(noise, energy)[0]), drawn))
        fast = inference_generator(decoder)(noise, energy)
        assert torch.allclose(fast, showers, rtol=1e-4, atol=1e-5 * float(showers.abs().max()))
        # the flow's coordinates of the deposits (log total, logits of the shares) invert exactly
        deposits = torch.rand(5, 10, dtype=torch.float64) * 3.0 + 0.01
        back = decoder.layer_deposits(decoder.layer_code(deposits))
        assert torch.allclose(back, deposits - 0.5 * decoder.LAYER_FLOOR, rtol=1e-9)
        assert torch.allclose(decoder.layer_code(deposits)[:, 0], torch.log(deposits.sum(dim=1)))
        # the training path: the density of z and of the showers' deposits, which it requires
        z = torch.randn(5, 8)
        deposits = torch.rand(5, 10) + 0.1
        pre, log_prior = decoder(z, energy, encoded=True, deposits=deposits)
        assert pre.shape == (5, 1, 8, 8, 10)
        cond = decoder.flow_condition(energy.reshape(-1, 1))
        code = decoder.layer_code(deposits)
        u, log_det = decoder.deposit_flow.inverse(code, cond)
        assert torch.allclose(decoder.deposit_flow(u, cond), code, atol=1e-5)
        expected = decoder.prior.log_prob(z, cond) - 0.5 * (u.square().sum(dim=1) + 10 * np.log(2 * np.pi)) + log_det
        assert torch.allclose(log_prior, expected, atol=1e-4)
        # sampling draws z and the deposits from their own flows, on their own parts of the noise
        assert torch.allclose(decoder.latent(noise, energy)[:, 8:], decoder.deposit_flow(noise[:, 8:], cond), atol=1e-6)
        with pytest.raises(ValueError, match=r"deposits: shape \(5, 10\) required, got None"):
            decoder(z, energy, encoded=True)
        with pytest.raises(ValueError, match=r"z: shape \(5, 18\) but \(B, 8\) is required"):
            decoder(noise, energy, encoded=True, deposits=deposits)


def test_the_censored_reconstruction_error_revives_cells_the_relu_switched_off():
    pre = torch.tensor([2.0, -1.0, 0.5, -3.0]).reshape(1, 1, 4, 1, 1).requires_grad_(True)
    real = torch.tensor([1.5, 2.0, 0.0, 0.0]).reshape(1, 1, 4, 1, 1)
    loss = censored_sse(pre, real)
    # deposit: (pre - real)^2 even below zero; empty: relu(pre)^2, nothing to learn from an empty, switched-off cell
    assert loss.shape == (1,) and float(loss.detach()) == pytest.approx(0.5**2 + 3.0**2 + 0.5**2)
    loss.sum().backward()
    assert pre.grad.flatten().tolist() == pytest.approx([1.0, -6.0, 1.0, 0.0])
    # the plain SSE of the ReLU output gives the dead cell with a deposit no gradient at all
    pre.grad = None
    (torch.relu(pre) - real).square().sum().backward()
    assert float(pre.grad.flatten()[1]) == 0.0
    # where every pre-activation is positive it is the plain SSE
    positive = torch.rand(3, 1, 4, 4, 4) + 0.1
    target = torch.rand(3, 1, 4, 4, 4) * (torch.rand(3, 1, 4, 4, 4) > 0.5)
    assert torch.allclose(censored_sse(positive, target), (positive - target).square().sum(dim=(1, 2, 3, 4)))


def test_the_trainer_picks_the_models_objective(tiny_file, tmp_path):
    from fastshower.train import distributed as dd
    from fastshower.train.trainer import Trainer

    info = dd.init_distributed("cpu")
    vae = Trainer(vae_config(tiny_file), tmp_path / "vae", False, info, progress=False)
    assert isinstance(vae.objective, VaeObjective)
    cfg = vae_config(tiny_file).to_dict()
    cfg["model"] = {"name": "3dgan", "options": {"latent_dim": 8}}
    gan = Trainer(TrainConfig.from_dict(cfg), tmp_path / "gan", False, info, progress=False)
    assert isinstance(gan.objective, AdversarialObjective)


@pytest.mark.parametrize("options", [{}, {"layer_deposits": True}], ids=["latent-prior", "layer-deposits"])
def test_vae_steps_lower_its_objective(tiny_file, tmp_path, options):
    from fastshower.train import distributed as dd
    from fastshower.train.trainer import Trainer

    trainer = Trainer(vae_config(tiny_file, options), tmp_path / "run", False, dd.init_distributed("cpu"),
                      progress=False)
    batch = trainer.dataset.batch(trainer.train_idx[:8])
    losses = [float(trainer.train_step(batch)["loss"]) for _ in range(16)]
    assert np.isfinite(losses).all()
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses


@pytest.mark.parametrize("options", [{}, {"layer_deposits": True}], ids=["latent-prior", "layer-deposits"])
def test_vae_resume_mid_epoch_gives_identical_weights_and_a_bundle(tiny_file, tmp_path, options):
    full = train(vae_config(tiny_file, options), tmp_path / "full", progress=False)
    assert full.finished and full.step == 16 and full.best_score is not None
    stopped = train(vae_config(tiny_file, options, max_steps=5), tmp_path / "cut", progress=False)
    assert not stopped.finished
    resumed = train(vae_config(tiny_file, options), tmp_path / "cut", resume=True, progress=False)
    assert resumed.finished and resumed.step == 16
    a, b = load_checkpoint(tmp_path / "full/last.pt"), load_checkpoint(tmp_path / "cut/last.pt")
    for net in ("generator", "discriminator"):
        for key in a[net]:
            assert torch.equal(a[net][key], b[net][key]), f"{net}.{key}"
    import fastshower

    sampler = fastshower.load(str(tmp_path / "full" / "generator.pt"))
    assert sampler.bundle.model_name == "3dvae" and sampler.energy_only
    low, high = sampler.bundle.energy_range_GeV
    one = sampler.sample(energy=0.5 * (low + high), n=5, seed=3)
    assert one.shape == (5, 8, 8, 8) and np.all(one >= 0)
    assert np.array_equal(one, sampler.sample(energy=0.5 * (low + high), n=5, seed=3))
    assert not np.array_equal(one, sampler.sample(energy=0.5 * (low + high), n=5, seed=4))
    with pytest.raises(ConfigError, match="outside the model's training range"):
        sampler.sample(energy=10 * high, n=2)
    with pytest.raises(ConfigError, match="conditioned on the energy only"):
        sampler.sample(energy=low, theta_deg=10.0, n=2)


@pytest.mark.slow
@pytest.mark.parametrize("options", [{}, {"layer_deposits": True}], ids=["latent-prior", "layer-deposits"])
def test_vae_bundle_exports_to_onnx_like_the_gan(tiny_file, tmp_path, options):
    pytest.importorskip("onnxruntime")
    from fastshower.export import export_onnx, parity
    from fastshower.models.bundle import load_bundle

    cfg = vae_config(tiny_file, options).to_dict()
    cfg["optim"]["epochs"] = 1
    train(TrainConfig.from_dict(cfg), tmp_path / "run", progress=False)
    bundle = load_bundle(tmp_path / "run" / "generator.pt")
    out = tmp_path / "vae.onnx"
    export_onnx(bundle, out)
    assert out.stat().st_size > 10_000
    assert parity(bundle, out).max_rel_diff < 1e-4


def test_the_shipped_vae_samples_reproducibly_through_its_learned_prior():
    import fastshower

    sampler = fastshower.load("3dvae-clic-electrons")
    decoder = sampler.generator
    noise, energy = torch.randn(64, 200, generator=torch.Generator().manual_seed(0)), torch.full((64,), 50.0)
    with torch.no_grad():
        z = decoder.latent(noise, energy)
        back, _ = decoder.prior.inverse(z, decoder.flow_condition(energy.reshape(-1, 1)))
    assert not torch.allclose(z, noise, atol=0.1)  # trained: the prior is not N(0, 1) any more
    assert torch.allclose(back, noise, atol=1e-4)  # and its inverse round-trips
    one = sampler.sample(energy=50.0, n=4, seed=7, precision="fp32")
    assert np.array_equal(one, sampler.sample(energy=50.0, n=4, seed=7, precision="fp32"))
    assert one.shape == (4, 25, 25, 25) and 0.3 < one.sum(axis=(1, 2, 3)).mean() / (0.0227 * 50.0) < 3.0
