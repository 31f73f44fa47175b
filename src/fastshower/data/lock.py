"""Who is writing a partial file: ``<file>.partial.lock`` records the writer, so a rerun can tell dead from live.

HDF5 locks a file while a process has it open, and the lock goes when the last process holding it goes. A
writer killed with SIGKILL leaves its partial file behind (which is how a production resumes), and the lock
file recording it; the rerun reads the record and

- refuses while the recorded process still runs on this host (two writers would corrupt the file);
- takes over when it is gone: the record is replaced, and if HDF5 still reports the file locked, the holder is
  not its writer (an orphaned worker of a fastshower older than this one kept a copy of the descriptor; no
  worker ever writes), so the file is opened without HDF5's lock;
- refuses a record from another host, whose processes cannot be looked at, and says which file to delete.

The record is written atomically (temporary file and rename) and removed when the writer closes.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from fastshower.atomic import atomic_write_text
from fastshower.errors import DataFormatError
from fastshower.lifetime import ProcessIdentity

logger = logging.getLogger(__name__)


def lock_path(partial: str | Path) -> Path:
    """The record of the writer of ``partial`` (``<partial>.lock``)."""
    partial = Path(partial)
    return partial.with_name(partial.name + ".lock")


class WriterLock:
    """The record that this process writes ``partial``; :meth:`acquire` before opening, :meth:`release` after.

    ``took_over`` is True when the record of a dead writer was replaced (the file may then still carry an HDF5
    lock held by a leftover of that writer).
    """

    def __init__(self, partial: str | Path) -> None:
        self.partial = Path(partial)
        self.path = lock_path(self.partial)
        self.me = ProcessIdentity.current()
        self.took_over = False
        self._held = False

    def acquire(self) -> None:
        """Record this process as the writer; ``DataFormatError`` while another live writer holds the file."""
        previous = self._read_previous()
        if previous is not None and previous != self.me:
            if not previous.is_local():
                raise DataFormatError(
                    f"{self.partial}: is being written by process {previous.pid} on host {previous.host} "
                    f"(recorded in {self.path}); if that job is gone, delete {self.path} and run again"
                )
            if previous.is_running():
                raise DataFormatError(
                    f"{self.partial}: is being written by process {previous.pid} (still running); wait for it to "
                    f"finish or stop it (kill {previous.pid}), then run again"
                )
            logger.info("%s: the writer that left it (process %d) is gone; taking over", self.partial,
                        previous.pid)
            self.took_over = True
        self._write_record()
        self._held = True

    def release(self) -> None:
        """Remove the record if it is still this process's. Idempotent."""
        if not self._held:
            return
        self._held = False
        try:
            if self._read_previous() == self.me:
                self.path.unlink()
        except (OSError, DataFormatError):
            pass

    def _read_previous(self) -> ProcessIdentity | None:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise DataFormatError(f"{self.path}: cannot be read ({err.strerror or err})") from None
        try:
            return ProcessIdentity.from_dict(json.loads(text))
        except (ValueError, KeyError, TypeError, AttributeError):
            # a torn record (a writer killed while writing it cannot leave one: it is renamed into place) or
            # a foreign file: it names no live writer
            logger.warning("%s: unreadable writer record; ignoring it", self.path)
            return None

    def _write_record(self) -> None:
        record = {**self.me.to_dict(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        atomic_write_text(self.path, json.dumps(record))
