"""Figures of the validation report: reference vs candidate overlays with a ratio panel, HEP style (mplhep).

One function per figure; each takes observables (already restricted to one energy bin) and returns a
matplotlib ``Figure`` that the caller saves and closes. Nothing is shown on screen (Agg backend).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import mplhep as hep  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from fastshower.validate.metrics import histograms, shared_edges  # noqa: E402
from fastshower.validate.observables import SPECTRUM_EDGES, Observables  # noqa: E402

STYLE = hep.style.CMS
# the CMS style asks for a 'cursive' font family that most machines lack; the fallback is fine, the warning noise
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
REF_LABEL, CAND_LABEL = "reference", "candidate"
COLOURS = ("black", "tab:red")


def _figure(ncols: int = 1) -> tuple[Figure, np.ndarray, np.ndarray]:
    fig, axes = plt.subplots(2, ncols, figsize=(8 * ncols, 8), sharex="col", squeeze=False,
                             gridspec_kw={"height_ratios": (3, 1), "hspace": 0.05})
    return fig, axes[0], axes[1]


def _overlay(ax, rax, edges: np.ndarray, values: Sequence[np.ndarray], errors: Sequence[np.ndarray],
             xlabel: str, ylabel: str, title: str = "", log: bool = False) -> None:
    """Step histograms of reference and candidate, and candidate / reference below."""
    for v, e, c, lab in zip(values, errors, COLOURS, (REF_LABEL, CAND_LABEL), strict=True):
        hep.histplot(v, edges, yerr=e, ax=ax, color=c, label=lab, histtype="step")
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize="small", title=title or None, title_fontsize="small")
    ref, cand = values
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(ref > 0, cand / ref, np.nan)
        rerr = np.where(ref > 0, np.hypot(errors[1] / ref, cand * errors[0] / ref**2), np.nan)
    hep.histplot(np.nan_to_num(ratio, nan=0.0), edges, yerr=np.nan_to_num(rerr), ax=rax, color=COLOURS[1],
                 histtype="errorbar")
    rax.axhline(1.0, color="grey", lw=1)
    rax.set_ylim(0.5, 1.5)
    rax.set_ylabel("cand / ref")
    rax.set_xlabel(xlabel)


def _mean_profile(profile: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = max(profile.shape[0], 1)
    return profile.mean(axis=0), profile.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.zeros(profile.shape[1])


def _density(ref: np.ndarray, cand: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    ref, cand = ref[np.isfinite(ref)], cand[np.isfinite(cand)]
    edges = shared_edges(ref, cand, n_bins=30)
    if len(edges) > 60 or not np.all(np.diff(edges) == 1.0):  # uniform bins for display (not quantile bins)
        lo, hi = np.quantile(np.concatenate([ref, cand]), [0.002, 0.998]) if ref.size + cand.size else (0, 1)
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, 31)
    h = histograms(ref, cand, edges)
    width = np.diff(edges)
    vals, errs = [], []
    for counts in h:
        norm = max(counts.sum(), 1.0) * width
        vals.append(counts / norm)
        errs.append(np.sqrt(counts) / norm)
    return edges, vals, errs


def plot_profile(ref: Observables, cand: Observables, which: str, title: str = "") -> Figure:
    """Mean energy per layer ("long_profile") or per column/row ("x_profile", "y_profile"), GeV."""
    with plt.style.context(STYLE):
        fig, (ax,), (rax,) = _figure()
        (m1, e1), (m2, e2) = _mean_profile(getattr(ref, which)), _mean_profile(getattr(cand, which))
        edges = np.arange(m1.size + 1) - 0.5
        xlabel = {"long_profile": "layer", "x_profile": ref.axis_labels[0].split(" [")[0] + " [bin]",
                  "y_profile": ref.axis_labels[1].split(" [")[0] + " [bin]"}[which]
        _overlay(ax, rax, edges, (m1, m2), (e1, e2), xlabel, "mean energy [GeV]", title, log=True)
    return fig


def plot_distribution(ref: Observables, cand: Observables, name: str, title: str = "") -> Figure:
    """Normalised distribution of one scalar observable (sampling fraction, hit count, ...)."""
    with plt.style.context(STYLE):
        fig, (ax,), (rax,) = _figure()
        edges, vals, errs = _density(getattr(ref, name).astype(float), getattr(cand, name).astype(float))
        _overlay(ax, rax, edges, vals, errs, ref.label(name), "normalised", title)
    return fig


def plot_moments(ref: Observables, cand: Observables, kind: str = "centre", title: str = "") -> Figure:
    """Distributions of the first ("centre") or second ("width") moments along the three axes (cells, or r in mm
    and alpha in rad for a cylindrical readout)."""
    with plt.style.context(STYLE):
        fig, axes, raxes = _figure(3)
        for ax, rax, axis in zip(axes, raxes, "xyz", strict=True):
            name = f"{kind}_{axis}"
            edges, vals, errs = _density(getattr(ref, name), getattr(cand, name))
            _overlay(ax, rax, edges, vals, errs, ref.label(name), "normalised", title)
    return fig


def plot_cell_spectrum(ref: Observables, cand: Observables, title: str = "") -> Figure:
    """Cells per shower in bins of log10(cell energy / GeV), cells above threshold."""
    with plt.style.context(STYLE):
        fig, (ax,), (rax,) = _figure()
        (m1, e1), (m2, e2) = _mean_profile(ref.spectrum.astype(float)), _mean_profile(cand.spectrum.astype(float))
        _overlay(ax, rax, SPECTRUM_EDGES, (m1, m2), (e1, e2), "log10(cell energy / GeV)", "cells per shower",
                 title, log=True)
    return fig


def plot_response_vs_energy(edges: Sequence[float], ref: Sequence[dict], cand: Sequence[dict]) -> Figure:
    """Mean sampling fraction per energy bin (error bars: its standard error), candidate / reference below."""
    with plt.style.context(STYLE):
        fig, (ax,), (rax,) = _figure()
        e = np.asarray(edges, dtype=float)

        def arrays(rows: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
            m = np.array([r["response"] for r in rows], dtype=float)
            s = np.array([r["response_std"] / np.sqrt(max(r["n"], 1)) for r in rows], dtype=float)
            return np.nan_to_num(m), np.nan_to_num(s)

        (m1, s1), (m2, s2) = arrays(ref), arrays(cand)
        _overlay(ax, rax, e, (m1, m2), (s1, s2), "primary energy [GeV]", "mean sampling fraction")
        ax.set_xscale("log")
        lo = min(m1[m1 > 0].min(initial=1.0), m2[m2 > 0].min(initial=1.0))
        ax.set_ylim(0.9 * lo, 1.1 * max(m1.max(initial=0), m2.max(initial=0), lo))
        rax.set_ylim(0.9, 1.1)
    return fig


#: The per-bin figures of the report: file stem -> function(ref, cand, title) -> Figure.
BIN_FIGURES = {
    "longitudinal": lambda r, c, t: plot_profile(r, c, "long_profile", t),
    "profile_x": lambda r, c, t: plot_profile(r, c, "x_profile", t),
    "profile_y": lambda r, c, t: plot_profile(r, c, "y_profile", t),
    "sampling_fraction": lambda r, c, t: plot_distribution(r, c, "sampling_fraction", t),
    "centres": lambda r, c, t: plot_moments(r, c, "centre", t),
    "widths": lambda r, c, t: plot_moments(r, c, "width", t),
    "hits": lambda r, c, t: plot_distribution(r, c, "n_hits", t),
    "cell_spectrum": plot_cell_spectrum,
}
