"""Analytic shower-angle estimate from the energy barycentre."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def barycentre_angle(
    showers: torch.Tensor,
    pitch_mm: float,
    layer_depths_mm: float | Sequence[float] | torch.Tensor,
) -> torch.Tensor:
    """Inclination of each shower in the y-z plane, in rad, shape ``(B,)``.

    ``showers`` is ``(B, 1, X, Y, Z)`` or ``(B, X, Y, Z)`` (Z = layer axis). For each layer the
    centre of energy in y is ``sum_y y E / sum_y E`` with cell centres ``y_j = j * pitch_mm``;
    a straight line ``y = a + slope * z`` is fitted over the layers by least squares weighted
    with the layer energy (empty layers get weight 0), and ``atan(slope)`` is returned.

    ``layer_depths_mm`` is the depth of each layer's centre (``Z`` values) or, as a number, a
    uniform layer spacing (depths ``k * spacing``).

    Convention: 0 is normal incidence (shower along +z); the angle is positive when the shower
    moves towards larger y index with depth. It is the inclination from the layer normal, not a
    polar angle measured from the beam axis (for a barrel calorimeter at normal incidence the
    polar angle is pi/2, i.e. polar = pi/2 -/+ this value depending on orientation).
    Showers with energy in fewer than two layers give NaN.
    """
    if showers.dim() == 5:
        showers = showers[:, 0]
    if showers.dim() != 4:
        raise ValueError(f"showers: shape {tuple(showers.shape)} but (B, [1,] X, Y, Z) is required")
    e = showers.to(torch.float64).sum(dim=1)  # (B, Y, Z): project out x
    n_y, n_z = e.shape[1], e.shape[2]
    if isinstance(layer_depths_mm, int | float):
        z = torch.arange(n_z, dtype=torch.float64) * float(layer_depths_mm)
    else:
        z = torch.as_tensor(layer_depths_mm, dtype=torch.float64).reshape(-1)
    if z.numel() != n_z:
        raise ValueError(f"layer_depths_mm: {z.numel()} depths for {n_z} layers")
    z = z.to(e.device)
    y = torch.arange(n_y, dtype=torch.float64, device=e.device) * float(pitch_mm)

    w = e.sum(dim=1)  # (B, Z) layer energy
    safe = torch.where(w > 0, w, torch.ones_like(w))
    yc = (e * y[None, :, None]).sum(dim=1) / safe  # (B, Z) centre of energy per layer
    sw = w.sum(dim=1)
    zbar = (w * z).sum(dim=1) / sw
    ybar = (w * yc).sum(dim=1) / sw
    dz = z[None, :] - zbar[:, None]
    sxx = (w * dz * dz).sum(dim=1)
    sxy = (w * dz * (yc - ybar[:, None])).sum(dim=1)
    slope = sxy / sxx
    n_used = (w > 0).sum(dim=1)
    angle = torch.atan(slope)
    angle = torch.where(n_used >= 2, angle, torch.full_like(angle, float("nan")))
    return angle.to(showers.dtype if showers.is_floating_point() else torch.float32)
