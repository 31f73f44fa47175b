"""Nearest upsampling + zero padding + convolution as one polyphase (sub-pixel) convolution, and its helpers.

Along each axis, nearest upsampling by ``s``, zero padding ``p`` (both ends) and a valid convolution with kernel
``w`` of length ``K`` are a transposed convolution with stride ``s`` whose kernel is the flipped ``w`` convolved
with a box of length ``s`` (:func:`transposed_kernel`; the derivation is in :mod:`fastshower.models.inference`).
That transposed convolution, in polyphase form (:func:`polyphase_weight`), is an ordinary valid convolution of
the *low-resolution* input with one group of output channels per phase, followed by a depth-to-space shuffle
(:func:`to_space`): ~1/S of the multiply-adds (S = the product of the scale factors, less the box's overlap)
and no upsampled tensor. All functions are differentiable in the weight, so :func:`upsampled_conv3d` also serves
training (the gradient reaches the original convolution's weight through the derivation).
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F


def transposed_kernel(weight: torch.Tensor, scale: tuple[int, ...], pad: tuple[int, ...]) -> tuple[torch.Tensor,
                                                                                                    list[int]]:
    """Weight ``(Cin, Cout, K + s - 1)`` and padding ``c`` of the transposed convolution equal to nearest
    upsampling by ``scale``, zero padding ``pad`` and the valid convolution ``weight (Cout, Cin, K)``."""
    wt = weight.flip(2, 3, 4)
    for axis, s in enumerate(scale):
        dim = 2 + axis
        full = wt.new_zeros(*wt.shape[:dim], wt.shape[dim] + s - 1, *wt.shape[dim + 1:])
        for r in range(s):
            full.narrow(dim, r, wt.shape[dim]).add_(wt)
        wt = full
    c = [k - 1 - p for k, p in zip(weight.shape[2:], pad, strict=True)]
    if min(c) < 0:
        raise ValueError(f"zero padding {pad} is wider than kernel {tuple(weight.shape[2:])} - 1")
    return wt.transpose(0, 1), c


def polyphase_weight(wt: torch.Tensor, scale: tuple[int, ...]) -> torch.Tensor:
    """Transposed-convolution weight ``(Cin, Cout, L)`` -> ordinary convolution weight ``(S * Cout, Cin, T)``,
    output channels phase-major ``(rx, ry, rz, cout)``, ``T = ceil(L / s)``; tap ``j`` of phase ``r`` is
    ``wt[s * (T - 1 - j) + r]`` (zero beyond ``L``)."""
    cin, cout, *length = wt.shape
    taps = [math.ceil(n / s) for n, s in zip(length, scale, strict=True)]
    g = F.pad(wt, [v for a in (2, 1, 0) for v in (0, scale[a] * taps[a] - length[a])])
    g = g.reshape(cin, cout, taps[0], scale[0], taps[1], scale[1], taps[2], scale[2]).flip(2, 4, 6)
    return g.permute(3, 5, 7, 1, 0, 2, 4, 6).reshape(math.prod(scale) * cout, cin, *taps)


def phase_conv_weight(weight: torch.Tensor, scale: tuple[int, ...]) -> torch.Tensor:
    """A valid convolution ``weight (Cout, Cin, k)`` of a high-resolution grid held in phase form
    ``P[(r, cin), q]`` (cell ``s*q + r``) -> the convolution ``(S * Cout, S * Cin, E)`` of the phase tensor onto
    the output's phases (both phase-major), ``E = (s - 1 + k - 1) // s + 1`` taps."""
    cout, cin, *kernel = weight.shape
    phases = list(itertools.product(*(range(s) for s in scale)))
    index = {r: i for i, r in enumerate(phases)}
    taps = [(s - 1 + k - 1) // s + 1 for s, k in zip(scale, kernel, strict=True)]
    out = weight.new_zeros(len(phases) * cout, len(phases) * cin, *taps)
    for i, r in enumerate(phases):
        for d in itertools.product(*(range(k) for k in kernel)):
            shifted = [ra + da for ra, da in zip(r, d, strict=True)]
            source = index[tuple(v % s for v, s in zip(shifted, scale, strict=True))]
            e = [v // s for v, s in zip(shifted, scale, strict=True)]
            out[i * cout:(i + 1) * cout, source * cin:(source + 1) * cin, e[0], e[1], e[2]] += weight[:, :, *d]
    return out


def to_space(y: torch.Tensor, scale: tuple[int, ...], start: list[int], size: tuple[int, ...]) -> torch.Tensor:
    """Phase tensor ``(B, S * C, Q)`` (phase-major channels) -> grid ``(B, C, size)`` from cell ``start`` of the
    shuffled ``Q * s`` cells (a channels-last view)."""
    b, channels, qx, qy, qz = y.shape
    sx, sy, sz = scale
    c = channels // (sx * sy * sz)
    y = y.permute(0, 2, 3, 4, 1).reshape(b, qx, qy, qz, sx, sy, sz, c).permute(0, 1, 4, 2, 5, 3, 6, 7)
    y = y.reshape(b, qx * sx, qy * sy, qz * sz, c)
    (ax, ay, az), (nx, ny, nz) = start, size
    return y[:, ax:ax + nx, ay:ay + ny, az:az + nz].permute(0, 4, 1, 2, 3)


def input_pad(q_first: list[int], q_last: list[int], taps: list[int], n: tuple[int, ...] | list[int]) -> list[int]:
    """``F.pad`` argument (negative = crop) giving a polyphase convolution with ``taps`` the inputs it needs for
    the phase rows ``q_first..q_last`` of an input of size ``n``: ``x[q - taps + 1 .. q]``."""
    left = [t - 1 - a for t, a in zip(taps, q_first, strict=True)]
    right = [b - (m - 1) for b, m in zip(q_last, n, strict=True)]
    return [v for a in (2, 1, 0) for v in (left[a], right[a])]


def polyphase_layout(n_in: list[int] | tuple[int, ...], kernel: list[int] | tuple[int, ...],
                     scale: tuple[int, ...], pad: tuple[int, ...]) -> tuple[list[int], list[int], list[int]]:
    """Where the polyphase convolution of upsampling by ``scale``, zero padding ``pad`` and a valid kernel
    ``kernel`` reads and writes, for an input of size ``n_in``: the ``F.pad`` argument for the input (negative =
    crop), the first cell of the full output among the shuffled phases (for :func:`to_space`) and the output size."""
    n_out = [s * n + 2 * p - k + 1 for s, n, p, k in zip(scale, n_in, pad, kernel, strict=True)]
    c = [k - 1 - p for k, p in zip(kernel, pad, strict=True)]
    taps = [math.ceil((k + s - 1) / s) for k, s in zip(kernel, scale, strict=True)]
    q_first = [ci // s for ci, s in zip(c, scale, strict=True)]
    q_last = [(n - 1 + ci) // s for n, ci, s in zip(n_out, c, scale, strict=True)]
    start = [ci - s * a for ci, s, a in zip(c, scale, q_first, strict=True)]
    return input_pad(q_first, q_last, taps, n_in), start, n_out


def upsampled_conv3d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, scale: tuple[int, ...],
                     pad: tuple[int, ...]) -> torch.Tensor:
    """``conv3d(zero_pad(upsample_nearest(x, scale), pad), weight, bias)`` (valid, unit stride), computed as one
    polyphase convolution on ``x``; differentiable in ``x``, ``weight`` and ``bias``. The output is
    channels-last."""
    wt, _ = transposed_kernel(weight, scale, pad)
    x_pad, start, n_out = polyphase_layout(x.shape[2:], weight.shape[2:], scale, pad)
    y = F.conv3d(F.pad(x, x_pad), polyphase_weight(wt, scale),
                 None if bias is None else bias.repeat(math.prod(scale)))
    return to_space(y, scale, start, tuple(n_out)).contiguous(memory_format=torch.channels_last_3d)
