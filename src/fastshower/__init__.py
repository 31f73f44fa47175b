"""fastshower: fast simulation of calorimeter showers with deep learning, and the detailed Monte Carlo that
trains and validates it."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fastshower")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "load"]


def load(model: str, device: str = "cpu"):  # noqa: ANN201 - avoids importing torch at package import
    """Load a trained generator (bundle path or shipped model name); see :func:`fastshower.generate.load`.

    >>> sampler = fastshower.load("3dgan-clic-electrons")            # doctest: +SKIP
    >>> showers = sampler.sample(energy=100.0, n=10, seed=1)         # (10, 25, 25, 25) in GeV
    """
    from fastshower.generate import load as _load

    return _load(model, device=device)
