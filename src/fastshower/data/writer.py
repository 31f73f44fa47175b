"""Resumable, atomic writer of fastshower HDF5 files.

A production job writes into ``<path>.partial``: all datasets are created at full size up front, together
with a boolean dataset ``_done`` (N,) that records which showers are on disk. ``finalize`` checks that every
shower is done, drops ``_done`` and renames the file to ``<path>`` with ``os.replace``; the final name
therefore only ever appears for a complete file.

Crash safety: HDF5 is not journaled, so a ``kill -9`` in the middle of an HDF5 write can leave the
partial file unreadable. What protects the work is the order of operations in ``write``: the shower data
are written and flushed to disk first, and only then are their ``_done`` flags set and flushed again. A kill
between the two flushes loses that batch (it is redone on resume) but never marks unwritten showers as done.
If the partial file itself was damaged, opening it raises ``DataFormatError`` naming it: it is never deleted
silently (the user decides).

Writers: ``<path>.partial.lock`` records the process writing the partial file (:mod:`fastshower.data.lock`), so
that a rerun after a kill takes the file over while a live writer is still refused. A write and the
finalisation hold Ctrl-C and SIGTERM until they are done (:func:`fastshower.interrupts.deferred_interrupts`), so
an interrupt never lands between the data and their ``_done`` flags or halfway through the rename.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from fastshower.data.lock import WriterLock
from fastshower.data.schema import (
    CONFIG_ATTRS,
    FORMAT_NAME,
    LEDGER_KEYS,
    SCHEMA_VERSION,
    ShowerData,
    config_json,
    decode_attrs,
    encode_attrs,
    hdf5_open_error,
    is_lock_error,
    package_version,
)
from fastshower.errors import DataFormatError
from fastshower.interrupts import deferred_interrupts

logger = logging.getLogger(__name__)

DONE_KEY = "_done"
#: gzip level 4 with the shuffle filter: most cells are empty, so float32 images compress several-fold
#: at a fraction of the cost of level 9.
_COMPRESSION: dict[str, Any] = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
_PER_SHOWER = (("energy", np.float64), ("theta", np.float64), ("phi", np.float64), ("pdgID", np.int32))


def partial_path(path: str | Path) -> Path:
    """Name of the in-progress file for the final file ``path`` (``<path>.partial``)."""
    path = Path(path)
    return path.with_name(path.name + ".partial")


class ShowerWriter:
    """Write N showers into ``<path>.partial`` in any order, resumably; ``finalize`` renames it to ``path``.

    Args:
        path: final file name; the work happens in ``<path>.partial``.
        n_showers: total number of showers N in the file.
        cell_shape: (nx, ny, nz) of one shower image.
        attrs: metadata ("geometry", "physics", "seed", "version", "request", ... see ``encode_attrs``).
        ledger_keys: energy-ledger datasets to create under ``ledger/`` (GeV); empty for none.
        resume: reopen an existing partial file made with the same configuration; if False an existing partial
            file is discarded (with a warning) and the production starts over.
        overwrite: allow replacing an existing final file (the old one stays until ``finalize``).
        tables: datasets known before any shower is made, by path (``"particles/pdg"``), written whole when the
            partial file is created; a resumed file must hold the same ones with the same values.

    Raises:
        DataFormatError: the final file exists (and not ``overwrite``) or is a folder, the partial file was made
            with another configuration, is being written by another live process, or cannot be opened
            (truncated/corrupt).

    ``created`` tells whether this writer made the partial file (rather than resuming one), ``n_saved`` how
    many showers it holds; :meth:`discard` deletes it.
    """

    def __init__(
        self,
        path: str | Path,
        n_showers: int,
        cell_shape: tuple[int, int, int],
        attrs: Mapping[str, Any],
        ledger_keys: Sequence[str] = LEDGER_KEYS,
        resume: bool = True,
        overwrite: bool = False,
        tables: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        self.path = Path(path)
        self.partial_path = partial_path(self.path)
        self.n_showers = int(n_showers)
        self.cell_shape: tuple[int, int, int] = tuple(int(c) for c in cell_shape)  # type: ignore[assignment]
        self.ledger_keys = tuple(str(k) for k in ledger_keys)
        self.overwrite = overwrite
        self._tables = {str(k): np.asarray(v) for k, v in (tables or {}).items()}
        self._attrs = dict(attrs)
        self._attrs.setdefault("version", package_version())
        self._attrs.setdefault("geometry", {})
        self._attrs.setdefault("physics", {})
        self._file: h5py.File | None = None
        self.created = False
        self.n_saved = 0

        if self.n_showers < 1:
            raise DataFormatError(f"{self.path}: n_showers must be >= 1 (got {self.n_showers})")
        if len(self.cell_shape) != 3 or min(self.cell_shape) < 1:
            raise DataFormatError(f"{self.path}: cell_shape must be 3 positive integers (got {cell_shape})")
        if any("/" in k or not k for k in self.ledger_keys):
            raise DataFormatError(f"{self.path}: invalid ledger key in {list(self.ledger_keys)}")
        if self.path.is_dir():
            raise DataFormatError(f"{self.path}: is a folder, not a file name")
        if self.path.exists() and not overwrite:
            raise DataFormatError(f"{self.path}: exists; refusing to overwrite")
        # encode now so that unstorable attrs fail before any work is done
        encoded = encode_attrs(str(self.path), self._attrs)

        self._lock = WriterLock(self.partial_path)
        self._lock.acquire()
        try:
            if self.partial_path.exists() and resume:
                self._reopen()
            else:
                if self.partial_path.exists():
                    logger.warning("%s: discarding the existing partial file (resume=False)", self.partial_path)
                self._create(encoded)
        except BaseException:
            self._lock.release()
            raise

    # --- opening ---------------------------------------------------------------------------------------

    def _create(self, encoded: dict[str, Any]) -> None:
        n, shape = self.n_showers, self.cell_shape
        self.partial_path.parent.mkdir(parents=True, exist_ok=True)
        f = self._open("w")
        self.created = True
        # one shower per chunk: a batch write touches only its own chunks, and readers of a slice
        # decompress only what they need
        f.create_dataset("ECAL", shape=(n, *shape), dtype=np.float32, chunks=(1, *shape), **_COMPRESSION)
        # the per-shower numbers uncompressed: a batch writes part of one of their chunks, which HDF5 must read
        # back to update where a filter is on, and a kill -9 in the middle of a compressed chunk's write left it
        # unreadable ("filter returned failure during read" on resume). An uncompressed chunk is updated in place;
        # the ECAL's chunks are one shower each, always written whole, so they never need reading back.
        chunk_1d = (min(n, 16384),)
        for name, dtype in _PER_SHOWER:
            f.create_dataset(name, shape=(n,), dtype=dtype, chunks=chunk_1d)
        if self.ledger_keys:
            grp = f.create_group("ledger")
            for key in self.ledger_keys:
                grp.create_dataset(key, shape=(n,), dtype=np.float64, chunks=chunk_1d)
        for name, values in self._tables.items():
            f.create_dataset(name, data=values, **(_COMPRESSION if values.size else {}))
        f.create_dataset(DONE_KEY, shape=(n,), dtype=bool, chunks=chunk_1d, fillvalue=False)
        # attrs are stored from the start so that a resumed job can be checked against them
        f.attrs.update(encoded)
        f.attrs["format"] = FORMAT_NAME
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.flush()
        self._file = f

    def _open(self, mode: str) -> h5py.File:
        try:
            return h5py.File(self.partial_path, mode)
        except OSError as exc:
            if not (self._lock.took_over and is_lock_error(exc)):
                raise hdf5_open_error(self.partial_path, exc) from None
        # the recorded writer is dead, so whoever holds HDF5's lock is not writing (see fastshower.data.lock)
        logger.warning("%s: still locked by a leftover of the dead writer; opening it without HDF5's lock",
                       self.partial_path)
        try:
            return h5py.File(self.partial_path, mode, locking=False)
        except OSError as exc:
            raise hdf5_open_error(self.partial_path, exc) from None

    def _reopen(self) -> None:
        p = self.partial_path
        f = self._open("r+")
        try:
            if DONE_KEY not in f or "ECAL" not in f:
                raise DataFormatError(
                    f"{p}: is not a fastshower partial file (no '{DONE_KEY}' or 'ECAL' dataset)"
                )
            old = decode_attrs(f.attrs)
            differ: list[str] = []
            if f["ECAL"].shape[0] != self.n_showers:
                differ.append(f"n_showers {f['ECAL'].shape[0]} vs {self.n_showers}")
            if tuple(f["ECAL"].shape[1:]) != self.cell_shape:
                differ.append(f"cell_shape {tuple(f['ECAL'].shape[1:])} vs {self.cell_shape}")
            old_ledger = tuple(f["ledger"].keys()) if "ledger" in f else ()
            if set(old_ledger) != set(self.ledger_keys):
                differ.append("ledger keys")
            for name, values in self._tables.items():
                if name not in f or not np.array_equal(f[name][...], values):
                    differ.append(name)
            old_cfg, new_cfg = config_json(old), config_json(self._attrs)
            differ += [k for k in CONFIG_ATTRS if old_cfg[k] != new_cfg[k]]
            if differ:
                verb = "differs" if len(differ) == 1 else "differ"
                raise DataFormatError(
                    f"{p}: existing partial file was made with a different configuration "
                    f"({', '.join(differ)} {verb}); delete it or change --out"
                )
        except BaseException:
            f.close()
            raise
        self._file = f
        self.n_saved = int(self.done_mask().sum())
        logger.info("%s: resuming, %d of %d showers already written", p, self.n_saved, self.n_showers)

    # --- writing ---------------------------------------------------------------------------------------

    @property
    def _f(self) -> h5py.File:
        if self._file is None:
            raise DataFormatError(f"{self.partial_path}: writer is closed")
        return self._file

    def done_mask(self) -> np.ndarray:
        """Boolean (N,) array: True for the showers already written (safe to skip when resuming)."""
        return np.asarray(self._f[DONE_KEY][...], dtype=bool)

    def write(self, start: int, data: ShowerData) -> None:
        """Write showers ``[start, start + len(data))`` and mark them done.

        Data are flushed to disk before the ``_done`` flags are set and flushed, so once this returns a kill
        of the process loses nothing. Rewriting an already-done range is allowed (same result on a re-run).
        """
        f, p = self._f, self.partial_path
        start, stop = int(start), int(start) + len(data)
        if start < 0 or stop > self.n_showers:
            raise DataFormatError(f"{p}: showers [{start}, {stop}) are outside [0, {self.n_showers})")
        if data.cell_shape != self.cell_shape:
            raise DataFormatError(
                f"{p}: showers have cell shape {data.cell_shape}, the file {self.cell_shape}"
            )
        if set(data.ledger) != set(self.ledger_keys):
            raise DataFormatError(
                f"{p}: showers carry ledger keys {sorted(data.ledger)}, the file {sorted(self.ledger_keys)}"
            )
        if stop == start:
            return
        with deferred_interrupts():
            newly_done = int(np.count_nonzero(~f[DONE_KEY][start:stop]))
            f["ECAL"][start:stop] = data.ecal
            f["energy"][start:stop] = data.energy_GeV
            f["theta"][start:stop] = data.theta_rad
            f["phi"][start:stop] = data.phi_rad
            f["pdgID"][start:stop] = data.pdg
            for key in self.ledger_keys:
                f["ledger"][key][start:stop] = data.ledger[key]
            f.flush()
            f[DONE_KEY][start:stop] = True
            f.flush()
            self.n_saved += newly_done

    def finalize(self) -> Path:
        """Check that all N showers are written, drop ``_done``, close, and atomically rename to ``path``.

        Raises ``DataFormatError`` (leaving the partial file intact and the writer open) if showers are
        missing. Returns the final path.
        """
        f, p = self._f, self.partial_path
        done = self.done_mask()
        if not done.all():
            missing = np.flatnonzero(~done)
            raise DataFormatError(
                f"{p}: {missing.size} of {self.n_showers} showers are missing (first at index {missing[0]}); "
                "resume the job to write them"
            )
        if self.path.exists() and not self.overwrite:
            raise DataFormatError(f"{self.path}: exists; refusing to overwrite")
        if self.path.is_dir():
            raise DataFormatError(f"{self.path}: is a folder, not a file name")
        with deferred_interrupts():  # from here on, the partial file is no longer resumable until renamed
            del f[DONE_KEY]
            # rewrite the attributes from scratch: a resumed job may pass fewer extras than the one that began
            for key in list(f.attrs):
                del f.attrs[key]
            f.attrs.update(encode_attrs(str(self.path), self._attrs))
            f.attrs["format"] = FORMAT_NAME
            f.attrs["schema_version"] = SCHEMA_VERSION
            f.close()
            self._file = None
            _fsync(p)
            os.replace(p, self.path)
            _fsync(self.path.parent)  # make the rename itself durable
            self._lock.release()
        logger.info("%s: wrote %d showers", self.path, self.n_showers)
        return self.path

    def close(self) -> None:
        """Close without finalizing; the partial file stays for a later resume. Idempotent."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._lock.release()

    def discard(self) -> None:
        """Close and delete the partial file (a run that failed and cannot or need not be resumed)."""
        self.close()
        self.partial_path.unlink(missing_ok=True)
        self.n_saved = 0

    def __enter__(self) -> ShowerWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _fsync(path: Path) -> None:
    # durability of the data before the rename; best effort (directories cannot be opened on Windows)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_showers(path: str | Path, data: ShowerData, overwrite: bool = False) -> Path:
    """Write ``data`` to a fastshower HDF5 file at ``path`` in one go (atomically); returns the path.

    The ledger keys written are those of ``data.ledger``; ``data.attrs`` become root attributes (a
    non-fastshower "format" is kept as "source_format"). Any stale ``<path>.partial`` is replaced.
    """
    attrs = dict(data.attrs)
    fmt = attrs.pop("format", FORMAT_NAME)
    if fmt != FORMAT_NAME:
        attrs.setdefault("source_format", fmt)
    keys = [k for k in LEDGER_KEYS if k in data.ledger] + [k for k in data.ledger if k not in LEDGER_KEYS]
    if len(data) == 0:
        raise DataFormatError(f"{path}: no showers to write")
    writer = ShowerWriter(
        path, len(data), data.cell_shape, attrs, ledger_keys=keys, resume=False, overwrite=overwrite
    )
    try:
        writer.write(0, data)
        return writer.finalize()
    except BaseException:  # written in one go: a partial file of it could never be resumed
        writer.discard()
        raise
