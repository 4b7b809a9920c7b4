"""Out-of-sample predicted probabilities (and one feature space) for every audited image.

Cross-validation: the audited images are split into k stratified folds; fold f's model trains on every other
image of the pool (the other folds and every split not being audited) and predicts fold f. Training goes
through the Trainer on the already decoded pool (the in-memory loader; nothing is decoded twice) with no run
folder. A split some existing model never trained on can be predicted by that model instead (`with_model`).

Features are the input of the model's last linear layer (its penultimate representation), from ONE model over
the whole pool so that distances compare; with `flip=True` they are averaged with the mirrored image's, so a
mirrored copy lands next to its original.
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Optional

import numpy as np
import torch
from torch import nn

from ..data.loader import BatchLoader
from ..data.splits import ArraySplit, DataSource
from ..engine.evaluate import tta_logits
from ..console import quiet, say, set_quiet
from ..engine.runlog import NullLog
from ..engine.trainer import Trainer
from .pool import Pool


def stratified_folds(labels: np.ndarray, audited: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold number (0..k-1) of every audited row, -1 for the rest; each class spread evenly over the folds."""
    rng = np.random.default_rng(seed)
    folds = np.full(len(labels), -1, dtype=np.int64)
    offset = 0
    for c in np.unique(labels[audited]):
        rows = np.flatnonzero(audited & (labels == c))
        rng.shuffle(rows)
        folds[rows] = (np.arange(len(rows)) + offset) % k  # continue where the last class ended: even folds
        offset += len(rows)
    return folds


def last_linear(model) -> Optional[nn.Module]:
    if not isinstance(model, nn.Module):
        return None
    found = None
    for m in model.modules():
        if isinstance(m, nn.Linear):
            found = m
    return found


@torch.inference_mode()
def forward(model, loader, tta: bool = False, features: bool = False, flip: bool = False) -> tuple:
    """-> (logits float32 (N, K), features float32 (N, D) or None) in the loader's order."""
    if hasattr(model, "eval"):
        model.eval()
    layer = last_linear(model) if features else None
    grabbed: list = []
    hook = layer.register_forward_hook(lambda m, inp, out: grabbed.append(inp[0].flatten(1).float())) \
        if layer is not None else None
    outs, feats = [], []
    try:
        for x, _ in loader.iterate(0):
            grabbed.clear()
            logits = model(x).float()
            if features:
                f = grabbed[0] if grabbed else logits.log_softmax(1)
                if flip:
                    grabbed.clear()
                    g = model(x.flip(-1)).float()
                    f = (f + (grabbed[0] if grabbed else g.log_softmax(1))) / 2
                feats.append(f.cpu())
            if tta:
                logits = tta_logits(model, x).float()
            outs.append(logits.cpu())
    finally:
        if hook is not None:
            hook.remove()
    return torch.cat(outs), (torch.cat(feats) if features else None)


def pool_loader(pool: Pool, rows, pre: dict, device, batch_size: int = 256) -> BatchLoader:
    rows = torch.as_tensor(np.asarray(rows), dtype=torch.long)
    return BatchLoader(targets=torch.as_tensor(pool.labels)[rows], batch_size=batch_size, pre=pre, device=device,
                       images=pool.images[rows])


def fit_quietly(cfg, source: DataSource) -> Trainer:
    """Train on source's train split with no run folder, no evaluation and nothing printed; -> the Trainer
    (its `model`, or its EMA's, holds the result)."""
    was_quiet = quiet()
    set_quiet(True)
    try:
        tr = Trainer(cfg, data=source, progress=False)
        log, prog = NullLog(), tr.progress
        while prog.epoch < cfg.epochs:
            tr.train_epoch(log, last_path="")
            prog.epoch += 1
            prog.position = prog.fresh_position(tr.optimizer.param_groups[0]["lr"])
    finally:
        set_quiet(was_quiet)
    return tr


def final_model(tr: Trainer):
    return tr.ema.module if tr.ema is not None else tr.model


def sub_source(base: DataSource, pool: Pool, train_rows, val_rows) -> DataSource:
    def arr(rows):
        rows = torch.as_tensor(np.asarray(rows), dtype=torch.long)
        return ArraySplit(pool.images[rows], pool.labels[rows.numpy()].tolist(), "audit")
    size = tuple(pool.images.shape[-2:])
    return replace(base, splits={"train": arr(train_rows), "val": arr(val_rows)}, channels=pool.images.shape[1],
                   native_size=size, default_size=size, skipped=[], notes=[], holdout=None)


def cross_val(pool: Pool, base: DataSource, cfg, audited: np.ndarray, folds: int, flip: bool,
              progress: bool = True, ensemble: int = 1) -> dict:
    """k-fold out-of-sample logits for the audited rows (NaN elsewhere) and features of every row (from the
    first fold's model). ensemble > 1 repeats the cross-validation with other seeds (other folds, other
    initial weights and data order) and averages the probabilities: the returned logits are their logs.
    -> {"logits", "features", "fold", "fold_accuracy", "seconds_per_fold"} (accuracy and seconds per fold
    and repeat)"""
    n, k = len(pool), len(pool.classes)
    probs = torch.zeros((n, k))
    feats, accs, secs, first_fold = None, [], [], None
    for rep in range(ensemble):
        rcfg = replace(cfg, seed=cfg.seed + rep)
        fold = stratified_folds(pool.labels, audited, folds, rcfg.seed)
        first_fold = fold if first_fold is None else first_fold
        for f in range(folds):
            held = np.flatnonzero(fold == f)
            train = np.flatnonzero(fold != f)
            if len(held) == 0:
                continue
            t0 = time.perf_counter()
            tr = fit_quietly(rcfg, sub_source(base, pool, train, held))
            model = final_model(tr)
            out, _ = forward(model, tr.data.val, tta=cfg.tta)
            probs[torch.as_tensor(held)] += out.softmax(1)
            accs.append(float((out.argmax(1).numpy() == pool.labels[held]).mean()))
            if feats is None:
                _, feats = forward(model, pool_loader(pool, np.arange(n), tr.data.pre, tr.device), features=True,
                                   flip=flip)
            secs.append(time.perf_counter() - t0)
            if progress:
                which = f" (model {rep + 1}/{ensemble})" if ensemble > 1 else ""
                say(f"audit: fold {f + 1}/{folds}{which}: trained on {len(train)} images, out-of-sample accuracy "
                    f"{accs[-1]:.4f} on {len(held)} ({secs[-1]:.1f}s)")
    logits = torch.full((n, k), float("nan"))
    done = torch.as_tensor(audited)  # every audited row is in one fold of each repeat
    logits[done] = (probs[done] / ensemble).clamp_min(1e-12).log()
    return {"logits": logits, "features": feats, "fold": first_fold, "fold_accuracy": accs, "seconds_per_fold": secs}


def with_model(pool: Pool, predictor, flip: bool, tta: bool = False) -> dict:
    """Logits and features of every row from one existing model (a checkpoint's or an exported file's)."""
    t0 = time.perf_counter()
    logits, feats = forward(predictor.model, pool_loader(pool, np.arange(len(pool)), predictor.preprocess,
                                                         predictor.device), tta=tta, features=True, flip=flip)
    return {"logits": logits, "features": feats, "seconds": time.perf_counter() - t0}
