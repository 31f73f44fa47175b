"""Tests of the 3DGAN models and the model registry (tiny batches, CPU)."""

from __future__ import annotations

import math

import pytest
import torch

from fastshower.errors import ConfigError
from fastshower.models import (
    GanPair,
    available_models,
    barycentre_angle,
    build_model,
    generator_geometry,
)

# Hand count for 25x25x25 (trainable parameters):
# Dense 200*3136+3136, Conv 8->64 (6,6,8) 147456+64, BN 128, Conv 64->6 (6,5,8) 92160+6, BN 12,
# Conv 6->6 (3,3,8) 2592+6, Conv 6->1 (2,2,2) no bias 48.
GEN_PARAMS_25 = 630336 + 147520 + 128 + 92166 + 12 + 2598 + 48  # 872808
# Conv 1->32 4032, 3x Conv ->8 (32008, 8008, 8008), 3x BN 16, heads 2*(8*11^3+1).
DISC_PARAMS_25 = 4032 + 32008 + 8008 + 8008 + 3 * 16 + 2 * (8 * 11**3 + 1)  # 73402


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def gan25() -> GanPair:
    torch.manual_seed(0)
    return build_model("3dgan", (25, 25, 25))


def test_3dgan_25_generator_shape_and_params(gan25: GanPair) -> None:
    g = gan25.generator
    assert g.start_shape == (7, 7, 8) and g.natural_shape == (25, 25, 25)
    assert n_params(g) == GEN_PARAMS_25 == 872808
    assert gan25.latent_dim == 200
    assert gan25.config == {"latent_dim": 200, "leaky_slope": 0.3, "dropout": 0.2}
    with torch.no_grad():
        out = g(torch.randn(2, 200), torch.tensor([50.0, 200.0]))
    assert out.shape == (2, 1, 25, 25, 25)
    assert (out >= 0).all()


def test_3dgan_25_discriminator_heads(gan25: GanPair) -> None:
    d = gan25.discriminator
    assert n_params(d) == DISC_PARAMS_25 == 73402
    showers = torch.rand(2, 1, 25, 25, 25)
    with torch.no_grad():
        out = d(showers)
    assert set(out) == {"logit", "energy", "ecal_sum"}
    for v in out.values():
        assert v.shape == (2,)
    assert torch.equal(out["ecal_sum"], showers.sum(dim=(1, 2, 3, 4)))


def test_generator_deterministic_and_energy_conditioning(gan25: GanPair) -> None:
    g = gan25.generator.eval()
    try:
        noise = torch.randn(2, 200)
        e = torch.tensor([10.0, 300.0])
        with torch.no_grad():
            assert torch.equal(g(noise, e), g(noise.clone(), e.clone()))
            zero = torch.zeros(2)
            a = g(torch.randn(2, 200), zero)
            b = g(10 * torch.randn(2, 200), zero)
        assert torch.equal(a, b)
        gen1, gen2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
        with torch.no_grad():
            s1 = g.sample(2, 100.0, generator=gen1)
            s2 = g.sample(2, 100.0, generator=gen2)
        assert s1.shape == (2, 1, 25, 25, 25) and torch.equal(s1, s2)
    finally:
        g.train()


@pytest.mark.parametrize("shape", [(51, 51, 25), (12, 10, 30)])
@pytest.mark.parametrize("name", ["3dgan", "3dgan-angle"])
def test_other_grids(name: str, shape: tuple[int, int, int]) -> None:
    torch.manual_seed(1)
    pair = build_model(name, shape, latent_dim=16)
    n = 1
    cond = {"theta": torch.full((n,), 1.2)} if name == "3dgan-angle" else {}
    with torch.no_grad():
        fake = pair.generator.sample(n, torch.full((n,), 80.0), **cond)
        out = pair.discriminator(fake)
    assert fake.shape == (n, 1, *shape)
    keys = {"logit", "energy", "ecal_sum"} | ({"theta"} if name == "3dgan-angle" else set())
    assert set(out) == keys
    assert all(v.shape == (n,) for v in out.values())


def test_shape_rule() -> None:
    for shape in [(8, 8, 8), (12, 10, 30), (51, 51, 25), (128, 128, 128)]:
        geo = generator_geometry(shape)
        sx, sy, sz = geo["start"]
        assert geo["natural"] == (4 * sx - 3, 4 * sy - 3, 6 * sz - 23)
        for nat, off, t in zip(geo["natural"], geo["offset"], shape, strict=True):
            assert nat >= t and off == (nat - t) // 2
        # smallest start that covers the target
        assert 4 * (sx - 1) - 3 < shape[0] and 4 * (sy - 1) - 3 < shape[1] and 6 * (sz - 1) - 23 < shape[2]


@pytest.mark.parametrize("shape", [(7, 25, 25), (25, 25, 129), (25, 25), (25.0, 25, 25)])
def test_refused_shapes(shape: tuple) -> None:
    with pytest.raises(ConfigError, match=r"cell shape .* not supported"):
        build_model("3dgan", shape)


def test_registry() -> None:
    assert available_models() == ["3dgan", "3dgan-angle", "3dvae"]
    pair = build_model("3dgan-angle", (12, 10, 30), n_particles=3, latent_dim=8)
    assert pair.name == "3dgan-angle" and pair.cell_shape == (12, 10, 30)
    assert pair.config["n_particles"] == 3 and pair.latent_dim == 8
    assert pair.generator.dense.in_features == 8 + 2 + 3
    with pytest.raises(ConfigError, match=r"model 'xyz': unknown \(known: 3dgan, 3dgan-angle, 3dvae\)"):
        build_model("xyz", (25, 25, 25))
    with pytest.raises(ConfigError, match="unknown option"):
        build_model("3dgan", (25, 25, 25), transform_power=0.85)


def test_angle_generator_conditions() -> None:
    torch.manual_seed(2)
    g = build_model("3dgan-angle", (8, 8, 8), n_particles=2, latent_dim=4).generator.eval()
    noise = torch.randn(2, 4)
    e = torch.tensor([50.0, 50.0])
    onehot = torch.eye(2)
    with torch.no_grad():
        a = g(noise, e, theta=torch.tensor([1.0, 1.0]), particle=onehot)
        b = g(noise, e, theta=torch.tensor([1.5, 1.5]), particle=onehot)
    assert a.shape == (2, 1, 8, 8, 8) and not torch.equal(a, b)
    with pytest.raises(ValueError, match="particle"):
        g(noise, e, theta=torch.tensor([1.0, 1.0]))
    with pytest.raises(ValueError, match="theta"):
        g(noise, e)


def _line_shower(angle: float, pitch: float, depths: torch.Tensor, n_y: int = 40) -> torch.Tensor:
    """Energy along y = y0 + tan(angle) z, split linearly between neighbouring cells."""
    s = torch.zeros(1, 1, 3, n_y, depths.numel())
    for k, z in enumerate(depths.tolist()):
        y = 5.0 * pitch + math.tan(angle) * z
        j = int(y // pitch)
        f = y / pitch - j
        s[0, 0, 1, j, k] = (1 - f) * (1.0 + k)
        s[0, 0, 1, j + 1, k] = f * (1.0 + k)
    return s


def test_barycentre_angle_straight_line() -> None:
    pitch = 5.1
    depths = torch.arange(25) * 8.0 + 4.0
    for angle in (0.0, 0.3, -0.2):
        showers = _line_shower(angle, pitch, depths, n_y=60) if angle >= 0 else None
        if showers is None:
            showers = _line_shower(-angle, pitch, depths, n_y=60).flip(3)  # mirror in y
        est = barycentre_angle(showers, pitch, depths)
        assert est.shape == (1,)
        assert abs(est.item() - angle) < 0.02
    # uniform spacing given as a number; empty shower -> NaN
    est = barycentre_angle(_line_shower(0.3, pitch, torch.arange(25) * 8.0)[:, 0], pitch, 8.0)
    assert abs(est.item() - 0.3) < 0.02
    assert torch.isnan(barycentre_angle(torch.zeros(1, 1, 3, 10, 25), pitch, 8.0)).all()


def test_gradients_reach_every_generator_parameter() -> None:
    torch.manual_seed(4)
    pair = build_model("3dgan-angle", (8, 8, 8), latent_dim=8)
    g, d = pair.generator, pair.discriminator
    fake = g(torch.randn(2, 8), torch.tensor([40.0, 90.0]), theta=torch.tensor([1.3, 1.7]))
    d(fake)["logit"].sum().backward()
    for name, p in g.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bf16_autocast_generator_matches_fp32():
    # guards the oneDNN bf16 Conv3d bug (8 input channels, kernel depth 8) worked around in models/layers.py
    import numpy as np

    torch.manual_seed(0)
    generator = build_model("3dgan", (25, 25, 25)).generator.eval()
    noise, energy = torch.randn(3, 200), torch.full((3,), 80.0)
    with torch.no_grad():
        reference = generator(noise, energy)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = generator(noise, energy).float()
    assert np.corrcoef(reference.ravel().numpy(), fast.ravel().numpy())[0, 1] > 0.995
    assert abs(fast.sum() / reference.sum() - 1) < 0.02


def test_depth_margin_cuts_the_layers_that_see_the_last_zero_padding() -> None:
    # the last padding (3 zero layers at each end of z after the x3 upsampling) reaches output layers 0-2 and 22-24
    # of the original 25; with depth_margin=1 the centre crop cuts every layer that sees it
    import torch

    from fastshower.models import build_model

    def outputs(margin: int, pad_value: float) -> torch.Tensor:
        torch.manual_seed(0)
        gen = build_model("3dgan", (25, 25, 25), depth_margin=margin).generator.eval()
        index = [i for i, m in enumerate(gen.trunk) if isinstance(m, torch.nn.ConstantPad3d)][-1]
        padding = gen.trunk[index].padding  # torch order: z first, then y, then x
        assert padding[:2] == (3, 3)

        class ZWall(torch.nn.Module):  # the same padding, with ``pad_value`` in the z layers only
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                x = torch.nn.functional.pad(x, (0, 0, *padding[2:]))
                return torch.nn.functional.pad(x, (*padding[:2], 0, 0, 0, 0), value=pad_value)

        gen.trunk[index] = ZWall()
        with torch.no_grad():
            return gen(torch.randn(2, 200, generator=torch.Generator().manual_seed(1)), torch.full((2,), 100.0))

    for margin, walled in ((0, [0, 1, 2, 22, 23, 24]), (1, [])):
        changed = (outputs(margin, 0.0) != outputs(margin, 0.5)).flatten(0, 3).any(dim=0).nonzero().flatten()
        assert changed.tolist() == walled, (margin, changed.tolist())
    with pytest.raises(ConfigError, match="depth_margin must be an integer in"):
        build_model("3dgan", (25, 25, 25), depth_margin=-1)
