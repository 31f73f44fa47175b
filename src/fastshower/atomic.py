"""Atomic file writes: readers see the old file or the new one, never half of one, whatever interrupts the write.

Every output that is not a shower file (those have their resumable writer, :mod:`fastshower.data.writer`) is
written here: checkpoints, model bundles, reports, figures, benchmark results, writer records. The content goes
to a temporary file in the target's folder, is flushed to disk, and is renamed over the target; a failure removes
the temporary file and leaves the old target untouched. Ctrl-C and SIGTERM wait until the file is in place
(:func:`fastshower.interrupts.deferred_interrupts`): ``torch.save`` would turn one landing inside it into a
``RuntimeError``, and a half-done rename is no use to anyone.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from fastshower.interrupts import deferred_interrupts


def file_mode() -> int:
    """The mode a new file gets from ``open``: 0o666 less the process's umask (mkstemp alone would make outputs
    private to the user, 0o600, whatever the umask says)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write(binary_file)`` on a temporary file next to ``path``, then rename it over ``path``."""

    def fill(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            write(f)

    return atomic_output(path, fill)


def atomic_output(path: str | Path, fill: Callable[[Path], object]) -> Path:
    """Call ``fill(temporary_path)`` (it writes the file there, e.g. with h5py, and closes it), then flush that
    file to disk and rename it over ``path``; on any failure the temporary file is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        with deferred_interrupts():  # an interrupt waits until the file is in place (see the module docstring)
            fill(tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.chmod(tmp, file_mode())
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda f: f.write(data))


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's content, read in 1 MiB blocks (provenance of inputs)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
