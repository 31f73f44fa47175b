"""Numerical integration helpers for tabulating cross-sections."""

from __future__ import annotations

from functools import cache

import numpy as np


@cache
def gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights mapped to the unit interval [0, 1]."""
    x, w = np.polynomial.legendre.leggauss(n)
    return 0.5 * (x + 1.0), 0.5 * w
