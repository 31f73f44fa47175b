"""Name -> model-builder registry.

A builder is a function ``builder(cell_shape, **options) -> GanPair`` registered with
:func:`register`. :func:`build_model` looks it up by name and turns unknown names into a
:class:`~fastshower.errors.ConfigError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from fastshower.errors import ConfigError


@dataclass
class GanPair:
    """A model's two networks built for one cell grid: the ``generator`` that makes showers and the network it is
    trained with (a GAN's discriminator, a VAE's encoder)."""

    generator: nn.Module
    discriminator: nn.Module
    latent_dim: int
    config: dict[str, Any] = field(default_factory=dict)
    """The options actually used (defaults filled in), without name and cell shape."""
    name: str = ""
    cell_shape: tuple[int, int, int] = (0, 0, 0)
    objective: str = "adversarial"
    """What training optimises (``fastshower.train.objectives``): ``adversarial`` (a GAN: ``discriminator`` is the
    critic) or ``vae`` (``generator`` is the decoder, ``discriminator`` the encoder)."""


Builder = Callable[..., GanPair]
_REGISTRY: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    """Decorator registering ``builder(cell_shape, **options) -> GanPair`` under ``name``."""

    def deco(fn: Builder) -> Builder:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(f"model '{name}': registered twice")
        _REGISTRY[name] = fn
        return fn

    return deco


def available_models() -> list[str]:
    """Sorted names of the registered models."""
    return sorted(_REGISTRY)


def build_model(name: str, cell_shape: tuple[int, int, int], **options: Any) -> GanPair:
    """Build the model ``name`` for showers of shape ``(B, 1, *cell_shape)``."""
    try:
        builder = _REGISTRY[name]
    except KeyError:
        known = ", ".join(available_models())
        raise ConfigError(f"model '{name}': unknown (known: {known})") from None
    pair = builder(tuple(cell_shape), **options)
    pair.name = name
    return pair
