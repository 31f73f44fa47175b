"""The local process pool: results, errors, dead workers, and stopping early without hanging."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import pytest

from fastshower.errors import ConfigError, WorkerError
from fastshower.mc.pool import imap_unordered

FORK = multiprocessing.get_context("fork")
SPAWN = multiprocessing.get_context("spawn")


def square(x: int) -> int:
    return x * x


def slow_square(x: int) -> int:
    time.sleep(0.05 * (x % 3))  # finish out of order
    return x * x


def refuse_seven(x: int) -> int:
    if x == 7:
        raise ConfigError("--energy 7: refused")
    return x


def die_on_five(x: int) -> int:
    if x == 5:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def big_result(x: int) -> bytes:
    return bytes(4_000_000)  # far more than a pipe holds, while the parent may be sending


def failing_initializer() -> None:
    raise ConfigError("worker set-up failed")


def test_all_results_arrive_once_whatever_their_order():
    results = list(imap_unordered(slow_square, ((i,) for i in range(20)), 3, FORK))
    assert sorted(results) == [i * i for i in range(20)]
    assert not multiprocessing.active_children()


def test_spawned_workers_run_the_initializer_and_tasks():
    results = list(imap_unordered(square, [(i,) for i in range(5)], 2, SPAWN))
    assert sorted(results) == [0, 1, 4, 9, 16]


def test_large_tasks_and_results_do_not_block_each_other():
    results = list(imap_unordered(big_result, [(bytes(3_000_000),) for _ in range(4)], 2, FORK))
    assert [len(r) for r in results] == [4_000_000] * 4


def test_a_task_error_is_raised_with_its_type_and_stops_the_workers():
    with pytest.raises(ConfigError, match=r"^--energy 7: refused$"):
        list(imap_unordered(refuse_seven, [(i,) for i in range(12)], 2, FORK))
    assert not multiprocessing.active_children()


def test_an_initializer_error_is_raised():
    with pytest.raises(ConfigError, match="worker set-up failed"):
        list(imap_unordered(square, [(1,), (2,)], 2, FORK, initializer=failing_initializer))
    assert not multiprocessing.active_children()


def test_a_dead_worker_is_reported_with_its_task():
    stream = imap_unordered(die_on_five, [(i,) for i in range(10)], 2, FORK, describe=lambda t: f"item {t[0]}")
    with pytest.raises(WorkerError, match=r"^worker process \d+ was killed by signal 9 while running item 5$"):
        list(stream)
    assert not multiprocessing.active_children()


@pytest.mark.parametrize("context", [FORK, SPAWN], ids=["fork", "spawn"])
def test_closing_early_returns_and_leaves_no_worker(context):
    # the old ProcessPoolExecutor hung here now and then (a worker killed mid-write): repeat to catch it
    for _ in range(15):
        stream = imap_unordered(big_result, [(i,) for i in range(50)], 2, context)
        assert len(next(stream)) == 4_000_000
        stream.close()
        assert not multiprocessing.active_children()


def test_bad_worker_count():
    with pytest.raises(ValueError, match="workers must be >= 1"):
        next(imap_unordered(square, [(1,)], 0, FORK))


def divide_by(x: int) -> float:
    return 1 / x


def test_a_bug_in_a_task_carries_the_worker_traceback():
    with pytest.raises(ZeroDivisionError) as info:
        list(imap_unordered(divide_by, [(1,), (0,)], 1, FORK))
    assert any("in divide_by" in note for note in info.value.__notes__)
