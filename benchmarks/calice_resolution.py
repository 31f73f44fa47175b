"""The CALICE Si-W ECAL prototype (configs/calice-siw.yaml) against its test beam: energy resolution and linearity
for electrons of 6-45 GeV, reconstructed as the collaboration did.

Run: ``.venv/bin/python benchmarks/calice_resolution.py [--n 400] [--msc highland|wentzel] [--c1 0.2]``
(2 workers). Reconstruction (NIM A 608 (2009) 372, arXiv:0811.2354): silicon energy summed per layer with weights
1, 2, 3 for the three tungsten thicknesses; per beam energy, the mean and width of a Gaussian fitted iteratively
within +-2 sigma; sigma/E fitted with a / sqrt(E) (+) b. The test beam measured a = 16.53 +- 0.14 (stat) +- 0.4
(syst) %, b = 1.07 +- 0.07 (stat) +- 0.1 (syst) %, and linearity within 1 %.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy.optimize import curve_fit

from fastshower.geometry import load_geometry
from fastshower.mc.production import chunks, run_production
from fastshower.mc.settings import PhysicsSettings
from fastshower.mc.simulator import Primaries

DETECTOR = Path(__file__).resolve().parents[1] / "configs" / "calice-siw.yaml"
ENERGIES_GeV = (6.0, 10.0, 15.0, 20.0, 30.0, 45.0)
LAYER_WEIGHTS = np.repeat([1.0, 2.0, 3.0], 10)
TEST_BEAM = {"stochastic_percent": 16.53, "stochastic_error": np.hypot(0.14, 0.4), "constant_percent": 1.07}


def gaussian_core(values: np.ndarray, width_sigmas: float = 2.0) -> tuple[float, float, float]:
    """Mean, sigma and sigma's error of a Gaussian fitted to the histogram within +-2 sigma, iterated."""
    mean, sigma = float(np.median(values)), float(np.std(values))
    for _ in range(10):
        low, high = mean - width_sigmas * sigma, mean + width_sigmas * sigma
        core = values[(values > low) & (values < high)]
        counts, edges = np.histogram(core, bins=max(10, int(np.sqrt(core.size))))
        centres = 0.5 * (edges[1:] + edges[:-1])
        (amp, mean, sigma), cov = curve_fit(lambda x, a, m, s: a * np.exp(-0.5 * ((x - m) / s) ** 2), centres, counts,
                                            p0=(counts.max(), mean, sigma), sigma=np.sqrt(np.maximum(counts, 1)))
        sigma = abs(sigma)
    return float(mean), float(sigma), float(np.sqrt(cov[2, 2]))


def resolution_fit(energy: np.ndarray, rel: np.ndarray, rel_err: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) in % and their errors of sigma/E = a/sqrt(E) (+) b."""
    def model(e: np.ndarray, a: float, b: float) -> np.ndarray:
        return np.sqrt((a / np.sqrt(e)) ** 2 + b**2)

    params, cov = curve_fit(model, energy, 100 * rel, p0=(15.0, 1.0), sigma=100 * rel_err, absolute_sigma=True,
                            bounds=([0.0, 0.0], [100.0, 20.0]))
    return params, np.sqrt(np.diag(cov))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="showers per energy")
    defaults = PhysicsSettings()
    parser.add_argument("--msc", default=defaults.msc, choices=("highland", "wentzel"))
    parser.add_argument("--c1", type=float, default=defaults.msc_c1, help="msc_c1 and msc_c2 of the mixed scheme")
    parser.add_argument("--cut-conversion", default=defaults.cut_conversion, choices=("csda", "geant4"))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    calo = load_geometry(DETECTOR)
    settings = PhysicsSettings(msc=args.msc, msc_c1=args.c1, msc_c2=args.c1, cut_conversion=args.cut_conversion)
    n_total = args.n * len(ENERGIES_GeV)
    zeros = np.zeros(n_total)
    primaries = Primaries(np.full(n_total, 11), np.repeat(ENERGIES_GeV, args.n), zeros, zeros, zeros, zeros)
    weighted = np.zeros(n_total)
    t0 = time.perf_counter()
    for start, batch in run_production(calo, settings, primaries, 1, chunks(n_total, 20), workers=args.workers):
        per_layer = batch.images.sum(axis=(1, 2), dtype=np.float64)
        weighted[start:start + per_layer.shape[0]] = per_layer @ LAYER_WEIGHTS
    seconds = time.perf_counter() - t0
    means, rel, rel_err = [], [], []
    for k in range(len(ENERGIES_GeV)):
        mean, sigma, sigma_err = gaussian_core(weighted[k * args.n:(k + 1) * args.n])
        means.append(mean)
        rel.append(sigma / mean)
        rel_err.append(sigma_err / mean)
    means, rel, rel_err = np.array(means), np.array(rel), np.array(rel_err)
    scale = np.polyfit(ENERGIES_GeV, means, 1)  # calibration: a straight line through the means
    linearity = means / np.polyval(scale, ENERGIES_GeV) - 1.0
    (a, b), (da, db) = resolution_fit(np.array(ENERGIES_GeV), rel, rel_err)
    model = f"msc {args.msc}" + (f" (C1=C2={args.c1})" if args.msc == "wentzel" else "")
    label = f"{model}, cuts {args.cut_conversion}"
    print(f"CALICE Si-W prototype, e- {args.n} per energy, {label}: {seconds:.0f} s on {args.workers} workers")
    print("| E (GeV) | weighted Si sum (MeV) | sigma/E (%) | linearity residual (%) |")
    print("|---|---|---|---|")
    for energy, mean, r, dr, lin in zip(ENERGIES_GeV, means, rel, rel_err, linearity, strict=True):
        print(f"| {energy:g} | {1000 * mean:.2f} | {100 * r:.2f} +- {100 * dr:.2f} | {100 * lin:+.2f} |")
    print(f"stochastic term {a:.2f} +- {da:.2f} %/sqrt(E), constant {b:.2f} +- {db:.2f} % "
          f"(test beam: {TEST_BEAM['stochastic_percent']} +- {TEST_BEAM['stochastic_error']:.2f} %, "
          f"{TEST_BEAM['constant_percent']} %); max |linearity residual| {100 * np.max(np.abs(linearity)):.2f} %")


if __name__ == "__main__":
    main()
