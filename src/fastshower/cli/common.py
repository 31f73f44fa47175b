"""What every command shares: the program name, the argument parser, the interrupt context, progress bars."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from fastshower.errors import ConfigError

PROG = "fastshower"


class Parser(argparse.ArgumentParser):
    """Argument errors become ``ConfigError`` so that they are reported like every other user error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{self.prog}: {message}".removeprefix(f"{PROG}: ").removeprefix(f"{PROG} "))


class Context:
    """What the top level needs to know when a command fails or is interrupted: the shower file being written
    (``writer``, a :class:`~fastshower.data.ShowerWriter`) or, for other long jobs, a function saying how to
    continue (``hint``)."""

    def __init__(self) -> None:
        self.writer: Any = None
        self.hint: Callable[[], str] | None = None  # returns "" when there is nothing to say

    def leftovers(self) -> str:
        """What the failed or interrupted command left, and how to resume or discard it ("" if nothing).

        A partial file this run made and saved nothing in is deleted: there is nothing to resume.
        """
        writer = self.writer
        if writer is None or not writer.partial_path.exists():
            hint = self.hint() if self.hint is not None else ""
            return f"; {hint}" if hint else ""
        if writer.created and writer.n_saved == 0:
            writer.discard()
            return "; nothing was saved"
        return (f"; {writer.n_saved} of {writer.n_showers} showers are saved in {writer.partial_path}: run the same "
                "command again to resume, or delete it to start over")


def add_layout_options(p: argparse.ArgumentParser, what: str = "input files") -> None:
    """``--binning`` and ``--mapping``: the description of shower files that do not carry their own."""
    p.add_argument("--binning", help=f"binning of CaloChallenge {what}: the challenge's XML or "
                   "N_LAYERS,N_ALPHA,N_RADIAL (other formats ignore it)")
    p.add_argument("--mapping", metavar="YAML", help=f"mapping of ROOT {what}: tree, branches and readout grid "
                   "(docs/byo.md; other formats ignore it)")


def layout(args: argparse.Namespace) -> Any:
    """The layout description from ``--binning`` / ``--mapping`` (None when neither is given)."""
    from fastshower.data.readers import layout_from_options

    return layout_from_options(args.binning, args.mapping)


def check_seed(seed: int, option: str = "--seed") -> int:
    """A run seed: an integer in [0, 2**63) (numpy's seed sequences refuse negative ones)."""
    if not 0 <= seed < 2**63:
        raise ConfigError(f"{option} {seed}: must be an integer in [0, 2**63)")
    return seed


def check_output_file(path: Path, overwrite: bool, option: str = "--out") -> Path:
    """An output file name: not a folder, and not an existing file unless ``overwrite``."""
    if path.is_dir():
        raise ConfigError(f"{option} {path}: is a folder; give a file name")
    if path.exists() and not overwrite:
        raise ConfigError(f"{path}: exists; pass --overwrite to replace it")
    if path.parent.exists() and not path.parent.is_dir():
        raise ConfigError(f"{option} {path}: {path.parent} is not a folder")
    return path


def progress(total: int, initial: int, quiet: bool, unit: str = "shower", what: str = "") -> Any:
    """Progress on stderr: a tqdm bar (without a monitor thread) on a terminal; elsewhere (a batch job's log file)
    a log line at most every ``LOG_EVERY_S`` seconds and one at the end, with done/total and the rate; nothing when
    ``quiet``. Both have ``update(n)``, ``set_postfix_str(text)`` and ``close()``."""
    if not quiet and not sys.stderr.isatty():
        return LogProgress(total, initial, unit, what)
    from tqdm import tqdm

    class Bar(tqdm):  # type: ignore[misc, valid-type]
        # no monitor thread: it is not needed, and a thread would make forking the worker pool unsafe
        monitor_interval = 0

    layout = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"
    return Bar(total=total, initial=initial, unit=unit, disable=quiet, file=sys.stderr,
               dynamic_ncols=True, bar_format=layout)


#: Seconds between two progress lines when stderr is not a terminal.
LOG_EVERY_S = 30.0


class LogProgress:
    """Progress as log lines (see :func:`progress`)."""

    def __init__(self, total: int, initial: int, unit: str, what: str) -> None:
        import logging
        import time

        self.logger, self.clock = logging.getLogger("fastshower.progress"), time.monotonic
        self.total, self.n, self.start_n, self.unit, self.what = total, initial, initial, unit, what
        self.started = self.last = self.clock()
        self.closed = False

    def update(self, n: int) -> None:
        self.n += n
        if self.clock() - self.last >= LOG_EVERY_S:
            self._line()

    def set_postfix_str(self, text: str) -> None:
        """Ignored: the log line gives the rate itself."""

    def close(self) -> None:
        """The last line, when the work is complete (a failed run ends with its one-line error instead)."""
        if not self.closed and self.n >= self.total:
            self._line()
        self.closed = True

    def _line(self) -> None:
        self.last = self.clock()
        rate = (self.n - self.start_n) / max(self.last - self.started, 1e-9)
        what = f"{self.what}: " if self.what else ""
        self.logger.info("%s%d/%d %ss done, %.1f %ss/s", what, self.n, self.total, self.unit, rate, self.unit)


class _Bars:
    """The progress bars of one output file (see :func:`writing`)."""

    def __init__(self) -> None:
        self.bars: list[Any] = []

    def add(self, bar: Any) -> Any:
        """Keep ``bar`` to close it with the file; returns it."""
        self.bars.append(bar)
        return bar

    def close(self) -> None:
        for bar in self.bars:
            bar.close()


@contextlib.contextmanager
def writing(ctx: Context, writer: Any) -> Iterator[_Bars]:
    """Write a shower file with ``writer`` (a :class:`~fastshower.data.ShowerWriter`): ``ctx`` knows it meanwhile
    (an interrupt then says how to resume), the block's progress bars (``bars.add(bar)``) are closed, the file is
    finalised when the block ends normally and the writer closed in any case (the partial file stays to resume)."""
    ctx.writer = writer
    bars = _Bars()
    try:
        yield bars
        bars.close()
        writer.finalize()
    finally:
        bars.close()
        writer.close()
    ctx.writer = None
