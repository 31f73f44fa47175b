"""Hyper-parameter scans of the training recipe with optuna (``fastshower tune``; the extra ``fastshower[tune]``).

:mod:`~fastshower.tune.space` reads and checks search spaces, :mod:`~fastshower.tune.study` runs trials (each a
training run judged by its per-epoch physics score, pruned early when hopeless) on one machine or many, and
:mod:`~fastshower.tune.report` draws the study's figures.
"""

from fastshower.tune.space import Parameter, check_space, load_space
from fastshower.tune.study import TuneOptions, run_trials, tune, write_best

__all__ = ["Parameter", "TuneOptions", "check_space", "load_space", "run_trials", "tune", "write_best"]
