"""``fastshower validate``: compare a candidate sample with a reference and write an HTML + JSON report.

Every metric of the candidate against the reference is shown beside its *statistical floor*: the same metric
between two independent reference samples. Without ``reference2`` the reference is split at random into two
halves A and B; the candidate is compared with A and the floor is B vs A (same reference statistics on both
sides). With ``reference2`` the candidate is compared with the whole reference and the floor is reference2 vs
reference.

Pass rule (per metric, per energy bin): ``value <= max(factor * floor, tolerance)`` with ``factor`` = 3 and
per-metric absolute tolerances (``DEFAULT_TOLERANCES``, overridable from a YAML file). For the classifier AUC
the deviation |AUC - 0.5| is tested. A summary row over several observables passes when all of them pass and
shows the worst one (largest value / threshold).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fastshower.atomic import atomic_write, atomic_write_text
from fastshower.data import BinningSpec, inspect_showers, read_showers
from fastshower.errors import ConfigError, DataFormatError
from fastshower.validate.observables import (
    DEFAULT_THRESHOLD_GeV,
    Observables,
    bin_by_energy,
    compute_observables_file,
    response,
)

logger = logging.getLogger(__name__)

DEFAULT_ENERGY_EDGES = (10.0, 50.0, 100.0, 200.0, 510.0)
#: Absolute tolerances of the pass rule, and the factor applied to the floor.
DEFAULT_TOLERANCES: dict[str, float] = {
    "factor": 3.0,
    "sep_power": 0.01,
    "ks": 0.05,
    "w1_norm": 0.05,
    "chi2_ndf": 3.0,
    "mean_rel_err": 0.05,
    "response_rel_diff": 0.01,
    "resolution_rel_diff": 0.10,
    "fpd": 0.05,
    "kpd": 0.01,
    "auc": 0.05,
    "jsd": 0.02,
}
#: Showers per sample loaded as cells for the low-level classifier (the rest is only used for observables).
CLASSIFIER_MAX_SHOWERS = 10000
#: Fewest showers in each compared sample (each reference half, the candidate) for a verdict: below it a bin's
#: checks are "insufficient", never a pass. At 100 showers a 2 % response difference is about 1 sigma of a 20 %
#: resolution sample, the smallest size at which the floors themselves are worth comparing with (docs/validation.md).
MIN_SHOWERS = 100
#: Slack before two samples' ranges of a condition count as different: this fraction of the reference's range, and
#: at least 1 % of its largest energy (samples at one energy) or 0.5 degree of angle (samples at one angle). Random
#: samples of one range differ at their ends by much less (tests/test_validate_report.py).
RANGE_SLACK, ENERGY_SLACK, ANGLE_SLACK_deg = 0.05, 0.01, 0.5


def load_tolerances(path: str | Path | None) -> dict[str, float]:
    """Defaults updated from a YAML mapping ``{metric: tolerance, factor: 3}``; unknown keys are errors."""
    tol = dict(DEFAULT_TOLERANCES)
    if path is None:
        return tol
    from fastshower.config import read_mapping

    loaded = read_mapping(path, "tolerances file (metric names to numbers)")
    for key, value in loaded.items():
        if key not in tol:
            raise ConfigError(f"{path}: unknown metric {key!r} (known: {', '.join(sorted(tol))})")
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
            raise ConfigError(f"{path}: tolerance {key!r} must be a number >= 0 (got {value!r})")
        tol[key] = float(value)
    return tol


def check_compatible(path_a: str | Path, info_a: Mapping[str, Any], path_b: str | Path,
                     info_b: Mapping[str, Any]) -> None:
    """Refuse samples of different cell shape, geometry (when both files store one) or energy unit."""
    where = f"{path_a} vs {path_b}"
    if info_a["cell_shape"] != info_b["cell_shape"]:
        raise DataFormatError(f"{where}: cell shapes {info_a['cell_shape']} and {info_b['cell_shape']} differ")
    ga, gb = info_a["attrs"].get("geometry"), info_b["attrs"].get("geometry")
    if ga and gb and json.dumps(ga, sort_keys=True) != json.dumps(gb, sort_keys=True):
        name = lambda g: g.get("name", "?") if isinstance(g, dict) else "?"  # noqa: E731
        raise DataFormatError(f"{where}: geometries differ ({name(ga)!r} and {name(gb)!r})")
    for key in ("unit", "energy_unit", "units"):
        ua, ub = info_a["attrs"].get(key), info_b["attrs"].get(key)
        if ua is not None and ub is not None and ua != ub:
            raise DataFormatError(f"{where}: energy units differ ({ua!r} and {ub!r})")


def _clean(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON atomically (temporary file in the same folder, then renamed over ``path``)."""
    atomic_write_text(path, json.dumps(_clean(payload), indent=1, allow_nan=False))


# --- pass / fail ---------------------------------------------------------------------------------------------


def _tested(metric: str, x: float | None) -> float | None:
    """What the pass rule compares: the value itself, or |AUC - 0.5| for the AUC; None when not computable."""
    if x is None or not math.isfinite(x):
        return None
    return abs(x - 0.5) if metric == "auc" else x


def threshold(metric: str, floor: float | None, tol: Mapping[str, float]) -> float:
    """The largest passing value: ``max(factor * floor, tolerance)`` (the tolerance alone without a floor); for the
    AUC in units of |AUC - 0.5|, ``floor`` being the raw floor AUC."""
    tested = _tested(metric, floor)
    return tol[metric] if tested is None else max(tol["factor"] * tested, tol[metric])


def judge(metric: str, value: float | None, floor: float | None, tol: Mapping[str, float]) -> bool | None:
    """Pass rule ``value <= max(factor * floor, tolerance)``; AUC uses |AUC - 0.5|. None when not computable."""
    tested = _tested(metric, value)
    return None if tested is None else bool(tested <= threshold(metric, floor, tol))


def _summary_row(label: str, metric: str, items: dict[str, tuple[float, float]], tol: Mapping[str, float],
                 enough: bool = True) -> dict[str, Any]:
    """One summary row over several observables: pass if all pass; shows the worst (value / threshold) one, with
    value and floor as tested (|AUC - 0.5| for the AUC). With too few showers (``enough`` False) the row is
    "insufficient" and has no pass/fail verdict."""
    worst, worst_ratio, verdicts = None, -1.0, []
    for name, (v, f) in items.items():
        verdict = judge(metric, v, f, tol)
        verdicts.append(verdict)
        if verdict is None:
            continue
        limit = threshold(metric, f, tol)
        ratio = _tested(metric, v) / limit if limit > 0 else math.inf  # type: ignore[operator]
        if ratio > worst_ratio:
            worst, worst_ratio = name, ratio
    known = [v for v in verdicts if v is not None]
    value, floor = items[worst] if worst is not None else (None, None)
    verdict = (all(known) if known else None) if enough else None
    status = "insufficient" if not enough else {True: "pass", False: "fail", None: "n/a"}[verdict]
    return {"bin": label, "metric": metric, "observable": worst, "value": _tested(metric, value),
            "floor": _tested(metric, floor), "tolerance": tol[metric], "threshold": threshold(metric, floor, tol),
            "pass": verdict, "status": status}


def overall_verdict(summary: Sequence[Mapping[str, Any]]) -> str:
    """FAIL if any check fails, else INSUFFICIENT if any bin had too few showers for a verdict, else PASS."""
    statuses = {r["status"] for r in summary}
    if "fail" in statuses:
        return "FAIL"
    return "INSUFFICIENT" if "insufficient" in statuses or not summary else "PASS"


def summarise(bins: Sequence[dict[str, Any]], classifier: Mapping[str, Any], tol: Mapping[str, float]
              ) -> list[dict[str, Any]]:
    """The summary table: per energy bin and metric family, and the classifier rows."""
    rows = []
    for b in bins:
        if "metrics" not in b:
            continue
        m, f = b["metrics"], b["floor"]
        enough = min(b["n"].values()) >= MIN_SHOWERS
        for metric in ("sep_power", "ks", "w1_norm", "chi2_ndf"):
            items = {n: (d[metric], f["observables"][n][metric]) for n, d in m["observables"].items() if metric in d}
            rows.append(_summary_row(b["label"], metric, items, tol, enough))
        items = {n: (v, f["mean_rel_err"][n]) for n, v in m["mean_rel_err"].items()}
        rows.append(_summary_row(b["label"], "mean_rel_err", items, tol, enough))
        for metric in ("response_rel_diff", "resolution_rel_diff"):
            rows.append(_summary_row(b["label"], metric, {"deposit": (m["response"][metric],
                                                                       f["response"][metric])}, tol, enough))
        for metric in ("fpd", "kpd"):
            rows.append(_summary_row(b["label"], metric, {"observables": (m["physics"][metric],
                                                                           f["physics"][metric])}, tol, enough))
    everything = next((b for b in bins if b["label"] == "all"), None)
    enough_all = everything is not None and min(everything["n"].values()) >= MIN_SHOWERS
    for level, res in classifier.items():
        # an AUC measured on n test showers scatters around 0.5 by auc_null_sigma(n) even for identical samples
        level_tol = {**tol, "auc": max(tol["auc"], 3.0 * auc_null_sigma(res["value"].get("n_test", 0)))}
        for metric in ("auc", "jsd"):
            rows.append(_summary_row("all", metric, {f"{level}-level": (res["value"][metric],
                                                                         res["floor"][metric])}, level_tol,
                                     enough_all))
    return rows


def auc_null_sigma(n_test: int) -> float:
    """Standard deviation of the ROC AUC of two identical, balanced samples of ``n_test`` showers in all
    (the Mann-Whitney U null distribution: sqrt((n1 + n2 + 1) / (12 n1 n2)))."""
    half = n_test / 2.0
    if half < 1:
        return 0.0
    return math.sqrt((2.0 * half + 1.0) / (12.0 * half * half))


def verdict_line(metrics: Mapping[str, Any]) -> str:
    """'N of M checks pass, F fail, I insufficient (...): VERDICT' from a validation's metrics."""
    statuses = [r["status"] for r in metrics["summary"]]
    parts = [f"{statuses.count('pass')} of {len(statuses)} checks pass", f"{statuses.count('fail')} fail"]
    if "insufficient" in statuses:
        parts.append(f"{statuses.count('insufficient')} insufficient (fewer than {metrics['min_showers']} showers "
                     "in a compared sample)")
    if "n/a" in statuses:
        parts.append(f"{statuses.count('n/a')} not computable")
    events = metrics.get("events")
    if events:
        counts = events["counts"]
        parts.append(f"and {counts.get('pass', 0)} of {len(events['checks'])} event-level checks pass "
                     f"({events['verdict']})")
    return f"{', '.join(parts)}: {metrics['verdict']}"


# --- the run -------------------------------------------------------------------------------------------------


def _classifier_inputs(path: Path, obs: Observables, index: np.ndarray, level: str, limit: int,
                       cache: dict[Path, Any], binning: BinningSpec | None = None) -> np.ndarray:
    from fastshower.validate.classifier import low_level_inputs
    from fastshower.validate.metrics import feature_matrix

    index = index[index < limit]
    if level == "high":
        return feature_matrix(obs.select(index))
    if path not in cache:
        cache[path] = read_showers(path, 0, limit, binning)
    data = cache[path]
    return low_level_inputs(data.ecal[index], data.energy_GeV[index])


def _run_classifiers(paths: dict[str, Path], obs: dict[str, Observables], idx: dict[str, np.ndarray], seed: int,
                     binning: BinningSpec | None = None) -> dict[str, Any]:
    from fastshower.validate.classifier import classifier_test, high_level_inputs

    out: dict[str, Any] = {}
    limit = {k: min(len(o), 2 * CLASSIFIER_MAX_SHOWERS) for k, o in obs.items()}
    cache: dict[Path, Any] = {}
    for level in ("low", "high"):
        t0 = time.perf_counter()
        x = {k: _classifier_inputs(paths[k], obs[k], idx[k], level, limit[k], cache, binning)
             for k in ("ref", "cand", "floor")}
        x = {k: v[:CLASSIFIER_MAX_SHOWERS] for k, v in x.items()}
        pairs = {"value": (x["ref"], x["cand"]), "floor": (x["ref"], x["floor"])}
        if level == "high":
            pairs = {k: high_level_inputs(*v) for k, v in pairs.items()}
        out[level] = {k: classifier_test(a, b, seed=seed) for k, (a, b) in pairs.items()}
        cache.clear()
        logger.info("classifier (%s-level) done in %.1f s", level, time.perf_counter() - t0)
    return out


def _community(paths: dict[str, Path], idx: dict[str, np.ndarray], attrs: Mapping[str, Any], seed: int,
               max_showers: int, classifier: bool, binning: BinningSpec | None = None) -> dict[str, Any]:
    """The community's metrics (``validate.community``) of the candidate and of the floor pair against reference
    half A, on at most ``max_showers`` showers a sample."""
    from fastshower.validate.community import CONVENTION, community_metrics, transverse_grid

    t0 = time.perf_counter()
    index = {key: idx[key][:max_showers] for key in ("ref", "cand", "floor")}
    files = {}  # each file read once (the two reference halves share one), up to the last shower used
    for key in index:
        p = paths[key]
        if p not in files:
            files[p] = read_showers(p, 0, max(int(i.max()) + 1 for k, i in index.items() if paths[k] == p), binning)
    cells = {k: (files[paths[k]].ecal[i], files[paths[k]].energy_GeV[i]) for k, i in index.items()}
    grid = transverse_grid(tuple(cells["ref"][0].shape[1:]), dict(attrs))  # type: ignore[arg-type]
    out: dict[str, Any] = {"convention": CONVENTION, "transverse_unit": grid.unit,
                           "calochallenge_dataset": grid.dataset or None, "max_showers": max_showers}
    for name, other in (("value", "cand"), ("floor", "floor")):
        out[name] = community_metrics(*cells["ref"], *cells[other], grid, seed=seed, classifier=classifier)
    logger.info("community metrics done in %.1f s", time.perf_counter() - t0)
    return out


def _event_checks(reference: Path, candidate: Path) -> dict[str, Any] | None:
    """The event-level checks (``validate.events``) when both files are event files of the same events (made by
    ``fastshower simulate --events``, e.g. the full simulation and a hybrid one), else None."""
    from fastshower.data.events import is_event_file, read_event_showers

    if not (is_event_file(reference) and is_event_file(candidate)):
        return None
    from fastshower.validate.events import compare_events

    t0 = time.perf_counter()
    out = compare_events(read_event_showers(reference), read_event_showers(candidate))
    logger.info("event-level checks done in %.1f s", time.perf_counter() - t0)
    return out


def run_validation(
    reference: str | Path,
    candidate: str | Path,
    out: str | Path,
    reference2: str | Path | None = None,
    energy_edges: Sequence[float] = DEFAULT_ENERGY_EDGES,
    threshold_GeV: float = DEFAULT_THRESHOLD_GeV,
    tolerances: Mapping[str, float] | None = None,
    classifier: bool = True,
    seed: int = 1,
    plots: bool = True,
    theta_edges_deg: Sequence[float] | None = None,
    binning: BinningSpec | None = None,
    community: bool = False,
    community_max_showers: int = 2000,
    command: str = "",
    model: str = "",
) -> dict[str, Any]:
    """Compute every metric, write ``out/metrics.json``, ``out/index.html`` and ``out/plots/*.png``.

    Bins: all showers, each energy bin, and (with ``theta_edges_deg``) each incidence-angle bin over all energies.
    ``community``: also the CaloChallenge's metrics and jetnet's FPD/KPD (``validate.community``; its classifiers
    only with ``classifier``), on the first ``community_max_showers`` showers of each sample. ``command`` and
    ``model`` (the command line, the model that made the candidate) go into the provenance. Two event files of the
    same events also get the event-level checks (``validate.events``: cluster energies, centroids, separations),
    under ``events``, and count in the verdict.

    Returns the metrics dict (as written to JSON). Raises ``DataFormatError`` for unreadable or incompatible
    files, ``ConfigError`` for bad options.
    """
    from fastshower.validate.metrics import compare

    t_start = time.perf_counter()
    tol = dict(DEFAULT_TOLERANCES if tolerances is None else tolerances)
    edges = [float(e) for e in energy_edges]
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise ConfigError(f"energy bins {edges}: need at least two increasing edges")
    paths = {"ref": Path(reference), "cand": Path(candidate)}
    if reference2 is not None:
        paths["floor"] = Path(reference2)
    infos = {k: inspect_showers(p, binning) for k, p in paths.items()}
    for k in infos:
        if k != "ref":
            check_compatible(paths["ref"], infos["ref"], paths[k], infos[k])
    for k, info in infos.items():
        if info["n"] < 4:
            raise DataFormatError(f"{paths[k]}: holds {info['n']} showers; at least 4 are needed")

    notes = physics_notes(infos["ref"]["attrs"], infos["cand"]["attrs"])
    obs = {k: compute_observables_file(p, threshold_GeV, binning=binning) for k, p in paths.items()}
    logger.info("observables done after %.1f s", time.perf_counter() - t_start)
    idx = {"cand": np.arange(len(obs["cand"]))}
    if reference2 is None:  # split the reference in two random halves A (compared) and B (floor)
        perm = np.random.default_rng(seed).permutation(len(obs["ref"]))
        half = len(perm) // 2
        idx["ref"], idx["floor"] = np.sort(perm[:half]), np.sort(perm[half:2 * half])
        paths["floor"], obs["floor"] = paths["ref"], obs["ref"]
    else:
        idx["ref"], idx["floor"] = np.arange(len(obs["ref"])), np.arange(len(obs["floor"]))
    for values, name, unit, slack in ((lambda o: o.energy_GeV, "energy", "GeV", None),
                                      (lambda o: np.degrees(o.theta_rad), "incidence angle", "deg", ANGLE_SLACK_deg)):
        keep, note = common_range({k: values(obs[k])[idx[k]] for k in idx}, name, unit, slack,
                                  {k: str(p) for k, p in paths.items()})
        if note:
            notes.append(note)
            logger.warning(note)
            idx = {k: idx[k][keep[k]] for k in idx}
    sub = {k: obs[k].select(idx[k]) for k in ("ref", "cand", "floor")}

    bins: list[dict[str, Any]] = []
    selections = bin_selections(sub, edges, theta_edges_deg)
    for label, _, masks in selections:
        part = {k: (o if masks is None else o.select(masks[k])) for k, o in sub.items()}
        entry: dict[str, Any] = {"label": label, "n": {k: len(o) for k, o in part.items()}}
        entry["response"] = {k: response(o) for k, o in part.items()}
        if min(len(o) for o in part.values()) >= 2:
            entry["metrics"] = compare(part["ref"], part["cand"], seed=seed)
            entry["floor"] = compare(part["ref"], part["floor"], seed=seed)
        bins.append(entry)

    logger.info("metrics done after %.1f s", time.perf_counter() - t_start)
    results = _run_classifiers(paths, obs, idx, seed, binning) if classifier else {}
    classifier_out = {lvl: {"value": r["value"], "floor": r["floor"]} for lvl, r in results.items()}
    summary = summarise(bins, classifier_out, tol)
    verdict = overall_verdict(summary)
    community_out = (_community(paths, idx, infos["ref"]["attrs"], seed, community_max_showers, classifier, binning)
                     if community else None)
    events_out = _event_checks(paths["ref"], paths["cand"])
    if events_out is not None and events_out["verdict"] != verdict:  # the worse of the two
        verdict = "FAIL" if "FAIL" in (verdict, events_out["verdict"]) else "INSUFFICIENT"
    metrics = {
        "provenance": provenance(paths, command, model),
        "reference": str(paths["ref"]),
        "candidate": str(paths["cand"]),
        "floor": "reference split in two random halves (candidate vs A, floor B vs A)" if reference2 is None
        else f"{reference2} vs reference",
        "threshold_GeV": threshold_GeV,
        "spatial_unit": obs["ref"].spatial_unit,
        "energy_edges_GeV": edges,
        "theta_edges_deg": None if theta_edges_deg is None else [float(t) for t in theta_edges_deg],
        "tolerances": tol,
        "seed": seed,
        "summary": summary,
        "verdict": verdict,
        "passed": verdict == "PASS",
        "min_showers": MIN_SHOWERS,
        "bins": bins,
        "classifier": classifier_out,
        "notes": notes,
    }
    if community_out is not None:
        metrics["community"] = community_out
    if events_out is not None:
        metrics["events"] = events_out
    out = Path(out)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    images = _make_plots(sub, selections, edges, bins, out / "plots") if plots else []
    metrics["seconds"] = time.perf_counter() - t_start
    logger.info("figures done after %.1f s", metrics["seconds"])
    write_json_atomic(out / "metrics.json", metrics)
    from fastshower.validate.render import render_html

    atomic_write_text(out / "index.html", render_html(_clean(metrics), images))
    return _clean(metrics)


def provenance(paths: Mapping[str, Path], command: str = "", model: str = "") -> dict[str, Any]:
    """What made a report: package version, command line, model, date (UTC) and each input's SHA-256 and size."""
    import datetime

    from fastshower import __version__
    from fastshower.atomic import file_sha256 as digest

    names = {"ref": "reference", "cand": "candidate", "floor": "reference2"}
    return {"fastshower_version": __version__, "command": command, "model": model,
            "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "inputs": {names[k]: {"path": str(p), "sha256": digest(p), "bytes": p.stat().st_size}
                       for k, p in paths.items() if k in names and not (k == "floor" and p == paths["ref"])}}


def common_range(values: Mapping[str, np.ndarray], name: str, unit: str, slack: float | None,
                 paths: Mapping[str, str]) -> tuple[dict[str, np.ndarray], str]:
    """Where the samples' ranges of a condition (``values`` per sample) differ by more than the slack (the larger
    of ``RANGE_SLACK`` of the reference's range and ``slack``, or ``ENERGY_SLACK`` of the reference's largest value
    when ``slack`` is None), the masks of the showers inside their common range and a note saying so; otherwise
    all-true masks and "". Ranges that do not overlap, or a sample left without showers, are a ``DataFormatError``."""
    for k, v in values.items():
        if len(v) == 0:
            raise DataFormatError(f"{paths[k]}: no showers left to compare in the samples' common ranges")
    lows = {k: float(v.min()) for k, v in values.items()}
    highs = {k: float(v.max()) for k, v in values.items()}
    low, high = max(lows.values()), min(highs.values())
    span = {k: f"{lows[k]:.4g}-{highs[k]:.4g} {unit}" for k in values}
    if low > high:
        raise DataFormatError(f"{paths['ref']} vs {paths['cand']}: {name} ranges {span['ref']} and {span['cand']} "
                              "do not overlap")
    absolute = ENERGY_SLACK * abs(highs["ref"]) if slack is None else slack
    slack = max(absolute, RANGE_SLACK * (highs["ref"] - lows["ref"]))
    if all(lows[k] >= low - slack and highs[k] <= high + slack for k in values):
        return {k: np.ones(len(v), bool) for k, v in values.items()}, ""
    masks = {k: (v >= low - slack) & (v <= high + slack) for k, v in values.items()}
    kept = ", ".join(f"{k} {int(m.sum())} of {len(m)}" for k, m in masks.items())
    return masks, (f"{name} ranges differ (reference {span['ref']}, candidate {span['cand']}): compared on their "
                   f"common range {low:.4g}-{high:.4g} {unit} only ({kept} showers)")


def bin_selections(sub: dict[str, Observables], energy_edges: Sequence[float],
                   theta_edges_deg: Sequence[float] | None = None
                   ) -> list[tuple[str, str, dict[str, np.ndarray] | None]]:
    """(label, file tag, per-sample boolean masks) of every bin: all, the energy bins, then the angle bins."""
    out: list[tuple[str, str, dict[str, np.ndarray] | None]] = [("all", "all", None)]
    which = {k: bin_by_energy(o.energy_GeV, energy_edges) for k, o in sub.items()}
    for i, (a, b) in enumerate(zip(energy_edges, energy_edges[1:], strict=False)):
        out.append((f"{a:g}-{b:g} GeV", f"bin{i}", {k: w == i for k, w in which.items()}))
    if theta_edges_deg is not None:
        t_edges = [float(t) for t in theta_edges_deg]
        if len(t_edges) < 2 or any(b <= a for a, b in zip(t_edges, t_edges[1:], strict=False)):
            raise ConfigError(f"angle bins {t_edges}: need at least two increasing edges (degrees)")
        which_t = {k: bin_by_energy(np.degrees(o.theta_rad), t_edges) for k, o in sub.items()}
        for i, (a, b) in enumerate(zip(t_edges, t_edges[1:], strict=False)):
            out.append((f"theta {a:g}-{b:g} deg", f"theta{i}", {k: w == i for k, w in which_t.items()}))
    return out


def _make_plots(sub: dict[str, Observables], selections: list[tuple[str, str, dict[str, np.ndarray] | None]],
                edges: list[float], bins: list[dict[str, Any]], folder: Path) -> list[tuple[str, Path, str | None]]:
    """The report's figures as PNGs in ``folder``: (caption, path, bin label or None for all bins together)."""
    import matplotlib.pyplot as plt

    from fastshower.validate.plots import BIN_FIGURES, plot_response_vs_energy

    written: list[tuple[str, Path, str | None]] = []

    def save(fig: Any, stem: str, caption: str, label: str | None) -> None:
        path = folder / f"{stem}.png"
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=60, bbox_inches="tight"))
        plt.close(fig)
        written.append((caption, path, label))

    energy_bins = bins[1:len(edges)]  # after "all"; angle bins (if any) follow them
    filled = [b for b in energy_bins if min(b["n"].values()) >= 2]
    if filled:
        keep = [i for i, b in enumerate(energy_bins) if min(b["n"].values()) >= 2]
        fig = plot_response_vs_energy([edges[i] for i in keep] + [edges[keep[-1] + 1]],
                                      [b["response"]["ref"] for b in filled],
                                      [b["response"]["cand"] for b in filled],
                                      [b["response"]["floor"] for b in filled])
        save(fig, "sampling_fraction_vs_energy", "mean sampling fraction vs energy (candidate / reference below, "
             "the reference halves' ratio as the grey floor band)", None)
    for label, tag, masks in selections:
        part = {k: (o if masks is None else o.select(masks[k])) for k, o in sub.items()}
        if min(len(part["ref"]), len(part["cand"])) < 2:
            continue
        for stem, (fn, caption) in BIN_FIGURES.items():
            save(fn(part["ref"], part["cand"], part["floor"], label), f"{stem}_{tag}", f"{caption}, {label}", label)
    return written


def physics_notes(reference_attrs: Mapping[str, Any], candidate_attrs: Mapping[str, Any]) -> list[str]:
    """Warnings about what the comparison cannot separate: a model trained on showers of other Monte Carlo physics
    than the reference's (``trained_on_physics``, written by ``generate_like``, against the reference's
    ``physics``)."""
    from fastshower.mc.settings import physics_differences

    if "trained_on_physics" not in candidate_attrs or "physics" not in reference_attrs:
        return []
    differences = physics_differences(candidate_attrs["trained_on_physics"], reference_attrs["physics"])
    if not differences:
        return []
    return [f"the model was trained on Monte Carlo physics other than the reference's ({'; '.join(differences)}; "
            "model vs reference): part of every difference from the reference is the change of physics, not the model"]
