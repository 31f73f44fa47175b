"""Command line: ``fastshower <command> ...`` (also ``python -m fastshower``).

Every user error (a :class:`~fastshower.errors.FastshowerError`) ends the program with exit code 2 and one
line ``fastshower: error: <message>`` on stderr, never a traceback; an interrupt (Ctrl-C, or SIGTERM from
``kill`` or a batch system) ends it with exit code 1. Both say what the command left and how to resume it.

Commands are registered in ``COMMANDS`` (name -> help, function adding the arguments, function running it);
each lives in a module of this package.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Callable, Sequence

from fastshower import __version__
from fastshower.cli import demo, generation, simulate, train, tune, validate
from fastshower.cli.common import PROG, Context, Parser
from fastshower.errors import FastshowerError
from fastshower.interrupts import Terminated, terminate_as_interrupt

Command = tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace, Context], int]]
COMMANDS: dict[str, Command] = {
    "simulate": ("simulate showers with the detailed Monte Carlo into an HDF5 file (resumable)",
                 simulate.add_simulate, simulate.run_simulate),
    "merge": ("join shower files of the same detector and physics into one", simulate.add_merge,
              simulate.run_merge),
    "inspect": ("describe a shower file", simulate.add_inspect, simulate.run_inspect),
    "train": ("train a generative model (3DGAN or 3dvae) on a shower file; one process or many under torchrun",
              train.add_train, train.run_train),
    "fit-layers": ("fit a 3dvae's layer-energy flows on its training showers, keeping its decoder",
                   train.add_fit_layers, train.run_fit_layers),
    "demo": ("simulate a small sample at a few energies, print a summary and plot it", demo.add_demo, demo.run_demo),
    "validate": ("compare a candidate shower sample with a reference: HTML report and metrics.json",
                 validate.add_validate, validate.run_validate),
    "generate": ("generate showers with a trained model into an HDF5 file", generation.add_generate,
                 generation.run_generate),
    "export": ("export a trained generator to ONNX (one [latent | conditions] input)", generation.add_export,
               generation.run_export),
    "bench": ("time the model and the Monte Carlo side by side", generation.add_bench, generation.run_bench),
    "models": ("list the shipped models: detector, particles, energy and angle range", generation.add_models,
               generation.run_models),
    "tune": ("scan the training recipe's hyper-parameters with optuna: trials judged by their physics score, "
             "resumable, on one machine or many", tune.add_tune, tune.run_tune),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of all commands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="debug messages")
    common.add_argument("-q", "--quiet", action="store_true",
                        help="warnings and results only, no progress bar")
    parser = Parser(prog=PROG, description="Fast simulation of calorimeter showers.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="command", required=True)
    for name, (help_text, add_arguments, _) in COMMANDS.items():
        add_arguments(sub.add_parser(name, help=help_text, description=help_text, parents=[common]))
    return parser


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        return f"{PROG}: {level}{record.getMessage()}"


class _BarSafeHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Log lines printed above a progress bar, never inside it (tqdm clears the bar, prints, redraws)."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 - logging must not raise
            self.handleError(record)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 interrupted, 2 user error)."""
    ctx = Context()
    pkg_logger = logging.getLogger("fastshower")
    old_level, handler = pkg_logger.level, None
    try:
        try:
            args = build_parser().parse_args(argv)
            args.command_line = shlex.join([PROG, *(sys.argv[1:] if argv is None else argv)])  # for provenance
        except SystemExit as exit_:  # --help, --version
            return exit_.code if isinstance(exit_.code, int) else 0
        handler = _BarSafeHandler(sys.stderr)
        handler.setFormatter(_Formatter())
        pkg_logger.addHandler(handler)
        level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
        pkg_logger.setLevel(level)
        with terminate_as_interrupt():
            return COMMANDS[args.command][2](args, ctx)
    except FastshowerError as err:
        _error(f"{err}{ctx.leftovers()}")
        return 2
    except OSError as err:
        where = f"{err.filename}: " if getattr(err, "filename", None) else ""
        _error(f"{where}{err.strerror or err}{ctx.leftovers()}")
        return 2
    except KeyboardInterrupt as stop:
        what = "terminated (SIGTERM)" if isinstance(stop, Terminated) else "interrupted"
        _error(f"{what}{ctx.leftovers()}")
        return 1
    finally:
        if handler is not None:
            pkg_logger.removeHandler(handler)
        pkg_logger.setLevel(old_level)


def _error(message: str) -> None:
    line = " ".join(str(message).split())  # one line, whatever the message holds
    print(f"{PROG}: error: {line}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
