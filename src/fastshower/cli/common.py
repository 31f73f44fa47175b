"""What every command shares: the program name, the argument parser, the interrupt context, progress bars."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fastshower.errors import ConfigError

PROG = "fastshower"


class Parser(argparse.ArgumentParser):
    """Argument errors become ``ConfigError`` so that they are reported like every other user error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{self.prog}: {message}".removeprefix(f"{PROG}: ").removeprefix(f"{PROG} "))


class Context:
    """What the top level needs to know to report an interrupt (the partial file, showers saved)."""

    def __init__(self) -> None:
        self.partial: Path | None = None
        self.saved = 0
        self.total = 0


def progress(total: int, initial: int, disable: bool, unit: str = "shower") -> Any:
    """A tqdm bar on stderr without a monitor thread."""
    from tqdm import tqdm

    class Bar(tqdm):  # type: ignore[misc, valid-type]
        # no monitor thread: it is not needed, and a thread would make forking the worker pool unsafe
        monitor_interval = 0

    layout = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"
    return Bar(total=total, initial=initial, unit=unit, disable=disable, file=sys.stderr,
               dynamic_ncols=True, bar_format=layout)
