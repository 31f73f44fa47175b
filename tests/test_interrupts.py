"""SIGTERM as an interrupt, and critical sections that an interrupt waits for (checkpoints, bundles)."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from fastshower.atomic import atomic_write, atomic_write_text, file_mode
from fastshower.interrupts import Terminated, deferred_interrupts, terminate_as_interrupt


def test_sigterm_raises_terminated_inside_the_block_only():
    with pytest.raises(Terminated), terminate_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # the handler runs at the next bytecode boundary
            pass
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    assert issubclass(Terminated, KeyboardInterrupt)  # every `except KeyboardInterrupt` cleanup applies


@pytest.mark.usefixtures("sigint_raises")
@pytest.mark.parametrize(("signum", "raised"), [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Terminated)])
def test_an_interrupt_waits_for_the_end_of_a_critical_section(signum, raised):
    done = []
    with pytest.raises(raised), terminate_as_interrupt(), deferred_interrupts():
        os.kill(os.getpid(), signum)
        for _ in range(1000):
            pass
        done.append("finished")
    assert done == ["finished"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.usefixtures("sigint_raises")
def test_an_interrupt_during_a_checkpoint_write_leaves_the_new_file_whole(tmp_path):
    path = tmp_path / "last.pt"
    atomic_write(path, lambda f: torch.save({"step": 1}, f))
    big = {"step": 2, "weights": torch.arange(2_000_000, dtype=torch.float32)}

    def save_with_interrupt(f):
        os.kill(os.getpid(), signal.SIGINT)  # lands inside torch.save's C++ writer
        torch.save(big, f)

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, save_with_interrupt)
    loaded = torch.load(path, weights_only=True)
    assert loaded["step"] == 2 and torch.equal(loaded["weights"], big["weights"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temporary file left


def test_without_deferral_torch_save_turns_an_interrupt_into_a_runtime_error(tmp_path):
    # why checkpoints are written under deferred_interrupts: this is the 40-line traceback users saw
    class InterruptingFile:
        def __init__(self, f):
            self.f, self.calls = f, 0

        def write(self, data):
            self.calls += 1
            if self.calls == 2:
                raise KeyboardInterrupt
            return self.f.write(data)

        def flush(self):
            self.f.flush()

    with open(tmp_path / "x.pt", "wb") as f, pytest.raises(RuntimeError):
        torch.save({"w": torch.zeros(100_000)}, InterruptingFile(f))


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = atomic_write_text(tmp_path / "index.html", "old")

    def fails(f):
        f.write(b"half of the new")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_write(path, fails)
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["index.html"]
    assert path.stat().st_mode & 0o777 == file_mode()  # the umask's mode, not private like mkstemp's files
    old = os.umask(0o077)
    try:
        atomic_write_text(path, "private")
        assert path.stat().st_mode & 0o777 == 0o600  # a user who asks for private files gets them
    finally:
        os.umask(old)
