"""Interrupts: SIGTERM handled like Ctrl-C, and short critical sections that an interrupt waits for.

A batch system's job kill, ``kill PID`` and a container's stop send SIGTERM; Python's default is to die at
once, without a word and without running ``finally`` blocks. Under :func:`terminate_as_interrupt` SIGTERM raises
:class:`Terminated`, a :class:`KeyboardInterrupt`, so that every command stops the way it stops on Ctrl-C:
workers stopped, files closed, one line saying what was saved.

Some writes must not be cut in the middle: ``torch.save`` turns an interrupt landing inside it into a
``RuntimeError`` (the file object's ``write`` is called from C++), and finishing a shower file is several
steps. :func:`deferred_interrupts` holds SIGINT and SIGTERM until the block is done, then delivers them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM (raised where the main thread was, like ``KeyboardInterrupt``)."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread (no effect in other threads, nor
    where SIGTERM was set to be ignored by whoever started the process)."""
    if not _in_main_thread() or signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then act on the first that arrived as it would have.

    Only the main thread receives signals; elsewhere this does nothing. Nested blocks are fine.
    """
    if not _in_main_thread():
        yield
        return
    pending: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        pending.append(signum)

    previous: dict[int, Any] = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if pending:
            _deliver(pending[0], previous[pending[0]])


def _deliver(signum: int, handler: Any) -> None:
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL:
        os.kill(os.getpid(), signum)  # the default action (termination), now that the block is done
    # SIG_IGN: the signal is ignored, as it would have been
