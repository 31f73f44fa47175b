"""The CUDA kernel of the GPU Monte Carlo: one thread per shower, each calling the CPU's own
:func:`fastshower.mc.transport.simulate_shower` (numba-cuda compiles that njit function for the GPU).

Importing this module needs numba-cuda (:func:`fastshower.mc.gpu.kernel` does it only when a GPU is asked for);
``cuda`` is a module global so that numba's CUDA simulator can stand in for it in tests without a GPU.
"""

from __future__ import annotations

from typing import Any

from numba import cuda, float64, int64, uint64

from fastshower.mc import transport
from fastshower.mc.gpu import simulated
from fastshower.mc.gpu_kernel_constants import STACK_CAPACITY
from fastshower.mc.transport import STACK_OVERFLOW


def _plain(value: Any) -> Any:
    """The numpy array behind one of the CUDA simulator's stand-ins for a device array (else ``value``)."""
    while hasattr(value, "_item") or hasattr(value, "_ary"):
        value = value._item if hasattr(value, "_item") else value._ary
    return value


def _simulate_shower_in_simulator(*args: Any) -> int:
    """Under the CUDA simulator the kernel runs as Python and its arrays are stand-ins that numba's CPU target
    cannot take: hand the njit kernel the arrays behind them (on a GPU the kernel calls it directly)."""
    return transport.simulate_shower(*(_plain(a) for a in args))


simulate_shower = _simulate_shower_in_simulator if simulated() else transport.simulate_shower


@cuda.jit
def shower_kernel(order, seeds, kinds, energies_MeV, x0, y0, directions, z_front, z_back, slab_mat, slab_layer,
                  half_width, half_x, half_y, pitch, values, cumulative, element_data, scalars, settings, scoring,
                  images, ledger, steps):
    """Thread ``t`` simulates shower ``order[t]``, scoring into its own float64 image ``scoring[t]`` (MeV);
    writes ``images`` (GeV, float32), ``ledger`` (MeV) and ``steps`` (:data:`STACK_OVERFLOW`: redo elsewhere)
    of that shower. Arguments as :func:`fastshower.mc.transport.simulate_batch`."""
    slot = cuda.grid(1)
    if slot >= order.shape[0]:
        return
    i = order[slot]
    state = cuda.local.array(4, uint64)
    stack_f = cuda.local.array((STACK_CAPACITY, 7), float64)
    stack_i = cuda.local.array((STACK_CAPACITY, 2), int64)
    image = scoring[slot]
    nx, ny, nz = image.shape[0], image.shape[1], image.shape[2]
    for a in range(nx):
        for b in range(ny):
            for c in range(nz):
                image[a, b, c] = 0.0
    for k in range(ledger.shape[1]):
        ledger[i, k] = 0.0
    taken = simulate_shower(seeds[i], kinds[i], energies_MeV[i], x0[i], y0[i], directions[i, 0], directions[i, 1],
                            directions[i, 2], z_front, z_back, slab_mat, slab_layer, half_width, half_x, half_y,
                            pitch, values, cumulative, element_data, scalars, settings, image, ledger[i], state,
                            stack_f, stack_i)
    steps[i] = taken
    if taken == STACK_OVERFLOW:
        return
    for a in range(nx):
        for b in range(ny):
            for c in range(nz):
                images[i, a, b, c] = image[a, b, c] / 1000.0
