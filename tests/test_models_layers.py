"""Tests of the CPU kernels in fastshower.models.layers: the fast bf16 dropout and one-channel convolution, and the
discriminator built from them (same parameters and mathematics as the stock layers)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fastshower.models import build_model
from fastshower.models.layers import BatchNorm3d, Conv3d, Dropout, cpu_fast_paths, dropout_multiplier

BF16 = torch.bfloat16
CL = torch.channels_last_3d


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().float(), b.detach().float()
    return float((a - b).norm() / b.norm())


# --- dropout ----------------------------------------------------------------------------------------------------


def test_dropout_is_the_identity_in_eval_mode() -> None:
    drop = Dropout(0.2).eval()
    x = torch.randn(3, 4, 5, dtype=BF16)
    assert drop(x) is x


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_dropout_mask_rate_scale_and_gradient(layout: str) -> None:
    torch.manual_seed(0)
    x = torch.ones(16, 8, 20, 20, 20, dtype=BF16)  # 1.024 M elements
    if layout == "channels_last":
        x = x.contiguous(memory_format=CL)
    x.requires_grad_(True)
    y = Dropout(0.2)(x)
    fmt = CL if layout == "channels_last" else torch.contiguous_format
    assert y.dtype == BF16 and y.is_contiguous(memory_format=fmt)
    kept = y != 0
    assert set(torch.unique(y.detach().float()).tolist()) == {0.0, 1.25}
    rate = 1.0 - kept.float().mean().item()
    assert abs(rate - 0.2) < 5 * math.sqrt(0.2 * 0.8 / x.numel())  # 5 sigma
    # no structure along any axis: the drop rate per channel and per depth slice is p too
    assert (1.0 - kept.float().mean(dim=(0, 2, 3, 4)) - 0.2).abs().max() < 0.01
    assert (1.0 - kept.float().mean(dim=(0, 1, 3, 4)) - 0.2).abs().max() < 0.01
    grad = torch.randn_like(y)
    y.backward(grad)
    assert torch.equal(x.grad, grad * kept * 1.25)


def test_dropout_same_seed_same_mask() -> None:
    drop, x = Dropout(0.2), torch.ones(4, 32, 9, 9, 9, dtype=BF16)
    torch.manual_seed(7)
    a = drop(x)
    torch.manual_seed(7)
    b = drop(x)
    c = drop(x)
    assert torch.equal(a, b) and not torch.equal(b, c)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(dropout_multiplier(x, 0.3, g1), dropout_multiplier(x, 0.3, g2))


def test_dropout_other_cases_are_stock_dropout() -> None:
    x32 = torch.randn(4, 8, 6, 6, 6)
    for drop, x in [(Dropout(0.2), x32), (Dropout(0.01), x32.to(BF16))]:  # fp32; p not a multiple of 2^-16
        torch.manual_seed(3)
        a = drop(x)
        torch.manual_seed(3)
        assert torch.equal(a, F.dropout(x, drop.p, True))
    x16 = x32.to(BF16)
    with cpu_fast_paths(False):
        torch.manual_seed(3)
        a = Dropout(0.2)(x16)
    torch.manual_seed(3)
    assert torch.equal(a, F.dropout(x16, 0.2, True))
    torch.manual_seed(3)
    assert not torch.equal(a, Dropout(0.2)(x16))  # the fast path is a different (equally distributed) draw


# --- one-channel convolution ------------------------------------------------------------------------------------


def _backend_keeps_channels_last_in_bf16() -> bool:
    """Whether this CPU's bf16 3D convolution returns a channels-last input's result channels-last (oneDNN does; the
    slow_conv3d fallback of CPUs without native bf16 returns contiguous tensors)."""
    x = torch.rand(1, 4, 4, 4, 4).to(BF16).contiguous(memory_format=CL)
    return F.conv3d(x, torch.rand(2, 4, 1, 1, 1).to(BF16)).is_contiguous(memory_format=CL)


@pytest.mark.parametrize(("kernel", "padding", "shape"), [(5, 2, (9, 8, 7)), ((3, 5, 2), (1, 2, 0), (6, 9, 5))])
def test_one_channel_conv_bf16_matches_fp32(kernel, padding, shape) -> None:
    torch.manual_seed(0)
    conv = Conv3d(1, 32, kernel, padding=padding)
    x = torch.rand(3, 1, *shape)

    def run(bf16: bool, fast: bool = True) -> list[torch.Tensor]:
        conv.zero_grad()
        xi = x.clone().requires_grad_(True)
        with cpu_fast_paths(fast), torch.autocast("cpu", dtype=BF16, enabled=bf16):
            y = conv(xi)
        y.float().pow(2).sum().backward()
        return [y, xi.grad, conv.weight.grad, conv.bias.grad]

    reference, stock, fast = run(False), run(True, fast=False), run(True)
    assert fast[0].dtype == BF16 and fast[0].shape == reference[0].shape
    if _backend_keeps_channels_last_in_bf16():  # oneDNN's bf16 kernels (AVX-512 BF16 / AMX); not the AVX2 fallback
        assert fast[0].is_contiguous(memory_format=CL)
    for what, r, s, f in zip(["output", "input grad", "weight grad", "bias grad"], reference, stock, fast, strict=True):
        assert rel(f, r) < max(2 * rel(s, r), 1e-2), what  # as close to fp32 as stock bf16 is


def test_fp32_padding_is_bitwise_the_explicit_pad() -> None:
    torch.manual_seed(0)
    conv, x = Conv3d(8, 8, 5, padding=1), torch.randn(2, 8, 7, 7, 7)
    assert torch.equal(conv(x), F.conv3d(F.pad(x, (1,) * 6), conv.weight, conv.bias))


# --- batch norm -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [6, 8, 64])
def test_batch_norm_channels_last_bf16_matches_stock(channels: int) -> None:
    torch.manual_seed(0)
    x = (torch.randn(4, channels, 9, 8, 7) * 3 + 1).to(BF16).contiguous(memory_format=CL)
    upstream = torch.randn(x.shape).to(BF16).contiguous(memory_format=CL)
    results = []
    for fast in (False, True):
        torch.manual_seed(1)
        bn = BatchNorm3d(channels, eps=1e-3, momentum=0.01)
        with torch.no_grad():
            bn.weight.uniform_(-1.5, 1.5)
            bn.bias.uniform_(-0.3, 0.3)
        xi = x.clone().requires_grad_(True)
        with cpu_fast_paths(fast):
            y = bn(xi)
        y.backward(upstream)
        assert y.dtype == BF16 and y.is_contiguous(memory_format=CL)
        results.append([y, xi.grad, bn.weight.grad, bn.bias.grad, bn.running_mean, bn.running_var])
    for what, stock, fast in zip(["output", "input grad", "weight grad", "bias grad", "running mean", "running var"],
                                 *results, strict=True):
        assert rel(fast, stock) < 1e-2, what


# --- the discriminator ------------------------------------------------------------------------------------------


def test_discriminator_state_dict_keys_unchanged() -> None:
    keys = list(build_model("3dgan", (25, 25, 25)).discriminator.state_dict())
    expected = ["features.1.weight", "features.1.bias"]
    for conv, bn in [(5, 7), (10, 12), (15, 17)]:
        expected += [f"features.{conv}.weight", f"features.{conv}.bias"]
        expected += [f"features.{bn}.{k}" for k in ("weight", "bias", "running_mean", "running_var",
                                                    "num_batches_tracked")]
    expected += ["logit.weight", "logit.bias", "energy.weight", "energy.bias"]
    assert keys == expected


def test_discriminator_bf16_fast_paths_match_fp32() -> None:
    torch.manual_seed(0)
    d = build_model("3dgan", (12, 10, 14)).discriminator.eval()
    for m in d.modules():  # batch statistics, as in training, but no dropout: a deterministic comparison
        if isinstance(m, torch.nn.BatchNorm3d):
            m.train()
    x = torch.rand(6, 1, 12, 10, 14) ** 3

    def run(bf16: bool, fast: bool = True) -> list[torch.Tensor]:
        d.zero_grad()
        xi = x.clone().requires_grad_(True)
        with cpu_fast_paths(fast), torch.autocast("cpu", dtype=BF16, enabled=bf16):
            out = d(xi)
        (out["logit"].float().sum() + out["energy"].float().sum()).backward()
        return [out["logit"], out["energy"], xi.grad] + [p.grad for p in d.parameters()]

    reference, stock, fast = run(False), run(True, fast=False), run(True)
    for i, (r, s, f) in enumerate(zip(reference, stock, fast, strict=True)):
        assert rel(f, r) < max(2 * rel(s, r), 2e-2), i
