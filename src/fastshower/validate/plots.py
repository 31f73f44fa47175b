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

from fastshower.validate.metrics import clipped_histogram, shared_edges  # noqa: E402
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


def _ratio(ref: np.ndarray, ref_err: np.ndarray, other: np.ndarray, other_err: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """other / ref and its error (both errors propagated); NaN where the reference is empty."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(ref > 0, other / ref, np.nan)
        err = np.where(ref > 0, np.hypot(other_err / ref, other * ref_err / ref**2), np.nan)
    return ratio, err


#: The ratio panel's range never exceeds this (a candidate 10x off is marked, not drawn to scale).
RATIO_LIMITS = (0.0, 3.0)


def _ratio_panel(rax, edges: np.ndarray, values: Sequence[np.ndarray], errors: Sequence[np.ndarray],
                 floor: tuple[np.ndarray, np.ndarray] | None) -> None:
    """candidate / reference with its errors; the floor sample / reference as a grey band (what two MC samples
    show); the range from the data, and points beyond ``RATIO_LIMITS`` marked by arrows at the edge."""
    centres = 0.5 * (edges[1:] + edges[:-1])
    ratio, err = _ratio(values[0], errors[0], values[1], errors[1])
    spans = [ratio - err, ratio + err]
    if floor is not None:
        band, band_err = _ratio(values[0], errors[0], *floor)
        lo, hi = band - band_err, band + band_err
        rax.fill_between(edges, np.append(lo, lo[-1:]), np.append(hi, hi[-1:]), step="post", color="0.8",
                         lw=0, label="MC vs MC floor")
        spans += [lo, hi]
    finite = np.concatenate([v[np.isfinite(v)] for v in spans] + [np.array([1.0])])
    low = max(RATIO_LIMITS[0], float(finite.min()))
    high = min(RATIO_LIMITS[1], float(finite.max()))
    pad = 0.08 * (high - low or 1.0)
    low, high = low - pad, high + pad
    rax.errorbar(centres, ratio, yerr=err, fmt="o", ms=3, color=COLOURS[1], lw=1)
    for beyond, y, marker in ((ratio > high, high, "^"), (ratio < low, low, "v")):
        if beyond.any():
            rax.plot(centres[beyond], np.full(beyond.sum(), y), marker, color=COLOURS[1], ms=7, clip_on=False)
    rax.axhline(1.0, color="grey", lw=1)
    rax.set_ylim(low, high)
    rax.set_ylabel("cand / ref")
    if floor is not None:
        rax.legend(fontsize="x-small", loc="upper right")


def _overlay(ax, rax, edges: np.ndarray, values: Sequence[np.ndarray], errors: Sequence[np.ndarray],
             xlabel: str, ylabel: str, title: str = "", log: bool = False,
             floor: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Step histograms of reference and candidate, and the ratio panel below (see :func:`_ratio_panel`)."""
    for v, e, c, lab in zip(values, errors, COLOURS, (REF_LABEL, CAND_LABEL), strict=True):
        hep.histplot(v, edges, yerr=e, ax=ax, color=c, label=lab, histtype="step")
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
        positive = np.concatenate([v[v > 0] for v in values])
        if positive.size:  # seven decades below the peak at most: a stray 1e-20 GeV cell does not set the scale
            top = float(positive.max())
            ax.set_ylim(max(float(positive.min()) * 0.5, top * 1e-7), top * 3.0)
    ax.legend(fontsize="small", title=title or None, title_fontsize="small")
    _ratio_panel(rax, edges, values, errors, floor)
    rax.set_xlabel(xlabel)


def _mean_profile(profile: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = max(profile.shape[0], 1)
    return profile.mean(axis=0), profile.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.zeros(profile.shape[1])


def _density(ref: np.ndarray, cand: np.ndarray, floor: np.ndarray | None = None
             ) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Normalised densities of reference, candidate (and floor sample) on shared display bins, with errors."""
    ref, cand = ref[np.isfinite(ref)], cand[np.isfinite(cand)]
    edges = shared_edges(ref, cand, n_bins=30)
    if len(edges) > 60 or not np.all(np.diff(edges) == 1.0):  # uniform bins for display (not quantile bins)
        lo, hi = np.quantile(np.concatenate([ref, cand]), [0.002, 0.998]) if ref.size + cand.size else (0, 1)
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, 31)
    samples = [ref, cand] + ([floor[np.isfinite(floor)]] if floor is not None else [])
    width = np.diff(edges)
    vals, errs = [], []
    for x in samples:
        counts = clipped_histogram(x, edges)
        norm = max(counts.sum(), 1.0) * width
        vals.append(counts / norm)
        errs.append(np.sqrt(counts) / norm)
    return edges, vals, errs


def _floor_pair(vals: list[np.ndarray], errs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
    return (vals[2], errs[2]) if len(vals) > 2 else None


def plot_profile(ref: Observables, cand: Observables, which: str, title: str = "",
                 floor: Observables | None = None) -> Figure:
    """Mean energy per layer ("long_profile") or per column/row ("x_profile", "y_profile"), GeV."""
    with plt.style.context(STYLE):
        fig, (ax,), (rax,) = _figure()
        (m1, e1), (m2, e2) = _mean_profile(getattr(ref, which)), _mean_profile(getattr(cand, which))
        edges = np.arange(m1.size + 1) - 0.5
        xlabel = {"long_profile": "layer", "x_profile": ref.axis_labels[0].split(" [")[0] + " [bin]",
                  "y_profile": ref.axis_labels[1].split(" [")[0] + " [bin]"}[which]
        if which != "long_profile" and np.isfinite(ref.pitch_mm):  # lengths where the geometry gives them
            edges = (edges - (m1.size - 1) / 2) * ref.pitch_mm
            xlabel = f"{which[0]} [mm] (cells of {ref.pitch_mm:g} mm)"
        band = _mean_profile(getattr(floor, which)) if floor is not None and len(floor) > 1 else None
        _overlay(ax, rax, edges, (m1, m2), (e1, e2), xlabel, "mean energy [GeV]", title, log=True, floor=band)
    return fig


def plot_distribution(ref: Observables, cand: Observables, name: str, title: str = "",
                      floor: Observables | None = None) -> Figure:
    """Normalised distribution of one scalar observable (sampling fraction, hit count, ...)."""
    with plt.style.context(STYLE):
        fig, (ax,), (rax,) = _figure()
        edges, vals, errs = _density(getattr(ref, name).astype(float), getattr(cand, name).astype(float),
                                     None if floor is None else getattr(floor, name).astype(float))
        _overlay(ax, rax, edges, vals[:2], errs[:2], ref.label(name), "normalised", title,
                 floor=_floor_pair(vals, errs))
    return fig


def _moment(obs: Observables, kind: str, axis: str) -> tuple[np.ndarray, str]:
    """A moment along one axis in mm where the geometry gives lengths (Cartesian grids), else as observed."""
    k = "xyz".index(axis)
    mm = (obs.centre_mm if kind == "centre" else obs.width_mm)[:, k]
    cartesian = obs.axis_labels[k].endswith(("[cell]", "[layer]"))
    if cartesian and obs.spatial_unit == "mm" and np.isfinite(mm).any():
        name = {"centre": "centre of energy", "width": "width"}[kind]
        return mm, f"{name} {axis} [mm]"
    return getattr(obs, f"{kind}_{axis}"), obs.label(f"{kind}_{axis}")


def plot_moments(ref: Observables, cand: Observables, kind: str = "centre", title: str = "",
                 floor: Observables | None = None) -> Figure:
    """Distributions of the first ("centre") or second ("width") moments along the three axes: mm where the
    geometry is known, else cells; r in mm and alpha in rad for a cylindrical readout."""
    with plt.style.context(STYLE):
        fig, axes, raxes = _figure(3)
        for ax, rax, axis in zip(axes, raxes, "xyz", strict=True):
            (r, label), (c, _) = _moment(ref, kind, axis), _moment(cand, kind, axis)
            f = None if floor is None else _moment(floor, kind, axis)[0]
            edges, vals, errs = _density(r, c, f)
            _overlay(ax, rax, edges, vals[:2], errs[:2], label, "normalised", title, floor=_floor_pair(vals, errs))
    return fig


def plot_cell_spectrum(ref: Observables, cand: Observables, title: str = "", floor: Observables | None = None
                       ) -> Figure:
    """Cells per shower in bins of log10(cell energy / GeV), cells above threshold."""
    with plt.style.context(STYLE):
        fig, (ax,), (rax,) = _figure()
        (m1, e1), (m2, e2) = _mean_profile(ref.spectrum.astype(float)), _mean_profile(cand.spectrum.astype(float))
        band = _mean_profile(floor.spectrum.astype(float)) if floor is not None and len(floor) > 1 else None
        _overlay(ax, rax, SPECTRUM_EDGES, (m1, m2), (e1, e2), "log10(cell energy / GeV)", "cells per shower",
                 title, log=True, floor=band)
    return fig


def plot_response_vs_energy(edges: Sequence[float], ref: Sequence[dict], cand: Sequence[dict],
                            floor: Sequence[dict] | None = None) -> Figure:
    """Mean sampling fraction per energy bin (error bars: its standard error), candidate / reference below with
    the floor sample's ratio as a band."""
    with plt.style.context(STYLE):
        fig, (ax,), (rax,) = _figure()
        e = np.asarray(edges, dtype=float)

        def arrays(rows: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
            m = np.array([r["response"] for r in rows], dtype=float)
            s = np.array([r["response_std"] / np.sqrt(max(r["n"], 1)) for r in rows], dtype=float)
            return np.nan_to_num(m), np.nan_to_num(s)

        (m1, s1), (m2, s2) = arrays(ref), arrays(cand)
        _overlay(ax, rax, e, (m1, m2), (s1, s2), "primary energy [GeV]", "mean sampling fraction",
                 floor=arrays(floor) if floor is not None else None)
        ax.set_xscale("log")
        lo = min(m1[m1 > 0].min(initial=1.0), m2[m2 > 0].min(initial=1.0))
        ax.set_ylim(0.9 * lo, 1.1 * max(m1.max(initial=0), m2.max(initial=0), lo))
    return fig


#: The per-bin figures of the report: file stem -> (function(ref, cand, floor, title) -> Figure, caption).
BIN_FIGURES = {
    "longitudinal": (lambda r, c, f, t: plot_profile(r, c, "long_profile", t, f),
                     "mean longitudinal profile (energy per layer)"),
    "profile_x": (lambda r, c, f, t: plot_profile(r, c, "x_profile", t, f), "mean lateral profile, first axis"),
    "profile_y": (lambda r, c, f, t: plot_profile(r, c, "y_profile", t, f), "mean lateral profile, second axis"),
    "sampling_fraction": (lambda r, c, f, t: plot_distribution(r, c, "sampling_fraction", t, f),
                          "sampling fraction (deposit / primary energy)"),
    "centres": (lambda r, c, f, t: plot_moments(r, c, "centre", t, f), "centres of energy"),
    "widths": (lambda r, c, f, t: plot_moments(r, c, "width", t, f), "shower widths"),
    "hits": (lambda r, c, f, t: plot_distribution(r, c, "n_hits", t, f), "cells above threshold"),
    "cell_spectrum": (lambda r, c, f, t: plot_cell_spectrum(r, c, t, f), "cell-energy spectrum"),
}
