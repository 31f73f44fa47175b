"""Exceptions that the command line turns into one-line messages (no traceback)."""

from __future__ import annotations


class FastshowerError(Exception):
    """Base class of the errors a user can cause: bad input files, bad configuration, bad arguments.

    The message must name the thing at fault and the problem in one line, e.g.
    ``"train.h5: dataset 'ECAL' has shape (10, 25, 25) but (N, nx, ny, nz) is required"``.
    """


class ConfigError(FastshowerError, ValueError):
    """A configuration value, preset name or command-line argument is invalid."""


class DataFormatError(FastshowerError, ValueError):
    """A data file is missing, truncated, or does not follow the expected layout."""


class WorkerError(FastshowerError, RuntimeError):
    """A worker process died (killed by the system, out of memory, ...) or could not report its result."""
