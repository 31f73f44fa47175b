"""Worker processes die with their parent, however the parent dies; process identities tell live from dead."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import kill_all
from fastshower.lifetime import ProcessIdentity

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork and /proc: Linux")

# A parent that starts a pool of 2 forked workers, prints their pids, and waits to be killed. MODE selects what
# ties the workers to it: everything ("all"), the watchdog thread alone ("watchdog": no PR_SET_PDEATHSIG), or the
# end-of-file of the task pipe alone ("eof": idle workers, no signal and no watchdog).
PARENT = textwrap.dedent("""
    import multiprocessing, os, sys, time
    import fastshower.lifetime as lifetime
    from fastshower.mc.pool import imap_unordered

    mode = sys.argv[1]
    if mode in ("watchdog", "eof"):
        lifetime._set_parent_death_signal = lambda signum: None
    if mode == "eof":
        lifetime._watch_parent = lambda parent: None  # and the watchdog thread returns at once

    def task(seconds):
        time.sleep(seconds)
        return os.getpid()

    # the first result comes at once; then both workers are busy for 10 minutes, or ("eof") idle: the parent
    # stops reading, and they wait for their next task
    seconds = 0.0 if mode == "eof" else 600.0
    stream = imap_unordered(task, [(0.0,)] + [(seconds,)] * 3, 2, multiprocessing.get_context("fork"))
    next(stream)
    time.sleep(1.0)
    print(" ".join(str(p.pid) for p in multiprocessing.active_children()), flush=True)
    time.sleep(600)
""")


def wait_until_gone(pids: list[int], timeout_s: float) -> list[int]:
    """The pids still running (zombies count as gone) after up to ``timeout_s`` seconds."""
    identities = [ProcessIdentity.of(p) for p in pids]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alive = [i.pid for i in identities if i.is_running()]
        if not alive:
            return []
        time.sleep(0.1)
    return alive


def start_parent(mode: str) -> tuple[subprocess.Popen, list[int]]:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, mode], stdout=subprocess.PIPE, text=True)
    line = parent.stdout.readline()
    workers = [int(p) for p in line.split()]
    assert len(workers) == 2, line
    return parent, workers


@pytest.mark.parametrize("mode", ["all", "watchdog", "eof"])
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_workers_exit_within_seconds_when_their_parent_is_killed(mode, signum):
    parent, workers = start_parent(mode)
    try:
        assert wait_until_gone(workers, 0.5) == workers  # they run while the parent does
        parent.send_signal(signum)
        parent.wait(timeout=10)
        assert wait_until_gone(workers, 5.0) == []
    finally:
        kill_all(parent, workers)


# A production whose workers are busy in the transport kernel, tied to the parent by the watchdog thread alone:
# the thread runs only because the kernel releases the GIL (nogil=True).
KERNEL_PARENT = textwrap.dedent("""
    import multiprocessing, sys, time
    import numpy as np
    import fastshower.lifetime as lifetime
    from fastshower.geometry import load_geometry
    from fastshower.mc.production import run_production
    from fastshower.mc.settings import PhysicsSettings
    from fastshower.mc.simulator import Primaries

    lifetime._set_parent_death_signal = lambda signum: None
    n = 66
    zeros = np.zeros(n)
    primaries = Primaries(np.full(n, 11), np.full(n, 500.0), zeros, zeros, zeros, zeros)
    todo = [(0, 1), (1, 2), (2, 34), (34, 66)]
    stream = run_production(load_geometry("clic"), PhysicsSettings(), primaries, 1, todo, workers=2)
    next(stream)  # from now on both workers run chunks of 32 showers of 500 GeV (~20 s in the kernel each)
    print(" ".join(str(p.pid) for p in multiprocessing.active_children()), flush=True)
    time.sleep(600)
""")


def test_workers_busy_in_the_transport_kernel_exit_without_the_parent_death_signal():
    parent = subprocess.Popen([sys.executable, "-c", KERNEL_PARENT], stdout=subprocess.PIPE, text=True)
    workers: list[int] = []
    try:
        workers = [int(p) for p in parent.stdout.readline().split()]
        assert len(workers) == 2
        time.sleep(0.5)
        parent.kill()
        parent.wait(timeout=10)
        assert wait_until_gone(workers, 3.0) == []
    finally:
        kill_all(parent, workers)


def test_identity_of_a_live_process_a_dead_one_a_zombie_and_a_reused_pid():
    me = ProcessIdentity.current()
    assert me.is_local() and me.is_running() and me.start_ticks is not None
    assert ProcessIdentity.from_dict(me.to_dict()) == me

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    identity = ProcessIdentity.of(child.pid)
    deadline = time.monotonic() + 10
    while child.poll() is None and time.monotonic() < deadline:  # poll reaps it
        time.sleep(0.05)
    assert not identity.is_running()

    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    identity = ProcessIdentity.of(zombie.pid)
    time.sleep(1.0)  # exited, not yet waited for: a zombie
    assert not identity.is_running()
    zombie.wait()

    # the same pid with another start time is another process that reused the pid
    assert not ProcessIdentity(me.host, me.pid, me.start_ticks + 1).is_running()
    assert not ProcessIdentity("some-other-host", me.pid, me.start_ticks).is_local()


@pytest.mark.parametrize("bad", [{}, {"host": "h"}, {"host": "h", "pid": "x"}])
def test_a_malformed_identity_record_is_refused(bad):
    with pytest.raises((KeyError, ValueError, TypeError)):
        ProcessIdentity.from_dict(bad)
