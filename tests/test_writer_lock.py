"""The writer record beside a partial file: a live writer is refused, a dead one's file is taken over."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from conftest import synthetic_showers
from fastshower.data import ShowerWriter, partial_path, read_showers
from fastshower.data.lock import lock_path
from fastshower.errors import DataFormatError
from fastshower.lifetime import ProcessIdentity

SHAPE = (8, 8, 8)
ATTRS = {"seed": 3, "request": {"n": 6}}


def writer(out, **kwargs) -> ShowerWriter:
    return ShowerWriter(out, 6, SHAPE, ATTRS, ledger_keys=(), **kwargs)


def half_written(out) -> None:
    """A partial file with showers 0-2 of 6 done, left as a killed writer leaves it (record included)."""
    w = writer(out)
    w.write(0, synthetic_showers(3, SHAPE, seed=1))
    record = lock_path(partial_path(out)).read_text()
    w.close()
    lock_path(partial_path(out)).write_text(record)


def dead_record() -> dict:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    identity = ProcessIdentity.of(child.pid)
    child.wait()
    return identity.to_dict()


@pytest.fixture
def sleeper():
    """A live process that is not this one (the 'other writer')."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc
    proc.kill()
    proc.wait()


def test_the_record_names_this_process_while_writing_and_goes_afterwards(tmp_path):
    out = tmp_path / "a.h5"
    w = writer(out)
    record = json.loads(lock_path(w.partial_path).read_text())
    assert record["pid"] == ProcessIdentity.current().pid and record["host"] == ProcessIdentity.current().host
    w.write(0, synthetic_showers(6, SHAPE))
    w.finalize()
    assert out.is_file() and not lock_path(w.partial_path).exists() and not w.partial_path.exists()
    w2 = writer(tmp_path / "b.h5")
    w2.close()  # closed unfinished: the partial file stays for a resume, the record goes
    assert w2.partial_path.exists() and not lock_path(w2.partial_path).exists()


def test_a_live_writer_is_refused(tmp_path, sleeper):
    out = tmp_path / "a.h5"
    half_written(out)
    time.sleep(0.2)
    identity = ProcessIdentity.of(sleeper.pid)
    lock_path(partial_path(out)).write_text(json.dumps(identity.to_dict()))
    with pytest.raises(DataFormatError, match=rf"is being written by process {sleeper.pid} \(still running\)"):
        writer(out)
    assert json.loads(lock_path(partial_path(out)).read_text())["pid"] == sleeper.pid  # left as it was


def test_a_dead_writers_file_is_taken_over_and_resumed(tmp_path):
    out = tmp_path / "a.h5"
    half_written(out)
    lock_path(partial_path(out)).write_text(json.dumps(dead_record()))
    w = writer(out)
    assert w.n_saved == 3 and not w.created
    assert json.loads(lock_path(w.partial_path).read_text())["pid"] == ProcessIdentity.current().pid
    w.write(3, synthetic_showers(3, SHAPE, seed=2))
    w.finalize()
    assert len(read_showers(out)) == 6


def test_a_leftover_holding_the_hdf5_lock_does_not_block_the_takeover(tmp_path):
    # an orphaned worker of an older fastshower kept the file open (and so HDF5's lock) after its parent died
    out = tmp_path / "a.h5"
    half_written(out)
    holder = subprocess.Popen([sys.executable, "-c", f"import h5py, time; f = h5py.File({str(partial_path(out))!r}, "
                               "'r+'); print('open', flush=True); time.sleep(120)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(DataFormatError, match="is locked by another process"):
            writer(out)  # no record of a dead writer: the holder may be writing
        lock_path(partial_path(out)).write_text(json.dumps(dead_record()))
        w = writer(out)
        assert w.n_saved == 3
        w.write(3, synthetic_showers(3, SHAPE, seed=2))
        w.finalize()
    finally:
        holder.kill()
        holder.wait()
    with h5py.File(out, "r") as f:
        assert f["ECAL"].shape == (6, *SHAPE)


def test_a_record_from_another_host_is_refused_with_what_to_delete(tmp_path):
    out = tmp_path / "a.h5"
    half_written(out)
    lock = lock_path(partial_path(out))
    lock.write_text(json.dumps({"host": "node-17", "pid": 4242, "start_ticks": 1}))
    with pytest.raises(DataFormatError, match=rf"process 4242 on host node-17 .*delete {lock}"):
        writer(out)


def test_an_unreadable_record_names_no_writer(tmp_path, caplog):
    out = tmp_path / "a.h5"
    half_written(out)
    lock_path(partial_path(out)).write_text("{not json")
    w = writer(out)
    assert w.n_saved == 3 and "unreadable writer record" in caplog.text
    w.close()


def test_discard_removes_the_partial_file_and_the_record(tmp_path):
    w = writer(tmp_path / "a.h5")
    w.write(0, synthetic_showers(2, SHAPE))
    w.discard()
    assert not w.partial_path.exists() and not lock_path(w.partial_path).exists()


def test_an_output_name_that_is_a_folder_is_refused_before_anything_is_written(tmp_path):
    (tmp_path / "out.h5").mkdir()
    with pytest.raises(DataFormatError, match="is a folder"):
        writer(tmp_path / "out.h5", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"]


@pytest.mark.usefixtures("sigint_raises")
def test_interrupted_writes_complete_before_the_interrupt(tmp_path, monkeypatch):
    import os
    import signal

    w = writer(tmp_path / "a.h5")
    real_flush = h5py.File.flush
    calls = []

    def flush_then_interrupt(self):
        real_flush(self)
        calls.append(1)
        if len(calls) == 1:  # between the data and their done flags
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(h5py.File, "flush", flush_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        w.write(0, synthetic_showers(2, SHAPE))
    monkeypatch.undo()
    assert len(calls) == 2 and w.n_saved == 2 and np.all(w.done_mask()[:2])
    w.close()
