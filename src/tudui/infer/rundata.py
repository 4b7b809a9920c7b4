"""The data a trained model was made with, read back through its own preprocessing: the run's held-out split
for accuracy, a sample of its training split for int8 calibration. Shared by eval, export --int8 and bench."""
from __future__ import annotations

import os
from typing import Optional

import torch

from ..config import from_checkpoint_dict
from ..data.decisions import reapply
from ..errors import DataError


def run_source(predictor, data=None, data_dir: Optional[str] = None, download: bool = False,
               decisions: Optional[dict] = None) -> tuple:
    """-> (config of the run, DataSource) for a Predictor (a checkpoint's or an exported file's): the data its
    run recorded, with the images its run left out or relabelled treated the same way, or `data` in its place;
    its classes must be the model's. decisions: {'exclude', 'relabel', 'decisions'} files applied on top
    (`tudui eval --exclude leaks.csv`); the source's .decisions says what was applied (None: nothing)."""
    from ..data import load_source
    cfg = from_checkpoint_dict(predictor.meta.get("config", {}))
    cfg.device = str(predictor.device)
    spec = data if data is not None else cfg.data
    if not spec:  # e.g. a checkpoint made by `tudui import` from a bare .pth
        raise DataError("the checkpoint records no data it can reload (imported, or trained on a Python Dataset); "
                        "pass the data to evaluate on with --data")
    source = load_source(spec, data_dir=data_dir or cfg.data_dir, download=download, seed=cfg.seed,
                         allow_outside=cfg.allow_outside, val_split=cfg.val_split)
    if list(source.classes) != list(predictor.classes):
        raise DataError(f"the data's classes {source.classes[:10]} differ from the checkpoint's "
                        f"{predictor.classes[:10]}")
    source.channels = predictor.preprocess["channels"]
    path = predictor.meta.get("path")
    run_dir = os.path.dirname(os.path.abspath(path)) if path and str(path).endswith(".pt") else None
    source, record = reapply(source, spec, cfg if data is None else None, run_dir, **(decisions or {}))
    source.decisions = record
    return cfg, source


def split_loader(predictor, cfg, source, split: str = "val", limit: Optional[int] = None, seed: int = 0,
                 device="cpu"):
    """A loader of (normalized images, labels) of one split through the model's own preprocessing, without
    augmentation; limit: a seeded random sample of that many images (in the split's order)."""
    from ..data.pipeline import prepare
    whole = source.split(split)
    if limit is not None and limit < len(whole):
        g = torch.Generator().manual_seed(seed)
        keep = sorted(torch.randperm(len(whole), generator=g)[:max(1, int(limit))].tolist())
        source.splits[{"valid": "val", "validation": "val"}.get(split, split)] = whole.subset(keep)
    try:
        return prepare(source, cfg, device, pre=predictor.preprocess, train=False, eval_split=split).val
    finally:
        source.splits[{"valid": "val", "validation": "val"}.get(split, split)] = whole


@torch.no_grad()
def top1(model, loader) -> tuple:
    """(top-1 accuracy, number of images) of a callable model (normalized batch -> logits) over a loader."""
    right = n = 0
    for x, y in loader.iterate(0):
        right += int((model(x).float().argmax(1).cpu() == y.cpu()).sum())
        n += len(y)
    return (right / n if n else 0.0), n


@torch.no_grad()
def gather(loader, limit: Optional[int] = None) -> tuple:
    """(images, labels) of a loader as two tensors on the CPU (at most `limit` images)."""
    xs, ys, n = [], [], 0
    for x, y in loader.iterate(0):
        xs.append(x.cpu().contiguous())
        ys.append(y.cpu())
        n += len(y)
        if limit is not None and n >= limit:
            break
    x, y = torch.cat(xs), torch.cat(ys)
    return (x[:limit], y[:limit]) if limit is not None else (x, y)
