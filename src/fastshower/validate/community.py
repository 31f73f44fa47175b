"""Metrics in the community's conventions, beside fastshower's own, so that numbers can be put next to published ones.

Sources (definitions taken from them; the code is written here):

* The Fast Calorimeter Simulation Challenge 2022 ("CaloChallenge", final results arXiv:2410.21611), its evaluation
  code ``evaluate.py``, ``HighLevelFeatures.py``, ``XMLHandler.py`` and ``evaluate_plotting_helper.py``
  (github.com/CaloChallenge/homepage, code/):

  - high-level features per layer, in MeV and mm: the layer energy, the centre of energy and the width in the two
    transverse coordinates (the challenge's "Delta eta" and "Delta phi": x = r cos(alpha), y = r sin(alpha) of the
    voxel centres, alpha bin centres between -pi and pi), the total energy; a voxel's radius is its radial bin's
    midpoint;
  - the classifier: an MLP (input -> 512, LeakyReLU, then 2 x [512, LeakyReLU], -> 1 logit; dropout 0), Adam at
    lr 2e-4, batches of 1000, 50 epochs keeping the epoch of best test accuracy (stopping at accuracy 1), a 60/20/20
    train/test/validation split, the output calibrated by isotonic regression on the test split and the AUC and
    JSD = (ln 2 - BCE) / ln 2 reported on the validation split. Inputs: "low" = [log10 E_inc, 100 voxel / E_inc]
    (MeV), "high" = [log10 E_inc, log10(E_layer + 1e-8), EC_x / 100, EC_y / 100, width_x / 100, width_y / 100];
    generated showers have label 0, the reference 1;
  - the separation power (triangular discrimination, eq. 15 of arXiv:2009.03796) of the histograms of E_tot/E_inc,
    E_layer, EC and widths, with the challenge's binning for its data sets 2 and 3.

* FPD and KPD as jetnet 0.2.5 computes them (Kansal et al., arXiv:2211.10295), on the high-level classifier's
  features: each feature divided by its largest absolute value in the reference; FPD = the intercept at 1/N -> 0 of a
  straight-line fit of the mean Frechet distance (20 draws with replacement) against 1/N, at 10 sample sizes N evenly
  spaced in 1/N between ``min_samples`` and ``max_samples``; KPD = the median of 10 unbiased MMD^2 estimates with the
  polynomial kernel (x.y / d + 1)^4 on draws of ``batch_size``, with half the 16-84 % spread as its error.

Deviations, recorded in the results: float32 instead of the challenge's float64, a fixed seed for the splits, and
samples capped by the caller (the challenge compared 100,000 showers a side; a classifier learns less from fewer,
so a smaller sample's AUC is biased low; jetnet's FPD sizes are lowered to what the samples hold).
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from fastshower.validate.observables import cylindrical_centres

logger = logging.getLogger(__name__)

#: Names of the conventions, shown in the report beside the numbers.
CONVENTION = ("CaloChallenge 2022 evaluation code (arXiv:2410.21611) and jetnet 0.2.5 FPD/KPD (arXiv:2211.10295)")
#: Voxel counts of the CaloChallenge data sets whose histogram binning the challenge fixed.
CHALLENGE_DATASETS = {6480: "2", 40500: "3"}
#: The challenge's smallest voxel energy for data sets 2 and 3 (0.5 keV / sampling fraction 0.033), MeV.
CHALLENGE_MIN_ENERGY_MeV = 0.5e-3 / 0.033
_MeV = 1000.0


@dataclass(frozen=True)
class TransverseGrid:
    """Centres of the transverse voxels (the first two cell axes), the same in every layer."""

    x_mm: np.ndarray  # (n_a, n_b); for a cylindrical readout r cos(alpha)
    y_mm: np.ndarray  # r sin(alpha)
    r_mm: np.ndarray
    unit: str  # "mm", or "cell" when neither a binning nor a geometry gives lengths
    dataset: str  # "2" or "3" for CaloChallenge data sets (the challenge's binning applies), else ""


def transverse_grid(cell_shape: tuple[int, int, int], attrs: dict[str, Any]) -> TransverseGrid:
    """The voxel centres of a file's readout: cylindrical (``attrs["binning"]``, cells (r, alpha, layer)) or
    Cartesian (``attrs["geometry"]`` pitch, cells (x, y, layer), centred on the grid; cell units without one)."""
    na, nb, nz = cell_shape
    binning = attrs.get("binning")
    if isinstance(binning, dict) and binning.get("kind") == "cylindrical":
        r, alpha, in_mm = cylindrical_centres(binning, na, nb)
        rr, aa = np.meshgrid(r, alpha, indexing="ij")
        return TransverseGrid(rr * np.cos(aa), rr * np.sin(aa), rr, "mm" if in_mm else "cell",
                              CHALLENGE_DATASETS.get(na * nb * nz, ""))
    pitch, unit = 1.0, "cell"
    grid = attrs.get("geometry", {}).get("grid") if isinstance(attrs.get("geometry"), dict) else None
    if isinstance(grid, dict) and "pitch_mm" in grid:
        pitch, unit = float(grid["pitch_mm"]), "mm"
    x = (np.arange(na) - (na - 1) / 2) * pitch
    y = (np.arange(nb) - (nb - 1) / 2) * pitch
    xx, yy = np.meshgrid(x, y, indexing="ij")
    return TransverseGrid(xx, yy, np.hypot(xx, yy), unit, "")


def high_level_features(ecal_GeV: np.ndarray, grid: TransverseGrid) -> dict[str, np.ndarray]:
    """The challenge's high-level features of ``(N, n_a, n_b, n_layers)`` showers (GeV): ``E_tot`` (N,) and per
    layer (N, L) ``E_layer`` (MeV), ``EC_x``, ``EC_y``, ``width_x``, ``width_y``, ``EC_r``, ``width_r`` (mm) and
    ``sparsity`` (fraction of empty voxels)."""
    e = np.asarray(ecal_GeV, dtype=np.float64) * _MeV
    e_layer = e.sum(axis=(1, 2))  # (N, L)
    denom = e_layer + 1e-16  # as the challenge: empty layers give 0, not NaN
    out = {"E_tot": e_layer.sum(axis=1), "E_layer": e_layer}
    for name, coord in (("x", grid.x_mm), ("y", grid.y_mm), ("r", grid.r_mm)):
        mean = np.einsum("nabl,ab->nl", e, coord) / denom
        second = np.einsum("nabl,ab->nl", e, coord**2) / denom
        out[f"EC_{name}"] = mean
        out[f"width_{name}"] = np.sqrt(np.clip(second - mean**2, 0.0, None))
    out["sparsity"] = 1.0 - (e > 0).mean(axis=(1, 2))
    return out


def high_level_inputs(energy_GeV: np.ndarray, hlf: dict[str, np.ndarray]) -> np.ndarray:
    """The challenge's high-level classifier inputs (and our FPD/KPD features), (N, 1 + 5 L)."""
    e_inc = np.log10(np.asarray(energy_GeV, float) * _MeV)[:, None]
    return np.concatenate([e_inc, np.log10(hlf["E_layer"] + 1e-8), hlf["EC_x"] / 1e2, hlf["EC_y"] / 1e2,
                           hlf["width_x"] / 1e2, hlf["width_y"] / 1e2], axis=1)


def low_level_inputs(ecal_GeV: np.ndarray, energy_GeV: np.ndarray) -> np.ndarray:
    """The challenge's low-level classifier inputs: [log10(E_inc / MeV), 100 voxel / E_inc], (N, 1 + voxels)."""
    n = len(energy_GeV)
    e = np.asarray(energy_GeV, float)[:, None]
    voxels = np.asarray(ecal_GeV, float).reshape(n, -1) / e
    return np.concatenate([np.log10(e * _MeV), 100.0 * voxels], axis=1)


# --- the classifier ----------------------------------------------------------------------------------------------


def _network(n_inputs: int, hidden: int = 512, n_layers: int = 2) -> Any:
    from torch import nn

    layers: list[nn.Module] = [nn.Linear(n_inputs, hidden), nn.LeakyReLU(), nn.Dropout(0.0)]
    for _ in range(n_layers):
        layers += [nn.Linear(hidden, hidden), nn.LeakyReLU(), nn.Dropout(0.0)]
    return nn.Sequential(*layers, nn.Linear(hidden, 1))


def challenge_classifier(reference: np.ndarray, generated: np.ndarray, seed: int = 1, epochs: int = 50,
                         batch_size: int = 1000, lr: float = 2e-4) -> dict[str, float]:
    """The CaloChallenge classifier on two input matrices (see the module docstring); returns "auc" and "jsd"
    (calibrated, on the validation split), "auc_uncalibrated", "accuracy", "best_epoch", "n_train", "n_val".

    Both samples are cut to the smaller one's size, as the challenge's split requires.
    """
    import torch
    from scipy.optimize import isotonic_regression

    from fastshower.validate.classifier import roc_auc

    rng = np.random.default_rng(seed)
    n = min(len(reference), len(generated))
    nan = float("nan")
    if n < 10:
        return {"auc": nan, "jsd": nan, "auc_uncalibrated": nan, "accuracy": nan, "best_epoch": 0, "n_train": 0,
                "n_val": 0}
    parts = []
    for label, x in ((0.0, generated), (1.0, reference)):
        x = np.asarray(x, np.float32)[rng.permutation(len(x))[:n]]
        parts.append(np.concatenate([x, np.full((n, 1), label, np.float32)], axis=1))
    cuts = (np.array([0.6, 0.2, 0.2]) * n).astype(int).cumsum()[:-1]
    splits = [np.concatenate(pair) for pair in zip(*(np.split(p, cuts) for p in parts), strict=True)]
    train, test, val = (torch.from_numpy(s[rng.permutation(len(s))]) for s in splits)

    torch.manual_seed(seed)
    model = _network(train.shape[1] - 1)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    gen = torch.Generator().manual_seed(seed)

    def scores(data: torch.Tensor) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            return torch.sigmoid(model(data[:, :-1]).squeeze(1)).double().numpy()

    best_acc, best_state, best_epoch = -math.inf, None, 0
    for epoch in range(epochs):
        model.train()
        for b in torch.randperm(len(train), generator=gen).split(batch_size):
            opt.zero_grad()
            loss = loss_fn(model(train[b, :-1]).squeeze(1), train[b, -1])
            loss.backward()
            opt.step()
        acc = float(np.mean(np.round(scores(test)) == test[:, -1].numpy()))
        if acc > best_acc:
            best_acc, best_epoch = acc, epoch + 1
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        if acc == 1.0:
            break
    model.load_state_dict(best_state)  # type: ignore[arg-type]
    p_test, y_test = scores(test), test[:, -1].double().numpy()
    p_val, y_val = scores(val), val[:, -1].double().numpy()
    # isotonic regression of the labels on the test scores (tied scores pooled), clipped to [1e-6, 1 - 1e-6], applied
    # by linear interpolation and held constant beyond the ends (scikit-learn's out_of_bounds="clip")
    unique, inverse, counts = np.unique(p_test, return_inverse=True, return_counts=True)
    pooled = np.bincount(inverse, weights=y_test) / counts
    fitted = np.clip(isotonic_regression(pooled, weights=counts.astype(float)).x, 1e-6, 1 - 1e-6)
    calibrated = np.interp(p_val, unique, fitted)
    bce = float(-np.mean(y_val * np.log(calibrated) + (1 - y_val) * np.log(1 - calibrated)))
    return {"auc": roc_auc(y_val, calibrated), "jsd": (math.log(2.0) - bce) / math.log(2.0),
            "auc_uncalibrated": roc_auc(y_val, p_val), "accuracy": float(np.mean(np.round(calibrated) == y_val)),
            "best_epoch": best_epoch, "n_train": int(len(train)), "n_val": int(len(val))}


# --- histograms ---------------------------------------------------------------------------------------------------


def _edges(name: str, ref: np.ndarray, grid: TransverseGrid, response: float) -> np.ndarray:
    """The challenge's histogram binning of one feature (data sets 2 and 3), or the same number of bins over the
    reference's range elsewhere."""
    if name == "E_tot/E_inc":  # the challenge's 0.5-1.5, scaled by the response of a sampling calorimeter
        return np.linspace(0.5 * response, 1.5 * response, 101)
    positive = ref[ref > 0]
    if name == "E_layer":
        low = CHALLENGE_MIN_ENERGY_MeV if grid.dataset else (positive.min() if positive.size else 1e-3)
        high = max(ref.max(), low * 10)
        return np.logspace(np.log10(low), np.log10(high), 40)
    if grid.dataset:
        return np.linspace(-30.0, 30.0, 101) if name.startswith("EC") else np.linspace(0.0, 30.0, 101)
    finite = ref[np.isfinite(ref)]
    low, high = np.quantile(finite, [0.001, 0.999]) if finite.size else (0.0, 1.0)
    return np.linspace(low, high if high > low else low + 1.0, 101)


def separation_powers(ref: dict[str, np.ndarray], gen: dict[str, np.ndarray], ref_energy_GeV: np.ndarray,
                      gen_energy_GeV: np.ndarray, grid: TransverseGrid) -> dict[str, Any]:
    """Separation power of each high-level feature's histogram (per layer for the layer features): generated
    against reference; "mean" over all histograms."""
    from fastshower.validate.metrics import separation_power

    def sep(a: np.ndarray, b: np.ndarray, edges: np.ndarray) -> float:
        return separation_power(np.histogram(a, edges)[0].astype(float), np.histogram(b, edges)[0].astype(float))

    r_ratio = ref["E_tot"] / (ref_energy_GeV * _MeV)
    g_ratio = gen["E_tot"] / (gen_energy_GeV * _MeV)
    response = float(np.median(r_ratio)) if r_ratio.size else 1.0
    out: dict[str, Any] = {"E_tot/E_inc": sep(r_ratio, g_ratio, _edges("E_tot/E_inc", r_ratio, grid, response))}
    for name in ("E_layer", "EC_x", "EC_y", "width_x", "width_y"):
        out[name] = [sep(ref[name][:, k], gen[name][:, k], _edges(name, ref[name][:, k], grid, response))
                     for k in range(ref[name].shape[1])]
    values = [out["E_tot/E_inc"]] + [v for k, v in out.items() if isinstance(v, list) for v in v]
    finite = [v for v in values if np.isfinite(v)]
    out["mean"] = float(np.mean(finite)) if finite else float("nan")
    return out


# --- FPD and KPD -----------------------------------------------------------------------------------------------------


def _normalise(real: np.ndarray, gen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scale = np.max(np.abs(real), axis=0)
    scale[scale == 0] = 1.0
    return real / scale, gen / scale


def _frechet(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.linalg import sqrtm

    mu1, mu2 = x.mean(axis=0), y.mean(axis=0)
    s1, s2 = np.atleast_2d(np.cov(x, rowvar=False)), np.atleast_2d(np.cov(y, rowvar=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        covmean = sqrtm(s1 @ s2)
        if not np.isfinite(covmean).all():  # a singular product: jetnet's offset of 1e-6 on the diagonals
            offset = 1e-6 * np.eye(len(s1))
            covmean = sqrtm((s1 + offset) @ (s2 + offset))
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(np.real(covmean)))


def fpd(real: np.ndarray, gen: np.ndarray, min_samples: int = 20_000, max_samples: int = 50_000,
        num_batches: int = 20, num_points: int = 10, seed: int = 42) -> tuple[float, float]:
    """Frechet physics distance and its error (jetnet's definition; sizes above the samples' are lowered to them)."""
    from scipy.optimize import curve_fit

    x, y = _normalise(np.asarray(real, float), np.asarray(gen, float))
    max_samples = min(max_samples, len(x), len(y))
    min_samples = min(min_samples, max(2, int(0.4 * max_samples)))
    sizes = (1 / np.linspace(1.0 / min_samples, 1.0 / max_samples, num_points)).astype(np.int64)
    rng = np.random.default_rng(seed)
    means = [np.mean([_frechet(x[rng.choice(len(x), size=n)], y[rng.choice(len(y), size=n)])
                      for _ in range(num_batches)]) for n in sizes]
    params, cov = curve_fit(lambda t, a, b: a + b * t, 1.0 / sizes, means, bounds=([0, 0], [np.inf, np.inf]))
    return float(params[0]), float(np.sqrt(np.diag(cov)[0]))


def kpd(real: np.ndarray, gen: np.ndarray, num_batches: int = 10, batch_size: int = 5_000, seed: int = 42
        ) -> tuple[float, float]:
    """Kernel physics distance (median) and its error (jetnet's definition, degree-4 polynomial kernel)."""
    x, y = _normalise(np.asarray(real, float), np.asarray(gen, float))
    d = x.shape[1]
    values = []
    for i in range(num_batches):
        rng = np.random.default_rng(seed + i * 1000)
        a, b = x[rng.choice(len(x), size=batch_size)], y[rng.choice(len(y), size=batch_size)]
        kxx, kyy, kxy = ((a @ a.T / d + 1) ** 4, (b @ b.T / d + 1) ** 4, (a @ b.T / d + 1) ** 4)
        m = batch_size
        values.append((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                      - 2 * kxy.mean())
    low, high = np.percentile(values, [16.275, 83.725])
    return float(np.median(values)), float((high - low) / 2)


# --- all of them --------------------------------------------------------------------------------------------------


def community_metrics(ref_ecal_GeV: np.ndarray, ref_energy_GeV: np.ndarray, gen_ecal_GeV: np.ndarray,
                      gen_energy_GeV: np.ndarray, grid: TransverseGrid, seed: int = 1, classifier: bool = True,
                      kpd_batch: int = 5_000) -> dict[str, Any]:
    """Every community metric of a generated sample against a reference (see the module docstring)."""
    ref = high_level_features(ref_ecal_GeV, grid)
    gen = high_level_features(gen_ecal_GeV, grid)
    x_ref, x_gen = high_level_inputs(ref_energy_GeV, ref), high_level_inputs(gen_energy_GeV, gen)
    fpd_value, fpd_err = fpd(x_ref, x_gen, seed=seed)
    kpd_value, kpd_err = kpd(x_ref, x_gen, batch_size=min(kpd_batch, len(x_ref), len(x_gen)), seed=seed)
    out: dict[str, Any] = {
        "n": {"reference": int(len(ref_energy_GeV)), "generated": int(len(gen_energy_GeV))},
        "separation_power": separation_powers(ref, gen, ref_energy_GeV, gen_energy_GeV, grid),
        "fpd": fpd_value, "fpd_err": fpd_err, "kpd": kpd_value, "kpd_err": kpd_err,
    }
    if classifier:
        out["classifier"] = {
            "low": challenge_classifier(low_level_inputs(ref_ecal_GeV, ref_energy_GeV),
                                        low_level_inputs(gen_ecal_GeV, gen_energy_GeV), seed=seed),
            "high": challenge_classifier(x_ref, x_gen, seed=seed),
        }
    return out
