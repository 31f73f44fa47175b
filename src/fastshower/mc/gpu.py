"""The Monte Carlo on an NVIDIA GPU (numba-cuda): one thread per shower, each running the CPU's own transport.

The kernel (:mod:`fastshower.mc.gpu_kernel`) is a thin launcher: every thread seeds its generator from its shower's
seed and calls :func:`fastshower.mc.transport.simulate_shower`, the very function the CPU runs. numba-cuda compiles
that njit function (and everything it calls: cross-section look-ups, samplers, the step) for the GPU, so there is
one source of physics. Each thread has its particle stack in local memory (:data:`STACK_CAPACITY` entries) and its
own float64 scoring image in global memory, so no two threads ever write the same cell (no atomics needed). Showers
run in a launch sorted by energy, so that the threads of a warp have similar amounts of work.

Design, and the numbers behind it: ``docs/gpu-mc.md``. numba-cuda, an optional extra (``pip install
'fastshower[cuda]'``), is imported only when a GPU is asked for.
"""

from __future__ import annotations

import math
import os
import threading
from typing import Any

import numpy as np

from fastshower.errors import ConfigError
from fastshower.mc import transport
from fastshower.mc.gpu_kernel_constants import STACK_CAPACITY  # noqa: F401  (re-exported)

#: Threads per block: one warp. The kernel needs 176 registers a thread (ptxas -v for sm_90, no spills), so an SM
#: holds 11 warps; one-warp blocks fill all 11 and let a finished warp be replaced alone (docs/gpu-mc.md).
THREADS_PER_BLOCK = 32
#: Default number of showers per launch: an H100/H200 holds ~46,000 threads of this kernel (132 SMs x 11 warps x
#: 32), and a launch should keep it full while its slowest warps finish; 65,536 showers use 8 GB of float64 scoring
#: images and 4 GB of float32 results on the device.
DEFAULT_SHOWERS_PER_LAUNCH = 65536

_KERNEL: Any = None
_KERNEL_LOCK = threading.Lock()


def simulated() -> bool:
    """True when numba's CUDA simulator stands in for a GPU (``NUMBA_ENABLE_CUDASIM=1``: tests without a GPU)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def require_cuda() -> Any:
    """The ``numba.cuda`` module, or a one-line ``ConfigError`` saying why the GPU cannot be used."""
    try:
        from numba import cuda
    except ImportError:
        raise ConfigError("device cuda needs the optional extra: pip install 'fastshower[cuda]'") from None
    try:
        available = bool(cuda.is_available())
    except Exception:  # a broken driver or toolkit installation reports itself in many ways
        available = False
    if not available:
        raise ConfigError("device cuda: no CUDA GPU is available on this machine (numba-cuda finds no device "
                          "or driver); use --device cpu")
    return cuda


def kernel() -> Any:
    """The shower kernel, compiled once per process (the first launch compiles it for the GPU present)."""
    global _KERNEL
    with _KERNEL_LOCK:
        if _KERNEL is None:
            require_cuda()
            from fastshower.mc.gpu_kernel import shower_kernel  # compiled at the first launch

            _KERNEL = shower_kernel
        return _KERNEL


def launch_order(energies_MeV: np.ndarray, kinds: np.ndarray) -> np.ndarray:
    """Thread -> shower map of one launch: by kind, then by falling energy (neighbouring threads of a warp get
    showers of similar length). Only the threads' order depends on it, never a shower's result."""
    return np.lexsort((-np.asarray(energies_MeV), np.asarray(kinds))).astype(np.int64)


class GpuTransport:
    """The geometry and tables of one :class:`~fastshower.mc.simulator.Simulator` in GPU memory, and the
    launches that simulate showers with them."""

    def __init__(self, constants: dict[str, Any], cell_shape: tuple[int, int, int],
                 showers_per_launch: int = DEFAULT_SHOWERS_PER_LAUNCH) -> None:
        if int(showers_per_launch) < 1:
            raise ConfigError(f"showers per launch {showers_per_launch}: must be >= 1")
        self.cuda = require_cuda()
        self.showers_per_launch = int(showers_per_launch)
        self.cell_shape = tuple(int(n) for n in cell_shape)
        self._host_constants = constants
        self._constants: dict[str, Any] | None = None
        self._scoring: Any = None

    @property
    def constants(self) -> dict[str, Any]:
        """Geometry, tables and settings on the device, copied at the first launch (so that a process that forks
        CPU workers holds no GPU memory yet): scalars travel as kernel arguments, arrays once to the device."""
        if self._constants is None:
            self._constants = {key: (self.cuda.to_device(np.ascontiguousarray(value)) if isinstance(value, np.ndarray)
                                     else value) for key, value in self._host_constants.items()}
        return self._constants

    def run(self, seeds: np.ndarray, kinds: np.ndarray, energies_MeV: np.ndarray, x0: np.ndarray, y0: np.ndarray,
            directions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Images (GeV, float32), ledger (MeV) and steps of the showers, in launches of at most
        ``showers_per_launch``; a shower whose stack overflowed has ``steps == STACK_OVERFLOW`` (to be redone)."""
        n = int(seeds.shape[0])
        images = np.zeros((n, *self.cell_shape), dtype=np.float32)
        ledger = np.zeros((n, transport.N_LEDGER))
        steps = np.zeros(n, dtype=np.int64)
        for start in range(0, n, self.showers_per_launch):
            stop = min(start + self.showers_per_launch, n)
            part = slice(start, stop)
            images[part], ledger[part], steps[part] = self._launch(
                seeds[part], kinds[part], energies_MeV[part], x0[part], y0[part], directions[part])
        return images, ledger, steps

    def _launch(self, seeds: np.ndarray, kinds: np.ndarray, energies_MeV: np.ndarray, x0: np.ndarray,
                y0: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        try:
            return self._launch_on_device(seeds, kinds, energies_MeV, x0, y0, directions)
        except Exception as exc:
            if "OUT_OF_MEMORY" in str(exc).upper():  # the scoring images of a launch did not fit
                raise ConfigError(f"GPU out of memory for {int(seeds.shape[0])} showers per launch "
                                  "(float64 scoring image per shower): lower --showers-per-launch") from None
            raise

    def _launch_on_device(self, seeds: np.ndarray, kinds: np.ndarray, energies_MeV: np.ndarray, x0: np.ndarray,
                          y0: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cuda, c, n = self.cuda, self.constants, int(seeds.shape[0])
        order = launch_order(energies_MeV, kinds)
        if self._scoring is None or self._scoring.shape[0] < n:
            self._scoring = cuda.device_array((n, *self.cell_shape), dtype=np.float64)
        images = cuda.device_array((n, *self.cell_shape), dtype=np.float32)
        ledger = cuda.device_array((n, transport.N_LEDGER), dtype=np.float64)
        steps = cuda.device_array(n, dtype=np.int64)
        arrays = [cuda.to_device(np.ascontiguousarray(a)) for a in
                  (order, seeds.astype(np.uint64), kinds.astype(np.int64), energies_MeV.astype(np.float64),
                   x0.astype(np.float64), y0.astype(np.float64), directions.astype(np.float64))]
        blocks = math.ceil(n / THREADS_PER_BLOCK)
        kernel()[blocks, THREADS_PER_BLOCK](*arrays, *c.values(), self._scoring, images, ledger, steps)
        cuda.synchronize()
        return images.copy_to_host(), ledger.copy_to_host(), steps.copy_to_host()


def kernel_signature(constants: dict[str, Any], cell_shape: tuple[int, int, int]) -> tuple[Any, ...]:
    """numba types of the kernel's arguments for these constants (as :meth:`GpuTransport._launch` passes them)."""
    from numba import typeof

    def array(dtype: Any, ndim: int) -> Any:
        return typeof(np.zeros((1,) * ndim, dtype=dtype))

    per_shower = (array(np.int64, 1), array(np.uint64, 1), array(np.int64, 1), array(np.float64, 1),
                  array(np.float64, 1), array(np.float64, 1), array(np.float64, 2))
    fixed = tuple(typeof(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else typeof(float(v))
                  for v in constants.values())
    outputs = (array(np.float64, 1 + len(cell_shape)), array(np.float32, 1 + len(cell_shape)),
               array(np.float64, 2), array(np.int64, 1))
    return per_shower + fixed + outputs


def compile_ptx(constants: dict[str, Any], cell_shape: tuple[int, int, int],
                compute_capability: tuple[int, int] = (9, 0)) -> str:
    """PTX of the shower kernel for a GPU of ``compute_capability`` (default: Hopper, H100/H200), compiled here
    without a GPU (needs numba-cuda and the CUDA toolkit's NVVM: ``fastshower[cuda]``). The proof, on a machine
    without a GPU, that the whole transport compiles for one; ``ptxas -v`` on it gives registers and stack.

    numba-cuda asks the current device for its compute capability when it compiles the device functions a
    kernel calls; for the time of the compilation it is answered with ``compute_capability`` instead.
    """
    from types import SimpleNamespace

    import numba.cuda.dispatcher as dispatcher
    from numba import cuda

    from fastshower.mc import gpu_kernel

    asked = dispatcher.get_current_device
    dispatcher.get_current_device = lambda: SimpleNamespace(compute_capability=tuple(compute_capability))
    try:
        ptx, _ = cuda.compile_ptx(gpu_kernel.shower_kernel.py_func, kernel_signature(constants, cell_shape),
                                  cc=tuple(compute_capability))
    finally:
        dispatcher.get_current_device = asked
    return ptx
