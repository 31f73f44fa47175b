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
from fastshower.data.dataset import ShowerDataset, ShowerTransform
from fastshower.errors import ConfigError
from fastshower.models import build_model
from fastshower.models.flows import ConditionalFlow, SinhArcsinhFlow
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


def _trained_looking_flow(kind: str = "coupling", dim: int = 6) -> ConditionalFlow | SinhArcsinhFlow:
    """A flow with weights far from the identity it starts as, scales near their clamp."""
    flow = ConditionalFlow(dim, 1, n_layers=4, hidden=16) if kind == "coupling" else SinhArcsinhFlow(1, 2, 16)
    with torch.no_grad():
        for p in flow.parameters():
            p.normal_(0.0, 0.4, generator=torch.Generator().manual_seed(p.numel()))
    return flow.double()


@pytest.mark.parametrize("kind, dim", [("coupling", 6), ("sinh-arcsinh", 1)])
def test_the_flows_invert_exactly_and_their_density_has_the_jacobian(kind, dim):
    flow = _trained_looking_flow(kind, dim)
    u, cond = torch.randn(7, dim, dtype=torch.float64), torch.randn(7, 1, dtype=torch.float64)
    z = flow(u, cond)
    back, log_det = flow.inverse(z, cond)
    assert torch.allclose(back, u, atol=1e-10) and not torch.allclose(z, u, atol=1e-2)
    # ln |det du/dz| against autograd's Jacobian of the inverse, row by row
    for i in range(3):
        jac = torch.autograd.functional.jacobian(lambda x, c=cond[i : i + 1]: flow.inverse(x[None], c)[0][0], z[i])
        assert float(log_det[i].detach()) == pytest.approx(float(torch.linalg.slogdet(jac).logabsdet), abs=1e-9)
    # the density integrates the change of variables: ln p(z) = ln N(u) + ln |det du/dz|
    normal = -0.5 * (u.square().sum(dim=1) + dim * np.log(2 * np.pi))
    assert torch.allclose(flow.log_prob(z, cond), normal + log_det, atol=1e-10)


def test_the_total_energys_flow_is_a_normalised_skewed_density():
    flow = _trained_looking_flow("sinh-arcsinh", 1).requires_grad_(False)
    cond = torch.full((1, 1), 0.3, dtype=torch.float64)
    # the quantiles of N(0, 1) map to the flow's: a monotone map, so the density integrates to 1 between them
    lo, hi = (flow(torch.tensor([[x]], dtype=torch.float64), cond) for x in (-6.0, 6.0))
    z = torch.linspace(float(lo), float(hi), 200_001, dtype=torch.float64)[:, None]
    density = flow.log_prob(z, cond.expand(len(z), 1)).exp()
    assert float(torch.trapezoid(density, z[:, 0])) == pytest.approx(1.0, abs=1e-6)
    # skewed, as a calorimeter's response with leakage is: the median is not midway between the 2.3 % quantiles
    q = flow(torch.tensor([[-2.0], [0.0], [2.0]], dtype=torch.float64), cond.expand(3, 1))[:, 0]
    assert abs(float((q[2] - q[1]) / (q[1] - q[0])) - 1.0) > 0.05


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
    decoder.use_transform(0.85, 50.0)  # the shipped recipe's cell transform: the flow's layer energies are in GeV
    assert pair.latent_dim == decoder.latent_dim == 8 + 10 and decoder.z_dim == 8  # the noise: latent + layers
    assert pair.config["layer_deposits"] is True
    assert "layer_deposits" not in build_model("3dvae", (8, 8, 10), latent_dim=8).config  # old bundles unchanged
    with pytest.raises(ConfigError, match=r"layer_deposits needs a flow \(prior_layers >= 1\)"):
        build_model("3dvae", (8, 8, 10), latent_dim=8, prior_layers=0, layer_deposits=True)
    with torch.no_grad():
        for p in [*decoder.prior.parameters(), *decoder.total_flow.parameters(), *decoder.deposit_flow.parameters()]:
            p.normal_(0.0, 0.05, generator=torch.Generator().manual_seed(p.numel()))
        noise, energy = torch.randn(5, 18, generator=torch.Generator().manual_seed(1)), torch.full((5,), 40.0)
        drawn = decoder.layer_deposits(decoder.latent(noise, energy)[:, 8:])
        showers = decoder(noise, energy)
        raw = decoder._decode(decoder.prepare(noise, energy)[0])  # the decoder's layers before the flow's deposits
        raw[0, :, :, :, 0] = 0.0
        raw[1, :, :, :, 1] = 0.0
        raw[1, 0, 0, 0, 1] = 1e-12  # a residue below LAYER_FLOOR
        finished = decoder.finish(raw, drawn)
        # the layer energies are the inverse transform's, in GeV, summed over each layer
        energies = ShowerTransform(0.85, 50.0).inverse(finished).sum(dim=(1, 2, 3))
        assert torch.allclose(decoder.layer_energies_GeV(finished), energies, rtol=1e-6)
        raw_sums, sums = decoder.layer_energies_GeV(raw), energies
        # every layer the decoder fills carries the flow's energy; one it leaves empty (or at a residue) keeps it
        filled = raw_sums > decoder.LAYER_FLOOR
        assert filled.float().mean() > 0.3 and not filled[0, 0] and not filled[1, 1]
        assert torch.allclose(sums[filled], drawn[filled], rtol=1e-5)
        assert torch.equal(finished[~filled.reshape(5, 1, 1, 1, 10).expand_as(raw)],
                           raw[~filled.reshape(5, 1, 1, 1, 10).expand_as(raw)])
        assert torch.allclose(showers, decoder.finish(decoder._decode(decoder.prepare(noise, energy)[0]), drawn))
        fast = inference_generator(decoder)(noise, energy)
        assert torch.allclose(fast, showers, rtol=1e-4, atol=1e-5 * float(showers.abs().max()))
        # the flow's coordinates of the deposits (log total, logits of the shares) invert exactly
        deposits = torch.rand(5, 10, dtype=torch.float64) * 3.0 + 1e-4
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
        # the total first, from its own flow; the shares given the total's noise
        u_total, log_det_total = decoder.total_flow.inverse(code[:, :1], cond)
        u_shares, log_det_shares = decoder.deposit_flow.inverse(code[:, 1:], torch.cat([cond, u_total], dim=1))
        u = torch.cat([u_total, u_shares], dim=1)
        assert torch.allclose(decoder.draw_layer_code(u, cond), code, atol=1e-5)
        expected = (decoder.prior.log_prob(z, cond) - 0.5 * (u.square().sum(dim=1) + 10 * np.log(2 * np.pi))
                    + log_det_total + log_det_shares)
        assert torch.allclose(log_prior, expected, atol=1e-4)
        # the total depends on its own noise only
        other = u.clone()
        other[:, 1:] = torch.randn(5, 9)
        assert torch.allclose(decoder.draw_layer_code(other, cond)[:, 0], code[:, 0], atol=1e-5)
        # sampling draws z and the deposits from their own flows, on their own parts of the noise
        assert torch.allclose(decoder.latent(noise, energy)[:, 8:], decoder.draw_layer_code(noise[:, 8:], cond),
                              atol=1e-6)
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
    if options:  # the bundle's cell transform reaches the decoder, whose layer energies are in GeV
        power, scale = sampler.bundle.transform_power, sampler.bundle.transform_scale
        assert power != 1.0 and sampler.bundle.generator.cell_transform.tolist() == pytest.approx([power, scale])
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
    assert decoder.latent_dim == 200 + 25  # the latent's noise, then the layer energies'
    noise, energy = torch.randn(64, 225, generator=torch.Generator().manual_seed(0)), torch.full((64,), 50.0)
    with torch.no_grad():
        z = decoder.latent(noise, energy)[:, :200]
        back, _ = decoder.prior.inverse(z, decoder.flow_condition(energy.reshape(-1, 1)))
    assert not torch.allclose(z, noise[:, :200], atol=0.1)  # trained: the prior is not N(0, 1) any more
    assert torch.allclose(back, noise[:, :200], atol=1e-4)  # and its inverse round-trips
    one = sampler.sample(energy=50.0, n=64, seed=7, precision="fp32")
    assert np.array_equal(one, sampler.sample(energy=50.0, n=64, seed=7, precision="fp32"))
    # its layer energies are drawn by flows fitted to the MC: at 50 GeV the MC's mean deposit is 1.162 GeV and its
    # width 5.3 % (300 showers, docs/models/choosing.md); 64 showers put the mean within ~0.7 % (1 sigma)
    total = one.sum(axis=(1, 2, 3))
    assert one.shape == (64, 25, 25, 25) and total.mean() == pytest.approx(1.162, rel=0.03)
    assert total.std() / total.mean() == pytest.approx(0.053, rel=0.3)


def test_fit_layers_fits_the_layer_energies_of_a_trained_vae_and_keeps_its_decoder(tiny_file, tmp_path, capsys):
    from fastshower.cli import main
    from fastshower.models.bundle import load_bundle
    from fastshower.train.layer_energies import fit_layer_energies, layer_energies

    train(vae_config(tiny_file), tmp_path / "run", progress=False)
    plain = tmp_path / "run" / "generator.pt"
    out = tmp_path / "fitted.pt"
    assert main(["fit-layers", "--model", str(plain), "--data", str(tiny_file), "--out", str(out), "--steps", "300",
                 "--batch", "32"]) == 0
    nats = [float(line.split()[-4]) for line in capsys.readouterr().out.splitlines() if line.startswith("step ")]
    assert len(nats) == 2 and nats[-1] < nats[0] - 5.0  # the layer energies' likelihood is learned
    before, after = load_bundle(plain), load_bundle(out)
    assert after.model_config["layer_deposits"] is True and after.provenance["layer_energies"]["steps"] == 300
    weights = before.generator.state_dict()
    assert all(torch.equal(weights[k], v) for k, v in after.generator.state_dict().items() if k in weights)
    # the layer energies drawn are the data's: their sum within 10 % (40 showers)
    decoder = after.generator
    transform = ShowerTransform(after.transform_power, after.transform_scale)
    real, energy = layer_energies(ShowerDataset.from_file(tiny_file, transform), decoder)
    noise = torch.randn(len(energy), decoder.latent_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        drawn = decoder.layer_deposits(decoder.latent(noise, energy)[:, decoder.z_dim :])
    assert float(drawn.sum() / real.sum()) == pytest.approx(1.0, abs=0.1)
    # the same seed, the same flows
    a, _ = fit_layer_energies(before, tiny_file, steps=20, batch=8, seed=5)
    b, _ = fit_layer_energies(before, tiny_file, steps=20, batch=8, seed=5)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_fit_layers_refuses_what_it_cannot_fit(tiny_file, tmp_path, capsys):
    from fastshower.cli import main

    def error(*args: str) -> str:
        assert main(["fit-layers", *args]) != 0
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1, lines
        return lines[0]

    out = str(tmp_path / "x.pt")
    assert "a '3dvae' one is required" in error("--model", "3dgan-clic-electrons", "--data", str(tiny_file),
                                                "--out", out)
    assert "cell shape (8, 8, 8) but the model's is (25, 25, 25)" in error(
        "--model", "3dvae-clic-electrons", "--data", str(tiny_file), "--out", out)
    assert "--steps must be a positive integer, got 0" in error("--model", "3dvae-clic-electrons", "--data",
                                                                 str(tiny_file), "--out", out, "--steps", "0")
    assert "missing.h5: no such file" in error("--model", "3dvae-clic-electrons", "--data",
                                               str(tmp_path / "missing.h5"), "--out", out)
    assert not (tmp_path / "x.pt").exists()
