"""The acceptance list at fixed energies (fastshower.validate.acceptance): figures that see the defect they name,
floors from the reference's own halves, bars from issue 12's list."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fastshower.data import ShowerData
from fastshower.validate.acceptance import BARS, acceptance_rows, count_passed, figures, markdown_table
from fastshower.validate.observables import compute_observables


def at_energies(energies: list[float], per_energy: int, seed: int):
    """Toy showers at fixed energies: a Gaussian core whose depth grows with ln E, 2 % of E deposited, each cell
    gamma-smeared (the cell-to-cell fluctuations that make a finite sample's floor)."""
    rng = np.random.default_rng(seed)
    x = (np.arange(8) - 3.5)[:, None, None]
    z = np.arange(8)[None, None, :]
    target = np.repeat(energies, per_energy).astype(float)
    ecal = []
    for e in target:
        core = np.exp(-((z - 1.0 - 0.5 * np.log(e)) ** 2) / 8.0) * np.exp(-(x**2 + x.transpose(1, 0, 2) ** 2) / 2.0)
        ecal.append(core / core.sum() * 0.02 * e * rng.gamma(50.0, 1 / 50.0, size=(8, 8, 8)))
    zeros = np.zeros(len(target))
    return compute_observables(ShowerData(np.asarray(ecal, np.float32), target, zeros, zeros, np.full(len(target), 11)))


def test_a_sample_like_the_reference_meets_the_bars_and_defects_are_seen():
    reference, model = at_energies([20.0, 100.0], 400, 0), at_energies([20.0, 100.0], 400, 1)
    rows = acceptance_rows(reference, model)
    assert [r.energy_GeV for r in rows] == [20.0, 100.0] and rows[0].n_model == 400 and rows[0].n_reference == 400
    for row in rows:  # same toy physics, other seed: within every bar, floors of the same size
        assert all(row.passes(k) for k in BARS), row
        assert all(0 <= row.floors[k] < BARS[k] for k in BARS), row
    assert count_passed(rows) == (2 * len(BARS), 2 * len(BARS))
    # 3 % too much energy in every cell: the response fails, the shapes and hit counts do not
    louder = dataclasses.replace(model, deposit_GeV=model.deposit_GeV * 1.03,
                                 sampling_fraction=model.sampling_fraction * 1.03)
    f = figures(reference.select(np.arange(400)), louder.select(np.arange(400)))
    assert f["response"] == pytest.approx(0.03, abs=0.01) and f["response"] > BARS["response"]
    assert f["resolution"] < BARS["resolution"]
    # a profile one layer deeper fails the longitudinal profile only
    deeper = dataclasses.replace(model, long_profile=np.roll(model.long_profile, 1, axis=1))
    f = figures(reference.select(np.arange(400)), deeper.select(np.arange(400)))
    assert f["long_profile"] > BARS["long_profile"] and f["x_profile"] < BARS["x_profile"]
    assert "| toy | 20 | 400 / 400 |" in markdown_table({"toy": rows}) and "✓" in markdown_table({"toy": rows})


def test_energies_without_enough_showers_are_left_out():
    reference, model = at_energies([20.0, 50.0], 3, 0), at_energies([20.0], 10, 1)
    assert acceptance_rows(reference, model) == []  # 3 reference showers: no halves to make a floor from
