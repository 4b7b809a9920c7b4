"""Every chart tudui draws, with matplotlib's Agg renderer (no display, no global pyplot state): training
curves, run comparisons, confusion heatmaps, the reliability diagram and the learning-rate finder's plot.
Each function returns a Figure; `save_png` writes it (and closes nothing global: Figures made here are plain
objects, freed with their last reference)."""
from __future__ import annotations

import io
import math
import warnings
from typing import Optional

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .fonts import context, label, labels as class_labels, using_fonts

BLUE, ORANGE, GREEN, RED, GRAY = "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#7f7f7f"
MAX_CM_CLASSES = 102  # larger confusion matrices show only the most-confused classes
SHOWN_WHEN_LARGE = 30


def text(s) -> str:
    """A label safe for matplotlib: '$' would start mathtext (and an unbalanced one fails to draw); a
    character no installed font can draw becomes '?' (see fonts.label), never an empty box."""
    return label(s).replace("\\", "\\\\").replace("$", r"\$")


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings(), context():  # ticks made while drawing get the CJK fallback too
        warnings.simplefilter("ignore")
        fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def save_png(fig: Figure, path: str, dpi: int = 100) -> str:
    with open(path, "wb") as fh:
        fh.write(png_bytes(fig, dpi))
    return path


def _history_series(history: list, key: str) -> tuple:
    pts = [(r["epoch"], r[key]) for r in history if r.get(key) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


@using_fonts
def curves(history: list, title: str = "") -> Optional[Figure]:
    """Train/val loss, val accuracy and learning rate per epoch (raw weights next to the EMA's when logged).
    None when there is nothing to draw."""
    if not history:
        return None
    fig = Figure(figsize=(12, 3.6), layout="constrained")
    ax_loss, ax_acc, ax_lr = fig.subplots(1, 3)
    for key, label, color, style in (("train_loss", "train", BLUE, "-"), ("val_loss", "val", ORANGE, "-"),
                                     ("raw_val_loss", "val (raw weights)", ORANGE, "--")):
        xs, ys = _history_series(history, key)
        if xs:
            ax_loss.plot(xs, ys, style, color=color, marker="o", ms=3, label=label)
    ax_loss.set(title="loss", xlabel="epoch")
    for key, label, style in (("val_acc", "val (EMA)" if _has(history, "raw_val_acc") else "val", "-"),
                              ("raw_val_acc", "val (raw weights)", "--")):
        xs, ys = _history_series(history, key)
        if xs:
            ax_acc.plot(xs, ys, style, color=GREEN, marker="o", ms=3, label=label)
    ax_acc.set(title="validation accuracy", xlabel="epoch")
    xs, ys = _history_series(history, "lr")
    ax_lr.plot(xs, ys, color=GRAY, marker="o", ms=3)
    ax_lr.set(title="learning rate (epoch start)", xlabel="epoch")
    for ax in (ax_loss, ax_acc):
        if ax.lines:
            ax.legend(fontsize=8)
    for ax in (ax_loss, ax_acc, ax_lr):
        ax.grid(alpha=0.3)
        _epoch_ticks(ax, [r["epoch"] for r in history])
    if title:
        fig.suptitle(text(title))
    return fig


def _epoch_ticks(ax, epochs: list) -> None:
    """Whole epochs on the x axis; a run of one or two epochs gets just those ticks."""
    ep = sorted(set(epochs))
    if 0 < len(ep) <= 2:
        ax.set_xticks(ep)
        ax.set_xlim(ep[0] - 0.5, ep[-1] + 0.5)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _has(history, key) -> bool:
    return any(r.get(key) is not None for r in history)


@using_fonts
def compare_curves(runs: dict) -> Figure:
    """{run name: history} -> loss, val accuracy and lr of every run overlaid on shared axes."""
    fig = Figure(figsize=(13, 3.8), layout="constrained")
    axes = fig.subplots(1, 3)
    colors = [f"C{i % 10}" for i in range(len(runs))]
    for (name, hist), color in zip(runs.items(), colors):
        for ax, key, style in ((axes[0], "train_loss", "--"), (axes[0], "val_loss", "-"), (axes[1], "val_acc", "-"),
                               (axes[2], "lr", "-")):
            xs, ys = _history_series(hist, key)
            if xs:
                lab = text(name) if key != "train_loss" else None
                ax.plot(xs, ys, style, color=color, marker="o", ms=2.5, label=lab)
    axes[0].set(title="loss (dashed: train, solid: val)", xlabel="epoch")
    axes[1].set(title="validation accuracy", xlabel="epoch")
    axes[2].set(title="learning rate", xlabel="epoch")
    for ax in axes:
        ax.grid(alpha=0.3)
        _epoch_ticks(ax, [r["epoch"] for h in runs.values() for r in h])
    if runs:
        axes[1].legend(fontsize=8)
    return fig


def most_confused_classes(cm: np.ndarray, k: int = SHOWN_WHEN_LARGE) -> list:
    """Indices of the k classes with the most off-diagonal counts (errors made or received), sorted."""
    off = cm - np.diag(np.diag(cm))
    score = off.sum(0) + off.sum(1)
    return sorted(np.argsort(-score, kind="stable")[:k].tolist())


@using_fonts
def confusion(cm, classes: list, normalize: bool = False) -> tuple:
    """Heatmap of the confusion matrix (rows: true, columns: predicted), counts or each row divided by its
    total. -> (Figure, caption). Above MAX_CM_CLASSES classes only the most-confused ones are drawn."""
    cm = np.asarray(cm, dtype=np.int64)
    n = len(classes)
    idx = list(range(n))
    caption = ""
    if n > MAX_CM_CLASSES:
        idx = most_confused_classes(cm)
        caption = (f"{n} classes: only the {len(idx)} most-confused are shown "
                   "(most errors made or received); rows still count against every class.")
    sub = cm[np.ix_(idx, idx)].astype(np.float64)
    totals = cm[idx].sum(1, keepdims=True).astype(np.float64)
    if normalize:
        sub = np.divide(sub, totals, out=np.zeros_like(sub), where=totals > 0)
    k = len(idx)
    side = min(22.0, max(4.5, 0.22 * k + 2.5))
    fig = Figure(figsize=(side + 1.2, side), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(sub, cmap="Blues", vmin=0, vmax=1 if normalize else max(1.0, float(sub.max())),
                   interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.8)
    shown = class_labels(classes)  # a name no font can draw: its index
    labels = [text(shown[i]) for i in idx]
    fs = 9 if k <= 20 else max(3.5, 9 - 0.06 * k)
    ax.set_xticks(range(k), labels, rotation=90, fontsize=fs)
    ax.set_yticks(range(k), labels, fontsize=fs)
    ax.set(xlabel="predicted", ylabel="true",
           title="confusion matrix, row-normalized" if normalize else "confusion matrix, counts")
    if k <= 20:  # numbers in the cells while they stay legible
        top = sub.max() if sub.size else 0
        for r in range(k):
            for c in range(k):
                v = sub[r, c]
                s = f"{v:.2f}" if normalize else f"{int(v)}"
                ax.text(c, r, s, ha="center", va="center", fontsize=7,
                        color="white" if top and v > 0.6 * top else "black")
    return fig, caption


@using_fonts
def calibration(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> tuple:
    """Reliability diagram of the top-1 confidence. -> (Figure, ECE, per-bin table). The expected calibration
    error is the support-weighted mean |accuracy - confidence| over equal-width confidence bins."""
    conf = probs.max(1) if len(probs) else np.zeros(0)
    correct = (probs.argmax(1) == labels).astype(np.float64) if len(probs) else np.zeros(0)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        m = which == b
        cnt = int(m.sum())
        acc = float(correct[m].mean()) if cnt else None
        cf = float(conf[m].mean()) if cnt else None
        if cnt:
            ece += cnt / len(conf) * abs(acc - cf)
        rows.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": cnt, "accuracy": acc,
                     "confidence": cf})
    fig = Figure(figsize=(5.2, 4.6), layout="constrained")
    ax = fig.subplots()
    centers = (edges[:-1] + edges[1:]) / 2
    accs = [r["accuracy"] if r["accuracy"] is not None else 0.0 for r in rows]
    ax.bar(centers, accs, width=1 / bins, edgecolor="black", color=BLUE, alpha=0.8, label="accuracy")
    gaps = [(r["confidence"] - r["accuracy"]) if r["count"] else 0.0 for r in rows]
    ax.bar(centers, gaps, bottom=accs, width=1 / bins, color=RED, alpha=0.35, hatch="//", label="gap to confidence")
    ax.plot([0, 1], [0, 1], "--", color=GRAY, label="perfect calibration")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top-1 probability)", ylabel="accuracy",
           title=f"reliability diagram (ECE {ece:.3f})")
    ax.legend(fontsize=8, loc="upper left")
    return fig, float(ece), rows


@using_fonts
def lr_find(lrs: list, losses: list, suggested: Optional[float] = None) -> Figure:
    """The learning-rate range test: smoothed loss against the learning rate on a log axis; the y range
    shows the descent (the divergence at the end leaves through the top)."""
    fig = Figure(figsize=(7.2, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.plot(lrs, losses, color=BLUE, lw=2)
    ax.set_xscale("log")
    lo = int(np.argmin(losses))
    y0, y1 = losses[lo], max(losses[:lo + 1])
    y1 = y1 + 0.5 * (y1 - y0) if y1 > y0 else y0 + 1
    pad = 0.05 * (y1 - y0)
    ax.set_ylim(y0 - pad, y1)
    if suggested is not None and math.isfinite(suggested):
        ax.axvline(suggested, color=RED, lw=1)
        ax.annotate(f"suggested {suggested:.2e}", (suggested, y1), xytext=(4, -14), textcoords="offset points",
                    color=RED)
    ax.set(xlabel="learning rate (log scale)", ylabel="smoothed training loss", title="tudui lr-find")
    ax.grid(alpha=0.3, which="both")
    return fig
