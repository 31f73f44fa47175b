"""The validation report as one self-contained HTML page (jinja2 template ``templates/report.html.j2``).

What a physicist sees first: the verdict, what made the report (provenance) and a grid of metric families against
bins, each cell coloured pass / fail / insufficient; then, per bin, the table of value, floor, threshold and verdict
and that bin's figures, one per row. Figures are embedded as PNG data: the page needs no network and no scripts.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

#: Metric families of the summary grid, in reading order, with their labels.
FAMILIES = {
    "response_rel_diff": "response (mean deposit / E), rel. diff.",
    "resolution_rel_diff": "resolution (sigma / mean), rel. diff.",
    "mean_rel_err": "mean profiles and moments, rel. error",
    "ks": "distributions: Kolmogorov-Smirnov",
    "w1_norm": "distributions: Wasserstein-1 / std",
    "chi2_ndf": "distributions: chi2 / ndf",
    "sep_power": "distributions: separation power",
    "fpd": "FPD (observables)",
    "kpd": "KPD (observables)",
    "auc": "classifier |AUC - 0.5|",
    "jsd": "classifier JSD",
}
_STATUS_TEXT = {"pass": "pass", "fail": "FAIL", "insufficient": "insufficient", "n/a": "n/a"}
_STATUS_CLASS = {"pass": "pass", "fail": "fail", "insufficient": "insufficient", "n/a": "na"}
_DETAIL_COLUMNS = ("chi2_ndf", "ks", "w1", "w1_norm", "sep_power")


def fmt(value: Any) -> str:
    """Numbers with 3 significant digits (never a bare 0.000 for 0.00046), '-' for missing ones."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _cell(row: Mapping[str, Any]) -> dict[str, str]:
    status = row.get("status", "n/a")
    title = (f"{row.get('observable') or ''}: value {fmt(row.get('value'))}, floor {fmt(row.get('floor'))}, "
             f"threshold {fmt(row.get('threshold'))}")
    return {"status_class": _STATUS_CLASS[status], "text": _STATUS_TEXT[status], "title": title}


def summary_grid(summary: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The grid: metric families (rows) against bins (columns); a family with no row in a bin shows '-'."""
    columns: list[str] = []
    for r in summary:
        if r["bin"] not in columns:
            columns.append(r["bin"])
    by_key = {(r["metric"], r["bin"]): r for r in summary}
    rows = []
    for metric, label in FAMILIES.items():
        if not any(m == metric for m, _ in by_key):
            continue
        cells = [(_cell(by_key[(metric, c)]) if (metric, c) in by_key else
                  {"status_class": "na", "text": "-", "title": "not computed for this bin"}) for c in columns]
        rows.append({"label": label, "cells": cells})
    return {"columns": columns, "rows": rows}


def _bin_rows(summary: Sequence[Mapping[str, Any]], label: str) -> list[dict[str, str]]:
    return [{"metric": FAMILIES.get(r["metric"], r["metric"]), "observable": r.get("observable") or "-",
             "value": fmt(r.get("value")), "floor": fmt(r.get("floor")), "threshold": fmt(r.get("threshold")),
             "status": _STATUS_TEXT[r["status"]], "status_class": _STATUS_CLASS[r["status"]]}
            for r in summary if r["bin"] == label]


def _details(b: Mapping[str, Any]) -> list[dict[str, Any]]:
    if "metrics" not in b:
        return []
    out = []
    for name, d in b["metrics"]["observables"].items():
        f = b["floor"]["observables"][name]
        out.append({"name": name, "cells": [f"{fmt(d.get(k))} ({fmt(f.get(k))})" for k in _DETAIL_COLUMNS]})
    for name, v in {**b["metrics"]["mean_rel_err"], **b["metrics"]["response"]}.items():
        f = {**b["floor"]["mean_rel_err"], **b["floor"]["response"]}[name]
        out.append({"name": f"{name} (3DGAN measure)", "cells": [f"{fmt(v)} ({fmt(f)})"] + [""] * 4})
    return out


def _community(c: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not c:
        return None
    v, f = c["value"], c["floor"]
    rows = [("FPD (jetnet)", f"{fmt(v['fpd'])} +- {fmt(v['fpd_err'])}", f"{fmt(f['fpd'])} +- {fmt(f['fpd_err'])}"),
            ("KPD (jetnet)", f"{fmt(v['kpd'])} +- {fmt(v['kpd_err'])}", f"{fmt(f['kpd'])} +- {fmt(f['kpd_err'])}"),
            ("mean separation power of the high-level histograms", fmt(v["separation_power"]["mean"]),
             fmt(f["separation_power"]["mean"]))]
    for level in ("low", "high"):
        if "classifier" in v:
            cv, cf = v["classifier"][level], f["classifier"][level]
            rows.append((f"classifier AUC, {level}-level inputs", fmt(cv["auc"]), fmt(cf["auc"])))
            rows.append((f"classifier JSD, {level}-level inputs", fmt(cv["jsd"]), fmt(cf["jsd"])))
    return {"convention": c["convention"], "transverse_unit": c["transverse_unit"],
            "dataset": c.get("calochallenge_dataset"), "max_showers": c["max_showers"],
            "n_generated": v["n"]["generated"], "n_reference": v["n"]["reference"], "rows": rows}


def _events(e: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not e:
        return None
    classes = {"pass": "pass", "fail": "fail", "insufficient": "insufficient"}
    rows = [{"name": name, "observable": r["observable"], "unit": r["unit"], "n": r["n"], "value": fmt(r["value"]),
             "floor": fmt(r["floor"]), "threshold": fmt(r["threshold"]), "ref": fmt(r["ref"]), "cand": fmt(r["cand"]),
             "status": r["status"], "status_class": classes.get(r["status"], "na")} for name, r in e["checks"].items()]
    return {"n_events": e["n_events"], "n_particles": e["n_particles"], "n_pairs": e["n_pairs"],
            "n_fast": e["n_fast"], "verdict": e["verdict"], "factor": fmt(e["factor"]), "rows": rows}


def _classifier(classifier: Mapping[str, Any]) -> list[dict[str, str]]:
    out = []
    for level, r in classifier.items():
        v, f = r["value"], r["floor"]

        def dev(x: Any) -> Any:
            return None if x is None else abs(x - 0.5)

        out.append({"level": f"{level}-level", "auc": fmt(v.get("auc")), "auc_floor": fmt(f.get("auc")),
                    "dev": fmt(dev(v.get("auc"))), "dev_floor": fmt(dev(f.get("auc"))), "jsd": fmt(v.get("jsd")),
                    "jsd_floor": fmt(f.get("jsd")), "n_test": fmt(v.get("n_test"))})
    return out


_VERDICT_TEXT = {
    "PASS": "Every check passes: the candidate is within its thresholds of the reference in every bin.",
    "FAIL": "At least one check fails (red cells below).",
    "INSUFFICIENT": "No check fails, but some bins hold too few showers for a verdict (grey cells): this is not a "
                    "pass.",
}


def render_html(metrics: Mapping[str, Any], images: Sequence[tuple[str, Path, str | None]]) -> str:
    """The page for ``metrics`` (``run_validation``'s dict, JSON-clean) and its figures ``(caption, png, bin)``
    (bin label, or None for figures over all bins)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("fastshower.validate", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    summary = metrics["summary"]
    figures: dict[str | None, list[dict[str, str]]] = {}
    for caption, path, label in images:
        figures.setdefault(label, []).append({"caption": caption, "src": _data_uri(path)})
    bins = []
    for b in metrics["bins"]:
        bins.append({"label": b["label"], "n": {k: b["n"].get(k, 0) for k in ("ref", "cand", "floor")},
                     "insufficient": min(b["n"].values()) < metrics["min_showers"],
                     "rows": _bin_rows(summary, b["label"]), "details": _details(b),
                     "detail_columns": _DETAIL_COLUMNS, "figures": figures.get(b["label"], [])})
    verdict = metrics["verdict"]
    return env.get_template("report.html.j2").render(
        verdict=verdict, verdict_class={"PASS": "pass", "FAIL": "fail"}.get(verdict, "insufficient"),
        verdict_text=_VERDICT_TEXT[verdict], provenance=metrics.get("provenance"), floor_text=metrics["floor"],
        threshold_MeV=fmt(metrics["threshold_GeV"] * 1e3), spatial_unit=metrics["spatial_unit"],
        notes=metrics.get("notes", []), factor=fmt(metrics["tolerances"]["factor"]),
        min_showers=metrics["min_showers"], grid=summary_grid(summary), bins=bins,
        other_figures=figures.get(None, []), classifier=_classifier(metrics.get("classifier") or {}),
        community=_community(metrics.get("community")), events=_events(metrics.get("events")))
