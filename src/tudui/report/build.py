"""tudui.report(): one self-contained HTML page about a trained model, with its figures as PNG files beside it.

The model runs once over the split (collect.py); every section reads those outputs."""
from __future__ import annotations

import json
import os
import time
from typing import Optional

import torch
import yaml

from ..errors import CheckpointError, ConfigError, DataError
from . import figures, grids, html
from .cam import gradcam, why_no_cam
from .collect import collect
from .fonts import label
from .runs import STATUS_LABELS, fmt_seconds, read_history, run_info


def _locate(path: str, out: Optional[str]) -> tuple:
    """-> (checkpoint path, run folder or None, html path, figures folder)."""
    p = os.path.expanduser(os.fspath(path))
    if not os.path.exists(p):
        raise CheckpointError(f"{path} does not exist; give a run folder (with best.pt) or a checkpoint file")
    if os.path.isdir(p):
        ck = next((os.path.join(p, n) for n in ("best.pt", "last.pt") if os.path.isfile(os.path.join(p, n))), None)
        if ck is None:
            raise CheckpointError(f"{path} is a folder without best.pt or last.pt; give a run folder or a checkpoint")
        run_dir = p
    else:
        ck = p
        here = os.path.dirname(os.path.abspath(p))
        run_dir = here if any(os.path.isfile(os.path.join(here, f)) for f in ("metrics.jsonl", "config.yaml",
                                                                              "run.json")) else None
    if out is None:
        out = os.path.join(run_dir or os.path.dirname(os.path.abspath(ck)), "report.html")
    out = os.path.expanduser(out)
    if not out.lower().endswith((".html", ".htm")):
        raise ConfigError(f"--out {out}: the report is an HTML file; give a name ending in .html")
    figdir = os.path.splitext(out)[0]
    return ck, run_dir, out, figdir


def _history(run_dir: Optional[str], ck: dict) -> tuple:
    """-> (rows, where they came from or why there are none)."""
    if run_dir:
        rows = read_history(run_dir)
        if rows:
            return rows, ""
    rows = list((ck.get("train_state") or {}).get("history") or [])
    if rows:
        return rows, ("no metrics.jsonl beside the checkpoint: these curves are the history stored in the "
                      "checkpoint itself")
    where = "the run folder has no metrics" if run_dir else "the checkpoint has no run folder"
    return [], f"No curves: {where} (metrics.jsonl), and the checkpoint records no training history."


def _status(run_dir: Optional[str], history: list, ck: dict) -> Optional[dict]:
    if run_dir is None:
        return None
    info = run_info(run_dir, history=history, config=ck.get("config"))
    st = info["status"]
    if st == "unknown" and (ck.get("train_state") or {}).get("stopped_early"):
        st = "stopped_early"
    notes = {"interrupted": f"This run was interrupted after {info['epochs_done']} of {info['epochs_planned']} "
                            "epochs; the figures describe the checkpoint it left.",
             "stopped_early": f"This run stopped early (no improvement for --patience epochs) after "
                              f"{info['epochs_done']} of {info['epochs_planned']} epochs.",
             "failed": f"This run failed: {info.get('error') or 'see its log'}.",
             "running": "This run is still going; the figures describe its checkpoint so far."}
    return {"css": st if st in STATUS_LABELS else "unknown", "label": STATUS_LABELS.get(st, st),
            "note": notes.get(st, ""), "info": info}


def _decisions_fact(run_dir: Optional[str]) -> str:
    """What --exclude / --relabel / --decisions changed in the run's data (its decisions.json)."""
    path = os.path.join(run_dir, "decisions.json") if run_dir else None
    if not path or not os.path.isfile(path):
        return "none (trained on the data as it is)"
    try:
        with open(path, encoding="utf-8") as fh:
            d = json.load(fh)
        return (f"dropped {len(d['dropped'])} images and relabelled {len(d['relabelled'])} ({d.get('origin', '?')}); "
                "listed in decisions.json")
    except (OSError, ValueError, KeyError, TypeError):
        return "decisions.json is unreadable"


def report(path, data=None, *, split: Optional[str] = None, out: Optional[str] = None, top: int = 16,
           device: str = "cpu", tta: Optional[bool] = None, data_dir: Optional[str] = None, download: bool = False,
           model=None, cam: bool = True, verify: bool = True, unsafe_load: bool = False) -> str:
    """Write an HTML report of a run folder or checkpoint and return its path.

    The page (default RUN_DIR/report.html) holds the training curves, the confusion matrix (counts and
    row-normalized), the sortable per-class table, the `top` most confident mistakes with Grad-CAM maps of the
    predicted class, the most confident correct predictions, the most-confused pairs, calibration (reliability
    diagram, ECE), the dataset summary and the run's config, command line, versions, device and wall time.
    The figures are also written as PNG files into the folder named like the page without `.html`.
    data/split/device/tta/data_dir/download: as for tudui.evaluate (default: the checkpoint's held-out split).
    verify/unsafe_load: how the checkpoint is read (see tudui.checkpoint.load).
    """
    from .sections import (confused_pairs, corrects, dataset_summary, device_name, mistakes, split_counts,
                           this_command, versions)

    if int(top) < 1:
        raise ConfigError(f"--top must be at least 1, got {top}")
    t_start = time.perf_counter()
    ck_path, run_dir, out, figdir = _locate(path, out)
    clf, cfg, col = collect(ck_path, data=data, split=split, device=device, tta=tta, model=model,
                            data_dir=data_dir, download=download, verify=verify, unsafe_load=unsafe_load)
    if len(col) == 0:
        raise DataError(f"the {col.split} split has no images to report on")
    folders = list(col.classes)
    col.classes = clf.labels  # the display names (--class-names) in every section
    ck = clf.meta
    os.makedirs(figdir, exist_ok=True)
    pngs = {}

    def fig_uri(name: str, fig) -> str:
        png = figures.png_bytes(fig)
        with open(os.path.join(figdir, name), "wb") as fh:
            fh.write(png)
        pngs[name] = os.path.join(figdir, name)
        return html.data_uri(png)

    classes = col.classes
    history, curves_note = _history(run_dir, ck)
    status = _status(run_dir, history, ck)
    curves_fig = figures.curves(history)
    curves = fig_uri("curves.png", curves_fig) if curves_fig is not None else None
    cm = col.confusion().numpy()
    fig_c, cm_caption = figures.confusion(cm, classes, normalize=False)
    fig_n, _ = figures.confusion(cm, classes, normalize=True)
    probs, labels = col.probs.numpy(), col.labels.numpy()
    fig_r, ece, bins = figures.calibration(probs, labels)

    wrong, right = mistakes(col, top), corrects(col, top)
    cam_note = why_no_cam(clf.model) if cam else "Grad-CAM maps were not requested (--no-cam)."
    cams = None
    if wrong and cam_note is None:
        idx = [m["index"] for m in wrong]
        cams = gradcam(clf.model, col.inputs(idx), [m["pred_index"] for m in wrong]).numpy()
    cards = []
    if wrong:
        imgs = col.images([m["index"] for m in wrong])
        for k, m in enumerate(wrong):
            cards.append(dict(m, img=html.image_uri(imgs[k]),
                              cam=html.image_uri(grids.overlay(imgs[k], cams[k])) if cams is not None else None))
        caps = [f"{label(m['true'], m['true_index'])} → {label(m['pred'], m['pred_index'])} ({m['prob']:.2f})"
                for m in wrong]
        fig_uri("mistakes.png", grids.prediction_grid(imgs, caps, list(cams) if cams is not None else None,
                                                      title="most confident mistakes: true → predicted"))
    good_cards = []
    if right:
        imgs = col.images([m["index"] for m in right])
        good_cards = [dict(m, img=html.image_uri(imgs[k])) for k, m in enumerate(right)]
        caps = [f"{label(m['true'], m['true_index'])} ({m['prob']:.2f})" for m in right]
        fig_uri("correct.png", grids.prediction_grid(imgs, caps, cols=8, title="most confident correct predictions"))
    metrics = col.metrics()
    per_class_rows = [dict(name=c, **metrics["per_class"][c]) for c in classes]
    counts = split_counts(col.source, folders) if col.source is not None else {}
    counts = {s: {n: c.get(f, 0) for f, n in zip(folders, classes)} for s, c in counts.items()}
    if not counts:
        counts = {col.split: {c: int((col.labels == i).sum()) for i, c in enumerate(classes)}}
    count_splits = list(counts)
    count_rows = [{"name": c, "counts": [counts[s].get(c, 0) for s in count_splits]} for c in classes]
    pre = clf.preprocess
    dataset = dataset_summary(col, counts, pre)
    pairs = confused_pairs(cm, classes)

    info = status["info"] if status else {}
    cfg_dict = ck.get("config") or {}
    wall = info.get("wall_seconds")
    kpis = [("accuracy", f"{100 * metrics['accuracy']:.2f}%")]
    if "top5" in metrics:
        kpis.append(("top-5 accuracy", f"{100 * metrics['top5']:.2f}%"))
    if metrics["loss"] is not None:
        kpis.append(("loss", f"{metrics['loss']:.4f}"))
    kpis += [("images", str(len(col))), ("classes", str(len(classes))), ("ECE", f"{ece:.4f}"),
             ("mistakes", str(int((col.preds != col.labels).sum())))]
    if info:
        kpis.append(("epochs", f"{info['epochs_done']}/{info['epochs_planned']}"))
    run_facts = [("checkpoint", os.path.abspath(ck_path)), ("run folder", run_dir or "none (a lone checkpoint)"),
                 ("model", f"{ck['model'].get('name')} ({sum(p.numel() for p in clf.model.parameters()):,} "
                           "parameters)" if isinstance(clf.model, torch.nn.Module) else ck["model"].get("name")),
                 ("checkpoint epoch / step", f"{ck.get('epoch')} / {ck.get('step')}"),
                 ("training device", ck.get("train_device") or f"{cfg_dict.get('device', '?')} (as configured; "
                                                                    "the device used was not recorded)"),
                 ("training wall time", fmt_seconds(wall) if wall is not None else "not recorded"),
                 ("started", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["started"]))
                  if info.get("started") else "not recorded"),
                 ("report device", device_name(clf.device)),
                 ("report made by", this_command()),
                 ("model pass over the split", f"{col.seconds:.2f}s (once; every section reuses it)"),
                 ("data decisions", _decisions_fact(run_dir))]
    command = info.get("command") or ("not recorded (the run predates tudui recording its command line)"
                                      if run_dir else "not recorded (a checkpoint without its run folder)")
    title = f"{run_dir and os.path.basename(os.path.normpath(run_dir)) or os.path.basename(ck_path)}"
    subtitle = (f"{ck['model'].get('name')} on {cfg_dict.get('data') or data or '?'}, {col.split} split: "
                f"{len(col)} images, {len(classes)} classes")
    page_ctx = dict(title=title, subtitle=subtitle, status=status, kpis=kpis, curves=curves,
                    curves_note=curves_note, confusion_caption=cm_caption,
                    confusion_counts=fig_uri("confusion_counts.png", fig_c),
                    confusion_norm=fig_uri("confusion_normalized.png", fig_n), per_class=per_class_rows,
                    cam_note=cam_note, mistakes=cards, corrects=good_cards, pairs=pairs, ece=ece, ece_bins=len(bins),
                    reliability=fig_uri("reliability.png", fig_r), dataset=dataset,
                    data_spec=str(data or cfg_dict.get("data") or "?"), count_splits=count_splits,
                    count_rows=count_rows, run_facts=run_facts, command=command,
                    config_yaml=yaml.safe_dump(cfg_dict, sort_keys=False, allow_unicode=True) if cfg_dict else
                    "(no config in the checkpoint)", versions=versions())
    html.write(out, html.render("report.html.j2", **page_ctx))
    summary = {"html": out, "checkpoint": os.path.abspath(ck_path), "run_dir": run_dir,
               "status": status["css"] if status else None, "metrics": {k: metrics[k] for k in
                                                                        ("accuracy", "loss", "num_samples", "split")},
               "ece": ece, "calibration_bins": bins, "mistakes": wrong, "correct": right, "confused_pairs": pairs,
               "figures": pngs, "skipped": col.skipped, "model_seconds": round(col.seconds, 3),
               "seconds": round(time.perf_counter() - t_start, 3)}
    with open(os.path.join(figdir, "report.json"), "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=1, ensure_ascii=False)
    return out
