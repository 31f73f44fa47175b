"""A production killed as batch systems and users kill it (SIGKILL, SIGTERM): no worker survives its parent, the
message says how to resume, and the same command finishes it with showers identical to an uninterrupted run."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import kill_all
from fastshower.data import partial_path, read_showers
from fastshower.data.lock import lock_path
from fastshower.lifetime import ProcessIdentity, child_pids

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc: Linux")

N = 240


def command(out: Path) -> list[str]:
    return [sys.executable, "-m", "fastshower", "simulate", "--particle", "e-", "--energy", "20", "--n", str(N),
            "--chunk-size", "8", "--workers", "2", "--seed", "9", "--out", str(out), "--quiet"]


def still_running(workers: list[ProcessIdentity], timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while True:
        alive = [w.pid for w in workers if w.is_running()]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "ref.h5"
    subprocess.run(command(out), check=True, capture_output=True, timeout=240)
    return out


def start_and_wait_for_workers(cmd: list[str], expected: int) -> tuple[subprocess.Popen, list[int], list]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers: list[int] = []
    deadline = time.monotonic() + 120
    while len(workers) < expected and proc.poll() is None and time.monotonic() < deadline:
        workers = child_pids(proc.pid)
        time.sleep(0.05)
    if len(workers) != expected:
        proc.kill()
        pytest.fail(f"the workers did not start: {proc.communicate()[1][-500:]}")
    return proc, workers, [ProcessIdentity.of(p) for p in workers]


def test_killed_dask_production_leaves_no_local_worker(tmp_path):
    pytest.importorskip("dask.distributed")
    cmd = command(tmp_path / "run.h5") + ["--scheduler", "local"]
    cmd[cmd.index("--n") + 1] = "5000"  # far longer than the test
    # 2 spawned dask workers and multiprocessing's resource tracker
    proc, workers, identities = start_and_wait_for_workers(cmd, 3)
    try:
        time.sleep(6.0)  # the workers are simulating
        assert proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert still_running(identities, 10.0) == []
    finally:
        kill_all(proc, workers)


@pytest.mark.parametrize("signum", [signal.SIGKILL, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)],
                         ids=["SIGKILL", "SIGTERM"])  # SIGTERM is also covered by tests/test_interrupts.py
def test_killed_production_leaves_no_worker_and_resumes_identically(uninterrupted, tmp_path, signum):
    out = tmp_path / "run.h5"
    proc, workers, identities = start_and_wait_for_workers(command(out), 2)
    try:
        time.sleep(2.0)  # a few chunks done, others in flight
        assert proc.poll() is None, "the production finished before it could be killed: make it longer"
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
        assert still_running(identities, 5.0) == []
    finally:
        kill_all(proc, workers)

    assert partial_path(out).exists() and not out.exists()
    if signum == signal.SIGTERM:
        assert proc.returncode == 1
        lines = err.strip().splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith("fastshower: error: terminated (SIGTERM); ")
        assert f"of {N} showers are saved in {partial_path(out)}: run the same command again to resume" in lines[0]
        assert not lock_path(partial_path(out)).exists()  # released on the way out
    else:
        assert proc.returncode == -signal.SIGKILL
        assert lock_path(partial_path(out)).exists()  # the dead writer's record: the rerun takes over

    rerun = subprocess.run(command(out), capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stderr
    assert "resumed" in rerun.stdout
    assert not partial_path(out).exists() and not lock_path(partial_path(out)).exists()
    a, b = read_showers(out), read_showers(uninterrupted)
    assert np.array_equal(a.ecal, b.ecal) and np.array_equal(a.energy_GeV, b.energy_GeV)
    for key in b.ledger:
        assert np.array_equal(a.ledger[key], b.ledger[key]), key
