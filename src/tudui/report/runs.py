"""Run folders side by side: `tudui runs` (one row per run, newest first) and `tudui compare` (curves of
several runs overlaid, with the config keys where they differ). Reads only the small files a run leaves
(config.yaml, metrics.jsonl, run.json); checkpoints are not opened."""
from __future__ import annotations

import json
import os
import shlex
from typing import Optional

import yaml

from ..engine.runlog import read_status
from ..errors import TuduiError
from . import figures, html

STATUS_LABELS = {"finished": "finished", "stopped_early": "stopped early", "interrupted": "interrupted",
                 "failed": "failed", "running": "running", "unknown": "unknown"}


def read_history(run_dir: str) -> list:
    """metrics.jsonl as a list of rows (lines that do not parse, e.g. a half-written last one, are left out)."""
    rows = []
    try:
        with open(os.path.join(run_dir, "metrics.jsonl"), encoding="utf-8") as fh:
            for line in fh:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if isinstance(row, dict) and "epoch" in row:
                    rows.append(row)
    except OSError:
        return []
    return rows


def read_config(run_dir: str) -> dict:
    try:
        with open(os.path.join(run_dir, "config.yaml"), encoding="utf-8") as fh:
            cfg = yaml.safe_load(fh)
        return cfg if isinstance(cfg, dict) else {}
    except (OSError, yaml.YAMLError):
        return {}


def is_run_dir(path: str) -> bool:
    return os.path.isdir(path) and any(os.path.isfile(os.path.join(path, f))
                                       for f in ("config.yaml", "metrics.jsonl", "run.json"))


def run_info(run_dir: str, history: Optional[list] = None, config: Optional[dict] = None) -> dict:
    """One run's row: name, data, model, epochs done/planned, best val accuracy, wall time, status,
    the command line that made it and when it started."""
    cfg = read_config(run_dir) if config is None else config
    hist = read_history(run_dir) if history is None else history
    st = read_status(run_dir)
    planned = st.get("epochs_planned", cfg.get("epochs"))
    done = st.get("epochs_done", hist[-1]["epoch"] if hist else 0)
    if st.get("status") == "running":
        done = hist[-1]["epoch"] if hist else 0
    accs = [r["val_acc"] for r in hist if r.get("val_acc") is not None]
    wall = st.get("wall_seconds") if st.get("status") not in (None, "running") else None
    if wall is None and hist:
        wall = round(sum(float(r.get("seconds") or 0) for r in hist), 3)
    status = st.get("status")
    if status is None:  # a run from before run.json: tell what the files say
        status = "finished" if planned and done >= planned else "unknown"
    started = st.get("started")
    if started is None:
        try:
            started = os.path.getmtime(os.path.join(run_dir, "config.yaml"))
        except OSError:
            started = os.path.getmtime(run_dir)
    cmd = st.get("command")
    return {"name": os.path.basename(os.path.normpath(run_dir)), "path": os.path.abspath(run_dir),
            "data": cfg.get("data"), "model": cfg.get("model"), "epochs_done": done, "epochs_planned": planned,
            "best_val_acc": max(accs) if accs else None, "wall_seconds": wall, "status": status,
            "status_label": STATUS_LABELS.get(status, status), "started": started,
            "command": " ".join(shlex.quote(a) for a in cmd) if isinstance(cmd, list) else None,
            "error": st.get("error")}


def list_runs(runs_dir: str = "runs") -> list:
    """Every run folder directly under runs_dir, newest first."""
    root = os.path.expanduser(runs_dir)
    if not os.path.isdir(root):
        raise TuduiError(f"no runs folder at {runs_dir}; train first (tudui train) or name the folder: tudui runs DIR")
    rows = [run_info(os.path.join(root, d)) for d in sorted(os.listdir(root)) if is_run_dir(os.path.join(root, d))]
    return sorted(rows, key=lambda r: r["started"] or 0, reverse=True)


def format_table(rows: list) -> str:
    head = ["name", "data", "model", "epochs", "best val acc", "wall time", "status"]
    body = [[r["name"], str(r["data"]), str(r["model"]), f"{r['epochs_done']}/{r['epochs_planned']}",
             f"{r['best_val_acc']:.4f}" if r["best_val_acc"] is not None else "-",
             fmt_seconds(r["wall_seconds"]), r["status_label"]] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([line(head)] + [line(b) for b in body])


def fmt_seconds(s) -> str:
    if s is None:
        return "-"
    s = float(s)
    if s < 60:
        return f"{s:.1f}s"
    m, s = divmod(int(round(s)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def resolve_run(spec: str) -> str:
    path = os.path.expanduser(spec)
    if os.path.isfile(path):  # a checkpoint: its folder
        path = os.path.dirname(os.path.abspath(path))
    if not is_run_dir(path):
        raise TuduiError(f"{spec} is not a run folder (no config.yaml, metrics.jsonl or run.json in it)")
    return path


def config_diff(configs: dict) -> list:
    """[(key, [value per run])] for every config key whose values differ between the runs (the folder
    name `name` aside)."""
    keys = []
    for c in configs.values():
        keys += [k for k in c if k not in keys]
    out = []
    for k in keys:
        if k == "name":
            continue
        vals = [c.get(k) for c in configs.values()]
        if any(v != vals[0] for v in vals[1:]):
            out.append((k, vals))
    return out


def compare_path(dirs: list) -> str:
    """Where a comparison goes by default: compare.html in the folder holding the runs, or compare-2.html,
    compare-3.html... when that exists (an earlier comparison is never overwritten)."""
    parent = os.path.commonpath([os.path.abspath(d) for d in dirs])
    if parent in [os.path.abspath(d) for d in dirs]:  # one run inside another: next to the outer one
        parent = os.path.dirname(parent)
    path, k = os.path.join(parent, "compare.html"), 1
    while os.path.exists(path):
        k += 1
        path = os.path.join(parent, f"compare-{k}.html")
    return path


def compare_summary(runs: list) -> str:
    """One line on several runs: how many, the best validation accuracy and which run has it, the keys that differ."""
    dirs = [resolve_run(r) for r in runs]
    names = _unique_names(dirs)
    infos = {n: run_info(d) for n, d in zip(names, dirs)}
    scored = [(i["best_val_acc"], n) for n, i in infos.items() if i["best_val_acc"] is not None]
    diff = [k for k, _ in config_diff({n: read_config(d) for n, d in zip(names, dirs)})]
    best = f"best val acc {max(scored)[0]:.4f} ({max(scored)[1]})" if scored else "no val accuracy yet"
    keys = (f"{len(diff)} config keys differ ({', '.join(diff[:6])}{', ...' if len(diff) > 6 else ''})"
            if diff else "same config")
    return f"{len(dirs)} runs; {best}; {keys}"


def compare(runs: list, out: Optional[str] = None) -> str:
    """Overlay the curves of several runs on shared axes and list the config keys where they differ.
    `out` ending in .png writes the figure only; .html writes a self-contained page with the figure and the
    table; None writes compare.html next to the runs (compare-2.html... if there is one). Returns the written path."""
    if len(runs) < 2:
        raise TuduiError("compare needs at least two runs: tudui compare RUN RUN [...]")
    if out is not None and not out.lower().endswith((".png", ".html")):
        raise TuduiError(f"--out {out}: give a .png or .html file")
    dirs = [resolve_run(r) for r in runs]
    out = compare_path(dirs) if out is None else out
    names = _unique_names(dirs)
    hist = {n: read_history(d) for n, d in zip(names, dirs)}
    if not any(hist.values()):
        raise TuduiError("none of these runs has metrics.jsonl rows yet; nothing to compare")
    fig = figures.compare_curves(hist)
    out = os.path.expanduser(out)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    if out.lower().endswith(".png"):
        return figures.save_png(fig, out)
    configs = {n: read_config(d) for n, d in zip(names, dirs)}
    diff = config_diff(configs)
    infos = [run_info(d) for d in dirs]
    page = html.render("compare.html.j2", names=names, infos=infos, figure=html.data_uri(figures.png_bytes(fig)),
                       diff=[(k, [_show(v) for v in vals]) for k, vals in diff], fmt_seconds=fmt_seconds)
    return html.write(out, page)


def _show(v) -> str:
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False)
    return "" if v is None else str(v)


def _unique_names(dirs: list) -> list:
    names = [os.path.basename(os.path.normpath(d)) for d in dirs]
    if len(set(names)) == len(names):
        return names
    return [os.path.relpath(d) for d in dirs]
