"""The report's contents as plain data, computed from one Collected pass: the most confident mistakes, the
most confident correct predictions, the most-confused class pairs, the dataset summary, the run's facts."""
from __future__ import annotations

import os
import shlex

import numpy as np
import torch

from ..console import command_line
from ..device import cpu_name
from ..version import versions as all_versions


def _rows(col, mask: torch.Tensor, top: int) -> list:
    probs = col.probs
    conf, pred = probs.max(1)
    idx = torch.nonzero(mask).flatten()
    order = idx[torch.argsort(conf[idx], descending=True, stable=True)][:top]
    return [{"index": int(i), "file": col.describe(int(i)), "short": _short(col.describe(int(i))),
             "true_index": int(col.labels[i]), "true": col.classes[int(col.labels[i])], "pred_index": int(pred[i]), "pred": col.classes[int(pred[i])],
             "prob": float(conf[i]), "true_prob": float(probs[i, col.labels[i]])} for i in order.tolist()]


def _short(path: str) -> str:
    """The last two parts of a file path (class folder and file), or the description itself."""
    parts = path.replace("\\", "/").split("/")
    return "/".join(parts[-2:]) if len(parts) > 2 else path


def mistakes(col, top: int = 16) -> list:
    """The `top` misclassified samples the model was most sure of, most confident first."""
    return _rows(col, col.preds != col.labels, top) if len(col) else []


def corrects(col, top: int = 16) -> list:
    """The `top` correctly classified samples, most confident first."""
    return _rows(col, col.preds == col.labels, top) if len(col) else []


def confused_pairs(cm, classes: list, k: int = 10) -> list:
    """The k (true, predicted) pairs with the most errors: [{'true', 'pred', 'count', 'share'}] where share
    is the fraction of that true class's samples."""
    cm = np.asarray(cm, dtype=np.int64)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off, axis=None, kind="stable")[:k]
    out = []
    for f in flat:
        t, p = divmod(int(f), cm.shape[1])
        if off[t, p] <= 0:
            break
        total = int(cm[t].sum())
        out.append({"true": classes[t], "pred": classes[p], "count": int(off[t, p]),
                    "share": off[t, p] / total if total else 0.0})
    return out


def dataset_summary(col, source_counts: dict, pre: dict) -> dict:
    """What `tudui stats` would say first, without a pass over the pixels: images per class for each split
    known, the input the model sees, the normalization it was trained with, unreadable files skipped."""
    return {"split": col.split, "num_images": len(col),
            "counts": source_counts,  # {split name: {class: n}}
            "input": f"{pre.get('channels')} x {pre.get('size', ['?', '?'])[0]} x {pre.get('size', ['?', '?'])[1]}",
            "mean": [round(float(v), 4) for v in pre.get("mean", [])],
            "std": [round(float(v), 4) for v in pre.get("std", [])],
            "skipped": list(col.skipped)}


def split_counts(source, classes: list) -> dict:
    out = {}
    for name, sp in source.splits.items():
        counts = np.bincount(np.asarray(sp.targets, dtype=np.int64), minlength=len(classes)) \
            if len(sp.targets) else np.zeros(len(classes), dtype=np.int64)
        out[name] = {c: int(n) for c, n in zip(classes, counts)}
    return out


def versions() -> dict:
    return all_versions(("torchvision", "numpy", "matplotlib", "captum", "jinja2", "onnxruntime", "timm"))


def device_name(device) -> str:
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"{device.type} ({cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def this_command() -> str:

    argv = command_line()
    return " ".join(shlex.quote(a) for a in argv)
