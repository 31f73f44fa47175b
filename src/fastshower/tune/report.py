"""The study's report: optuna's matplotlib figures (history, importances, parallel coordinates, the trials' epoch
scores) as PNGs and a self-contained HTML page with the trials' table, in ``DIR/report/``."""

from __future__ import annotations

import base64
import html
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: figure file -> (title, optuna.visualization.matplotlib function, completed trials it needs)
FIGURES = {
    "history.png": ("Optimisation history (physics score of each trial, and the best so far)",
                    "plot_optimization_history", 1),
    "importances.png": ("Parameter importances (PED-ANOVA: how much each parameter moves the score)",
                        "plot_param_importances", 2),
    "parallel.png": ("Parallel coordinates: each completed trial's values and score", "plot_parallel_coordinate", 2),
    "epochs.png": ("Physics score per epoch of every trial (the pruned ones stop early)",
                   "plot_intermediate_values", 1),
}


def _figure(study: Any, function: str, path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as vis
    from optuna.importance import PedAnovaImportanceEvaluator

    from fastshower.atomic import atomic_write

    kwargs = {"evaluator": PedAnovaImportanceEvaluator()} if function == "plot_param_importances" else {}
    try:
        axes = getattr(vis, function)(study, **kwargs)
    except (ValueError, RuntimeError, ZeroDivisionError) as err:  # too few trials of the kind a figure needs
        logger.info("%s: not drawn (%s)", path.name, err)
        return False
    figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
    figure.set_size_inches(9, 5)
    figure.tight_layout()
    atomic_write(path, lambda f: figure.savefig(f, format="png", dpi=100))
    plt.close(figure)
    return True


def _trial_rows(study: Any) -> list[list[str]]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        value = "" if t.value is None else f"{t.value:.4g}"
        seconds = "" if t.duration is None else f"{t.duration.total_seconds():.1f}"
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())
        rows.append([str(t.number), t.state.name.lower(), value, str(len(t.intermediate_values)), seconds, params])
    return rows


def write_report(study: Any, out: Path) -> Path:
    """Draw the figures the study's trials allow and write ``out/report/index.html``; returns the page."""
    import warnings

    from optuna.exceptions import ExperimentalWarning

    from fastshower.atomic import atomic_write_text

    folder = out / "report"
    folder.mkdir(parents=True, exist_ok=True)
    complete = sum(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False))
    drawn = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)  # optuna marks its matplotlib backend experimental
        for name, (title, function, needs) in FIGURES.items():
            if complete >= needs and _figure(study, function, folder / name):
                drawn.append((title, folder / name))
    try:
        best = study.best_trial
        best_text = (f"best: trial {best.number}, physics score {best.value:.4g} "
                     f"({html.escape(str(best.params))}); its configuration is <code>best.yaml</code>")
    except ValueError:
        best_text = "no trial has completed yet"
    head = ["trial", "state", "score", "epochs", "seconds", "parameters"]
    table = "".join(f"<tr>{''.join(f'<td>{html.escape(c)}</td>' for c in row)}</tr>" for row in _trial_rows(study))
    images = "".join(
        f"<figure><img alt='{html.escape(title)}' src='data:image/png;base64,"
        f"{base64.b64encode(path.read_bytes()).decode()}'><figcaption>{html.escape(title)}</figcaption></figure>"
        for title, path in drawn)
    page = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>fastshower study "
            f"{html.escape(study.study_name)}</title><style>body{{font-family:system-ui,sans-serif;max-width:1000px;"
            "margin:1.5em auto;padding:0 1em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:3px 8px}"
            "figure img{max-width:100%}</style></head><body>"
            f"<h1>Study {html.escape(study.study_name)}</h1><p>{len(study.get_trials(deepcopy=False))} trials; "
            f"objective: the per-epoch physics score of the training's check (lower is better). {best_text}.</p>"
            f"<table><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>{table}</table>{images}</body></html>")
    return atomic_write_text(folder / "index.html", page)
