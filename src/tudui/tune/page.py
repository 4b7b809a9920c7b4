"""What a study leaves besides its trials: best.yaml (the winning trial's config, so `tudui train --config
best.yaml` reproduces it) and study.html (optimization history, each parameter against accuracy, parameter
importances), drawn with the report's matplotlib style and rendered by the report's page machinery."""
from __future__ import annotations

import math
import os
import warnings

import yaml
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullFormatter

from ..fileio import write_text
from ..report import figures, html
from ..report.runs import fmt_seconds, read_config


def trial_rows(study, study_dir: str) -> list:
    """Every trial of the study as plain data: number, state, value, params, run folder, epochs, seconds."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        run = t.user_attrs.get("run_dir")
        rows.append({"number": t.number, "state": t.state.name.lower(), "value": t.value,
                     "params": dict(t.params), "run_dir": os.path.join(study_dir, run) if run else None,
                     "epochs": t.user_attrs.get("epochs"), "seconds": t.user_attrs.get("seconds"),
                     "last_epoch": max(t.intermediate_values) if t.intermediate_values else None,
                     "last_acc": t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None,
                     "retry_of": t.system_attrs.get("failed_trial")})
    return rows


def write_best_config(run_dir: str, path: str, header: str) -> str:
    """The best trial's resolved config, with a fresh run folder under runs/ instead of the trial's own."""
    cfg = read_config(run_dir)
    cfg.update(out="runs", name=None)
    text = "".join(f"# {line}\n" for line in header.splitlines())
    write_text(path, text + yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return path


def history_figure(rows: list) -> Figure:
    """Each trial's accuracy by trial number (pruned ones at their last reported accuracy) and the best so far."""
    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.subplots()
    done = [r for r in rows if r["state"] == "complete"]
    pruned = [r for r in rows if r["state"] == "pruned" and r["last_acc"] is not None]
    ax.plot([r["number"] for r in done], [r["value"] for r in done], "o", color=figures.BLUE, label="complete")
    if pruned:
        ax.plot([r["number"] for r in pruned], [r["last_acc"] for r in pruned], "x", color=figures.GRAY,
                label="pruned (last epoch reported)")
    best, xs, ys = -math.inf, [], []
    for r in sorted(done, key=lambda r: r["number"]):
        best = max(best, r["value"])
        xs.append(r["number"])
        ys.append(best)
    if xs:
        ax.step(xs, ys, where="post", color=figures.GREEN, label="best so far")
    ax.set(title="optimization history", xlabel="trial", ylabel="validation accuracy (best.pt)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def params_figure(rows: list, space: dict) -> Figure:
    """One panel per parameter: its value against the trial's accuracy (log axes for log ranges)."""
    keys = list(space)
    cols = min(4, max(1, len(keys)))
    nrows = max(1, math.ceil(len(keys) / cols))
    fig = Figure(figsize=(3.4 * cols, 3.0 * nrows), layout="constrained")
    axes = fig.subplots(nrows, cols, squeeze=False).ravel()
    for ax, key in zip(axes, keys):
        p = space[key]
        for state, marker, color in (("complete", "o", figures.BLUE), ("pruned", "x", figures.GRAY)):
            pts = [(r["params"][key], r["value"] if state == "complete" else r["last_acc"]) for r in rows
                   if r["state"] == state and key in r["params"]
                   and (r["value"] if state == "complete" else r["last_acc"]) is not None]
            if p.kind == "choice":
                order = [str(c) for c in p.choices]
                pts = [(order.index(str(x)), y) for x, y in pts if str(x) in order]
            if pts:
                ax.plot([x for x, _ in pts], [y for _, y in pts], marker, color=color, ms=5, ls="none")
        if p.kind == "choice":
            ax.set_xticks(range(len(p.choices)), [figures.text(c) for c in p.choices])
        elif p.log:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels of a short decade overlap
        ax.set(title=figures.text(key), ylabel="val acc")
        ax.grid(alpha=0.3)
    for ax in axes[len(keys):]:
        ax.set_visible(False)
    return fig


def importances(study) -> dict:
    """Optuna's parameter importances ({} with fewer than two complete trials or nothing that varied)."""
    import optuna
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return dict(optuna.importance.get_param_importances(study))
    except (ValueError, RuntimeError, ZeroDivisionError):
        return {}


def importance_figure(imp: dict) -> Figure:
    fig = Figure(figsize=(6.5, 0.45 * len(imp) + 1.2), layout="constrained")
    ax = fig.subplots()
    keys = list(imp)[::-1]
    ax.barh([figures.text(k) for k in keys], [imp[k] for k in keys], color=figures.BLUE)
    ax.set(title="parameter importance (Optuna, PED-ANOVA)", xlabel="share of the accuracy's variation")
    ax.grid(alpha=0.3, axis="x")
    return fig


def show_value(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def write_page(study, space: dict, study_dir: str, path: str, best: dict | None) -> str:
    rows = trial_rows(study, study_dir)
    imp = importances(study)
    shown = {"history": html.data_uri(figures.png_bytes(history_figure(rows))),
             "params": html.data_uri(figures.png_bytes(params_figure(rows, space))),
             "importance": html.data_uri(figures.png_bytes(importance_figure(imp))) if imp else None}
    counts = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    page = html.render("study.html.j2", name=study.study_name, rows=rows, best=best, figures=shown,
                       space=[(k, p.describe()) for k, p in space.items()], counts=counts,
                       rel=lambda p: os.path.relpath(p, study_dir) if p else "", fmt_seconds=fmt_seconds,
                       fmt=show_value)
    write_text(path, page)
    return path
