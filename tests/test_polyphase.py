"""Upsampling + zero padding + convolution as one polyphase convolution: same values, same gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fastshower.models import build_model
from fastshower.models.layers import cpu_fast_paths
from fastshower.models.polyphase import upsampled_conv3d


def reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, scale, pad) -> torch.Tensor:
    up = F.interpolate(x, scale_factor=scale, mode="nearest")
    return F.conv3d(F.pad(up, [v for axis in (2, 1, 0) for v in (pad[axis], pad[axis])]), weight, bias)


# the generator's two upsampling layers (25^3 and another grid), and odd kernels, scales and paddings
LAYERS = [
    (64, 6, (6, 5, 8), (7, 7, 8), (2, 2, 2), (2, 2, 0)),
    (6, 6, (3, 3, 8), (13, 14, 9), (2, 2, 3), (1, 0, 3)),
    (3, 4, (3, 4, 2), (5, 6, 4), (3, 1, 2), (2, 1, 1)),
]


@pytest.mark.parametrize("cin, cout, kernel, size, scale, pad", LAYERS)
def test_values_and_gradients_equal_the_upsampled_convolution(cin, cout, kernel, size, scale, pad):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, cin, *size, dtype=torch.float64, generator=gen).requires_grad_(True)
    weight = torch.randn(cout, cin, *kernel, dtype=torch.float64, generator=gen).requires_grad_(True)
    bias = torch.randn(cout, dtype=torch.float64, generator=gen).requires_grad_(True)
    expected = reference(x, weight, bias, scale, pad)
    got = upsampled_conv3d(x, weight, bias, scale, pad)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
    upstream = torch.randn(expected.shape, dtype=torch.float64, generator=gen)
    grads_expected = torch.autograd.grad(expected, (x, weight, bias), upstream)
    grads_got = torch.autograd.grad(got, (x, weight, bias), upstream)
    for name, a, b in zip(("input", "weight", "bias"), grads_got, grads_expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-9, msg=f"gradient of the {name}")


def test_padding_wider_than_the_kernel_is_refused():
    x = torch.randn(1, 1, 4, 4, 4)
    with pytest.raises(ValueError, match="wider than kernel"):
        upsampled_conv3d(x, torch.randn(1, 1, 2, 2, 2), None, (2, 2, 2), (2, 0, 0))


def test_generator_training_step_under_bf16_matches_the_stock_layers():
    # the generator routes its upsampling convolutions through the polyphase form under CPU bf16 autocast
    torch.manual_seed(0)
    generator = build_model("3dgan", (25, 25, 25)).generator.train()
    noise, energy = torch.randn(4, 200), torch.linspace(20, 400, 4)
    results = {}
    for fast in (False, True):
        generator.zero_grad()
        with cpu_fast_paths(fast), torch.autocast("cpu", dtype=torch.bfloat16):
            showers = generator(noise, energy)
        (showers.float() * torch.linspace(0, 1, showers.numel()).view(showers.shape)).sum().backward()
        results[fast] = showers.detach().float(), {n: p.grad.clone() for n, p in generator.named_parameters()}
    (stock, stock_grads), (fast, fast_grads) = results[False], results[True]
    assert fast.shape == stock.shape == (4, 1, 25, 25, 25)
    assert np.corrcoef(stock.ravel().numpy(), fast.ravel().numpy())[0, 1] > 0.999
    for name, grad in stock_grads.items():
        cosine = F.cosine_similarity(grad.ravel(), fast_grads[name].ravel(), dim=0)
        assert cosine > 0.99, name
