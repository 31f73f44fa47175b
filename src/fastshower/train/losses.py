"""3DGAN losses as pure functions, and the fit that gives the expected deposited energy of a condition.

Original 3DGAN (Khattak et al., EPJC 82 (2022) 386): the discriminator has three outputs trained with
[binary cross-entropy (real/fake), MAPE of the primary-energy regression, MAPE of the deposited energy
("ecal sum")] weighted [3, 0.1, 0.1]; the angle variant adds the MAE of the regressed angle with weight 25.
MAPE is in percent, as Keras' ``mean_absolute_percentage_error`` (the weights were tuned for that scale).

The cell-level term (off by default, ``loss.cells``): the 3DGAN's later versions add a term on the cells'
energy spectrum, counted in bins, because the shower sums above say nothing about how the energy is shared
between cells (a generator can meet them with a sea of tiny cells). Here: the mean number of cells per shower above
each of a few thresholds (a differentiable, sigmoid-softened hit count), generated against real for the same
conditions, as a MAPE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

#: |y| below this is treated as this value in MAPE (Keras' epsilon), so that empty targets do not explode.
MAPE_EPSILON = 1e-7


def mape(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute percentage error ``100 * mean(|target - pred| / max(|target|, 1e-7))`` (Keras' definition)."""
    pred, target = pred.float(), target.float()
    return 100.0 * ((target - pred).abs() / target.abs().clamp_min(MAPE_EPSILON)).mean()


def mae(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error, in the units of the inputs."""
    return (pred.float() - target.float()).abs().mean()


def bce_logits(logit: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of raw discriminator logits against labels in [0, 1] (1 = real)."""
    return F.binary_cross_entropy_with_logits(logit.float(), label.float())


def flip_labels(labels: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """Copy of 0/1 ``labels`` with a random ``fraction`` of them flipped (random mask drawn from ``generator``).

    The mask is drawn on the CPU (the generator's device) so that the draws do not depend on the device.
    """
    if fraction <= 0:
        return labels
    flip = torch.rand(labels.shape, generator=generator) < fraction
    return torch.where(flip.to(labels.device), 1.0 - labels, labels)


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms (see module docstring)."""

    adversarial: float = 3.0
    energy: float = 0.1
    ecal: float = 0.1
    theta: float = 25.0
    cells: float = 0.0


#: Cell-energy thresholds (MeV) of the cell-spectrum term: from below a MIP in 0.5 mm of silicon (~0.15 MeV) to the
#: shower core, a decade apart.
CELL_THRESHOLDS_MeV = (0.01, 0.1, 1.0, 10.0, 100.0)


def cells_above(cells: torch.Tensor, thresholds: torch.Tensor, softness: float = 0.1) -> torch.Tensor:
    """Mean number of cells per shower above each threshold, ``(K,)``: ``cells`` ``(N, ...)`` and ``thresholds``
    ``(K,)`` in the same units; a cell counts ``sigmoid((x - t) / (softness t))`` (1 well above t, 0 well below),
    so that the count has a gradient."""
    x = cells.float().reshape(cells.shape[0], -1, 1)
    t = thresholds.float().reshape(1, 1, -1)
    return torch.sigmoid((x - t) / (softness * t)).sum(dim=1).mean(dim=0)


def cell_spectrum_loss(fake: torch.Tensor, real: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """MAPE (percent) of the generated showers' cell counts above the thresholds against the real ones'."""
    return mape(cells_above(fake, thresholds), cells_above(real, thresholds))


def gan_loss(
    outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor], weights: LossWeights
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted sum of the 3DGAN loss terms and the terms, detached, for logging (0-d tensors on the outputs' device:
    reading them is left to the caller, so that a GPU step does not wait for them).

    ``outputs`` is the discriminator's dict (``logit``, ``energy`` in units of 100 GeV, ``ecal_sum`` in
    transformed-cell units, optional ``theta`` in rad); ``targets`` holds ``label`` (1 real, 0 fake),
    ``energy`` (primary energy / 100 GeV), ``ecal`` (expected sum, transformed units) and, when the model
    regresses the angle, ``theta`` (rad). Terms are computed in fp32 whatever the autocast precision.
    """
    terms = {
        "adversarial": bce_logits(outputs["logit"], targets["label"]),
        "energy": mape(outputs["energy"], targets["energy"]),
        "ecal": mape(outputs["ecal_sum"], targets["ecal"]),
    }
    if "theta" in outputs and "theta" in targets:
        terms["theta"] = mae(outputs["theta"], targets["theta"])
    total = sum(getattr(weights, k) * v for k, v in terms.items())
    return total, {k: v.detach() for k, v in terms.items()}  # type: ignore[return-value]


class SamplingFractionFit:
    """Expected sum of the transformed cells of a shower of primary energy E.

    The discriminator's ``ecal_sum`` is the analytic sum of the cells it sees, i.e. of the *transformed* cells
    (``scale * E_cell**power``), so the target is fitted in that space: ``r(E) = sum_transformed / E`` as a
    polynomial of degree ``degree`` in ``ln(E / GeV)`` (least squares over the training showers), and the
    target is ``r(E) * E``. With power 1 and scale 1 ``r`` is the sampling fraction. The original 3DGAN used
    ``2 * E/100`` for scale 50 and power 1, and polynomial fits for power 0.85 (its ``GetEcalFit``).
    """

    def __init__(self, coefficients: list[float]) -> None:
        self.coefficients = [float(c) for c in coefficients]  # highest power first (numpy.polyval order)

    @classmethod
    def fit(cls, energy_GeV: np.ndarray, transformed_sum: np.ndarray, degree: int = 2) -> SamplingFractionFit:
        """Least-squares fit; the degree is lowered when there are fewer distinct energies than coefficients."""
        energy_GeV = np.asarray(energy_GeV, dtype=np.float64)
        ratio = np.asarray(transformed_sum, dtype=np.float64) / energy_GeV
        x = np.log(energy_GeV)
        degree = int(min(degree, max(len(np.unique(np.round(x, 9))) - 1, 0)))
        if degree == 0:
            return cls([float(ratio.mean())])
        return cls(np.polyfit(x, ratio, degree).tolist())

    def ratio(self, energy_GeV: torch.Tensor) -> torch.Tensor:
        """Fitted ``sum_transformed / E`` at ``energy_GeV`` (any shape)."""
        x = torch.log(energy_GeV.double())
        out = torch.zeros_like(x)
        for c in self.coefficients:  # Horner
            out = out * x + c
        return out

    def __call__(self, energy_GeV: torch.Tensor) -> torch.Tensor:
        """Expected transformed-cell sum at ``energy_GeV``, float32 on the input's device."""
        return (self.ratio(energy_GeV) * energy_GeV.double()).float()

    def to_dict(self) -> dict[str, Any]:
        return {"coefficients": list(self.coefficients), "variable": "ln(E/GeV)", "quantity": "sum_transformed/E"}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SamplingFractionFit:
        return cls(list(d["coefficients"]))
