"""Compatibility module: the data-format API, split into ``schema``, ``writer`` and ``readers``."""

from fastshower.data import *  # noqa: F403 - re-export of the package API
from fastshower.data import __all__  # noqa: F401
