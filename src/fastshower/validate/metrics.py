"""Distances between a reference and a candidate sample of showers.

- chi2 / ndf, KS statistic, Wasserstein-1 (raw and divided by the reference std) and the CaloChallenge
  separation power ``1/2 sum (h1 - h2)^2 / (h1 + h2)`` (Krause et al., "CaloChallenge 2022", arXiv:2410.21611)
  for every scalar observable, all on a shared binning taken from the reference quantiles.
- The 3DGAN measures (Khattak et al., 2021): relative error of the mean profiles and of the mean moments,
  and the sampling fraction (response) and resolution compared per energy bin.
- Frechet and kernel physics distances (FPD, KPD; Kansal et al., "Evaluating generative models in HEP",
  Phys. Rev. D 107, 076017 (2023)) on standardised scalar observables, with a bootstrap mean and error.

Every function returns plain floats / dicts so that the results go to JSON as they are.
"""

from __future__ import annotations

import warnings

import numpy as np

from fastshower.validate.observables import SCALAR_OBSERVABLES, Observables, response

#: Number of bins of the shared (reference-quantile) binning.
N_BINS = 30
#: Observables whose mean values are compared as relative errors (3DGAN "moments").
MOMENT_NAMES = ("centre_x", "centre_y", "centre_z", "width_x", "width_y", "width_z")
PROFILE_NAMES = ("long_profile", "x_profile", "y_profile")


def shared_edges(ref: np.ndarray, cand: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Bin edges shared by both samples: reference quantiles, or unit-width bins for small-range integers.

    Candidate values outside the reference range are clipped into the first / last bin (see ``histograms``).
    """
    both = np.concatenate([ref, cand])
    if both.size and np.all(both == np.round(both)) and np.ptp(both) <= 3 * n_bins:
        return np.arange(both.min() - 0.5, both.max() + 1.5)
    edges = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, n_bins + 1)))
    if edges.size < 2:  # a constant reference
        lo, hi = float(both.min()), float(both.max())
        edges = np.array([lo - 0.5, hi + 0.5]) if hi == lo else np.array([lo, hi])
    return edges


def clipped_histogram(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of ``x`` in ``edges`` (float), values outside the range clipped into the end bins."""
    return np.histogram(np.clip(x, edges[0], edges[-1]), edges)[0].astype(float)


def histograms(ref: np.ndarray, cand: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts of both samples in ``edges``, values outside the range clipped into the end bins."""
    return clipped_histogram(ref, edges), clipped_histogram(cand, edges)


def chi2_ndf(h1: np.ndarray, h2: np.ndarray) -> float:
    """chi2 / ndf of two histograms of different totals (normalised-shape test, ndf = non-empty bins - 1).

    ``sum (n1/N1 - n2/N2)^2 / (n1/N1^2 + n2/N2^2)``; about 1 for samples of one distribution, 0 for equal ones.
    """
    n1, n2 = h1.sum(), h2.sum()
    if n1 == 0 or n2 == 0:
        return float("nan")
    keep = (h1 + h2) > 0
    num = (h1[keep] / n1 - h2[keep] / n2) ** 2
    den = h1[keep] / n1**2 + h2[keep] / n2**2
    ndf = max(int(keep.sum()) - 1, 1)
    return float(np.sum(num / den) / ndf)


def separation_power(h1: np.ndarray, h2: np.ndarray) -> float:
    """CaloChallenge separation power of two histograms after normalising each to unit sum: 0 (same) .. 1."""
    if h1.sum() == 0 or h2.sum() == 0:
        return float("nan")
    p, q = h1 / h1.sum(), h2 / h2.sum()
    keep = (p + q) > 0
    return float(0.5 * np.sum((p[keep] - q[keep]) ** 2 / (p[keep] + q[keep])))


def distances(ref: np.ndarray, cand: np.ndarray, n_bins: int = N_BINS) -> dict[str, float]:
    """chi2_ndf, ks, w1, w1_norm (W1 / reference std) and sep_power between two 1-D samples (NaNs dropped)."""
    from scipy.stats import ks_2samp, wasserstein_distance

    ref = np.asarray(ref, dtype=float)
    cand = np.asarray(cand, dtype=float)
    ref, cand = ref[np.isfinite(ref)], cand[np.isfinite(cand)]
    if ref.size < 2 or cand.size < 2:
        nan = float("nan")
        return {"chi2_ndf": nan, "ks": nan, "w1": nan, "w1_norm": nan, "sep_power": nan}
    h1, h2 = histograms(ref, cand, shared_edges(ref, cand, n_bins))
    w1 = float(wasserstein_distance(ref, cand))
    std = float(ref.std(ddof=1))
    return {
        "chi2_ndf": chi2_ndf(h1, h2),
        "ks": float(ks_2samp(ref, cand).statistic),
        "w1": w1,
        "w1_norm": w1 / std if std > 0 else (0.0 if w1 == 0 else float("inf")),
        "sep_power": separation_power(h1, h2),
    }


def observable_distances(ref: Observables, cand: Observables) -> dict[str, dict[str, float]]:
    """``distances`` for every scalar observable (``SCALAR_OBSERVABLES``) plus the summed cell spectrum."""
    out = {name: distances(r, c) for (name, r), c in zip(ref.scalars().items(), cand.scalars().values(),
                                                          strict=True)}
    s1, s2 = ref.spectrum.sum(axis=0).astype(float), cand.spectrum.sum(axis=0).astype(float)
    out["cell_spectrum"] = {"chi2_ndf": chi2_ndf(s1, s2), "sep_power": separation_power(s1, s2)}
    return out


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b) if b != 0 else (0.0 if a == b else float("inf"))


def mean_relative_errors(ref: Observables, cand: Observables) -> dict[str, float]:
    """3DGAN measures: relative errors of mean profiles (L1 over bins / reference sum) and of mean moments.

    Profiles are divided by the primary energy first, so that different energy mixes within a bin matter less.
    """
    out: dict[str, float] = {}
    for name in PROFILE_NAMES:
        p1 = np.nanmean(getattr(ref, name) / ref.energy_GeV[:, None], axis=0)
        p2 = np.nanmean(getattr(cand, name) / cand.energy_GeV[:, None], axis=0)
        out[name] = float(np.sum(np.abs(p2 - p1)) / np.sum(p1)) if np.sum(p1) > 0 else float("nan")
    for name in MOMENT_NAMES:
        out[name] = _rel(float(np.nanmean(getattr(cand, name))), float(np.nanmean(getattr(ref, name))))
    return out


def response_comparison(ref: Observables, cand: Observables) -> dict[str, float]:
    """Relative difference of the mean sampling fraction and of the resolution sigma/mean (candidate vs ref)."""
    r, c = response(ref), response(cand)
    return {
        "response_ref": r["response"],
        "response_cand": c["response"],
        "resolution_ref": r["resolution"],
        "resolution_cand": c["resolution"],
        "response_rel_diff": _rel(c["response"], r["response"]),
        "resolution_rel_diff": _rel(c["resolution"], r["resolution"]),
    }


# --- Frechet / kernel physics distances ----------------------------------------------------------------------


def standardise(ref: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Scale the columns of every array by the reference mean and std (constant columns dropped, NaN -> mean)."""
    mu = np.nanmean(ref, axis=0)
    sd = np.nanstd(ref, axis=0)
    keep = sd > 0
    out = []
    for x in (ref, *others):
        z = (x[:, keep] - mu[keep]) / sd[keep]
        out.append(np.where(np.isfinite(z), z, 0.0))
    return out


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to the rows of x and y: |mu1 - mu2|^2 + Tr(S1 + S2 - 2 sqrt(S1 S2))."""
    from scipy.linalg import sqrtm

    mu1, mu2 = x.mean(axis=0), y.mean(axis=0)
    s1, s2 = np.atleast_2d(np.cov(x, rowvar=False)), np.atleast_2d(np.cov(y, rowvar=False))
    eps = 1e-6 * np.eye(s1.shape[0])  # keeps sqrtm defined when a feature is (nearly) constant in a sample
    s1, s2 = s1 + eps, s2 + eps
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        covmean = np.real(sqrtm(s1 @ s2))
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2.0 * covmean))


def mmd2_poly(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with the cubic polynomial kernel k(a, b) = (a.b / d + 1)^3 (the KPD of Kansal et al.)."""
    d = x.shape[1]
    m, n = len(x), len(y)
    kxx = (x @ x.T / d + 1.0) ** 3
    kyy = (y @ y.T / d + 1.0) ** 3
    kxy = (x @ y.T / d + 1.0) ** 3
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


def physics_distances(
    x: np.ndarray, y: np.ndarray, seed: int = 0, n_batches: int = 10, fpd_batch: int = 5000, kpd_batch: int = 1000
) -> dict[str, float]:
    """FPD and KPD between feature matrices x (reference) and y (candidate), standardised with x.

    Both are bootstrapped: ``n_batches`` draws (with replacement) of ``min(batch, N)`` rows from each sample;
    the result is the mean and the standard deviation of the draws ("fpd", "fpd_err", "kpd", "kpd_err").
    """
    x, y = standardise(x, y)
    rng = np.random.default_rng(seed)
    out: dict[str, float] = {}
    for name, batch, fn in (("fpd", fpd_batch, frechet_distance), ("kpd", kpd_batch, mmd2_poly)):
        b1, b2 = min(batch, len(x)), min(batch, len(y))
        vals = [fn(x[rng.integers(0, len(x), b1)], y[rng.integers(0, len(y), b2)]) for _ in range(n_batches)]
        out[name] = float(np.mean(vals))
        out[f"{name}_err"] = float(np.std(vals, ddof=1) / np.sqrt(n_batches)) if n_batches > 1 else float("nan")
    return out


def feature_matrix(obs: Observables) -> np.ndarray:
    """(N, n_features) float64 matrix of the scalar observables, for FPD/KPD and the high-level classifier."""
    return np.stack(list(obs.scalars(SCALAR_OBSERVABLES).values()), axis=1)


def compare(ref: Observables, cand: Observables, seed: int = 0) -> dict[str, object]:
    """Every non-classifier metric between two samples (one energy bin): the dict stored in metrics.json."""
    return {
        "n_ref": len(ref),
        "n_cand": len(cand),
        "observables": observable_distances(ref, cand),
        "mean_rel_err": mean_relative_errors(ref, cand),
        "response": response_comparison(ref, cand),
        "physics": physics_distances(feature_matrix(ref), feature_matrix(cand), seed=seed),
    }
