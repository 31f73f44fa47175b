"""Generative models: plain ``nn.Module`` pairs, built by name (see :func:`build_model`).

Tensor convention: showers are ``(B, 1, X, Y, Z)`` float tensors in GeV (Z = layer/depth
axis); conditions are the primary energy in GeV ``(B,)``, optionally theta in rad ``(B,)``
and a particle one-hot ``(B, n_particles)``.
"""

from fastshower.models import gan3d as _gan3d  # noqa: F401  (registers the 3DGAN models)
from fastshower.models import vae3d as _vae3d  # noqa: F401  (registers the conditional VAE)
from fastshower.models.angles import barycentre_angle
from fastshower.models.gan3d import (
    AngleGenerator,
    Discriminator3D,
    EnergyGenerator,
    generator_geometry,
)
from fastshower.models.registry import GanPair, available_models, build_model, register

__all__ = [
    "AngleGenerator",
    "Discriminator3D",
    "EnergyGenerator",
    "GanPair",
    "available_models",
    "barycentre_angle",
    "build_model",
    "generator_geometry",
    "register",
]
