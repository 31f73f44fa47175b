"""A fast, eval-only rewrite of the 3DGAN generator: the same function, up to float rounding.

:func:`inference_generator` turns a trained :class:`~fastshower.models.gan3d.EnergyGenerator` or
:class:`~fastshower.models.gan3d.AngleGenerator` into an :class:`InferenceGenerator` with derived weights; the
generator itself (parameters, ``state_dict``, training) is untouched. Three exact rewrites:

1. **Dense + reshape + 'same' zero padding + first Conv3D** are one affine map of the Dense input (no
   nonlinearity in between, and zero padding is linear): one matrix ``(dense_in, 64 * sx * sy * sz)`` and a bias,
   built by pushing the Dense weight's rows (and its bias) through the padding and the convolution (in fp32, the
   rounding of one fp32 forward pass). ~5 M multiply-adds per shower instead of ~58 M for 25^3. Used while the
   matrix stays below ``max_stem_elements``; beyond that (large grids) the Dense layer and the convolution run
   as they are.

2. **Nearest upsampling by s, zero padding p (both ends), valid Conv3D with kernel w of length K** is, along
   each axis, a transposed convolution with stride ``s``: with ``u[j] = x[j // s]``,
   ``out[o] = sum_k w[k] u_pad[o + k] = sum_i x[i] * Wt[o + c - s*i]`` where ``c = K - 1 - p`` and
   ``Wt[t] = sum_{r=0}^{s-1} wf[t - r]`` (``wf`` is ``w`` flipped, out-of-range taps are 0): the 'full'
   convolution of the flipped kernel with a box of length ``s``, length ``K + s - 1``. (Substitute
   ``k = s*i + r + p - o``; then ``w[k] = wf[t - r]`` with ``t = o + c - s*i``.) Here ``c >= 0`` for both
   upsampling layers, whatever the grid. That transposed convolution is then evaluated in **polyphase** form
   (sub-pixel convolution): writing ``o + c = s*q + r``, ``out[o] = sum_j x[q - T + 1 + j] * Wt[s*(T-1-j) + r]``
   with ``T = ceil((K + s - 1) / s)`` taps: an ordinary valid convolution on the *low-resolution* input with
   ``s_x * s_y * s_z`` times more output channels (one per phase ``r``), followed by a depth-to-space shuffle
   and a crop. For 25^3 the first upsampling convolution costs ~45 M instead of ~151 M multiply-adds per shower,
   the second ~14 M instead of ~46 M, and no upsampled tensor is ever built.

3. **The last Conv3D (2x2x2, one output channel)** reads the second upsampled convolution's output, which is
   kept in phase form ``P[r, q]``: the high-resolution cell ``o + c = s*q + r`` shifted by ``d`` is phase
   ``(r + d) % s`` at ``q + (r + d) // s``, so the convolution is an ordinary 2x2x2 convolution of the phase
   tensor (phase-mapped, mostly zero weights) onto one output channel per output phase; only the final
   one-channel shower is shuffled to the grid. The phase grids are chosen so that exactly the cells of the
   centre-cropped target are produced; cells outside it may read extra (finite) phase entries, but only
   through zero weights. ~11 M multiply-adds (most of them by zero) instead of 0.75 M, but measured faster than
   shuffling the six-channel high-resolution tensor first. In all, 74 M instead of 254 M multiply-adds per 25^3
   shower.

LeakyReLU acts cell by cell, so it is applied to the phase tensors as they are. Eval-mode BatchNorm is the
per-channel affine map ``x * scale + shift`` and stays where it is (folding its shift into the next convolution
would not be exact next to the zero padding). Everything runs in channels-last layout (oneDNN's preferred one),
with weights stored in the module's dtype (no per-call autocast casts); bf16 follows what autocast does: bf16
inputs and weights, fp32 accumulation inside the kernels. The first layer's oneDNN bf16 bug (8 input channels,
kernel depth 8; see :class:`fastshower.models.layers.Conv3d`) does not arise with the fused stem; the unfused
stem adds a zero input channel in reduced precision, as that class does.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fastshower.models.gan3d import _GeneratorBase
from fastshower.models.polyphase import (
    input_pad,
    phase_conv_weight,
    polyphase_layout,
    polyphase_weight,
    to_space,
    transposed_kernel,
)

MAX_STEM_ELEMENTS = 1 << 24  # largest fused Dense+Conv3D matrix (64 MiB in fp32)
_CL = torch.channels_last_3d


def _conv3d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Valid, unit-stride 3D convolution. PyTorch sends fp32 CPU batch-1 convolutions with small kernels to its
    slow reference kernel instead of oneDNN (3x slower here): ask oneDNN directly in that case."""
    if (not torch.compiler.is_compiling() and x.shape[0] == 1 and x.dtype == torch.float32
            and x.device.type == "cpu" and torch.backends.mkldnn.is_available()):
        return torch.mkldnn_convolution(x, weight, bias, [0, 0, 0], [1, 1, 1], [1, 1, 1], 1)
    return F.conv3d(x, weight, bias)


def _zero_padding(pad: nn.Module, conv: nn.Conv3d) -> list[tuple[int, int]]:
    """Per-axis (before, after) zero padding seen by ``conv``: an explicit pad layer (or ``nn.Identity``) plus
    the convolution's own symmetric padding."""
    if isinstance(pad, nn.Identity):
        explicit = [(0, 0)] * 3
    elif isinstance(pad, nn.ConstantPad3d) and pad.value == 0.0:
        z0, z1, y0, y1, x0, x1 = pad.padding
        explicit = [(x0, x1), (y0, y1), (z0, z1)]
    else:
        raise TypeError(f"inference_generator: {pad} is not a zero padding")
    if isinstance(conv.padding, str) or conv.padding_mode != "zeros":
        raise TypeError(f"inference_generator: unsupported padding of {conv}")
    return [(a + p, b + p) for (a, b), p in zip(explicit, conv.padding, strict=True)]


def _parse_trunk(trunk: nn.Sequential) -> dict[str, Any]:
    """The generator's layer list (see :mod:`fastshower.models.gan3d`) as the numbers the rewrite needs."""
    kinds = [nn.Module, nn.Conv3d, nn.LeakyReLU, nn.BatchNorm3d, nn.Upsample, nn.Module, nn.Conv3d, nn.LeakyReLU,
             nn.BatchNorm3d, nn.Upsample, nn.Module, nn.Conv3d, nn.LeakyReLU, nn.Conv3d, nn.ReLU]
    if len(trunk) != len(kinds) or not all(isinstance(m, k) for m, k in zip(trunk, kinds, strict=True)):
        raise TypeError("inference_generator: unexpected generator layer list (see fastshower.models.gan3d)")
    convs = [trunk[i] for i in (1, 6, 11, 13)]
    if any(c.groups != 1 or set(c.stride) != {1} or set(c.dilation) != {1} for c in convs):
        raise TypeError("inference_generator: strided, dilated or grouped convolutions are not supported")
    spec: dict[str, Any] = {"pad1": _zero_padding(trunk[0], convs[0]), "convs": convs,
                            "slopes": [float(trunk[i].negative_slope) for i in (2, 7, 12)], "bns": [trunk[3], trunk[8]]}
    for name, i in (("up2", 4), ("up3", 9)):
        up = trunk[i]
        scale = up.scale_factor if isinstance(up.scale_factor, tuple) else (up.scale_factor,) * 3
        pad = _zero_padding(trunk[i + 1], trunk[i + 2])
        if (up.mode != "nearest" or up.size is not None or any(float(f) != int(f) or f < 1 for f in scale)
                or any(a != b for a, b in pad)):
            raise TypeError(f"inference_generator: layers {i}-{i + 2} are not upsampling, symmetric zero padding and "
                            "a convolution")
        spec[name] = (tuple(int(f) for f in scale), tuple(a for a, _ in pad))
    if any(bn.running_var is None for bn in spec["bns"]) or convs[3].bias is not None or any(convs[3].padding):
        raise TypeError("inference_generator: unexpected BatchNorm or last convolution")
    return spec


class InferenceGenerator(nn.Module):
    """Eval-only 3DGAN generator with derived weights (see the module docstring); same call as the generator it
    was built from, output ``(B, 1, X, Y, Z)`` in ``dtype``. Build it with :func:`inference_generator`; rebuild
    it after the generator's weights change."""

    def __init__(self, generator: _GeneratorBase, dtype: torch.dtype = torch.float32,
                 max_stem_elements: int = MAX_STEM_ELEMENTS) -> None:
        super().__init__()
        spec = _parse_trunk(generator.trunk)
        self.dtype = dtype
        self.cell_shape: tuple[int, int, int] = tuple(generator.cell_shape)  # type: ignore[assignment]
        self.start_shape: tuple[int, int, int] = tuple(generator.start_shape)  # type: ignore[assignment]
        self.latent_dim = generator.latent_dim
        # bound methods: conditions checked, and the output finished, as by the generator
        self._prepare, self._finish = generator.prepare, generator.finish
        self.slope = spec["slopes"]
        with torch.no_grad():
            self._build(generator, spec, max_stem_elements)
        self.to(device=next(generator.parameters()).device)

    def _register(self, name: str, tensor: torch.Tensor, channels_last: bool = False) -> None:
        tensor = tensor.to(self.dtype)
        self.register_buffer(name, tensor.contiguous(memory_format=_CL) if channels_last else tensor.contiguous(),
                             persistent=False)

    def _build(self, generator: _GeneratorBase, spec: dict[str, Any], max_stem_elements: int) -> None:
        def f64(t: torch.Tensor) -> torch.Tensor:
            return t.detach().to("cpu", torch.float64)

        conv1, conv2, conv3, conv4 = spec["convs"]
        sx, sy, sz = self.start_shape
        dense, c0 = generator.dense, conv1.in_channels
        same_pad = [v for a in (2, 1, 0) for v in spec["pad1"][a]]  # F.pad order
        # 1. stem: Dense -> reshape (Keras channels-last order) -> 'same' zero padding -> Conv3D, fused if not too big
        self.fused_stem = dense.in_features * conv1.out_channels * sx * sy * sz <= max_stem_elements
        if self.fused_stem:
            # in fp32 (oneDNN; float64 takes seconds): the rounding of an fp32 forward pass through these layers
            def stem(x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
                x = F.pad(x.view(-1, sx, sy, sz, c0).permute(0, 4, 1, 2, 3), same_pad)
                x = F.conv3d(x, conv1.weight.detach().float().cpu(), bias)
                return x.permute(0, 2, 3, 4, 1).reshape(x.shape[0], -1)  # columns in channels-last order

            self._register("stem_weight", stem(dense.weight.detach().float().cpu().t(), None))
            self._register("stem_bias", stem(dense.bias.detach().float().cpu(), conv1.bias.detach().float().cpu())[0])
        else:
            # a zero extra input channel in reduced precision: oneDNN's bf16 Conv3d is wrong for 8 channels, kz = 8
            extra = 0 if self.dtype == torch.float32 else 1
            w = f64(dense.weight).view(sx, sy, sz, c0, dense.in_features)
            self._register("dense_weight", F.pad(w, (0, 0, 0, extra)).reshape(-1, dense.in_features))
            self._register("dense_bias", F.pad(f64(dense.bias).view(-1, c0), (0, extra)).reshape(-1))
            self._register("conv1_weight", F.pad(f64(conv1.weight), (0, 0, 0, 0, 0, 0, 0, extra)), True)
            self._register("conv1_bias", f64(conv1.bias))
            self.same_pad = same_pad
        # BatchNorm (eval): x * scale + shift per channel
        for name, bn in zip(("bn1", "bn2"), spec["bns"], strict=True):
            scale = f64(bn.weight) / torch.sqrt(f64(bn.running_var) + bn.eps)
            self._register(f"{name}_scale", scale.view(-1, 1, 1, 1))
            self._register(f"{name}_shift", (f64(bn.bias) - f64(bn.running_mean) * scale).view(-1, 1, 1, 1))
        # 2. first upsampling convolution, polyphase; produces exactly its natural output (the next one's input)
        (s2, p2), (s3, p3) = spec["up2"], spec["up3"]
        n1 = self.start_shape
        wt, _ = transposed_kernel(f64(conv2.weight), s2, p2)
        self._register("conv2_weight", polyphase_weight(wt, s2), True)
        self._register("conv2_bias", f64(conv2.bias).repeat(math.prod(s2)))
        self.pad2, self.start2, n2 = polyphase_layout(n1, conv2.kernel_size, s2, p2)
        self.scale2, self.size2 = s2, n2
        # 3. second upsampling convolution, polyphase, kept in phase form for the last convolution, whose outputs
        #    o4 = offset .. offset + X - 1 (the centre crop) lie on the phase rows (o4 + c3) // s3
        wt, c3 = transposed_kernel(f64(conv3.weight), s3, p3)
        w3 = polyphase_weight(wt, s3)
        w4 = phase_conv_weight(f64(conv4.weight), s3)
        offset = generator._offset
        q_first = [(o + c) // s for o, c, s in zip(offset, c3, s3, strict=True)]
        q_last = [(o + n - 1 + c) // s for o, n, c, s in zip(offset, self.cell_shape, c3, s3, strict=True)]
        self._register("conv3_weight", w3, True)
        self._register("conv3_bias", f64(conv3.bias).repeat(math.prod(s3)))
        self._register("conv4_weight", w4, True)
        q_needed = [b + e - 1 for b, e in zip(q_last, w4.shape[2:], strict=True)]  # + the last convolution's taps
        self.pad3 = input_pad(q_first, q_needed, list(w3.shape[2:]), n2)
        self.scale3, self.start4 = s3, [o + c - s * a for o, c, s, a in zip(offset, c3, s3, q_first, strict=True)]

    def forward(self, noise: torch.Tensor, energy_GeV: float | torch.Tensor, theta: Any = None,
                particle: torch.Tensor | None = None) -> torch.Tensor:
        h, state = self._prepare(noise, energy_GeV, theta, particle)
        h = h.to(self.dtype)
        b = h.shape[0]
        sx, sy, sz = self.start_shape
        if self.fused_stem:
            x = torch.addmm(self.stem_bias, h, self.stem_weight).view(b, sx, sy, sz, -1).permute(0, 4, 1, 2, 3)
        else:
            x = F.linear(h, self.dense_weight, self.dense_bias).view(b, sx, sy, sz, -1).permute(0, 4, 1, 2, 3)
            x = _conv3d(F.pad(x, self.same_pad), self.conv1_weight, self.conv1_bias)
        x = torch.addcmul(self.bn1_shift, F.leaky_relu(x, self.slope[0]), self.bn1_scale)
        y = F.leaky_relu_(_conv3d(F.pad(x, self.pad2), self.conv2_weight, self.conv2_bias), self.slope[1])
        x = torch.addcmul(self.bn2_shift, to_space(y, self.scale2, self.start2, self.size2), self.bn2_scale)
        y = F.leaky_relu_(_conv3d(F.pad(x, self.pad3), self.conv3_weight, self.conv3_bias), self.slope[2])
        y = F.relu_(_conv3d(y, self.conv4_weight))
        return self._finish(to_space(y, self.scale3, self.start4, self.cell_shape), state)


def inference_generator(generator: _GeneratorBase, dtype: torch.dtype = torch.float32,
                        max_stem_elements: int = MAX_STEM_ELEMENTS) -> InferenceGenerator:
    """The fast eval-mode equivalent of a 3DGAN generator (``EnergyGenerator`` or ``AngleGenerator``), with its
    weights in ``dtype`` (``torch.float32`` or ``torch.bfloat16``), on the generator's device; BatchNorm uses
    the running statistics whatever the generator's mode. Call it like the generator, without autocast."""
    return InferenceGenerator(generator, dtype, max_stem_elements).eval()
