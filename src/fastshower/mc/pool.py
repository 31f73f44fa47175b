"""A local process pool that runs tasks in worker processes and can be abandoned at any moment.

Why not :class:`concurrent.futures.ProcessPoolExecutor`: its workers share one result pipe. A worker killed
while it writes a result (which is what stopping a production early has to do: the transport kernel does not
see signals) leaves half a message in that pipe, and the executor's reader thread then blocks on it forever.
CI hung that way. Here every worker has its own pipe and at most one task in flight, so

- killing a worker can never leave another reader waiting on a half-written message (we stop reading a
  worker's pipe the moment we kill it);
- the parent only writes a task when the worker is waiting to read one, so a large task and a large result
  can never block each other;
- a worker that dies is seen through its process sentinel, and reported with the task it was running;
- a worker never outlives the parent: it is tied to it (:func:`fastshower.lifetime.tie_to_parent`: SIGKILL on
  Linux when the parent dies, even mid-kernel, and a watchdog elsewhere), and a forked worker closes the
  parent's ends of the pipes it inherited, its own included, so that it sees end-of-file when the parent is
  gone (holding them, it waited forever, and kept the output file and its HDF5 lock open).
"""

from __future__ import annotations

import contextlib
import multiprocessing.connection
import os
import queue
import signal
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from typing import Any

from fastshower.errors import FastshowerError, WorkerError
from fastshower.lifetime import tie_to_parent

#: Seconds a worker may take to exit after it was asked to; after that it is killed.
_EXIT_GRACE_S = 10.0


class SideResults:
    """Results made by a thread of this process (the GPU's share of a production), handed to
    :func:`imap_unordered`, which yields them among its workers' results: the thread calls :meth:`put` for each,
    :meth:`fail` with an exception to raise in the reader, and :meth:`close` when it has no more."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        # a pipe only to wake the reader, which waits on the workers' connections with multiprocessing.wait
        self.wakeup, self._bell = multiprocessing.Pipe(duplex=False)
        self.done = False

    def put(self, result: Any) -> None:
        """One more result."""
        self._send("ok", result)

    def fail(self, exc: BaseException) -> None:
        """The thread failed: ``exc`` is raised where the results are read."""
        self._send("error", exc)

    def close(self) -> None:
        """No more results."""
        self._send("done", None)

    def _send(self, status: str, payload: Any) -> None:
        self._queue.put((status, payload))
        with contextlib.suppress(OSError):  # the reader is gone
            self._bell.send_bytes(b"!")

    def drain(self) -> list[Any]:
        """The results that have arrived (raises a failure of the thread; sets :attr:`done` at its close)."""
        while self.wakeup.poll():
            self.wakeup.recv_bytes()
        results = []
        while not self._queue.empty():
            status, payload = self._queue.get()
            if status == "error":
                raise payload
            if status == "done":
                self.done = True
            else:
                results.append(payload)
        return results


@dataclass
class _Worker:
    process: Any  # multiprocessing.process.BaseProcess of the chosen context
    conn: multiprocessing.connection.Connection
    task: tuple | None = None  # the task sent and not yet answered


def imap_unordered(
    function: Callable[..., Any],
    tasks: Iterable[tuple],
    workers: int,
    context: BaseContext,
    initializer: Callable[..., None] | None = None,
    initargs: tuple = (),
    describe: Callable[[tuple], str] = repr,
    side: SideResults | None = None,
) -> Iterator[Any]:
    """Run ``function(*task)`` for every task in ``workers`` processes; yield the results as they complete.

    ``initializer(*initargs)`` runs once in each worker before its first task. An exception raised by a task
    (or by the initializer) is raised here; a worker that dies raises :class:`WorkerError`. Whenever this
    generator ends (exhausted, closed early, or by an exception), the workers are gone when it returns.
    ``describe(task)`` names a task in the error about a worker that died while running it. ``side``: results
    of a thread of this process, yielded among the workers' (the generator ends when they are done too).

    The workers die with this process, however it dies (see :func:`fastshower.lifetime.tie_to_parent`). On Linux
    they are tied to the *thread* that starts them (the first ``next``): iterate from a thread that outlives the
    pool, e.g. the main thread.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, not {workers}")
    pool: list[_Worker] = []
    completed = False
    method = context.get_start_method()
    # forkserver puts its server between this process and the workers: the worker cannot check the pid
    parent_pid = os.getpid() if method in ("fork", "spawn") else None
    try:
        for _ in range(workers):
            parent_end, child_end = context.Pipe(duplex=True)
            # a forked child inherits every parent end opened so far, its own included: it closes them first
            inherited = tuple(w.conn for w in pool) + (parent_end,) if method == "fork" else ()
            process = context.Process(
                target=_worker_main,
                args=(child_end, function, initializer, initargs, parent_pid, inherited),
                daemon=True,
            )
            process.start()
            child_end.close()  # so that the parent's end sees EOF when the worker is gone
            pool.append(_Worker(process, parent_end))
        queue = iter(tasks)
        for worker in pool:
            _send_next(worker, queue)
        while any(worker.task is not None for worker in pool) or (side is not None and not side.done):
            busy = [worker for worker in pool if worker.task is not None]
            ready = set(multiprocessing.connection.wait(
                [w.conn for w in busy] + [w.process.sentinel for w in busy] + ([side.wakeup] if side else [])
            ))
            if side is not None and side.wakeup in ready:
                yield from side.drain()
            for worker in busy:
                if worker.conn in ready or worker.conn.poll():
                    result = _receive(worker, describe)
                    _send_next(worker, queue)
                    yield result
                elif worker.process.sentinel in ready:
                    raise _died(worker, describe)
        completed = True
    finally:
        _stop(pool, completed)


def _send_next(worker: _Worker, queue: Iterator[tuple]) -> None:
    worker.task = next(queue, None)
    if worker.task is not None:
        worker.conn.send(worker.task)


def _receive(worker: _Worker, describe: Callable[[tuple], str]) -> Any:
    try:
        status, payload = worker.conn.recv()
    except (EOFError, OSError):
        raise _died(worker, describe) from None
    if status == "error":
        if not isinstance(payload, FastshowerError):  # a bug, not a user error: keep where it happened
            payload.add_note(f"raised in worker process {worker.process.pid}:\n{getattr(payload, '_remote', '')}")
        raise payload
    return payload


def _died(worker: _Worker, describe: Callable[[tuple], str]) -> WorkerError:
    worker.process.join(timeout=1.0)
    code = worker.process.exitcode
    how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
    task = describe(worker.task) if worker.task is not None else "no task"
    return WorkerError(f"worker process {worker.process.pid} {how} while running {task}")


def _stop(pool: list[_Worker], completed: bool) -> None:
    if completed:
        for worker in pool:  # ask politely: they are all idle, waiting for a task
            with contextlib.suppress(OSError):
                worker.conn.send(None)
        for worker in pool:
            worker.process.join(timeout=_EXIT_GRACE_S)
    for worker in pool:
        if worker.process.is_alive():
            worker.process.kill()
    for worker in pool:
        worker.process.join()
        worker.conn.close()


def _with_traceback(exc: BaseException) -> BaseException:
    # tracebacks do not pickle: carry the text to the parent in an attribute (kept by the default pickling)
    exc._remote = "".join(traceback.format_exception(exc))  # type: ignore[attr-defined]
    return exc


def _worker_main(
    conn: multiprocessing.connection.Connection,
    function: Callable[..., Any],
    initializer: Callable[..., None] | None,
    initargs: tuple,
    parent_pid: int | None = None,
    inherited: tuple[multiprocessing.connection.Connection, ...] = (),
) -> None:
    tie_to_parent(parent_pid)
    for conn_of_parent in inherited:
        conn_of_parent.close()
    # Ctrl-C and a job kill's SIGTERM reach the whole process group: the parent handles them and stops the
    # workers (a forked worker would otherwise also run the parent's SIGTERM handler)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    init_error: BaseException | None = None
    if initializer is not None:
        try:
            initializer(*initargs)
        except Exception as exc:  # reported with the first task, raised in the parent
            init_error = exc
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if task is None:
            return
        if init_error is not None:
            reply: tuple[str, Any] = ("error", _with_traceback(init_error))
        else:
            try:
                reply = ("ok", function(*task))
            except Exception as exc:
                reply = ("error", _with_traceback(exc))
        try:
            conn.send(reply)  # pickled whole before anything is written
        except OSError:  # the parent is gone
            return
        except Exception as exc:  # an unpicklable result or exception
            conn.send(("error", WorkerError(f"worker could not send its reply: {exc}")))
