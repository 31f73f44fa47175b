"""The CaloChallenge classifier test (Krause et al., "CaloChallenge 2022", arXiv:2410.21611, section 4).

A small MLP learns to tell reference (label 0) from candidate (label 1) showers. The data are split into
train / validation / test (60/20/20 %, stratified by construction); training stops early on the validation
loss; the output is calibrated on the validation split with temperature (Platt) scaling, whose slope is kept
non-negative (a calibration maps probabilities monotonically; a negative slope, fitted where the validation split
happens to anti-correlate, would reverse the test split's ranking and report an AUC of 0.24 for a classifier that
separates at 0.76); the test split gives

- the ROC AUC of the classifier's scores (rank-based, ties averaged; no increasing calibration changes it):
  0.5 = indistinguishable, 1 = perfectly separable;
- the JSD estimated from the calibrated output, as in the CaloChallenge: ``JSD = (ln 2 - BCE) / ln 2`` (bits,
  0 = indistinguishable, 1 = disjoint; small negative values are statistical fluctuations around 0).

Inputs: "low" = cell energies divided by the primary energy plus log10(E / GeV) (as the CaloChallenge);
"high" = the standardised scalar observables. Deterministic for a given seed (CPU, fixed thread count).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
from scipy.special import expit

logger = logging.getLogger(__name__)


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve from the Mann-Whitney rank statistic (ties get average ranks)."""
    from scipy.stats import rankdata

    labels = np.asarray(labels).astype(bool)
    n1, n0 = int(labels.sum()), int((~labels).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def low_level_inputs(ecal: np.ndarray, energy_GeV: np.ndarray) -> np.ndarray:
    """(N, nx*ny*nz + 1) float32: cells / primary energy, then log10(E / GeV)."""
    n = ecal.shape[0]
    cells = ecal.reshape(n, -1) / energy_GeV[:, None].astype(np.float32)
    return np.concatenate([cells, np.log10(energy_GeV)[:, None].astype(np.float32)], axis=1).astype(np.float32)


def high_level_inputs(ref: np.ndarray, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardise both feature matrices with the statistics of both together (NaN -> 0 after scaling)."""
    both = np.concatenate([ref, cand])
    mu, sd = np.nanmean(both, axis=0), np.nanstd(both, axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    out = []
    for x in (ref, cand):
        z = (x - mu) / sd
        out.append(np.where(np.isfinite(z), z, 0.0).astype(np.float32))
    return out[0], out[1]


def classifier_test(
    ref: np.ndarray,
    cand: np.ndarray,
    seed: int = 1,
    hidden: int = 64,
    max_epochs: int = 30,
    patience: int = 3,
    batch_size: int = 256,
    lr: float = 1e-3,
) -> dict[str, float]:
    """Train, calibrate and test the classifier on inputs ``ref`` (label 0) and ``cand`` (label 1).

    The larger sample is subsampled to the size of the smaller one (balanced classes). Returns "auc",
    "jsd", "auc_uncalibrated", "bce" (calibrated test loss, nats), "n_train", "n_test", "epochs".
    """
    import torch

    rng = np.random.default_rng(seed)
    n = min(len(ref), len(cand))
    if n < 10:
        nan = float("nan")
        return {"auc": nan, "jsd": nan, "auc_uncalibrated": nan, "bce": nan, "n_train": 0, "n_test": 0,
                "epochs": 0}
    ref = ref[rng.permutation(len(ref))[:n]]
    cand = cand[rng.permutation(len(cand))[:n]]
    x = np.concatenate([ref, cand]).astype(np.float32)
    y = np.concatenate([np.zeros(n), np.ones(n)]).astype(np.float32)
    order = rng.permutation(2 * n)
    n_tr, n_va = int(0.6 * 2 * n), int(0.2 * 2 * n)
    idx = {"train": order[:n_tr], "val": order[n_tr:n_tr + n_va], "test": order[n_tr + n_va:]}
    # input scaling from the training split (cells can be tiny numbers)
    mu = x[idx["train"]].mean(axis=0)
    sd = x[idx["train"]].std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    old_threads = torch.get_num_threads()
    if x.shape[1] * hidden < 1_000_000:  # small nets: extra threads cost more than they give on busy machines
        torch.set_num_threads(1)
    try:
        z_val, z_test, epochs = _train(torch.from_numpy((x - mu) / sd), y, idx, seed, hidden, max_epochs,
                                       patience, batch_size, lr)
    finally:
        torch.set_num_threads(old_threads)
    a, b = _platt(z_val, y[idx["val"]].astype(np.float64))
    y_test = y[idx["test"]].astype(np.float64)
    bce = float(np.mean(np.logaddexp(0.0, -(2.0 * y_test - 1.0) * (a * z_test + b))))
    auc = roc_auc(y_test, z_test)  # an increasing calibration (a >= 0) leaves the ranking, so the AUC, as it is
    return {
        "auc": auc,
        "auc_uncalibrated": auc,
        "jsd": (math.log(2.0) - bce) / math.log(2.0),
        "bce": bce,
        "n_train": int(n_tr),
        "n_test": int(len(idx["test"])),
        "epochs": int(epochs),
    }


def _train(xt: Any, y: np.ndarray, idx: dict[str, np.ndarray], seed: int, hidden: int, max_epochs: int,
           patience: int, batch_size: int, lr: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Fit the MLP with early stopping on the validation loss; returns (validation logits, test logits, epochs)."""
    import torch
    from torch import nn

    yt = torch.from_numpy(y)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(xt.shape[1], hidden), nn.LeakyReLU(0.2), nn.Dropout(0.2),
                          nn.Linear(hidden, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.BCEWithLogitsLoss()
    gen = torch.Generator().manual_seed(seed)
    tr = torch.from_numpy(idx["train"])
    best, best_state, bad, epochs = math.inf, None, 0, 0

    def logits(sel: np.ndarray) -> torch.Tensor:
        model.eval()
        with torch.no_grad():
            return model(xt[torch.from_numpy(sel)]).squeeze(1)

    for epoch in range(max_epochs):
        model.train()
        perm = tr[torch.randperm(len(tr), generator=gen)]
        for start in range(0, len(perm), batch_size):
            b = perm[start:start + batch_size]
            opt.zero_grad()
            loss = loss_fn(model(xt[b]).squeeze(1), yt[b])
            loss.backward()
            opt.step()
        val = float(loss_fn(logits(idx["val"]), yt[torch.from_numpy(idx["val"])]))
        epochs = epoch + 1
        if val < best - 1e-4:
            best, bad = val, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
            if bad >= patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)

    z_val = logits(idx["val"]).numpy().astype(np.float64)
    return z_val, logits(idx["test"]).numpy().astype(np.float64), epochs


def _platt(z: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Fit p = sigmoid(a z + b), a >= 0, to labels y by minimising the BCE (Platt / temperature scaling); returns
    (a, b). The slope is bounded below by 0 so that the calibration never reverses the scores' order."""
    from scipy.optimize import minimize

    sign = 2.0 * y - 1.0

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        t = sign * (params[0] * z + params[1])
        g = -sign * expit(-t)  # d loss / d (a z + b)
        return float(np.mean(np.logaddexp(0.0, -t))), np.array([np.mean(g * z), np.mean(g)])

    res = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B", bounds=[(0.0, 1e3), (-1e3, 1e3)])
    return float(res.x[0]), float(res.x[1])
