"""The learning-rate range test (its plot: report/figures.lr_find, drawn by tudui.api.lr_find): train from the initial weights while the learning rate grows
exponentially from `start_lr` to `end_lr`, one batch per value, and stop once the loss diverges.
A good rate sits where the (smoothed) loss falls fastest, well below where it blows up."""
from __future__ import annotations

import math
import numpy as np

from ..console import progress_bar
from ..errors import ConfigError, TuduiError
from .trainer import Trainer


def lr_range_test(cfg, *, start_lr: float = 1e-7, end_lr: float = 10.0, steps: int = 100, diverge: float = 4.0,
                  beta: float = 0.98, progress: bool = True, model=None, data=None) -> dict:
    """-> {'lrs', 'losses' (smoothed), 'suggested_lr', 'min_loss_lr', 'stopped'}. Nothing is written."""

    if not 0 < start_lr < end_lr:
        raise ConfigError(f"lr-find needs 0 < --start-lr < --end-lr, got {start_lr} and {end_lr}")
    if steps < 5:
        raise ConfigError("lr-find needs --steps of at least 5")
    tr = Trainer(cfg, model=model, data=data, progress=progress)
    # keep the groups' ratios to the base lr (--backbone-lr, --norm-bias-lr-scale)
    ratios = [g["lr"] / cfg.lr for g in tr.optimizer.param_groups]
    tr.model.train()
    lrs, losses, avg, best = [], [], 0.0, math.inf
    stopped = "end"
    bar = progress_bar(steps, "lr-find", progress, leave=False)
    batches = _endless(tr.data.train)
    for i in range(steps):
        lr = start_lr * (end_lr / start_lr) ** (i / (steps - 1))
        for g, r in zip(tr.optimizer.param_groups, ratios):
            g["lr"] = lr * r
        x, y = next(batches)
        loss = tr.compute_loss(x, y)
        value = float(loss.detach())
        if not math.isfinite(value):
            stopped = "not finite"
            break
        avg = beta * avg + (1 - beta) * value
        smooth = avg / (1 - beta ** (i + 1))  # bias-corrected running mean
        lrs.append(lr)
        losses.append(smooth)
        best = min(best, smooth)
        bar.update(1)
        if smooth > diverge * best:
            stopped = "diverged"
            break
        tr.scaler.scale(loss).backward()
        tr.optimizer_step(schedule=False)
    bar.close()
    suggested, min_loss_lr = suggest(lrs, losses)
    return {"lrs": lrs, "losses": losses, "suggested_lr": suggested, "min_loss_lr": min_loss_lr, "stopped": stopped}


def _endless(loader):
    epoch = 0
    while True:
        yield from loader.iterate(epoch)
        epoch += 1


def suggest(lrs: list, losses: list) -> tuple:
    """-> (suggested lr, lr of the lowest loss / 10). The suggestion is where the loss falls fastest before
    its minimum, but no more than a tenth of the minimum's lr: when the loss only starts to fall right
    before it blows up, the steepest point is at the edge of divergence."""
    if len(lrs) < 5:
        raise TuduiError(f"the loss diverged after {len(lrs)} steps; lower --start-lr")
    lo = int(np.argmin(losses))
    min_loss_lr = lrs[lo] / 10
    skip = len(lrs) // 10  # the first points are mostly the smoothing warming up
    if lo - skip < 2:
        return min_loss_lr, min_loss_lr
    slopes = np.gradient(np.asarray(losses[:lo + 1]), np.log10(lrs[:lo + 1]))
    steepest = float(lrs[skip + int(np.argmin(slopes[skip:]))])
    return min(steepest, min_loss_lr), min_loss_lr
