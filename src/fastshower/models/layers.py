"""Layers shared by the architectures."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Conv3d(nn.Conv3d):
    """``nn.Conv3d`` that stays correct under CPU bf16 autocast.

    oneDNN 3.12 (PyTorch 2.13 CPU) returns wrong bf16 forward results for 3D convolutions with exactly 8 input
    channels and a kernel depth of 8 — the first layer of the 3DGAN generator (correlation with fp32 ~0; the
    backward pass is fine). Adding one zero input channel (and a zero weight slice) gives the identical
    mathematical result through a correct kernel, at ~12 % extra cost for that layer only.
    ``tests/test_models.py`` checks bf16 against fp32 for the whole generator.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.device.type == "cpu" and torch.is_autocast_enabled("cpu") and self.in_channels == 8
                and self.kernel_size[2] == 8 and self.groups == 1 and self.padding_mode == "zeros"):
            dtype = torch.get_autocast_dtype("cpu")
            weight = F.pad(self.weight, (0, 0, 0, 0, 0, 0, 0, 1)).to(dtype)
            bias = None if self.bias is None else self.bias.to(dtype)
            return F.conv3d(F.pad(x.to(dtype), (0, 0, 0, 0, 0, 0, 0, 1)), weight, bias, self.stride, self.padding,
                            self.dilation)
        return super().forward(x)
