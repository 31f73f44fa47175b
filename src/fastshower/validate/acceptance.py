"""The shipped-model acceptance list at fixed energies: one table that says, energy by energy, whether a model meets
the bars a physicist asks of it (issue 12's list), with the Monte Carlo's own statistical floor beside each figure.

At every primary energy of the reference (a sample at fixed energies, e.g. 10, 20, 50, 100, 200, 500 GeV):
- ``response``: |mean deposit, model / MC - 1|; bar 2 %.
- ``resolution``: |(sigma/mean of the deposit), model / MC - 1|; bar 15 %.
- ``long_profile``, ``x_profile``, ``y_profile``: the largest |model / MC - 1| of the mean profile over the bins
  (layers, columns, rows) that hold more than 1 % of the MC's energy; bar 5 %.
- ``hits``: |mean number of cells above the threshold, model / MC - 1|; bar 10 %.

The floor of each figure is the same figure between the two halves of the reference (MC vs MC): a figure is only
meaningful where it stands above its floor, and a bar below the floor cannot be tested with that many showers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fastshower.validate.metrics import _rel
from fastshower.validate.observables import Observables, response

#: Bars of the acceptance list (relative deviations) and the energy share above which a profile bin counts.
BARS: dict[str, float] = {"response": 0.02, "resolution": 0.15, "long_profile": 0.05, "x_profile": 0.05,
                          "y_profile": 0.05, "hits": 0.10}
PROFILE_MIN_SHARE = 0.01
#: Relative slack of "a fixed energy": showers within it of a reference energy count as that energy.
ENERGY_MATCH = 1e-3


@dataclass
class AcceptanceRow:
    """The figures at one energy: ``values`` (model vs MC half A) and ``floors`` (MC half B vs half A)."""

    energy_GeV: float
    n_model: int
    n_reference: int
    values: dict[str, float]
    floors: dict[str, float]

    def passes(self, figure: str) -> bool:
        """Whether the figure is within its bar."""
        return bool(self.values[figure] <= BARS[figure])


def figures(reference: Observables, model: Observables) -> dict[str, float]:
    """The acceptance figures of ``model`` against ``reference`` (both at one energy)."""
    ref, mod = response(reference), response(model)  # at one energy the mean sampling fraction is the deposit's
    out = {
        "response": _rel(mod["response"], ref["response"]),
        "resolution": _rel(mod["resolution"], ref["resolution"]),
        "hits": _rel(float(np.mean(model.n_hits)), float(np.mean(reference.n_hits))),
    }
    for name in ("long_profile", "x_profile", "y_profile"):
        ref_mean, model_mean = getattr(reference, name).mean(axis=0), getattr(model, name).mean(axis=0)
        held = ref_mean > PROFILE_MIN_SHARE * ref_mean.sum()
        out[name] = float(np.max(np.abs(model_mean[held] / ref_mean[held] - 1.0))) if held.any() else float("nan")
    return out


def fixed_energies(energies_GeV: np.ndarray) -> list[float]:
    """The distinct primary energies of a fixed-energy sample (ascending)."""
    return [float(e) for e in np.unique(np.round(energies_GeV, 6))]


def acceptance_rows(reference: Observables, model: Observables, seed: int = 1) -> list[AcceptanceRow]:
    """Rows at each fixed energy of ``reference``: the model against half A of the reference's showers at that
    energy, the floor half B against half A (halves drawn with ``seed``)."""
    rng = np.random.default_rng(seed)
    rows = []
    for energy in fixed_energies(reference.energy_GeV):
        ref_idx = np.flatnonzero(np.abs(reference.energy_GeV - energy) <= ENERGY_MATCH * energy)
        mod_idx = np.flatnonzero(np.abs(model.energy_GeV - energy) <= ENERGY_MATCH * energy)
        if len(ref_idx) < 4 or len(mod_idx) < 2:
            continue
        ref_idx = rng.permutation(ref_idx)
        half_a, half_b = np.sort(ref_idx[: len(ref_idx) // 2]), np.sort(ref_idx[len(ref_idx) // 2 :])
        a = reference.select(half_a)
        rows.append(AcceptanceRow(energy, len(mod_idx), len(ref_idx), figures(a, model.select(mod_idx)),
                                  figures(a, reference.select(half_b))))
    return rows


def markdown_table(models: Mapping[str, Sequence[AcceptanceRow]]) -> str:
    """One markdown table: a row per model and energy, each figure as ``value (floor)`` with ✓ within its bar."""
    head = ["model", "E (GeV)", "showers model / MC"] + [f"{k} (bar {v:.0%})" for k, v in BARS.items()]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, rows in models.items():
        for row in rows:
            cells = [f"{row.values[k]:.3f} ({row.floors[k]:.3f}){' ✓' if row.passes(k) else ''}" for k in BARS]
            lines.append(f"| {name} | {row.energy_GeV:g} | {row.n_model} / {row.n_reference} | " + " | ".join(cells)
                         + " |")
    return "\n".join(lines)


def count_passed(rows: Sequence[AcceptanceRow]) -> tuple[int, int]:
    """(figures within their bar, figures) over the rows."""
    done = [row.passes(k) for row in rows for k in BARS]
    return sum(done), len(done)
