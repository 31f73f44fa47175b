"""fastshower: fast simulation of calorimeter showers with deep learning, and the detailed Monte Carlo that
trains and validates it."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fastshower")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
