"""Process lifetimes: child processes that die with their parent, and telling whether a recorded process lives.

Two promises rest on this module. A production's worker processes must never outlive the process that started
them (a batch system's job kill, the OOM killer or a user's ``kill -9`` of the parent must not leave workers
holding the output file), and a rerun must be able to tell a dead writer's leftovers from a live writer.

- :func:`tie_to_parent` runs first in a worker. On Linux the kernel sends the worker SIGKILL when its parent
  exits (``prctl(PR_SET_PDEATHSIG)``), even while the worker is deep in a numba kernel. Everywhere, a daemon
  thread also watches for the worker being re-parented (``os.getppid()`` changes when the parent dies); it
  needs the GIL, which the transport kernel releases (``nogil=True``).
- :class:`ProcessIdentity` names a process by host, pid and start time, so that a pid reused by an unrelated
  process is not mistaken for the writer that recorded it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Seconds between two looks of the watchdog thread at the parent.
WATCH_INTERVAL_S = 0.5
#: Exit status of a worker that ended because its parent was gone.
ORPHAN_EXIT_CODE = 70
_PR_SET_PDEATHSIG = 1


def tie_to_parent(expected_parent_pid: int | None = None) -> None:
    """Make this (child) process end when its parent process ends, whatever ends the parent.

    ``expected_parent_pid`` is the parent's pid as the parent saw it before starting the child (None where the
    start method puts another process in between, e.g. multiprocessing's forkserver): a child whose parent
    died before this call exits at once. Linux delivers the parent-death signal when the parent *thread* that
    started the child exits; start children from a thread that lives as long as they should.
    """
    parent = os.getppid()
    if expected_parent_pid is not None and parent != expected_parent_pid:
        os._exit(ORPHAN_EXIT_CODE)
    if sys.platform.startswith("linux"):
        _set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent:  # the parent died between the two looks: no signal will come
        os._exit(ORPHAN_EXIT_CODE)
    threading.Thread(target=_watch_parent, args=(parent,), name="fastshower-parent-watch", daemon=True).start()


def _set_parent_death_signal(signum: int) -> None:
    libc_name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
    except (OSError, AttributeError):  # no prctl (an unusual libc): the watchdog thread remains
        pass


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(WATCH_INTERVAL_S)
        if os.getppid() != parent:
            os._exit(ORPHAN_EXIT_CODE)


# --- identity of a process, to tell a live writer from a dead one ----------------------------------------


@dataclass(frozen=True)
class ProcessIdentity:
    """A process named so that a reused pid is not taken for it: host, pid and start time (Linux clock ticks
    since boot; None where the system does not say)."""

    host: str
    pid: int
    start_ticks: int | None

    @classmethod
    def current(cls) -> ProcessIdentity:
        """This process."""
        return cls.of(os.getpid())

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity:
        """The process ``pid`` of this host, as it is now (its start time read while it runs)."""
        return cls(socket.gethostname(), int(pid), _start_ticks(int(pid)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"host": self.host, "pid": self.pid, "start_ticks": self.start_ticks}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ProcessIdentity:
        """Inverse of :meth:`to_dict`; ``ValueError``/``KeyError``/``TypeError`` on a malformed record."""
        ticks = values.get("start_ticks")
        return cls(str(values["host"]), int(values["pid"]), None if ticks is None else int(ticks))

    def is_local(self) -> bool:
        """True when the process ran on this host (only then can it be looked at)."""
        return self.host == socket.gethostname()

    def is_running(self) -> bool:
        """True while the process lives on this host (zombies count as dead; a reused pid is another process).

        Call it only for local processes (:meth:`is_local`).
        """
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # alive, but another user's
            pass
        if _is_zombie(self.pid):
            return False
        ticks = _start_ticks(self.pid)
        return self.start_ticks is None or ticks is None or ticks == self.start_ticks


def child_pids(pid: int) -> list[int]:
    """The pids of the children of process ``pid``, whichever of its threads started them (Linux; [] elsewhere)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(p) for p in (task / "children").read_text().split()]
    return sorted(found)


def _proc_stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may itself hold spaces and parentheses
    return text[text.rfind(")") + 2:].split()


def _start_ticks(pid: int) -> int | None:
    fields = _proc_stat_fields(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None  # field 22 of proc(5): starttime


def _is_zombie(pid: int) -> bool:
    fields = _proc_stat_fields(pid)
    return bool(fields) and fields[0] in ("Z", "X")
