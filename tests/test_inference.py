"""The fast inference rewrite of the 3DGAN generator computes the same function as the generator."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from fastshower.models import build_model
from fastshower.models.inference import inference_generator

CASES = {
    "3dgan-25": ("3dgan", (25, 25, 25), {}),
    "angle-25": ("3dgan-angle", (25, 25, 25), {}),
    "angle-particles-12x20x9": ("3dgan-angle", (12, 20, 9), {"n_particles": 3}),
    "3dgan-25-margin": ("3dgan", (25, 25, 25), {"depth_margin": 1}),
}
# batch 1 takes its own oneDNN route
BATCH = {"3dgan-25": 2, "angle-25": 1, "angle-particles-12x20x9": 3, "3dgan-25-margin": 2}


def _generator(name: str, shape: tuple[int, int, int], options: dict, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    generator = build_model(name, shape, **options).generator.eval()
    with torch.no_grad():  # non-trivial BatchNorm, as after training (signed scales included)
        for bn in (m for m in generator.modules() if isinstance(m, torch.nn.BatchNorm3d)):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.3, 2.0)
            bn.weight.uniform_(-1.5, 1.5)
            bn.bias.uniform_(-0.3, 0.3)
    return generator


def _inputs(generator: torch.nn.Module, n: int = 4, seed: int = 1) -> tuple[tuple, dict]:
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, generator.latent_dim, generator=gen)
    energy = 10.0 + 400.0 * torch.rand(n, generator=gen)
    kwargs = {}
    if hasattr(generator, "n_particles"):
        kwargs["theta"] = 1.0 + 0.5 * torch.rand(n, generator=gen)
        if generator.n_particles > 1:
            kwargs["particle"] = torch.nn.functional.one_hot(torch.arange(n) % generator.n_particles,
                                                             generator.n_particles).float()
    return (noise, energy), kwargs


def _double(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    return tuple(a.double() for a in args), {k: v.double() for k, v in kwargs.items()}


@pytest.fixture(scope="module")
def fast(references):
    """``fast(case, stem, dtype)``: the rewrite of that case's generator (built once per module)."""
    cache = {}

    def build(case: str, stem: str, dtype: torch.dtype = torch.float32):
        if (case, stem, dtype) not in cache:
            cache[case, stem, dtype] = inference_generator(references[case][0], dtype,
                                                           max_stem_elements=0 if stem == "unfused" else 1 << 24)
        return cache[case, stem, dtype]

    return build


@pytest.fixture(scope="module")
def references():
    """Per case: generator, inputs, and the generator's output in fp32 and (the exact function) float64."""
    out = {}
    for case, spec in CASES.items():
        generator = _generator(*spec)
        args, kwargs = _inputs(generator, n=BATCH[case])
        with torch.inference_mode():
            fp32 = generator(*args, **kwargs)
            args64, kwargs64 = _double(args, kwargs)
            exact = copy.deepcopy(generator).double()(*args64, **kwargs64)
        out[case] = generator, args, kwargs, fp32, exact
    return out


@pytest.mark.parametrize(("case", "stem"), [("3dgan-25", "fused"), ("3dgan-25", "unfused"), ("angle-25", "fused"),
                                             ("angle-particles-12x20x9", "fused"),
                                             ("angle-particles-12x20x9", "unfused"), ("3dgan-25-margin", "fused")])
def test_fp32_equals_the_generator(references, fast, case, stem):
    generator, args, kwargs, reference, exact = references[case]
    state = {k: v.clone() for k, v in generator.state_dict().items()}
    model = fast(case, stem)
    assert model.fused_stem == (stem == "fused")
    with torch.inference_mode():
        out = model(*args, **kwargs)
    assert out.shape == reference.shape == (BATCH[case], 1, *generator.cell_shape) and out.dtype == torch.float32
    scale = exact.abs().max()
    assert scale > 0
    # the rewrite is exact up to fp32 rounding (float64 generator as the exact function) ...
    assert (out.double() - exact).abs().max() / scale < 1e-5
    # ... and so agrees with the fp32 generator, which is itself up to ~1e-5 off on these untrained models
    assert (out - reference).abs().max() / scale < 3e-5
    # the generator is left as it was
    assert all(torch.equal(v, state[k]) for k, v in generator.state_dict().items())
    assert not generator.training


@pytest.mark.parametrize(("case", "stem"), [("3dgan-25", "fused"), ("angle-particles-12x20x9", "fused"),
                                             ("angle-particles-12x20x9", "unfused")])
def test_bf16_close_to_fp32(references, fast, case, stem):
    # guards oneDNN bf16 kernel bugs (see fastshower.models.layers.Conv3d) in the rewrite's convolutions too
    args, kwargs = _inputs(references[case][0], n=4)
    with torch.inference_mode():
        fp32 = fast(case, stem)(*args, **kwargs)
        bf16 = fast(case, stem, torch.bfloat16)(*args, **kwargs)
    assert bf16.dtype == torch.bfloat16
    bf16 = bf16.float()
    # (bf16 autocast of the generator itself: correlation ~0.9998, total within ~2 % on these untrained models)
    assert np.corrcoef(bf16.flatten(), fp32.flatten())[0, 1] > 0.999
    assert (bf16 - fp32).abs().max() / fp32.abs().max() < 0.1
    assert abs(bf16.sum() / fp32.sum() - 1) < 0.05


def test_conditions_are_checked_like_the_generator():
    energy_only = inference_generator(build_model("3dgan", (9, 10, 11)).generator)
    with pytest.raises(ValueError, match="conditioned on energy only"):
        energy_only(torch.randn(2, 200), 50.0, theta=torch.zeros(2))
    with pytest.raises(ValueError, match="noise"):
        energy_only(torch.randn(2, 100), 50.0)
    angle = inference_generator(build_model("3dgan-angle", (9, 10, 11), n_particles=2).generator)
    with pytest.raises(ValueError, match="theta"):
        angle(torch.randn(2, 200), 50.0)
    with pytest.raises(ValueError, match="one-hot"):
        angle(torch.randn(2, 200), 50.0, theta=0.1)


def test_unsupported_layer_list_is_refused():
    generator = build_model("3dgan", (12, 12, 12)).generator
    generator.trunk[4] = torch.nn.Upsample(scale_factor=2, mode="trilinear")
    with pytest.raises(TypeError, match="upsampling"):
        inference_generator(generator)
