"""Layers shared by the architectures.

The classes are drop-in subclasses of their ``torch.nn`` parents (same parameters, same ``state_dict`` keys,
same mathematics). On the CPU they choose other kernels than stock PyTorch: under bf16 autocast faster ones
(oneDNN is slow for a one-channel 3D convolution, ``bernoulli_`` for bf16 dropout masks runs on a single
thread at ~10 ns per element, and channels-last batch norm with few channels is slow in the backward pass) and,
for one shape, a correct one. ``CPU_FAST_PATHS = False`` (see
:func:`cpu_fast_paths`) restores stock PyTorch behaviour, for comparisons; fp32 uses stock kernels either way
(its results are bit-for-bit those of ``nn.Conv3d`` with explicit zero padding and ``nn.Dropout``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

CHANNELS_LAST = torch.channels_last_3d
#: The 16-bit float types the fast paths take
_HALF_FLOATS = (torch.bfloat16, torch.float16)
#: Use the faster CPU bf16 kernels of this module (the oneDNN bug workaround of Conv3d is kept regardless).
CPU_FAST_PATHS = True


@contextlib.contextmanager
def cpu_fast_paths(enabled: bool) -> Iterator[None]:
    """Temporarily switch the faster CPU bf16 kernels of this module on or off (benchmarks, tests)."""
    global CPU_FAST_PATHS
    old, CPU_FAST_PATHS = CPU_FAST_PATHS, enabled
    try:
        yield
    finally:
        CPU_FAST_PATHS = old


def use_cpu_bf16_paths(x: torch.Tensor) -> bool:
    """Whether ``x`` goes through the faster CPU kernels: on the CPU, under 16-bit autocast, fast paths on."""
    return (CPU_FAST_PATHS and x.device.type == "cpu" and torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") in _HALF_FLOATS)


class Conv3d(nn.Conv3d):
    """``nn.Conv3d`` that stays correct, and is fast, under CPU bf16 autocast.

    * oneDNN 3.12 (PyTorch 2.13 CPU) returns wrong bf16 forward results for 3D convolutions with exactly 8 input
      channels and a kernel depth of 8 — the first layer of the 3DGAN generator (correlation with fp32 ~0; the
      backward pass is fine). Adding one zero input channel (and a zero weight slice) gives the identical
      mathematical result through a correct kernel, at ~12 % extra cost for that layer only.
      ``tests/test_models.py`` checks bf16 against fp32 for the whole generator.
    * One input channel (the first layer of the 3DGAN discriminator: 1 -> 32 channels, 5^3 kernel) is a slow
      case for oneDNN's bf16 kernels (30-40 GFLOP/s at best, against ~500 for the next layer):
      :class:`_OneChannelConv3d` computes it on the input unfolded into ``ky * kz`` channels instead (forward
      and weight gradient 2-3x faster), with a channels-last output that the following convolutions keep
      (their faster layout).
    * Zero padding (``padding=p``) is done by the bf16 kernel itself; elsewhere on the CPU it is an explicit
      ``F.pad`` before an unpadded convolution, because oneDNN's fp32 backward of a padded 3D convolution can
      fall back to its 'gemm:jit' kernel (~50x slower: 12 s instead of 0.2 s for the discriminator's 8 -> 8
      layers at batch 32).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.device.type == "cpu" and torch.is_autocast_enabled("cpu") and self.groups == 1
                and self.padding_mode == "zeros"):
            dtype = torch.get_autocast_dtype("cpu")
            if self.in_channels == 8 and self.kernel_size[2] == 8:  # the oneDNN bug
                weight = F.pad(self.weight, (0, 0, 0, 0, 0, 0, 0, 1)).to(dtype)
                bias = None if self.bias is None else self.bias.to(dtype)
                return F.conv3d(F.pad(x.to(dtype), (0, 0, 0, 0, 0, 0, 0, 1)), weight, bias, self.stride,
                                self.padding, self.dilation)
            if CPU_FAST_PATHS and dtype == torch.bfloat16:
                if (self.in_channels == 1 and x.dim() == 5 and self.stride == (1, 1, 1)
                        and self.dilation == (1, 1, 1) and not isinstance(self.padding, str)):
                    bias = None if self.bias is None else self.bias.to(dtype)
                    return _OneChannelConv3d.apply(x.to(dtype), self.weight.to(dtype), bias, self.padding)
                return super().forward(x)
        if (x.device.type == "cpu" and self.padding_mode == "zeros" and not isinstance(self.padding, str)
                and any(self.padding)):
            px, py, pz = self.padding
            return F.conv3d(F.pad(x, (pz, pz, py, py, px, px)), self.weight, self.bias, self.stride, 0,
                            self.dilation, self.groups)
        return super().forward(x)


class _OneChannelConv3d(torch.autograd.Function):
    """A stride-1 3D convolution of a one-channel input ``(B, 1, X, Y, Z)``, computed on the (zero-padded) input
    unfolded along Y and Z: ``ky * kz`` channels, kernel ``(kx, 1, 1)``, channels-last; the same products,
    summed in another order. Backward: weight and bias gradients from that form (the unfolded input is saved
    only when they are needed), the input gradient from oneDNN's kernel for the original form (cheaper than
    summing the unfolded gradient back)."""

    @staticmethod
    def forward(ctx, x, weight, bias, padding):  # type: ignore[override]
        px, py, pz = padding
        kx, ky, kz = weight.shape[2:]
        xp = F.pad(x[:, 0], (pz, pz, py, py, px, px))  # (B, X', Y', Z')
        n, sx = xp.shape[0], xp.shape[1]
        cols = xp.unfold(2, ky, 1).unfold(3, kz, 1)  # (B, X', Yo, Zo, ky, kz), a view
        yo, zo = cols.shape[2], cols.shape[3]
        # one copy, in channels-last order: (B, X', Yo, Zo, ky*kz) seen as (B, ky*kz, X', Yo, Zo)
        cols = cols.reshape(n, sx, yo, zo, ky * kz).permute(0, 4, 1, 2, 3)
        ctx.padding = list(padding)
        need_input, need_params = ctx.needs_input_grad[0], ctx.needs_input_grad[1] or ctx.needs_input_grad[2]
        ctx.save_for_backward(x if need_input else None, weight, cols if need_params else None)
        return F.conv3d(cols, _unfolded_weight(weight), bias)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, weight, cols = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(grad, x, weight, None, [1, 1, 1], ctx.padding, [1, 1, 1],
                                                         False, [0, 0, 0], 1, [True, False, False])[0]
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            w2 = _unfolded_weight(weight)
            _, grad_w2, grad_b = torch.ops.aten.convolution_backward(
                grad, cols, w2, [w2.shape[0]], [1, 1, 1], [0, 0, 0], [1, 1, 1], False, [0, 0, 0], 1,
                [False, ctx.needs_input_grad[1], ctx.needs_input_grad[2]])
            if grad_w2 is not None:
                co, (kx, ky, kz) = weight.shape[0], weight.shape[2:]
                grad_w = grad_w2.reshape(co, ky * kz, kx).transpose(1, 2).reshape(weight.shape)
        return grad_x, grad_w, grad_b, None


def _unfolded_weight(weight: torch.Tensor) -> torch.Tensor:
    """``(Co, 1, kx, ky, kz)`` -> ``(Co, ky*kz, kx, 1, 1)``, channels-last: ``weight[o, 0, a, b, c]`` multiplies
    unfolded channel ``b*kz + c`` at depth offset ``a``."""
    co, (kx, ky, kz) = weight.shape[0], weight.shape[2:]
    w = weight.reshape(co, kx, ky * kz).transpose(1, 2).reshape(co, ky * kz, kx, 1, 1)
    return w.contiguous(memory_format=CHANNELS_LAST)


def dropout_multiplier(x: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """The dropout multiplier for ``x`` (bf16 or fp16 on the CPU): ``1 / (1 - p)`` with probability ``1 - p``,
    0 with probability ``p``, independently per element, with ``x``'s dtype, shape and memory layout.

    16 random bits per element: the drop probability is ``p`` rounded to a multiple of 2^-16 (0.2 becomes
    0.199997; :class:`Dropout` uses this only where that is within 1e-4 of ``p``, relative). One 64-bit draw
    from ``generator`` (default: the global CPU generator, so ``torch.manual_seed`` fixes the masks) feeds 4
    elements; clamping, shifting and scaling the int16 values in place turns them into the bit patterns of 0 and
    ``1 / (1 - p)``. ~5x faster than ``bernoulli_``, which draws a double per element on one thread.
    """
    n = x.numel()
    draws = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device)
    draws.random_(-(2**63), None, generator=generator)  # the full 64-bit range: every bit uniform
    r = draws.view(torch.int16)[:n]
    threshold = -(2**15) + round(p * 2**16)  # r < threshold: dropped
    scale_bits = int(torch.tensor(1.0 / (1.0 - p), dtype=x.dtype).view(torch.int16))
    # {.., threshold - 1, threshold, ..} -> {threshold - 1, threshold} -> {0, 1} -> {0, bits of 1/(1-p)}
    r.clamp_(threshold - 1, threshold).sub_(threshold - 1).mul_(scale_bits)
    return r.view(x.dtype).as_strided(x.shape, x.stride())


def _fast_dropout_ok(p: float) -> bool:
    """Whether 16-bit draws realise the drop probability ``p`` to 1e-4, relative."""
    k = round(p * 2**16)
    return 0 < k < 2**16 and abs(k / 2**16 - p) <= 1e-4 * p


class Dropout(nn.Dropout):
    """``nn.Dropout`` with a faster mask for 16-bit CPU tensors (:func:`dropout_multiplier`).

    Same semantics: in training each element is zeroed with probability ``p`` and the others are scaled by
    ``1 / (1 - p)`` (the multiplier, in the input's dtype, is kept for the backward pass: ``grad * mask``); the
    identity in eval mode. Other dtypes and devices, ``inplace``, unusual ``p`` and ``torch.compile`` (whose
    graphs do not take the dtype reinterpretation) use ``nn.Dropout``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (CPU_FAST_PATHS and self.training and not self.inplace and x.device.type == "cpu"
                and not torch.compiler.is_compiling()  # compiled: the compiler's own random kernels
                and x.dtype in _HALF_FLOATS and _fast_dropout_ok(self.p)
                and (x.is_contiguous() or (x.dim() == 5 and x.is_contiguous(memory_format=CHANNELS_LAST)))):
            return x * dropout_multiplier(x, self.p)  # autograd keeps only the multiplier for the backward
        return super().forward(x)


#: Channel counts up to which :class:`BatchNorm3d` computes channels-last inputs in the NCDHW layout.
_FEW_CHANNELS = 16


class BatchNorm3d(nn.BatchNorm3d):
    """``nn.BatchNorm3d`` that is fast on channels-last CPU tensors with few channels.

    PyTorch's CPU batch norm on a channels-last (NDHWC) tensor reduces over a channel stride of only 6-8
    elements, which its kernels do poorly: the backward pass of the discriminator's 8-channel layers takes
    ~40 ms at batch 32 (~120 ms for the generator's 6-channel layer in bf16), ~12 % of a training step. The
    same kernel on the NCDHW layout takes ~5 ms, so for few channels the input is copied to NCDHW and the
    output back to channels-last (the copies cost less than they save; the 64-channel layer stays as it is).
    16-bit inputs only (fp32 keeps PyTorch's kernels bit for bit). Same parameters, buffers and mathematics as
    the parent; ``CPU_FAST_PATHS = False`` restores it exactly.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (CPU_FAST_PATHS and x.device.type == "cpu" and x.dim() == 5 and self.num_features <= _FEW_CHANNELS
                and x.dtype in _HALF_FLOATS
                and not x.is_contiguous() and x.is_contiguous(memory_format=CHANNELS_LAST)):
            return super().forward(x.contiguous()).contiguous(memory_format=CHANNELS_LAST)
        return super().forward(x)
