"""Quick physics check of a generator on the held-out showers (one scalar score; lower is better).

Per energy bin (quantiles of the validation energies) it compares generated with real showers, both in GeV:

* ``sampling_fraction``: relative error of the mean of ``sum(cells) / E``;
* ``profile_x/y/z``: L1 distance between the mean normalised profiles along each axis (0 = equal, 2 = disjoint);
* ``centroid_x/y/z`` and ``width_x/y/z``: relative errors of the mean first moment (energy-weighted mean cell
  index) and of the mean second central moment's square root (in cells) along each axis;
* ``resolution``, ``spread_centroid_x/y/z`` and ``spread_width_x/y/z``: relative errors of the shower-to-shower
  standard deviations of the sampling fraction, the centroids and the widths. Without them a generator that
  draws the average shower every time -- a VAE early in training -- matches every mean and scores best.

Each term of a bin is divided by its statistical floor: the error that two independent samples of the bin's sizes,
both drawn like the real showers, would show from statistics alone (the standard error of the difference; for an L1
distance between profiles, its expectation sqrt(2/pi) sum_i sigma_i). A bin's score is the root mean square of its
terms in units of their floors (about 1 for a generator as good as the statistics can tell; the square lets one
term far off show through the others, which a plain mean of 17 terms would dilute), and **the score is the worst
bin's**: an epoch cannot buy a better high-energy bin with a worse low-energy one. It is the epoch-selection
criterion of ``best.pt`` (the original 3DGAN picked its epoch by such moment/profile comparisons). The raw terms,
averaged over the bins, are kept for the log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from fastshower.data.dataset import ShowerDataset, ShowerTransform

AXES = "xyz"


@dataclass
class ShowerSummary:
    """Per-shower observables of a set of showers (numpy, float64)."""

    energy_GeV: np.ndarray  # (N,) primary energies
    sampling_fraction: np.ndarray  # (N,) deposited / primary
    profiles: list[np.ndarray]  # per axis, (N, n_axis) GeV
    centroid: np.ndarray  # (N, 3) cells
    width: np.ndarray  # (N, 3) cells


def summarise(showers_GeV: np.ndarray, energy_GeV: np.ndarray) -> ShowerSummary:
    """Observables of ``(N, X, Y, Z)`` or ``(N, 1, X, Y, Z)`` showers in GeV with primary energies (N,) GeV."""
    x = np.asarray(showers_GeV, dtype=np.float64).reshape(len(energy_GeV), *np.shape(showers_GeV)[-3:])
    total = x.sum(axis=(1, 2, 3))
    safe = np.where(total > 0, total, 1.0)
    profiles = [x.sum(axis=(2, 3)), x.sum(axis=(1, 3)), x.sum(axis=(1, 2))]
    centroid = np.empty((len(x), 3))
    width = np.empty((len(x), 3))
    for a, prof in enumerate(profiles):
        pos = np.arange(prof.shape[1], dtype=np.float64)
        mean = (prof * pos).sum(axis=1) / safe
        var = (prof * (pos[None, :] - mean[:, None]) ** 2).sum(axis=1) / safe
        centroid[:, a], width[:, a] = mean, np.sqrt(np.maximum(var, 0.0))
    return ShowerSummary(np.asarray(energy_GeV, dtype=np.float64), total / energy_GeV, profiles, centroid, width)


def _rel(fake: float, real: float) -> float:
    return abs(fake - real) / max(abs(real), 1e-12)


def _rel_floor(fake: np.ndarray, real: np.ndarray) -> float:
    """Standard error of the relative difference of two sample means from statistics alone, were both drawn like
    ``real`` (the null hypothesis: a generator's own outliers must not widen the floor that judges them)."""
    if real.size < 2:
        return 0.0
    se2 = float(np.var(real, ddof=1)) * (1.0 / max(fake.size, 1) + 1.0 / real.size)
    return float(np.sqrt(se2)) / max(abs(float(real.mean())), 1e-12)


def _std_floor(fake: np.ndarray, real: np.ndarray) -> float:
    """Standard error of the relative difference of two sample standard deviations from statistics alone, both
    drawn like ``real``: Var(s) = Var(s^2) / (4 sigma^2), Var(s^2) = (mu_4 - sigma^4 (n - 3) / (n - 1)) / n (any
    distribution), with ``real``'s moments."""
    if real.size < 4:
        return 0.0
    sigma2 = float(np.var(real, ddof=1))
    mu4 = float(np.mean((real - real.mean()) ** 4))
    var_s = sum(max(mu4 - sigma2**2 * (n - 3) / (n - 1), 0.0) / n for n in (max(fake.size, 4), real.size))
    return float(np.sqrt(var_s / max(4.0 * sigma2, 1e-300))) / max(float(np.sqrt(sigma2)), 1e-12)


def _rel_std(fake: np.ndarray, real: np.ndarray) -> float:
    sd = [float(np.std(x, ddof=1)) if x.size > 1 else 0.0 for x in (fake, real)]
    return abs(sd[0] - sd[1]) / max(sd[1], 1e-12)


def _normalised_profiles(profiles: np.ndarray) -> np.ndarray:
    total = profiles.sum(axis=1, keepdims=True)
    return profiles / np.where(total > 0, total, 1.0)


def _l1(fake: np.ndarray, real: np.ndarray) -> float:
    f, r = fake.sum(axis=0), real.sum(axis=0)
    return float(np.abs(f / max(f.sum(), 1e-30) - r / max(r.sum(), 1e-30)).sum())


def _l1_floor(fake: np.ndarray, real: np.ndarray) -> float:
    """Expected L1 distance between the mean normalised profiles of two samples of these sizes drawn like
    ``real``: sqrt(2 / pi) times the sum over cells of the standard error of the difference (shower-to-shower
    spread of the real showers)."""
    if len(real) < 2:
        return 0.0
    se2 = np.var(_normalised_profiles(real), axis=0, ddof=1) * (1.0 / max(len(fake), 1) + 1.0 / len(real))
    return float(np.sqrt(2.0 / np.pi) * np.sqrt(se2).sum())


def compare(real: ShowerSummary, fake: ShowerSummary, n_bins: int = 4) -> dict[str, Any]:
    """Terms, floors and score of generated vs real showers made for the same conditions (same order).

    ``score``: the worst bin's root mean square of term / floor (floors are bounded below by 1e-12, for sets
    without spread);
    ``bin_scores`` per energy bin, with ``bin_edges_GeV``; ``terms``: the raw terms averaged over the bins.
    """
    edges = np.quantile(real.energy_GeV, np.linspace(0, 1, n_bins + 1))
    which = np.clip(np.searchsorted(edges, real.energy_GeV, side="right") - 1, 0, n_bins - 1)
    terms: dict[str, list[float]] = {}
    bin_scores: list[float] = []
    used_edges: list[list[float]] = []
    for b in range(n_bins):
        sel = which == b
        if not sel.any():
            continue
        row = {"sampling_fraction": (_rel(fake.sampling_fraction[sel].mean(), real.sampling_fraction[sel].mean()),
                                     _rel_floor(fake.sampling_fraction[sel], real.sampling_fraction[sel]))}
        for a, name in enumerate(AXES):
            row[f"profile_{name}"] = (_l1(fake.profiles[a][sel], real.profiles[a][sel]),
                                      _l1_floor(fake.profiles[a][sel], real.profiles[a][sel]))
            row[f"centroid_{name}"] = (_rel(fake.centroid[sel, a].mean(), real.centroid[sel, a].mean()),
                                       _rel_floor(fake.centroid[sel, a], real.centroid[sel, a]))
            row[f"width_{name}"] = (_rel(fake.width[sel, a].mean(), real.width[sel, a].mean()),
                                    _rel_floor(fake.width[sel, a], real.width[sel, a]))
        row["resolution"] = (_rel_std(fake.sampling_fraction[sel], real.sampling_fraction[sel]),
                             _std_floor(fake.sampling_fraction[sel], real.sampling_fraction[sel]))
        for a, name in enumerate(AXES):
            for what in ("centroid", "width"):
                f, r = getattr(fake, what)[sel, a], getattr(real, what)[sel, a]
                row[f"spread_{what}_{name}"] = (_rel_std(f, r), _std_floor(f, r))
        pulls = [term / max(floor, 1e-12) for term, floor in row.values()]
        bin_scores.append(float(np.sqrt(np.mean(np.square(pulls)))))  # sqrt(chi^2 / terms): one bad term shows
        used_edges.append([float(edges[b]), float(edges[b + 1])])
        for k, (term, _) in row.items():
            terms.setdefault(k, []).append(term)
    means = {k: float(np.mean(v)) for k, v in terms.items()}
    return {"score": float(max(bin_scores)), "bin_scores": bin_scores, "bin_edges_GeV": used_edges,
            "terms": means, "bins": len(bin_scores)}


@torch.no_grad()
def generate(
    generator: nn.Module,
    conditions: dict[str, torch.Tensor],
    transform: ShowerTransform,
    latent_dim: int,
    n_particles: int | None,
    seed: int,
    device: torch.device,
    batch_size: int = 256,
) -> np.ndarray:
    """Showers in GeV ``(N, X, Y, Z)`` for the conditions (``energy_GeV``, ``theta_rad``, ``particle``).

    Eval mode (BatchNorm running statistics, no dropout) with noise from a generator seeded by ``seed``, so
    that successive epochs are compared on the same noise; the module's train/eval mode is restored.
    """
    was_training = generator.training
    generator.eval()
    g = torch.Generator().manual_seed(seed)
    out = []
    try:
        n = len(conditions["energy_GeV"])
        for start in range(0, n, batch_size):
            sl = slice(start, min(start + batch_size, n))
            noise = torch.randn(sl.stop - sl.start, latent_dim, generator=g).to(device)
            y = generator(noise, *model_conditions(conditions, sl, n_particles, device))
            out.append(transform.inverse(y.float())[:, 0].cpu().numpy())
    finally:
        generator.train(was_training)
    return np.concatenate(out)


def model_conditions(
    conditions: dict[str, torch.Tensor], index: Any, n_particles: int | None, device: torch.device
) -> tuple[Any, ...]:
    """Positional condition arguments of a generator: ``(E,)`` for ``3dgan`` (``n_particles`` None),
    ``(E, theta, one-hot or None)`` for ``3dgan-angle``."""
    energy = conditions["energy_GeV"][index].to(device)
    if n_particles is None:
        return (energy,)
    theta = conditions["theta_rad"][index].to(device)
    onehot = None
    if n_particles > 1:
        onehot = torch.nn.functional.one_hot(conditions["particle"][index], n_particles).float().to(device)
    return (energy, theta, onehot)


def physics_check(
    generator: nn.Module,
    real_GeV: np.ndarray,
    conditions: dict[str, torch.Tensor],
    transform: ShowerTransform,
    latent_dim: int,
    n_particles: int | None,
    seed: int,
    device: torch.device,
    real_summary: ShowerSummary | None = None,
) -> dict[str, Any]:
    """Score of ``generator`` against the real showers ``real_GeV`` (N, X, Y, Z) made with ``conditions``."""
    energy = conditions["energy_GeV"].double().numpy()
    real_summary = real_summary or summarise(real_GeV, energy)
    fake = generate(generator, conditions, transform, latent_dim, n_particles, seed, device)
    return compare(real_summary, summarise(fake, energy), n_bins=max(1, min(4, len(energy) // 8)))


def validation_set(
    dataset: ShowerDataset, indices: np.ndarray
) -> tuple[np.ndarray, dict[str, torch.Tensor], ShowerSummary] | None:
    """Real showers in GeV (N, X, Y, Z), their conditions and summary for ``physics_check`` (None if empty)."""
    if len(indices) == 0:
        return None
    b = dataset.batch(indices)
    real = dataset.transform.inverse(b["showers"])[:, 0].numpy()
    cond = {k: b[k] for k in ("energy_GeV", "theta_rad", "particle")}
    return real, cond, summarise(real, cond["energy_GeV"].double().numpy())
