"""Explicit-state random numbers for the numba kernels: xoshiro256** seeded through splitmix64.

Every shower gets its own 64-bit seed (derived from the run seed and the shower index), so the output does not
depend on how showers are split between workers. Reference: Blackman & Vigna, "Scrambled linear
pseudorandom number generators", ACM TOMS 47 (2021) 36.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, uint64

_MASK = 0xFFFFFFFFFFFFFFFF


def shower_seeds(seed: int, first: int, count: int) -> np.ndarray:
    """64-bit seeds of showers ``first .. first+count-1`` of a run with ``seed`` (independent of batching)."""
    out = np.empty(count, dtype=np.uint64)
    for i in range(count):
        state = np.random.SeedSequence([int(seed), first + i]).generate_state(2, dtype=np.uint64)
        out[i] = state[0] ^ (state[1] << np.uint64(1))
    return out


@njit(cache=True, inline="always")
def _rotl(x: np.uint64, k: int) -> np.uint64:
    return (x << uint64(k)) | (x >> uint64(64 - k))


@njit(cache=True)
def rng_init(seed: np.uint64) -> np.ndarray:
    """A fresh xoshiro256** state (4 x uint64) from one 64-bit seed via splitmix64 (CPU: allocates)."""
    state = np.empty(4, dtype=np.uint64)
    rng_seed(state, seed)
    return state


@njit(cache=True, inline="always")
def rng_seed(state: np.ndarray, seed: np.uint64) -> None:
    """Fill ``state`` (4 x uint64, the caller's: a GPU thread cannot allocate) from one 64-bit seed via
    splitmix64."""
    z = uint64(seed)
    for i in range(4):
        z = z + uint64(0x9E3779B97F4A7C15)
        x = z
        x = (x ^ (x >> uint64(30))) * uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> uint64(27))) * uint64(0x94D049BB133111EB)
        state[i] = x ^ (x >> uint64(31))


@njit(cache=True, inline="always")
def rand(state: np.ndarray) -> float:
    """A uniform double in (0, 1): never exactly 0, so ``log(rand(s))`` is always finite."""
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    result = _rotl(s1 * uint64(5), 7) * uint64(9)
    t = s1 << uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    state[0], state[1], state[2], state[3] = s0, s1, s2, s3
    return ((result >> uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)


@njit(cache=True, inline="always")
def rand_normal(state: np.ndarray) -> float:
    """A standard normal deviate (Box-Muller, one of the pair)."""
    return math.sqrt(-2.0 * math.log(rand(state))) * math.cos(2.0 * math.pi * rand(state))


@njit(cache=True)
def rand_poisson(state: np.ndarray, mean: float) -> int:
    """A Poisson deviate: multiplication method for small means, rounded normal above 30."""
    if mean <= 0.0:
        return 0
    if mean > 30.0:
        n = int(mean + math.sqrt(mean) * rand_normal(state) + 0.5)
        return n if n > 0 else 0
    limit = math.exp(-mean)
    n = 0
    product = rand(state)
    while product > limit:
        n += 1
        product *= rand(state)
    return n
