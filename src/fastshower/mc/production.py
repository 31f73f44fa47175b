"""Production of shower samples with the Monte Carlo: primaries from a request, chunks, parallel workers.

This module yields :class:`~fastshower.mc.simulator.ShowerBatch` objects; writing them to disk is the
caller's job (the data layer sits above the Monte Carlo, so nothing here imports ``fastshower.data``).

Reproducibility: every shower ``i`` of a run is simulated from its own seed ``shower_seeds(seed, i, 1)``, and
the primaries of the whole run are drawn at once from a generator seeded by the run seed only. The output is
therefore bit-identical whatever the number of workers, the scheduler or the chunking, and a resumed run
reproduces exactly the showers an uninterrupted one would have made.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fastshower.errors import ConfigError
from fastshower.geometry import Calorimeter
from fastshower.mc.pool import SideResults, imap_unordered
from fastshower.mc.rng import shower_seeds
from fastshower.mc.settings import PhysicsSettings
from fastshower.mc.simulator import PARTICLES, Primaries, ShowerBatch, Simulator, check_device, pdg_code

logger = logging.getLogger(__name__)

#: Default number of showers per chunk: small enough for a smooth progress bar and a granular resume.
DEFAULT_CHUNK_SIZE = 64
#: Second word of the seed sequence of the primaries' draws (the showers use other streams).
_PRIMARIES_STREAM = 0xE1
#: Chunks submitted to a dask worker ahead of completion (bounds the memory held by finished, unread results).
_IN_FLIGHT_PER_WORKER = 4


# --- value specifications ----------------------------------------------------------------------------


def _fmt(value: float) -> str:
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


@dataclass(frozen=True)
class ValueSpec:
    """How a per-shower quantity is chosen: ``fixed`` (one value), ``uniform`` in ``[values[0], values[1]]``,
    ``log-uniform`` there (flat in the logarithm: as many showers per factor of energy at the low edge as at the
    high one), or ``list``: shower ``i`` gets ``values[i % len(values)]`` (equal shares, deterministic)."""

    kind: str
    values: tuple[float, ...]

    @property
    def spec(self) -> str:
        """Normalised text of the specification (``"10"``, ``"10:510"``, ``"10:510:log"``, ``"10,50,100"``)."""
        sep = ":" if self.kind in ("uniform", "log-uniform") else ","
        text = sep.join(_fmt(v) for v in self.values)
        return text + ":log" if self.kind == "log-uniform" else text

    def __str__(self) -> str:
        return self.spec

    @property
    def low(self) -> float:
        """Smallest value the specification can produce."""
        return min(self.values)

    @property
    def high(self) -> float:
        """Largest value the specification can produce."""
        return max(self.values)

    def sample(self, n: int, uniforms: np.ndarray) -> np.ndarray:
        """``n`` values; ``uniforms`` holds ``n`` draws in [0, 1) (used by ``uniform`` only)."""
        if self.kind == "fixed":
            return np.full(n, self.values[0], dtype=np.float64)
        if self.kind == "uniform":
            low, high = self.values
            return low + (high - low) * np.asarray(uniforms, dtype=np.float64)[:n]
        if self.kind == "log-uniform":
            low, high = self.values
            return low * (high / low) ** np.asarray(uniforms, dtype=np.float64)[:n]
        return np.asarray(self.values, dtype=np.float64)[np.arange(n) % len(self.values)]


def parse_values(spec: str, name: str) -> ValueSpec:
    """Parse ``"100"`` (fixed), ``"10:510"`` (uniform in [10, 510]), ``"10:510:log"`` (log-uniform) or
    ``"10,50,100"`` (equal shares).

    ``name`` is the option that gave the text (``"--energy"``); it starts every error message.
    """
    text = str(spec).strip()
    expected = f"{name} '{spec}': expected a number, A:B, A:B:log or A,B,C"
    logarithmic = text.lower().endswith(":log")
    if logarithmic:
        text = text[:-4]
    if ":" in text and "," in text:
        raise ConfigError(expected)
    kind, sep = ("uniform", ":") if ":" in text else (("list", ",") if "," in text else ("fixed", None))
    parts = text.split(sep) if sep else [text]
    if kind == "uniform" and len(parts) != 2:
        raise ConfigError(expected)
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise ConfigError(expected) from None
    if not all(math.isfinite(v) for v in values):
        raise ConfigError(f"{name} '{spec}': values must be finite numbers")
    if kind == "uniform" and not values[0] < values[1]:
        raise ConfigError(f"{name} '{spec}': the minimum of a range A:B must be below its maximum")
    if logarithmic:
        if kind != "uniform":
            raise ConfigError(expected)
        if values[0] <= 0:
            raise ConfigError(f"{name} '{spec}': a log-uniform range A:B:log needs A > 0")
        kind = "log-uniform"
    if kind == "list" and len(values) == 1:
        kind = "fixed"
    return ValueSpec(kind, values)


# --- primaries -------------------------------------------------------------------------------------


def particle_name(particle: str | int) -> str:
    """Canonical name (``e-``, ``e+``, ``gamma``, ``pi0``) of a particle given by name or PDG code."""
    code = pdg_code(particle)
    return next(name for name, c in PARTICLES.items() if c == code)


def plan_primaries(
    particle: str | int,
    energy: ValueSpec,
    theta_deg: ValueSpec,
    phi_deg: ValueSpec,
    n: int,
    seed: int,
    entry_xy_mm: Sequence[float] = (0.0, 0.0),
    entry_spread_mm: float = 0.0,
) -> Primaries:
    """The ``n`` primaries of a run: energies in GeV, angles given in degrees and returned in radians.

    The entry point is ``entry_xy_mm``, smeared uniformly by +-``entry_spread_mm`` in x and y. All random
    draws of the run are made here at once from ``SeedSequence([seed, 0xE1])``, and every quantity always
    consumes its own block of ``n`` draws, so that e.g. the energies do not change when theta goes from fixed
    to a range. Range checks (energy, angles, entry point) are :meth:`Simulator.check`'s job.
    """
    n = int(n)
    if n < 1:
        raise ConfigError(f"n {n}: must be >= 1 (number of showers)")
    if not (math.isfinite(entry_spread_mm) and entry_spread_mm >= 0):
        raise ConfigError(f"entry spread {entry_spread_mm!r}: must be a finite number >= 0 mm")
    code = pdg_code(particle)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _PRIMARIES_STREAM]))
    uniforms = rng.random((5, n))
    x0, y0 = (float(v) for v in entry_xy_mm)
    return Primaries(
        pdg=np.full(n, code, dtype=np.int64),
        energy_GeV=energy.sample(n, uniforms[0]),
        theta_rad=np.deg2rad(theta_deg.sample(n, uniforms[1])),
        phi_rad=np.deg2rad(phi_deg.sample(n, uniforms[2])),
        x_mm=x0 + entry_spread_mm * (2.0 * uniforms[3] - 1.0),
        y_mm=y0 + entry_spread_mm * (2.0 * uniforms[4] - 1.0),
    )


# --- simulators, one per process -------------------------------------------------------------------------

_SIMULATORS: OrderedDict[tuple[str, str, str, int], Simulator] = OrderedDict()
_SIMULATORS_LOCK = threading.Lock()
_MAX_CACHED = 4


def get_simulator(calorimeter: Calorimeter, settings: PhysicsSettings, device: str = "cpu",
                  showers_per_launch: int = 0) -> Simulator:
    """A :class:`Simulator` for this detector, settings and device, built once per process (tables are costly,
    and a GPU's copy of them too). ``showers_per_launch`` (GPU only; 0: the default).

    Forked worker processes inherit the parent's cache.
    """
    key = (calorimeter.to_json(), json.dumps(settings.to_dict(), sort_keys=True), device, int(showers_per_launch))
    with _SIMULATORS_LOCK:
        sim = _SIMULATORS.get(key)
        if sim is None:
            sim = Simulator(calorimeter, settings, device, int(showers_per_launch) or None)
            _SIMULATORS[key] = sim
            while len(_SIMULATORS) > _MAX_CACHED:
                _SIMULATORS.popitem(last=False)
        else:
            _SIMULATORS.move_to_end(key)
        return sim


def check_primaries(calorimeter: Calorimeter, settings: PhysicsSettings, primaries: Primaries) -> None:
    """Refuse primaries the transport cannot take (one-line ``ConfigError``), before any work is done."""
    get_simulator(calorimeter, settings).check(primaries)


def chunk_seeds(seed: int, start: int, stop: int, seed_index: np.ndarray | None = None) -> np.ndarray:
    """Seeds of primaries ``start .. stop-1``: ``shower_seeds(seed, i, 1)`` for each ``i`` in that range, or for
    each ``seed_index[i]`` when given (the events' particles keep their own numbers when some are left out)."""
    if seed_index is None:
        return shower_seeds(seed, start, stop - start)
    rows = np.asarray(seed_index[start:stop], dtype=np.int64)
    if rows.size and np.all(np.diff(rows) == 1):
        return shower_seeds(seed, int(rows[0]), int(rows.size))
    return np.array([shower_seeds(seed, int(r), 1)[0] for r in rows], dtype=np.uint64)


def _simulate(sim: Simulator, primaries: Primaries, seeds: np.ndarray, readout: bool) -> ShowerBatch:
    return sim.run(primaries, seeds, readout=readout)


# state of a worker process of the local pool
_WORKER_SIM: Simulator | None = None


def _init_pool_worker(calorimeter: Calorimeter, settings: PhysicsSettings) -> None:
    global _WORKER_SIM
    _WORKER_SIM = get_simulator(calorimeter, settings)


def _pool_chunk(primaries: Primaries, seeds: np.ndarray, start: int, readout: bool) -> tuple[int, ShowerBatch]:
    assert _WORKER_SIM is not None, "worker not initialised"
    return start, _simulate(_WORKER_SIM, primaries, seeds, readout)


def _dask_chunk(
    calorimeter: Calorimeter, settings: PhysicsSettings, primaries: Primaries, seeds: np.ndarray, start: int,
    readout: bool,
) -> tuple[int, ShowerBatch]:
    return start, _simulate(get_simulator(calorimeter, settings), primaries, seeds, readout)


@dataclass(frozen=True)
class _Job:
    """What every chunk of one production shares: the primaries, the run seed, the seed numbers of the primaries
    (None: their positions) and whether the readout's zero suppression is applied (events apply it to the sum)."""

    primaries: Primaries
    seed: int
    seed_index: np.ndarray | None = None
    readout: bool = True

    def task(self, a: int, b: int) -> tuple[Primaries, np.ndarray, int, bool]:
        """The pool task of chunk ``[a, b)``: ``(primaries, seeds, start, readout)``."""
        return self.primaries.select(a, b), chunk_seeds(self.seed, a, b, self.seed_index), a, self.readout


# --- chunks and the production loop -----------------------------------------------------------------------


def chunks(
    n: int, chunk_size: int = DEFAULT_CHUNK_SIZE, done_mask: np.ndarray | None = None
) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges covering ``n`` showers, aligned to multiples of ``chunk_size``.

    Chunks whose showers are all marked in ``done_mask`` are left out (a partly done chunk is redone whole:
    the result is the same, and it keeps a resumed run aligned with the original one).
    """
    n, chunk_size = int(n), int(chunk_size)
    if chunk_size < 1:
        raise ConfigError(f"chunk size {chunk_size}: must be >= 1")
    if done_mask is not None:
        done_mask = np.asarray(done_mask, dtype=bool)
        if done_mask.shape != (n,):
            raise ConfigError(f"done mask has shape {done_mask.shape}, expected ({n},)")
    out = []
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        if done_mask is None or not done_mask[start:stop].all():
            out.append((start, stop))
    return out


def run_production(
    calorimeter: Calorimeter,
    settings: PhysicsSettings,
    primaries: Primaries,
    seed: int,
    todo_chunks: Sequence[tuple[int, int]],
    workers: int = 1,
    scheduler: str | None = None,
    device: str = "cpu",
    showers_per_launch: int = 0,
    seed_index: np.ndarray | None = None,
    readout: bool = True,
) -> Iterator[tuple[int, ShowerBatch]]:
    """Simulate the chunks ``[start, stop)`` of ``primaries``; yield ``(start, batch)`` as they complete.

    Primary ``i`` is simulated from ``shower_seeds(seed, i, 1)``, or from ``shower_seeds(seed, seed_index[i], 1)``
    when ``seed_index`` is given. ``readout=False`` leaves the images without the readout's zero suppression (the
    events' images are suppressed once their particles are summed).

    Chunks may complete in any order. ``workers == 1`` runs in this process, ``workers > 1`` in a local
    process pool (one :class:`Simulator` per worker process). ``scheduler`` is a dask.distributed scheduler
    address, or ``"local"`` to start a ``LocalCluster`` of ``workers`` processes. Closing the generator early
    stops the workers.

    ``device="cuda"``: the GPU, driven from this process, takes chunks in launches of up to
    ``showers_per_launch`` showers (0: the default); with ``workers > 1``, ``workers - 1`` CPU processes take
    chunks from the same queue at the same time (:func:`_run_hybrid`). Each chunk is made exactly once, from its
    showers' own seeds; which device made it changes no shower's statistics (the CPU and the GPU agree
    statistically, not bit for bit, docs/gpu-mc.md).
    """
    todo = [(int(a), int(b)) for a, b in todo_chunks]
    for a, b in todo:
        if not 0 <= a < b <= len(primaries):
            raise ConfigError(f"chunk [{a}, {b}) is outside the {len(primaries)} primaries")
    workers = int(workers)
    if workers < 1:
        raise ConfigError(f"workers {workers}: must be >= 1")
    check_backend(device, scheduler, showers_per_launch)
    check_primaries(calorimeter, settings, primaries)
    if seed_index is not None and len(seed_index) != len(primaries):
        raise ConfigError(f"seed index: {len(seed_index)} numbers for {len(primaries)} primaries")
    job = _Job(primaries, int(seed), None if seed_index is None else np.asarray(seed_index, np.int64), bool(readout))
    if scheduler is not None:
        return _run_dask(calorimeter, settings, job, todo, workers, scheduler)
    if device == "cuda":
        gpu_sim = get_simulator(calorimeter, settings, device, showers_per_launch)  # a missing GPU fails here
        if workers == 1 or len(todo) <= 1:
            return _run_gpu(gpu_sim, job, _ChunkQueue(todo), None)
        return _run_hybrid(calorimeter, settings, gpu_sim, job, todo, workers - 1)
    if workers == 1 or len(todo) <= 1:
        return _run_local(calorimeter, settings, job, todo)
    return _run_pool(calorimeter, settings, job, todo, min(workers, len(todo)))


def check_backend(device: str, scheduler: str | None, showers_per_launch: int = 0) -> None:
    """Refuse (one-line ``ConfigError``) a device, scheduler and launch size that cannot make showers here: an
    unknown device, a GPU that is absent, dask with a GPU, dask not installed, a negative launch size."""
    check_device(device)
    if int(showers_per_launch) < 0:
        raise ConfigError(f"showers per launch {showers_per_launch}: must be >= 1 (or 0, the default)")
    if scheduler is not None:
        if device != "cpu":
            raise ConfigError("a dask scheduler runs on dask's CPU workers: use it with device cpu")
        require_dask()
    if device == "cuda":
        from fastshower.mc.gpu import require_cuda

        require_cuda()


def _run_local(
    calorimeter: Calorimeter, settings: PhysicsSettings, job: _Job, todo: list[tuple[int, int]],
) -> Iterator[tuple[int, ShowerBatch]]:
    sim = get_simulator(calorimeter, settings)
    for start, stop in todo:
        primaries, seeds, _, readout = job.task(start, stop)
        yield start, _simulate(sim, primaries, seeds, readout)


def _pool_context() -> multiprocessing.context.BaseContext:
    # fork starts workers fastest and hands them the parent's tables and compiled kernel; it is only safe
    # while this process runs a single thread (a thread holding a lock at fork time deadlocks the child).
    methods = multiprocessing.get_all_start_methods()
    if sys.platform.startswith("linux") and threading.active_count() == 1 and "fork" in methods:
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
        return ctx
    return multiprocessing.get_context("spawn")


def _run_pool(
    calorimeter: Calorimeter, settings: PhysicsSettings, job: _Job, todo: list[tuple[int, int]], workers: int,
) -> Iterator[tuple[int, ShowerBatch]]:
    tasks = (job.task(a, b) for a, b in todo)
    yield from _pool(calorimeter, settings, job.primaries, tasks, workers)


def _pool(
    calorimeter: Calorimeter, settings: PhysicsSettings, primaries: Primaries, tasks: Iterator[tuple], workers: int,
    side: SideResults | None = None,
) -> Iterator[tuple[int, ShowerBatch]]:
    """CPU worker processes running ``tasks`` (:meth:`_Job.task`); ``side``: results of a thread
    yielded among theirs (see :func:`fastshower.mc.pool.imap_unordered`)."""
    # build the tables and load the compiled kernel here once: forked workers inherit both, and a first
    # compilation happens once instead of in every worker at the same time
    get_simulator(calorimeter, settings).run(primaries.select(0, 0), np.zeros(0, dtype=np.uint64))
    context = _pool_context()
    logger.debug("process pool: %d workers (%s)", workers, context.get_start_method())
    yield from imap_unordered(_pool_chunk, tasks, workers, context, _init_pool_worker, (calorimeter, settings),
                              describe=_describe_chunk, side=side)


class _ChunkQueue:
    """The chunks still to make, shared by the GPU (which takes many at once) and the CPU workers (one each)."""

    def __init__(self, todo: Sequence[tuple[int, int]]) -> None:
        self._todo = list(todo)
        self._next = 0
        self._lock = threading.Lock()

    def take(self, showers: int = 1) -> list[tuple[int, int]]:
        """The next chunks, in order, until they hold at least ``showers`` showers (one chunk at least); ``[]``
        when none is left."""
        with self._lock:
            taken: list[tuple[int, int]] = []
            held = 0
            while self._next < len(self._todo) and (not taken or held < showers):
                a, b = self._todo[self._next]
                taken.append((a, b))
                held += b - a
                self._next += 1
            return taken

    def tasks(self, job: _Job, on_first: Any = None) -> Iterator[tuple]:
        """Pool tasks (:meth:`_Job.task`), one chunk each, taken as the workers ask for them;
        ``on_first()`` runs when the first is asked for (every worker process exists by then)."""
        while True:
            if on_first is not None:
                on_first()
                on_first = None
            taken = self.take(1)
            if not taken:
                return
            (a, b), = taken
            yield job.task(a, b)


def _run_gpu(sim: Simulator, job: _Job, queue: _ChunkQueue,
             stop: threading.Event | None) -> Iterator[tuple[int, ShowerBatch]]:
    """The GPU's share: launches of up to ``showers_per_launch`` showers, taken from ``queue`` until it is empty
    (or ``stop`` is set), yielded back chunk by chunk."""
    while stop is None or not stop.is_set():
        taken = queue.take(sim.showers_per_launch)
        if not taken:
            return
        first, last = taken[0][0], taken[-1][1]
        # taken chunks are consecutive in the request unless a resume left holes: simulate each run of them
        part = job.primaries.subset(np.concatenate([np.arange(a, b) for a, b in taken]))
        seeds = np.concatenate([chunk_seeds(job.seed, a, b, job.seed_index) for a, b in taken])
        batch = sim.run(part, seeds, readout=job.readout)
        offset = 0
        for a, b in taken:
            size = b - a
            yield a, ShowerBatch(batch.images[offset:offset + size],
                                 {k: v[offset:offset + size] for k, v in batch.ledger.items()})
            offset += size
        logger.debug("GPU: showers [%d, %d) done", first, last)


def _run_hybrid(
    calorimeter: Calorimeter, settings: PhysicsSettings, gpu_sim: Simulator, job: _Job,
    todo: list[tuple[int, int]], cpu_workers: int,
) -> Iterator[tuple[int, ShowerBatch]]:
    """The GPU (a thread of this process) and ``cpu_workers`` CPU processes take chunks from one queue."""
    queue = _ChunkQueue(todo)
    side = SideResults()
    stop = threading.Event()

    def gpu_share() -> None:
        try:
            for result in _run_gpu(gpu_sim, job, queue, stop):
                side.put(result)
        except BaseException as exc:  # raised in the main thread, where the results are read
            side.fail(exc)
        finally:
            side.close()

    def start_gpu() -> None:
        # started once the CPU workers exist: they are forked from a single-threaded process (see _pool_context)
        threading.Thread(target=gpu_share, name="fastshower-gpu", daemon=True).start()

    try:
        yield from _pool(calorimeter, settings, job.primaries, queue.tasks(job, start_gpu), cpu_workers, side)
    finally:
        stop.set()


def _describe_chunk(task: tuple) -> str:
    chunk_primaries, _, start, _ = task
    return f"showers [{start}, {start + len(chunk_primaries)})"


def require_dask() -> None:
    """``ConfigError`` (one line) unless dask.distributed is installed."""
    try:
        import dask.distributed  # noqa: F401
    except ImportError:
        raise ConfigError("a dask scheduler needs the optional extra: pip install 'fastshower[dask]'") from None


def _run_dask(
    calorimeter: Calorimeter, settings: PhysicsSettings, job: _Job, todo: list[tuple[int, int]], workers: int,
    scheduler: str,
) -> Iterator[tuple[int, ShowerBatch]]:
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    client = None
    try:
        if scheduler == "local":
            # silence_logs: the workers' warnings about tasks cancelled by a stop would break the one-line message
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=logging.ERROR)
            client = Client(cluster)
        else:
            try:
                client = Client(scheduler, timeout="30s")
            except (OSError, TimeoutError, ValueError) as err:
                raise ConfigError(f"scheduler '{scheduler}': cannot connect ({err})") from None
        n_workers = max(1, len(client.scheduler_info().get("workers", {})) or workers)
        logger.debug("dask: %s with %d workers", client.scheduler.address, n_workers)
        queue = iter(todo)
        limit = n_workers * _IN_FLIGHT_PER_WORKER
        calo_f, settings_f = client.scatter([calorimeter, settings], broadcast=True)

        def submit(a: int, b: int) -> Any:
            return client.submit(_dask_chunk, calo_f, settings_f, *job.task(a, b), pure=False)

        first = [submit(a, b) for a, b in (next(queue) for _ in range(min(limit, len(todo))))]
        stream = as_completed(first)
        for fut in stream:
            result = fut.result()
            fut.release()
            item = next(queue, None)
            if item is not None:
                stream.add(submit(*item))
            yield result
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
