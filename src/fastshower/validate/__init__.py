"""Validation of generated showers against a reference sample (observables, metrics, classifier, report).

Imports only ``fastshower.data`` and ``fastshower.errors`` (and numpy, scipy, torch, matplotlib lazily where
needed); see ``docs/validation.md`` for what each metric means and how the report is read.
"""

from fastshower.validate.metrics import compare, distances, physics_distances, separation_power
from fastshower.validate.observables import (
    DEFAULT_THRESHOLD_GeV,
    Observables,
    bin_by_energy,
    compute_observables,
    compute_observables_file,
    response,
)
from fastshower.validate.report import DEFAULT_ENERGY_EDGES, DEFAULT_TOLERANCES, load_tolerances, run_validation

__all__ = [
    "DEFAULT_ENERGY_EDGES",
    "DEFAULT_THRESHOLD_GeV",
    "DEFAULT_TOLERANCES",
    "Observables",
    "bin_by_energy",
    "compare",
    "compute_observables",
    "compute_observables_file",
    "distances",
    "load_tolerances",
    "physics_distances",
    "response",
    "run_validation",
    "separation_power",
]
